// The declarative desired state: parsing (good and hostile documents, each
// error with its exact path, value and line), canonical YAML round-trips,
// and diffs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "desired_state.hpp"

namespace sluice::config {
namespace {

using dataplane::AttachMode;

DesiredState parse_ok(const std::string& yaml) {
  auto parsed = parse_desired_state(yaml);
  EXPECT_TRUE(parsed.has_value()) << (parsed ? "" : parsed.error().to_string()) << "\n--- document:\n" << yaml;
  return parsed ? *parsed : DesiredState{};
}

ParseError parse_error(const std::string& yaml) {
  auto parsed = parse_desired_state(yaml);
  EXPECT_FALSE(parsed.has_value()) << "accepted:\n" << yaml;
  return parsed ? ParseError{} : parsed.error();
}

const char* const kFull = R"(interfaces:
  - name: eth0
    mode: native
  - name: veth1
    mode: skb
defaults:
  end_verdict: drop
  tail_call_fail_verdict: pass
  malformed_verdict: drop
  non_ip_verdict: pass
  drop_fragments: true
  stages: [filter, forward]
prefix_lists:
  block:
    - 198.18.0.0/15
    - {prefix: "2001:db8::/32", action: pass}
  allow:
    - 10.0.0.1
rules:
  - priority: 10
    proto: tcp
    dport: 22
    action: drop
  - priority: 20
    src: 192.0.2.0/24
    dst: 198.51.100.0/24
    proto: udp
    sport: 1000-2000
    dport: "53"
    iface: eth0
    action: pass
  - priority: 30
    proto: tcp
    tcp_flags: syn,!ack
    action: drop
  - priority: 40
    proto: icmp
    icmp_type: 8
    action: pass
limits:
  - class: web
    pps: 1000
    bps: 8000000
    burst: 200
  - class: dns
    pps: 50
)";

TEST(ConfigParse, FullDocumentParsesIntoValues) {
  const DesiredState state = parse_ok(kFull);
  ASSERT_TRUE(state.interfaces);
  EXPECT_EQ(*state.interfaces, (std::vector<InterfaceSpec>{{"eth0", AttachMode::Native}, {"veth1", AttachMode::Skb}}));
  ASSERT_TRUE(state.defaults);
  EXPECT_EQ(state.defaults->end_verdict, SLUICE_VERDICT_DROP);
  EXPECT_EQ(state.defaults->tail_call_fail_verdict, SLUICE_VERDICT_PASS);
  EXPECT_EQ(state.defaults->drop_fragments, true);
  EXPECT_EQ(state.defaults->stages, SLUICE_STAGE_BIT(SLUICE_STAGE_FILTER) | SLUICE_STAGE_BIT(SLUICE_STAGE_FORWARD));
  ASSERT_TRUE(state.prefix_lists);
  EXPECT_EQ(state.prefix_lists->block,
            (std::vector<PrefixEntry>{{"198.18.0.0/15", std::nullopt, std::nullopt},
                                      {"2001:db8::/32", filter::Action::Pass, std::nullopt}}));
  // A bare address is a host prefix, printed canonically with its length.
  EXPECT_EQ(state.prefix_lists->allow, (std::vector<PrefixEntry>{{"10.0.0.1/32", std::nullopt, std::nullopt}}));
  ASSERT_TRUE(state.rules);
  ASSERT_EQ(state.rules->size(), 4u);
  const RuleSpec& ssh = (*state.rules)[0];
  EXPECT_EQ(ssh.priority, 10u);
  EXPECT_EQ(ssh.proto, 6);
  EXPECT_EQ(ssh.dport, (PortRange{22, 22}));
  EXPECT_EQ(ssh.action, filter::Action::Drop);
  const RuleSpec& dns = (*state.rules)[1];
  EXPECT_EQ(dns.src, "192.0.2.0/24");
  EXPECT_EQ(dns.dst, "198.51.100.0/24");
  EXPECT_EQ(dns.sport, (PortRange{1000, 2000}));
  EXPECT_EQ(dns.dport, (PortRange{53, 53}));
  EXPECT_EQ(dns.iface, "eth0");
  EXPECT_EQ((*state.rules)[2].tcp_flags, (TcpFlagMatch{0x12, 0x02}));
  EXPECT_EQ((*state.rules)[3].icmp_type, 8);
  ASSERT_TRUE(state.limits);
  EXPECT_EQ(*state.limits, (std::vector<LimitSpec>{{"web", 1000, 8000000, 200}, {"dns", 50, std::nullopt, std::nullopt}}));
}

TEST(ConfigParse, AbsentSectionsAreNotManaged) {
  const DesiredState state = parse_ok("defaults:\n  end_verdict: pass\n");
  EXPECT_FALSE(state.interfaces);
  EXPECT_FALSE(state.rules);
  ASSERT_TRUE(state.defaults);
  EXPECT_FALSE(state.defaults->malformed_verdict);
  EXPECT_EQ(parse_ok(""), DesiredState{});
  EXPECT_EQ(parse_ok("# only a comment\n"), DesiredState{});
  EXPECT_EQ(parse_ok("{}"), DesiredState{});
}

TEST(ConfigParse, EmptyListsManageAnEmptySection) {
  const DesiredState state = parse_ok("interfaces: []\nrules: []\n");
  ASSERT_TRUE(state.interfaces);
  EXPECT_TRUE(state.interfaces->empty());
  ASSERT_TRUE(state.rules);
  EXPECT_TRUE(state.rules->empty());
}

TEST(ConfigParse, ModeDefaultsToNative) {
  const DesiredState state = parse_ok("interfaces: [{name: eth0}]");
  EXPECT_EQ(state.interfaces->at(0).mode, AttachMode::Native);
}

struct BadCase {
  const char* name;
  std::string yaml;
  std::string path;
  std::string message;
  int line;
};

class ConfigBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigBad, NamesPathValueAndLine) {
  const BadCase& c = GetParam();
  const ParseError error = parse_error(c.yaml);
  EXPECT_EQ(error.path, c.path);
  EXPECT_EQ(error.message, c.message);
  EXPECT_EQ(error.line, c.line);
}

std::string rules_with(const std::string& fourth_rule_field) {
  return "rules:\n"
         "  - {priority: 1, action: drop}\n"
         "  - {priority: 2, action: drop}\n"
         "  - {priority: 3, action: drop}\n"
         "  - priority: 4\n"
         "    action: drop\n"
         "    " + fourth_rule_field + "\n";
}

INSTANTIATE_TEST_SUITE_P(
    Documents, ConfigBad,
    ::testing::Values(
        BadCase{"PortRangeBackwards", rules_with("dport: 9-3"), "rules[3].dport",
                "port range '9-3': ports 9-3: first port above last", 7},
        BadCase{"PortTooLarge", rules_with("sport: 65536"), "rules[3].sport",
                "port range '65536': expected PORT or FIRST-LAST: port '65536': out of range; expected a decimal integer in "
                "0..65535", 7},
        BadCase{"PortNegative", rules_with("dport: -1"), "rules[3].dport",
                "port range '-1': expected PORT or FIRST-LAST: port '-1': a sign is not allowed; expected a decimal integer in "
                "0..65535", 7},
        BadCase{"PortOpenRange", rules_with("dport: 10-"), "rules[3].dport",
                "port range '10-': expected PORT or FIRST-LAST: port '': empty; expected a decimal integer in 0..65535", 7},
        BadCase{"PortList", rules_with("dport: [22]"), "rules[3].dport",
                "expected a port or port range, got a list", 7},
        BadCase{"UnknownRuleKey", rules_with("dprot: 22"), "rules[3].dprot",
                "unknown key 'dprot'; expected one of priority, src, dst, proto, sport, dport, tcp_flags, icmp_type, "
                "iface, action, rate_class",
                7},
        BadCase{"BadSrc", rules_with("src: 10.0.0.1/8"), "rules[3].src",
                "bad prefix '10.0.0.1/8': host bits set beyond /8", 7},
        BadCase{"BadDst", rules_with("dst: 300.0.0.0/8"), "rules[3].dst",
                "bad prefix '300.0.0.0/8': '300.0.0.0' is not an IPv4 address", 7},
        BadCase{"BadProto", rules_with("proto: sctpx"), "rules[3].proto",
                "protocol 'sctpx': expected tcp, udp, icmp, icmpv6 or a number: only the digits 0-9 are allowed; expected a "
                "decimal integer in 0..255", 7},
        BadCase{"ProtoTooLarge", rules_with("proto: 256"), "rules[3].proto",
                "protocol '256': expected tcp, udp, icmp, icmpv6 or a number: out of range; expected a decimal integer in 0..255", 7},
        BadCase{"BadFlag", rules_with("tcp_flags: syn,!akc"), "rules[3].tcp_flags",
                "bad tcp_flags 'syn,!akc': unknown flag 'akc'; expected fin syn rst psh ack urg ece cwr, '!' for clear",
                7},
        BadCase{"FlagTwice", rules_with("tcp_flags: syn,!syn"), "rules[3].tcp_flags",
                "bad tcp_flags 'syn,!syn': flag 'syn' given twice", 7},
        BadCase{"FlagTrailingComma", rules_with("tcp_flags: 'syn,'"), "rules[3].tcp_flags",
                "bad tcp_flags 'syn,': unknown flag ''; expected fin syn rst psh ack urg ece cwr, '!' for clear", 7},
        BadCase{"IcmpTypeRange", rules_with("icmp_type: 256"), "rules[3].icmp_type",
                "bad number '256': out of range; expected a decimal integer in 0..255", 7},
        BadCase{"BadIface", rules_with("iface: a/b"), "rules[3].iface",
                "bad interface name 'a/b': contains '/', ':', whitespace or a control byte", 7},
        BadCase{"DuplicateRuleKey", rules_with("action: pass"), "rules[3].action", "duplicate key 'action'", 7},
        BadCase{"BadAction", "rules:\n  - priority: 1\n    action: reject\n", "rules[0].action",
                "bad action 'reject': expected drop, pass, pass-track, rate-limit", 3},
        BadCase{"MissingAction", "rules:\n  - priority: 1\n", "rules[0]", "missing required key 'action'", 2},
        BadCase{"MissingPriority", "rules:\n  - action: drop\n", "rules[0]", "missing required key 'priority'", 2},
        BadCase{"PriorityNegative", "rules:\n  - {priority: -5, action: drop}\n", "rules[0].priority",
                "bad number '-5': a sign is not allowed; expected a decimal integer in 0..4294967295", 2},
        BadCase{"PriorityHex", "rules:\n  - {priority: 0x10, action: drop}\n", "rules[0].priority",
                "bad number '0x10': a base prefix is not allowed (integers are decimal); expected a decimal integer in 0..4294967295", 2},
        // yaml-cpp's as<T>() reads 0x10 as 16 and 010 as 8: numbers go through the one strict parser instead.
        BadCase{"PriorityOctal", "rules:\n  - {priority: 010, action: drop}\n", "rules[0].priority",
                "bad number '010': a leading zero is not allowed (integers are decimal: 010 is not 8); expected a "
                "decimal integer in 0..4294967295", 2},
        BadCase{"PriorityOctalPrefix", "rules:\n  - {priority: 0o17, action: drop}\n", "rules[0].priority",
                "bad number '0o17': a base prefix is not allowed (integers are decimal); expected a decimal integer in "
                "0..4294967295", 2},
        BadCase{"PriorityExponent", "rules:\n  - {priority: 1e3, action: drop}\n", "rules[0].priority",
                "bad number '1e3': only the digits 0-9 are allowed; expected a decimal integer in 0..4294967295", 2},
        BadCase{"IcmpTypeHex", rules_with("icmp_type: 0x8"), "rules[3].icmp_type",
                "bad number '0x8': a base prefix is not allowed (integers are decimal); expected a decimal integer in "
                "0..255", 7},
        BadCase{"PortOctal", rules_with("dport: 080"), "rules[3].dport",
                "port range '080': expected PORT or FIRST-LAST: port '080': a leading zero is not allowed (integers are "
                "decimal: 010 is not 8); expected a decimal integer in 0..65535", 7},
        BadCase{"PortRangeHexEnd", rules_with("dport: 80-0x100"), "rules[3].dport",
                "port range '80-0x100': expected PORT or FIRST-LAST: port '0x100': a base prefix is not allowed (integers "
                "are decimal); expected a decimal integer in 0..65535", 7},
        BadCase{"ProtoHex", rules_with("proto: 0x6"), "rules[3].proto",
                "protocol '0x6': expected tcp, udp, icmp, icmpv6 or a number: a base prefix is not allowed (integers are "
                "decimal); expected a decimal integer in 0..255", 7},
        BadCase{"LimitPpsOctal", "limits:\n  - {class: web, pps: 0100}\n", "limits[0].pps",
                "bad number '0100': a leading zero is not allowed (integers are decimal: 010 is not 8); expected a "
                "decimal integer in 1..18446744073709551615", 2},
        BadCase{"LimitBurstHex", "limits:\n  - {class: web, pps: 10, burst: 0x10}\n", "limits[0].burst",
                "bad number '0x10': a base prefix is not allowed (integers are decimal); expected a decimal integer in "
                "1..18446744073709551615", 2},
        BadCase{"DropSampleEveryOctal", "defaults:\n  drop_sample_every: 010\n", "defaults.drop_sample_every",
                "bad number '010': a leading zero is not allowed (integers are decimal: 010 is not 8); expected a "
                "decimal integer in 0..1000000000", 2},
        // Rules no packet can match: the ICMP type of the other family's ICMP.
        BadCase{"IcmpTypeUnderIcmpWithIpv6", rules_with("src: 2001:db8::/32\n    proto: icmp\n    icmp_type: 8"),
                "rules[3]", "rule (priority 4): icmp_type 8 with protocol icmp and an IPv6 address: IPv6 carries ICMP as icmpv6; no "
                "packet can match", 5},
        BadCase{"IcmpTypeUnderIcmpv6WithIpv4", rules_with("dst: 198.18.0.0/15\n    proto: icmpv6\n    icmp_type: 128"),
                "rules[3]", "rule (priority 4): icmp_type 128 with protocol icmpv6 and an IPv4 address: IPv4 carries ICMP as icmp; no "
                "packet can match", 5},
        BadCase{"DuplicatePriority", "rules:\n  - {priority: 5, action: drop}\n  - {priority: 5, action: pass}\n",
                "rules[1].priority", "duplicate priority 5 (also rules[0])", 3},
        BadCase{"RulesNotList", "rules: {priority: 1}\n", "rules", "expected a list, got a mapping", 1},
        BadCase{"RuleNotMapping", "rules:\n  - drop\n", "rules[0]", "expected a mapping, got a scalar", 2},
        BadCase{"UnknownTopLevel", "interfaces: []\nvips: []\n", "vips",
                "unknown key 'vips'; expected one of interfaces, defaults, filter, prefix_lists, rules, limits, lb, forward", 2},
        BadCase{"DuplicateTopLevel", "rules: []\nrules: []\n", "rules", "duplicate key 'rules'", 2},
        BadCase{"TopLevelList", "- a\n- b\n", "", "expected a mapping, got a list", 1},
        BadCase{"TopLevelScalar", "hello\n", "", "expected a mapping, got a scalar", 1},
        BadCase{"InterfaceMode", "interfaces:\n  - name: eth0\n    mode: generic\n", "interfaces[0].mode",
                "bad mode 'generic': expected native or skb", 3},
        BadCase{"InterfaceNoName", "interfaces:\n  - mode: skb\n", "interfaces[0]", "missing required key 'name'", 2},
        BadCase{"InterfaceNameTooLong", "interfaces:\n  - name: abcdefghijklmnop\n", "interfaces[0].name",
                "bad interface name 'abcdefghijklmnop': longer than 15 bytes", 2},
        BadCase{"InterfaceDuplicate", "interfaces:\n  - name: eth0\n  - name: eth0\n", "interfaces[1].name",
                "duplicate interface 'eth0' (also interfaces[0])", 3},
        BadCase{"InterfaceNull", "interfaces:\n", "interfaces", "empty value; an empty list is written []", 1},
        BadCase{"NullInsideRule", "rules:\n  - priority: 1\n    action:\n", "rules[0].action",
                "empty value; an empty list is written []", 3},
        BadCase{"DefaultVerdict", "defaults:\n  end_verdict: tx\n", "defaults.end_verdict",
                "bad verdict 'tx': expected pass or drop", 2},
        BadCase{"DefaultVerdictCase", "defaults:\n  malformed_verdict: DROP\n", "defaults.malformed_verdict",
                "bad verdict 'DROP': expected pass or drop", 2},
        BadCase{"DropFragmentsYes", "defaults:\n  drop_fragments: yes\n", "defaults.drop_fragments",
                "bad boolean 'yes': expected true or false", 2},
        BadCase{"UnknownDefault", "defaults:\n  default_policy: drop\n", "defaults.default_policy",
                "unknown key 'default_policy'; expected one of end_verdict, tail_call_fail_verdict, "
                "malformed_verdict, non_ip_verdict, drop_fragments, stages, drop_sample_every, default_verdict",
                2},
        BadCase{"UnknownStage", "defaults:\n  stages: [filter, nat]\n", "defaults.stages[1]",
                "unknown stage 'nat': expected filter, lb or forward", 2},
        BadCase{"DuplicateStage", "defaults:\n  stages: [lb, lb]\n", "defaults.stages[1]", "duplicate stage 'lb'", 2},
        BadCase{"StagesScalar", "defaults:\n  stages: filter\n", "defaults.stages", "expected a list, got a scalar", 2},
        BadCase{"PrefixBad", "prefix_lists:\n  block:\n    - 10.0.0.0/33\n", "prefix_lists.block[0]",
                "bad prefix '10.0.0.0/33': prefix length 33 out of range 0..32", 3},
        BadCase{"PrefixDuplicateAcrossLists", "prefix_lists:\n  block: [10.0.0.0/8]\n  allow: [10.0.0.0/8]\n",
                "prefix_lists.allow[0]", "duplicate prefix '10.0.0.0/8' (also prefix_lists.block[0])", 3},
        BadCase{"PrefixDuplicateCanonical", "prefix_lists:\n  block: [10.0.0.1, 10.0.0.1/32]\n",
                "prefix_lists.block[1]", "duplicate prefix '10.0.0.1/32' (also prefix_lists.block[0])", 2},
        BadCase{"PrefixEntryNoPrefix", "prefix_lists:\n  block:\n    - {action: drop}\n", "prefix_lists.block[0]",
                "missing required key 'prefix'", 3},
        BadCase{"PrefixEntryBadAction", "prefix_lists:\n  block:\n    - {prefix: 10.0.0.0/8, action: nope}\n",
                "prefix_lists.block[0].action", "bad action 'nope': expected drop, pass, pass-track, rate-limit", 3},
        BadCase{"PrefixListUnknown", "prefix_lists:\n  deny: []\n", "prefix_lists.deny",
                "unknown key 'deny'; expected one of block, allow", 2},
        BadCase{"LimitNoPps", "limits:\n  - class: web\n", "limits[0]", "missing required key 'pps'", 2},
        BadCase{"LimitZeroPps", "limits:\n  - {class: web, pps: 0}\n", "limits[0].pps",
                "bad number '0': out of range; expected a decimal integer in 1..18446744073709551615", 2},
        BadCase{"LimitHugePps", "limits:\n  - {class: web, pps: 18446744073709551616}\n", "limits[0].pps",
                "bad number '18446744073709551616': out of range; expected a decimal integer in 1..18446744073709551615", 2},
        BadCase{"LimitBadClass", "limits:\n  - {class: 'a b', pps: 1}\n", "limits[0].class",
                "bad class name 'a b': 1..32 of A-Z a-z 0-9 _ - .", 2},
        BadCase{"LimitDuplicateClass", "limits:\n  - {class: a, pps: 1}\n  - {class: a, pps: 2}\n", "limits[1].class",
                "duplicate class 'a' (also limits[0])", 3},
        BadCase{"NonScalarKey", "? [a]\n: 1\n", "<key>", "keys must be plain names, got a list", 1},
        BadCase{"ControlBytesEchoedSafely", "rules:\n  - {priority: 1, action: \"dr\\top\"}\n", "rules[0].action",
                "bad action 'dr\\x09op': expected drop, pass, pass-track, rate-limit", 2},
        BadCase{"TwoDocuments", "rules: []\n---\nrules: []\n", "", "more than one YAML document; expected exactly one",
                0},
        // yaml-cpp 0.7's LoadAll loops forever on these (issue #1040): found by config_fuzz.
        BadCase{"FlowMapThenComma", "{},", "", "more than one YAML document; expected exactly one", 0},
        BadCase{"LoneComma", ",", "", "more than one YAML document; expected exactly one", 0}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

TEST(ConfigParse, InvalidYamlNamesTheLine) {
  const ParseError error = parse_error("rules:\n  - {priority: 1, action: drop\n");
  EXPECT_EQ(error.path, "");
  EXPECT_NE(error.message.find("invalid YAML"), std::string::npos) << error.message;
  EXPECT_GT(error.line, 0);
}

TEST(ConfigParse, ErrorTextCarriesPathAndLine) {
  const ParseError error = parse_error(rules_with("dport: 9-3"));
  EXPECT_EQ(error.to_string(), "rules[3].dport: port range '9-3': ports 9-3: first port above last (line 7, column 12)");
}

TEST(ConfigParse, NulByteRefused) {
  const ParseError error = parse_error(std::string("rules: []\0x", 11));
  EXPECT_EQ(error.message, "document contains a NUL byte at offset 9");
}

TEST(ConfigParse, OversizedDocumentRefusedBeforeParsing) {
  const ParseError error = parse_error(std::string(kMaxDocumentBytes + 1, ' '));
  EXPECT_NE(error.message.find("document too large"), std::string::npos) << error.message;
}

// "Billion laughs": each anchor names the previous one ten times, 10^9
// nodes from a few hundred bytes. yaml-cpp shares aliased nodes and the
// walker only descends into known shapes, so it must fail fast, not expand.
std::string alias_bomb() {
  std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) yaml += (j ? ", *a" : "*a") + std::to_string(i - 1);
    yaml += "]\n";
  }
  return yaml;
}

TEST(ConfigParse, AliasBombUnderUnknownKeyFailsFast) {
  const ParseError error = parse_error(alias_bomb());
  EXPECT_EQ(error.path, "a0");
}

TEST(ConfigParse, AliasBombInsideASectionFailsFast) {
  std::string yaml = alias_bomb();
  // Turn the top-level anchors into a list under rules: the walker must see
  // a list where a rule mapping belongs and stop.
  yaml = "rules:\n" + [&] {
    std::string indented;
    std::size_t start = 0;
    while (start < yaml.size()) {
      const std::size_t end = yaml.find('\n', start);
      std::string line = yaml.substr(start, end - start);
      line = "  - " + line.substr(line.find(':') + 2);
      indented += line + "\n";
      start = end + 1;
    }
    return indented;
  }();
  const ParseError error = parse_error(yaml);
  EXPECT_EQ(error.path, "rules[0]");
  EXPECT_EQ(error.message, "expected a mapping, got a list");
}

TEST(ConfigParse, DeepNestingIsAnErrorNotACrash) {
  const std::string deep = "rules: " + std::string(100000, '[') + std::string(100000, ']') + "\n";
  const ParseError error = parse_error(deep);
  EXPECT_FALSE(error.message.empty());
}

// ---- the filter's rules, applied to the document ----

TEST(ConfigFilter, RateLimitNamesAClassDefinedAnywhereInTheDocument) {
  const DesiredState state = parse_ok(R"(rules:
  - {priority: 1, proto: tcp, tcp_flags: "syn,!ack", action: rate-limit, rate_class: syn}
prefix_lists:
  block: [{prefix: 198.18.0.0/15, action: rate-limit, rate_class: syn}]
limits:
  - {class: web, pps: 10}
  - {class: syn, pps: 100, burst: 20, bps: 1000}
)");
  EXPECT_EQ(state.rules->at(0).action, filter::Action::RateLimit);
  EXPECT_EQ(state.rules->at(0).rate_class, "syn");
  auto set = to_filter_rule_set(state, [](const std::string&) { return std::nullopt; });
  ASSERT_TRUE(set) << set.error().to_string();
  ASSERT_EQ(set->rate_classes.size(), 2u);
  EXPECT_EQ(set->rate_classes[1], (filter::RateClass{1, 100, 20, 1000, 1000, false}));
  // Class ids follow limits order: "syn" is 1.
  EXPECT_EQ(set->rules.at(0).rate_class, 1u);
  EXPECT_EQ(set->prefixes.at(0).rate_class, 1u);
  EXPECT_EQ(set->prefixes.at(0).action, filter::Action::RateLimit);
}

TEST(ConfigFilter, ToRuleSetResolvesInterfacesAndListActions) {
  const DesiredState state = parse_ok(R"(filter: {default_policy: drop}
defaults: {end_verdict: pass}
rules: [{priority: 3, iface: eth0, action: pass-track}]
prefix_lists: {block: [10.0.0.0/8], allow: [10.1.0.0/16]}
)");
  auto set = to_filter_rule_set(state, [](const std::string& name) -> std::optional<std::uint32_t> {
    if (name == "eth0") return 2;
    return std::nullopt;
  });
  ASSERT_TRUE(set) << set.error().to_string();
  EXPECT_EQ(set->default_policy, filter::DefaultPolicy::Drop);
  EXPECT_EQ(set->rules.at(0).ifindex, 2u);
  EXPECT_EQ(set->rules.at(0).action, filter::Action::PassTrack);
  EXPECT_EQ(set->prefixes.at(0).action, filter::Action::Drop);
  EXPECT_EQ(set->prefixes.at(1).action, filter::Action::Pass);
  auto missing = to_filter_rule_set(state, [](const std::string&) { return std::nullopt; });
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().to_string(), "rules[0].iface: no interface 'eth0'");
}

INSTANTIATE_TEST_SUITE_P(
    FilterSemantics, ConfigBad,
    ::testing::Values(
        BadCase{"RateLimitWithoutClass", "rules:\n  - {priority: 1, action: rate-limit}\n", "rules[0]",
                "action rate-limit needs rate_class (a limits[].class)", 2},
        BadCase{"UnknownClass", "limits: [{class: a, pps: 1}]\nrules:\n  - {priority: 1, action: rate-limit, rate_class: b}\n",
                "rules[0]", "rate_class 'b' is not a class of this document's limits", 3},
        BadCase{"ClassWithoutRateLimit", "limits: [{class: a, pps: 1}]\nrules:\n  - {priority: 1, action: drop, rate_class: a}\n",
                "rules[0]", "rate_class 'a' needs action rate-limit", 3},
        BadCase{"MixedFamilies", "rules:\n  - {priority: 7, src: 10.0.0.0/8, dst: \"2001:db8::/32\", action: drop}\n",
                "rules[0]", "rule (priority 7): src 10.0.0.0/8 and dst 2001:db8::/32 are of different address families", 2},
        BadCase{"PassTrackInPrefixList", "prefix_lists:\n  block:\n    - {prefix: 10.0.0.0/8, action: pass-track}\n",
                "prefix_lists.block[0]", "prefix 10.0.0.0/8: action pass-track is for rules, not prefix lists", 3},
        BadCase{"RateTooLarge", "limits:\n  - {class: a, pps: 1000000001}\n", "limits[0]",
                "rate_classes (id 0): packets_per_sec 1000000001 too large", 2}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

// ---- round trips ----

TEST(ConfigYaml, RoundTripOfFullDocument) {
  const DesiredState state = parse_ok(kFull);
  const std::string yaml = to_yaml(state);
  EXPECT_EQ(parse_ok(yaml), state) << yaml;
  // Canonical: printing the re-parsed state gives the same text.
  EXPECT_EQ(to_yaml(parse_ok(yaml)), yaml);
}

TEST(ConfigYaml, RoundTripOfEdgeValues) {
  DesiredState state;
  state.interfaces = std::vector<InterfaceSpec>{};
  state.defaults = Defaults{};
  state.defaults->stages = 0;  // every stage off
  state.defaults->drop_fragments = false;
  state.prefix_lists = PrefixLists{};
  RuleSpec rule;
  rule.priority = 4294967295u;
  rule.proto = 250;  // no name: printed as a number
  rule.sport = PortRange{0, 65535};
  rule.tcp_flags = TcpFlagMatch{0xff, 0x00};
  rule.icmp_type = 0;
  rule.iface = "yes";  // a YAML 1.1 boolean word, still a name
  rule.action = filter::Action::Pass;
  state.rules = std::vector<RuleSpec>{rule};
  state.limits = std::vector<LimitSpec>{{"x", filter::kMaxPacketsPerSec, 1, 1}};
  const std::string yaml = to_yaml(state);
  EXPECT_EQ(parse_ok(yaml), state) << yaml;
}

// drop_sample_every (defaults) and syn_only (limits): parsed, printed back,
// diffed, bounded, and carried into the filter's rate class.
TEST(ConfigYaml, DropSamplingAndSynOnlyLimits) {
  const DesiredState state = parse_ok("defaults: {drop_sample_every: 100}\n"
                                      "limits: [{class: syn, pps: 50, syn_only: true}, {class: web, pps: 9}]\n");
  EXPECT_EQ(state.defaults->drop_sample_every, 100u);
  EXPECT_TRUE((*state.limits)[0].syn_only);
  EXPECT_FALSE((*state.limits)[1].syn_only);
  const std::string yaml = to_yaml(state);
  EXPECT_NE(yaml.find("drop_sample_every: 100"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("syn_only: true"), std::string::npos) << yaml;
  EXPECT_EQ(parse_ok(yaml), state) << yaml;
  EXPECT_EQ(diff(state, parse_ok("defaults: {drop_sample_every: 0}\n")),
            (std::vector<std::string>{"~ defaults.drop_sample_every: 100 -> 0"}));
  auto set = to_filter_rule_set(state, [](const std::string&) { return std::nullopt; });
  ASSERT_TRUE(set) << set.error().to_string();
  EXPECT_TRUE(set->rate_classes[0].syn_only);
  EXPECT_FALSE(set->rate_classes[1].syn_only);
  auto too_big = parse_desired_state("defaults:\n  drop_sample_every: 1000000001\n");
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().path, "defaults.drop_sample_every");
  EXPECT_NE(too_big.error().message.find("1000000001"), std::string::npos) << too_big.error().message;
  auto not_bool = parse_desired_state("limits: [{class: a, pps: 1, syn_only: maybe}]\n");
  ASSERT_FALSE(not_bool);
  EXPECT_EQ(not_bool.error().path, "limits[0].syn_only");
}

TEST(ConfigYaml, EmptyStateIsAnEmptyMapping) {
  EXPECT_EQ(to_yaml(DesiredState{}), "{}\n");
  EXPECT_EQ(parse_ok(to_yaml(DesiredState{})), DesiredState{});
}

TEST(ConfigYaml, ReadsLikeTheDocumentation) {
  DesiredState state;
  state.interfaces = std::vector<InterfaceSpec>{{"eth0", AttachMode::Skb}};
  RuleSpec rule;
  rule.priority = 10;
  rule.proto = 6;
  rule.dport = PortRange{22, 22};
  rule.action = filter::Action::Drop;
  state.rules = std::vector<RuleSpec>{rule};
  EXPECT_EQ(to_yaml(state),
            "interfaces:\n"
            "  - name: eth0\n"
            "    mode: skb\n"
            "rules:\n"
            "  - priority: 10\n"
            "    proto: tcp\n"
            "    dport: \"22\"\n"
            "    action: drop\n");
}

// ---- diffs ----

TEST(ConfigDiff, IdenticalStatesHaveNoLines) {
  const DesiredState state = parse_ok(kFull);
  EXPECT_TRUE(diff(state, state).empty());
}

TEST(ConfigDiff, EveryKindOfChange) {
  const DesiredState live = parse_ok(R"(interfaces: [{name: veth0}, {name: eth0, mode: native}]
defaults: {end_verdict: pass, drop_fragments: false, stages: [filter, lb, forward]}
prefix_lists: {block: [10.0.0.0/8, 192.0.2.0/24], allow: []}
rules:
  - {priority: 10, proto: tcp, dport: 22, action: pass}
  - {priority: 20, proto: udp, action: drop}
limits: [{class: web, pps: 100}]
)");
  const DesiredState wanted = parse_ok(R"(interfaces: [{name: eth0, mode: skb}, {name: eth1}]
defaults: {end_verdict: drop, drop_fragments: false, stages: [filter]}
prefix_lists: {block: [{prefix: 10.0.0.0/8, action: pass}, 198.18.0.0/15], allow: ["2001:db8::/32"]}
rules:
  - {priority: 10, proto: tcp, dport: 22, action: drop}
  - {priority: 30, src: 10.0.0.0/8, proto: tcp, dport: 1000-2000, tcp_flags: "syn,!ack", action: drop}
limits: [{class: web, pps: 200, burst: 10}, {class: dns, pps: 5}]
)");
  EXPECT_EQ(diff(live, wanted), (std::vector<std::string>{
                                    "- interface veth0",
                                    "~ interface eth0: mode native -> mode skb",
                                    "+ interface eth1: mode native",
                                    "~ defaults.end_verdict: pass -> drop",
                                    "~ defaults.stages: [filter, lb, forward] -> [filter]",
                                    "- block 192.0.2.0/24",
                                    "~ block 10.0.0.0/8: action (list default) -> pass",
                                    "+ block 198.18.0.0/15",
                                    "+ allow 2001:db8::/32",
                                    "- rule 20",
                                    "~ rule 10: tcp dport 22 pass -> tcp dport 22 drop",
                                    "+ rule 30: src 10.0.0.0/8 tcp dport 1000-2000 flags syn,!ack drop",
                                    "+ limit dns: pps 5",
                                    "~ limit web: pps 100 -> pps 200 burst 10",
                                }));
}

TEST(ConfigDiff, UnmanagedSectionsAndKeysProduceNothing) {
  const DesiredState live = parse_ok(kFull);
  EXPECT_TRUE(diff(live, DesiredState{}).empty());
  // Only end_verdict is managed here; the other live defaults stay.
  EXPECT_EQ(diff(live, parse_ok("defaults: {end_verdict: pass}")),
            (std::vector<std::string>{"~ defaults.end_verdict: drop -> pass"}));
}

TEST(ConfigDiff, EmptyListRemovesEverything) {
  const DesiredState live = parse_ok("interfaces: [{name: veth0}, {name: veth1}]");
  EXPECT_EQ(diff(live, parse_ok("interfaces: []")),
            (std::vector<std::string>{"- interface veth0", "- interface veth1"}));
}

TEST(ConfigDiff, FromNothingEverythingIsAdded) {
  EXPECT_EQ(diff(DesiredState{}, parse_ok("rules: [{priority: 10, proto: tcp, dport: 22, action: drop}]\n"
                                          "defaults: {drop_fragments: true}")),
            (std::vector<std::string>{"~ defaults.drop_fragments: (unset) -> true", "+ rule 10: tcp dport 22 drop"}));
}

// ---- vocabulary helpers used by sluicectl ----

TEST(ConfigVocabulary, PortRangeText) {
  EXPECT_EQ(to_string(PortRange{5, 5}), "5");
  EXPECT_EQ(to_string(PortRange{5, 6}), "5-6");
}

TEST(ConfigVocabulary, TcpFlagsCanonicalOrder) {
  auto flags = parse_tcp_flags("!ack,syn,fin");
  ASSERT_TRUE(flags);
  EXPECT_EQ(to_string(*flags), "fin,syn,!ack");
  EXPECT_FALSE(parse_tcp_flags(""));
  EXPECT_FALSE(parse_tcp_flags("SYN"));  // one spelling: lower case
  EXPECT_FALSE(parse_tcp_flags("!"));
}

TEST(ConfigVocabulary, Protocols) {
  EXPECT_EQ(protocol_name(17), "udp");
  EXPECT_EQ(protocol_name(47), "47");
}

// The filter's policy and the end of the pipeline are two keys; a document
// of before the split (one key for both) is read as its operator meant it:
// a firewall policy, the end of the pipeline passing what the filter passed.
TEST(ConfigPolicy, FilterPolicyAndEndVerdictAreIndependent) {
  const DesiredState state = parse_ok("filter: {default_policy: drop}\ndefaults: {end_verdict: pass}\n");
  ASSERT_TRUE(state.filter);
  EXPECT_EQ(state.filter->default_policy, filter::DefaultPolicy::Drop);
  EXPECT_EQ(state.defaults->end_verdict, SLUICE_VERDICT_PASS);
  auto set = to_filter_rule_set(state, [](const std::string&) { return std::optional<std::uint32_t>{}; });
  ASSERT_TRUE(set);
  EXPECT_EQ(set->default_policy, filter::DefaultPolicy::Drop);
  // The end verdict no longer decides the filter's policy.
  auto only_end = to_filter_rule_set(parse_ok("defaults: {end_verdict: drop}\n"),
                                     [](const std::string&) { return std::optional<std::uint32_t>{}; });
  ASSERT_TRUE(only_end);
  EXPECT_EQ(only_end->default_policy, filter::DefaultPolicy::Pass);
  EXPECT_EQ(parse_ok(to_yaml(state)), state);
  EXPECT_EQ(diff(parse_ok("filter: {default_policy: pass}\n"), state),
            (std::vector<std::string>{"~ defaults.end_verdict: (unset) -> pass", "~ filter.default_policy: pass -> drop"}));
}

TEST(ConfigPolicy, LegacyDefaultVerdictBecomesTheFilterPolicyWithEndPass) {
  for (const auto& [legacy, policy] : {std::pair{"drop", filter::DefaultPolicy::Drop}, std::pair{"pass", filter::DefaultPolicy::Pass}}) {
    const DesiredState state = parse_ok(std::string("defaults: {default_verdict: ") + legacy + ", drop_fragments: true}\n");
    ASSERT_TRUE(state.filter) << legacy;
    EXPECT_EQ(state.filter->default_policy, policy) << legacy;
    EXPECT_EQ(state.defaults->end_verdict, SLUICE_VERDICT_PASS) << legacy;
    EXPECT_EQ(state.defaults->drop_fragments, true);
    // Written back in the new spelling only.
    const std::string text = to_yaml(state);
    EXPECT_EQ(text.find("default_verdict"), std::string::npos) << text;
    EXPECT_EQ(parse_ok(text), state);
  }
  // An explicit end_verdict next to the old key is kept.
  const DesiredState both = parse_ok("defaults: {default_verdict: drop, end_verdict: drop}\n");
  EXPECT_EQ(both.filter->default_policy, filter::DefaultPolicy::Drop);
  EXPECT_EQ(both.defaults->end_verdict, SLUICE_VERDICT_DROP);
}

TEST(ConfigPolicy, AmbiguousOrBadPolicyIsRefusedWithItsPath) {
  const ParseError twice = parse_error("filter: {default_policy: pass}\ndefaults: {default_verdict: drop}\n");
  EXPECT_EQ(twice.path, "defaults.default_verdict");
  EXPECT_NE(twice.message.find("filter.default_policy"), std::string::npos) << twice.message;
  const ParseError bad = parse_error("filter: {default_policy: reject}\n");
  EXPECT_EQ(bad.path, "filter.default_policy");
  EXPECT_EQ(bad.message, "bad policy 'reject': expected pass or drop");
  const ParseError unknown = parse_error("filter: {policy: drop}\n");
  EXPECT_EQ(unknown.path, "filter.policy");
}

}  // namespace
}  // namespace sluice::config
