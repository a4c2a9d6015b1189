// The `forward:` section of the desired state: a full section round-trips
// through to_yaml (what `config show` prints and `apply -f` takes back),
// hostile values are refused with the exact path and value, and diffs name
// what changes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "desired_state.hpp"
#include "forward_config.hpp"

namespace sluice::config {
namespace {

const char* const kForward = R"(forward:
  settings:
    no_route: drop
    icmp_rate: 10
    icmp_burst: 5
    icmp_source_v4: 198.18.0.2
    icmp_source_v6: "2001:db8::2"
    cpus: [0, 1]
    cpumap_queue: 512
  groups:
    - name: wan
      next_hops:
        - {via: 198.18.1.1, dev: veth1, mac: "02:00:00:00:01:01", weight: 2}
        - {via: 198.18.1.3, dev: veth1, mac: "02:00:00:00:01:03", src_mac: "02:00:00:00:01:02"}
  routes:
    - {prefix: 198.18.2.0/24, via: 198.18.1.1, dev: veth1, mac: "02:00:00:00:01:01"}
    - {prefix: 0.0.0.0/0, group: wan}
    - {prefix: "2001:db8:2::/48", via: "2001:db8:1::1", dev: veth1, mac: "02:00:00:00:01:01"}
    - {prefix: 198.18.0.2, to_stack: true}
)";

DesiredState parse_ok(const std::string& yaml) {
  auto parsed = parse_desired_state(yaml);
  EXPECT_TRUE(parsed) << (parsed ? "" : parsed.error().to_string());
  return parsed ? *parsed : DesiredState{};
}

std::string error_of(const std::string& yaml) {
  auto parsed = parse_desired_state(yaml);
  EXPECT_FALSE(parsed) << yaml;
  return parsed ? "" : parsed.error().to_string();
}

TEST(ForwardConfig, ParsesEveryField) {
  const DesiredState state = parse_ok(kForward);
  ASSERT_TRUE(state.forward);
  const ForwardConfig& f = *state.forward;
  EXPECT_EQ(f.settings.no_route, SLUICE_VERDICT_DROP);
  EXPECT_EQ(f.settings.icmp_rate, 10u);
  EXPECT_EQ(f.settings.icmp_burst, 5u);
  EXPECT_EQ(lb::to_string(*f.settings.icmp_source_v4), "198.18.0.2");
  EXPECT_EQ(lb::to_string(*f.settings.icmp_source_v6), "2001:db8::2");
  EXPECT_EQ(f.settings.cpus, (std::vector<std::uint32_t>{0, 1}));
  EXPECT_EQ(f.settings.cpumap_queue, 512u);
  ASSERT_EQ(f.groups.size(), 1u);
  EXPECT_EQ(f.groups[0].name, "wan");
  ASSERT_EQ(f.groups[0].members.size(), 2u);
  EXPECT_EQ(f.groups[0].members[0].weight, 2u);
  EXPECT_EQ(f.groups[0].members[1].weight, 1u);
  EXPECT_EQ(hop_name(f.groups[0].members[1].hop), "198.18.1.3@veth1");
  EXPECT_TRUE(f.groups[0].members[1].hop.src_mac);
  ASSERT_EQ(f.routes.size(), 4u);
  EXPECT_EQ(f.routes[0].kind, ForwardRoute::Kind::Via);
  EXPECT_EQ(f.routes[1].kind, ForwardRoute::Kind::Group);
  EXPECT_EQ(f.routes[1].group, "wan");
  EXPECT_EQ(f.routes[3].kind, ForwardRoute::Kind::ToStack);
  EXPECT_EQ(f.routes[3].prefix, "198.18.0.2/32") << "prefixes are kept canonical";
  EXPECT_EQ(forward_hops(f).size(), 3u) << "198.18.1.1@veth1, 198.18.1.3@veth1, 2001:db8:1::1@veth1";
}

TEST(ForwardConfig, RoundTripsThroughToYaml) {
  const DesiredState state = parse_ok(kForward);
  const std::string yaml = to_yaml(state);
  const DesiredState again = parse_ok(yaml);
  EXPECT_EQ(again, state) << yaml;
  EXPECT_EQ(to_yaml(again), yaml);  // canonical: a fixed point
  EXPECT_TRUE(diff(state, again).empty());
}

TEST(ForwardConfig, EmptySectionMeansNoRoutesAndDefaultSettings) {
  const DesiredState state = parse_ok("forward: {}\n");
  ASSERT_TRUE(state.forward);
  EXPECT_EQ(*state.forward, ForwardConfig{});
  EXPECT_EQ(state.forward->settings.no_route, SLUICE_VERDICT_PASS);
  EXPECT_EQ(parse_ok(to_yaml(state)), state);
  EXPECT_FALSE(parse_ok("rules: []\n").forward) << "absent: not managed";
}

TEST(ForwardConfig, HostileValuesNameThePathAndTheValue) {
  auto route = [](const std::string& body) { return "forward:\n  routes:\n    - " + body + "\n"; };
  const std::string mac = "mac: '02:00:00:00:01:01'";
  struct Case {
    std::string yaml;
    std::string expected;
  };
  for (const Case& c : std::vector<Case>{
           {route("{prefix: 198.18.2.1/24, to_stack: true}"), "forward.routes[0].prefix"},
           {route("{prefix: 198.18.2.1/24, to_stack: true}"), "198.18.2.1/24"},
           {route("{prefix: 198.18.2.0/24, via: 198.18.1.1, " + mac + "}"), "forward.routes[0].dev: is required"},
           {route("{prefix: 198.18.2.0/24, via: 198.18.1.300, dev: veth1, " + mac + "}"), "198.18.1.300"},
           {route("{prefix: 198.18.2.0/24, via: 198.18.1.1, dev: veth1, mac: '01:00:00:00:00:01'}"), "not a unicast MAC"},
           {route("{prefix: 198.18.2.0/24, group: wan}"), "forward.routes[0].group: 'wan' is not a group"},
           {route("{prefix: 198.18.2.0/24, group: wan, to_stack: true}"), "exactly one of"},
           {route("{prefix: 198.18.2.0/24}"), "exactly one of"},
           {route("{prefix: 198.18.2.0/24, to_stack: false}"), "to_stack"},
           {route("{prefix: 198.18.2.0/24, via: 198.18.1.1, dev: 'a/b', " + mac + "}"), "'a/b'"},
           {"forward:\n  routes:\n    - {prefix: 198.18.2.0/24, to_stack: true}\n    - {prefix: 198.18.2.0/24, to_stack: true}\n",
            "forward.routes[1].prefix: route 198.18.2.0/24 is defined twice"},
           {"forward:\n  routes:\n    - {prefix: 198.18.2.0/24, via: 198.18.1.1, dev: v, " + mac +
                "}\n    - {prefix: 198.18.3.0/24, via: 198.18.1.1, dev: v, mac: '02:00:00:00:01:09'}\n",
            "one neighbour, one MAC"},
           {"forward:\n  groups:\n    - {name: g, next_hops: []}\n", "forward.groups[0].next_hops: 0 next hops"},
           {"forward:\n  groups:\n    - {name: 'a b', next_hops: [{via: 198.18.1.1, dev: v, " + mac + "}]}\n", "bad group name 'a b'"},
           {"forward:\n  groups:\n    - {name: g, next_hops: [{via: 198.18.1.1, dev: v, " + mac + ", weight: 257}]}\n",
            "forward.groups[0].next_hops[0].weight"},
           {"forward:\n  groups:\n    - {name: g, next_hops: [{via: 198.18.1.1, dev: v, " + mac + "}, {via: 198.18.1.1, dev: v, " + mac + "}]}\n",
            "twice in group 'g'"},
           {"forward:\n  settings: {no_route: tx}\n", "forward.settings.no_route: bad verdict 'tx'"},
           {"forward:\n  settings: {cpus: [0, 0]}\n", "forward.settings.cpus[1]: CPU 0 is listed twice"},
           {"forward:\n  settings: {cpus: [128]}\n", "forward.settings.cpus[0]"},
           {"forward:\n  settings: {cpumap_queue: 0}\n", "forward.settings.cpumap_queue"},
           {"forward:\n  settings: {cpumap_queue: 16385}\n", "16385"},
           {"forward:\n  settings: {icmp_rate: 5, icmp_burst: 0}\n", "forward.settings.icmp_burst"},
           {"forward:\n  settings: {icmp_source_v4: '2001:db8::1'}\n", "is not an IPv4 address"},
           {"forward:\n  colour: red\n", "unknown key 'colour'"},
       }) {
    EXPECT_NE(error_of(c.yaml).find(c.expected), std::string::npos) << c.yaml << " -> " << error_of(c.yaml);
  }
}

// Route sync and MAC-less next hops (resolved through the kernel's neighbour table).
const char* const kSyncAndResolved = R"(forward:
  sync: {table: 100}
  groups:
    - name: wan
      next_hops:
        - {via: 198.18.1.1, dev: veth1}
        - {via: 198.18.1.3, dev: veth1, mac: "02:00:00:00:01:03"}
  routes:
    - {prefix: 198.18.2.0/24, via: 198.18.1.1, dev: veth1}
    - {prefix: "2001:db8:2::/48", via: "2001:db8:1::1", dev: veth1, src_mac: "02:00:00:00:01:02"}
    - {prefix: 0.0.0.0/0, group: wan}
)";

TEST(ForwardConfig, SyncAndMacLessHopsRoundTrip) {
  const DesiredState state = parse_ok(kSyncAndResolved);
  ASSERT_TRUE(state.forward);
  const ForwardConfig& f = *state.forward;
  ASSERT_TRUE(f.sync);
  EXPECT_EQ(f.sync->table, 100u);
  EXPECT_FALSE(f.routes[0].hop.mac) << "no mac: resolved";
  EXPECT_FALSE(f.routes[1].hop.mac);
  EXPECT_TRUE(f.routes[1].hop.src_mac);
  EXPECT_FALSE(f.groups[0].members[0].hop.mac);
  EXPECT_TRUE(f.groups[0].members[1].hop.mac);
  EXPECT_EQ(describe(f.routes[0]), "via 198.18.1.1 dev veth1 mac resolved");
  const std::string yaml = to_yaml(state);
  EXPECT_NE(yaml.find("sync: {table: 100}"), std::string::npos) << yaml;
  const DesiredState again = parse_ok(yaml);
  EXPECT_EQ(again, state) << yaml;
  EXPECT_EQ(to_yaml(again), yaml);
  EXPECT_TRUE(diff(state, again).empty());

  EXPECT_EQ(parse_ok("forward:\n  sync: {}\n").forward->sync->table, kForwardSyncDefaultTable) << "{}: main";
  EXPECT_FALSE(parse_ok("forward: {}\n").forward->sync) << "absent: off";
  EXPECT_EQ(to_yaml(parse_ok("forward: {}\n")).find("sync"), std::string::npos) << "off is not written";
  EXPECT_EQ(parse_ok("forward:\n  sync: {table: 4294967295}\n").forward->sync->table, 4294967295u);

  DesiredState off = state;
  off.forward->sync.reset();
  EXPECT_EQ(diff(state, off), (std::vector<std::string>{"~ forward.sync: table 100 -> off"}));
}

TEST(ForwardConfig, SyncTableAndMacMismatchErrors) {
  struct Case {
    std::string yaml;
    std::string expected;
  };
  for (const Case& c : std::vector<Case>{
           {"forward:\n  sync: {table: 0}\n", "forward.sync.table: 0 is RT_TABLE_UNSPEC"},
           {"forward:\n  sync: {table: 255}\n", "forward.sync.table: 255 is the local table"},
           {"forward:\n  sync: {table: 4294967296}\n", "forward.sync.table"},
           {"forward:\n  sync: {table: main}\n", "forward.sync.table"},
           {"forward:\n  sync: {tabel: 254}\n", "unknown key 'tabel'"},
           // One via@dev: MAC-less in one place, with a MAC in another, is two specs for one neighbour.
           {"forward:\n  routes:\n    - {prefix: 198.18.2.0/24, via: 198.18.1.1, dev: v}\n"
            "    - {prefix: 198.18.3.0/24, via: 198.18.1.1, dev: v, mac: '02:00:00:00:01:09'}\n",
            "forward.routes[1]: next hop 198.18.1.1@v is via 198.18.1.1 dev v mac 02:00:00:00:01:09 but forward.routes[0] "
            "gives it via 198.18.1.1 dev v mac resolved"},
       }) {
    EXPECT_NE(error_of(c.yaml).find(c.expected), std::string::npos) << c.yaml << " -> " << error_of(c.yaml);
  }
  ForwardConfig config;
  config.sync = ForwardSync{kForwardSyncLocalTable};
  ASSERT_TRUE(validate_forward(config));
  EXPECT_NE(validate_forward(config)->find("forward.sync.table: 255"), std::string::npos);
}

TEST(ForwardConfig, DiffNamesRoutesGroupsAndSettings) {
  const DesiredState live = parse_ok(kForward);
  DesiredState wanted = live;
  wanted.forward->settings.no_route = SLUICE_VERDICT_PASS;
  wanted.forward->routes.erase(wanted.forward->routes.begin());     // - 198.18.2.0/24
  wanted.forward->routes[0].kind = ForwardRoute::Kind::ToStack;     // ~ 0.0.0.0/0
  wanted.forward->routes[0].group.clear();
  wanted.forward->groups.clear();                                   // - group wan
  const std::vector<std::string> lines = diff(live, wanted);
  EXPECT_EQ(lines, (std::vector<std::string>{"~ forward.settings.no_route: drop -> pass", "- group wan",
                                             "- route 198.18.2.0/24", "~ route 0.0.0.0/0: group wan -> to-stack"}));
  EXPECT_TRUE(diff(live, parse_ok("rules: []\n")).empty()) << "a document without forward: leaves it alone";
}

TEST(ForwardConfig, CpuLists) {
  EXPECT_EQ(parse_cpu_list("0-1,3"), (std::vector<std::uint32_t>{0, 1, 3}));
  EXPECT_EQ(parse_cpu_list("3,0"), (std::vector<std::uint32_t>{0, 3}));
  EXPECT_FALSE(parse_cpu_list("1-0"));
  EXPECT_FALSE(parse_cpu_list("0,,1"));
  EXPECT_FALSE(parse_cpu_list("x"));
  EXPECT_FALSE(parse_cpu_list("128"));
  EXPECT_EQ(cpu_list_text({0, 1, 2, 5}), "0-2,5");
}

}  // namespace
}  // namespace sluice::config
