// Pure parts of sluiced: the verdict/reason name table against
// maps/sluice_maps.h, Prometheus text (checked by promtool when installed),
// interface state, authorisation, config patches and the drop-event hub.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "daemon.hpp"
#include "daemon_test_support.hpp"
#include "event_hub.hpp"
#include "names.hpp"
#include "netns_lab.hpp"
#include "http_server.hpp"
#include "privileges.hpp"
#include "prometheus.hpp"
#include "service.hpp"
#include "state_ops.hpp"
#include "state_store.hpp"
#include "status_pages.hpp"
#include "system.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool is_range_marker(const std::string& suffix) {
  return suffix.starts_with("FIRST_") || suffix == "MAX" || suffix == "COUNT" || suffix.ends_with("_LAST");
}

// Reads the header itself, so a reason added there without a name here fails.
TEST(DaemonNames, EveryReasonOfTheContractHasItsLowerCaseName) {
  const std::string header = read_text(std::string(SLUICE_SOURCE_DIR) + "/maps/sluice_maps.h");
  ASSERT_FALSE(header.empty());
  int checked = 0;
  const std::regex enum_constant(R"(SLUICE_REASON_([A-Z0-9_]+)\s*=\s*(\d+))");
  for (auto it = std::sregex_iterator(header.begin(), header.end(), enum_constant); it != std::sregex_iterator(); ++it) {
    const std::string suffix = (*it)[1];
    if (is_range_marker(suffix)) continue;
    const auto value = static_cast<sluice_reason>(std::stoi((*it)[2]));
    EXPECT_EQ(dataplane::reason_name(value), lower(suffix)) << "SLUICE_REASON_" << suffix;
    ++checked;
  }
  const std::regex stage_define(R"(#define\s+SLUICE_REASON_([A-Z0-9_]+)\s+\(SLUICE_REASON_FIRST_([A-Z]+)\s*\+\s*(\d+)\))");
  const std::map<std::string, int> range_base{{"FILTER", SLUICE_REASON_FIRST_FILTER},
                                              {"LB", SLUICE_REASON_FIRST_LB},
                                              {"FORWARD", SLUICE_REASON_FIRST_FORWARD}};
  for (auto it = std::sregex_iterator(header.begin(), header.end(), stage_define); it != std::sregex_iterator(); ++it) {
    const std::string suffix = (*it)[1];
    if (is_range_marker(suffix)) continue;
    ASSERT_TRUE(range_base.count((*it)[2])) << (*it)[0];
    const auto value = static_cast<sluice_reason>(range_base.at((*it)[2]) + std::stoi((*it)[3]));
    EXPECT_EQ(dataplane::reason_name(value), lower(suffix)) << "SLUICE_REASON_" << suffix;
    ++checked;
  }
  EXPECT_GE(checked, 25);
}

TEST(DaemonNames, EveryVerdictOfTheContractHasItsLowerCaseName) {
  const std::string header = read_text(std::string(SLUICE_SOURCE_DIR) + "/maps/sluice_maps.h");
  const std::regex constant(R"(SLUICE_VERDICT_([A-Z0-9_]+)\s*=\s*(\d+))");
  int checked = 0;
  for (auto it = std::sregex_iterator(header.begin(), header.end(), constant); it != std::sregex_iterator(); ++it) {
    const std::string suffix = (*it)[1];
    if (is_range_marker(suffix)) continue;
    const auto value = static_cast<sluice_verdict>(std::stoi((*it)[2]));
    EXPECT_EQ(dataplane::verdict_name(value), lower(suffix));
    EXPECT_EQ(dataplane::parse_verdict_name(lower(suffix)), value);
    ++checked;
  }
  EXPECT_EQ(checked, SLUICE_VERDICT_COUNT);
  EXPECT_FALSE(dataplane::parse_verdict_name("PASS"));
}

TEST(DaemonNames, ReasonNamesAreUniqueAndParseBack) {
  std::set<std::string> seen;
  for (unsigned value = 0; value < SLUICE_REASON_MAX; ++value) {
    const auto reason = static_cast<sluice_reason>(value);
    const std::string name = dataplane::reason_name(reason);
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(seen.insert(name).second) << "duplicate reason name " << name;
    EXPECT_EQ(dataplane::parse_reason_name(name), reason) << name;
  }
  EXPECT_EQ(dataplane::reason_name(static_cast<sluice_reason>(27)), "reason_27");
  EXPECT_EQ(dataplane::reason_name(static_cast<sluice_reason>(SLUICE_REASON_LB_NO_BACKEND)), "lb_no_backend");
  EXPECT_EQ(dataplane::reason_name(static_cast<sluice_reason>(SLUICE_REASON_LB_FORWARD)), "lb_forward");
  static_assert(SLUICE_REASON_LB_LAST + 1 < SLUICE_REASON_FIRST_FORWARD, "a free lb reason to test the fallback name");
  EXPECT_EQ(dataplane::reason_name(static_cast<sluice_reason>(SLUICE_REASON_LB_LAST + 1)), "lb_reason_55");
}

// promtool is the judge of the text format when installed (it is in
// scripts/setup.sh); its complaints fail the test.
void expect_promtool_accepts(const std::string& text) {
  if (run_command("command -v promtool").exit_code != 0) {
    SLUICE_SKIP_OR_FAIL("skipped: promtool is not installed (Debian package prometheus)");
  }
  char path[] = "/tmp/sluice-metrics-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  const auto checked = run_command(std::string("promtool check metrics < ") + path);
  ::unlink(path);
  EXPECT_EQ(checked.exit_code, 0) << checked.output << "\n---\n" << text;
  EXPECT_EQ(checked.output, "") << "promtool lint findings";
}

TEST(DaemonMetrics, ExpositionFormatPassesPromtool) {
  metrics::Exposition out;
  out.add("sluice_packets_total", "Packets.\nSecond line with a \\ backslash.", metrics::MetricType::Counter,
          {metrics::sample({{"verdict", "pass"}, {"reason", "pipeline_end"}}, std::uint64_t{18446744073709551615u}),
           metrics::sample({{"verdict", "drop"}, {"reason", "quote\"back\\slash\nnewline"}}, std::uint64_t{1})});
  out.add("sluice_control_connections", "Open connections.", metrics::MetricType::Gauge, {metrics::sample({}, 2.5)});
  EXPECT_NE(out.text().find("18446744073709551615"), std::string::npos) << "integers stay exact";
  EXPECT_NE(out.text().find(R"(reason="quote\"back\\slash\nnewline")"), std::string::npos) << out.text();
  expect_promtool_accepts(out.text());
}

TEST(DaemonMetrics, RefusesBadNamesAndDuplicateFamilies) {
  metrics::Exposition out;
  EXPECT_THROW(out.add("9bad", "x", metrics::MetricType::Gauge, {}), std::invalid_argument);
  EXPECT_THROW(out.add("ok", "x", metrics::MetricType::Gauge, {metrics::sample({{"__reserved", "v"}}, 1.0)}),
               std::invalid_argument);
  out.add("twice", "x", metrics::MetricType::Gauge, {});
  EXPECT_THROW(out.add("twice", "x", metrics::MetricType::Gauge, {}), std::invalid_argument);
  EXPECT_TRUE(metrics::valid_metric_name("a:b_c1"));
  EXPECT_FALSE(metrics::valid_label_name("a:b"));
}

TEST(DaemonOptions, BlocklistTbl8GroupsIsAWholeNumberInRangeAndErrorsNameOptionAndValue) {
  EXPECT_EQ(daemon::parse_blocklist_tbl8_groups("1").value(), 1u);
  EXPECT_EQ(daemon::parse_blocklist_tbl8_groups("1048576").value(), 1048576u);
  EXPECT_EQ(daemon::parse_blocklist_tbl8_groups(std::to_string(SLUICE_DIR24_8_TBL8_GROUPS_MAX)).value(),
            SLUICE_DIR24_8_TBL8_GROUPS_MAX);
  EXPECT_EQ(daemon::DaemonOptions{}.blocklist_tbl8_groups, SLUICE_FILTER_BLOCKLIST_TBL8_GROUPS_DEFAULT);
  for (const std::string& bad : std::vector<std::string>{"", "0", "-1", "+5", "1k", " 5", "5 ", "0x10", "010",
                                                         "99999999999999999999999",
                                                         std::to_string(std::uint64_t{SLUICE_DIR24_8_TBL8_GROUPS_MAX} + 1)}) {
    auto parsed = daemon::parse_blocklist_tbl8_groups(bad);
    ASSERT_FALSE(parsed) << "'" << bad << "' was accepted";
    EXPECT_NE(parsed.error().message.find("--blocklist-tbl8-groups '" + bad + "'"), std::string::npos)
        << parsed.error().message;
  }
  // A hostile value is not echoed whole.
  auto long_value = daemon::parse_blocklist_tbl8_groups(std::string(10'000, '9'));
  ASSERT_FALSE(long_value);
  EXPECT_LT(long_value.error().message.size(), 300u);
}

TEST(DaemonMetrics, ListenAddressParsing) {
  EXPECT_TRUE(std::holds_alternative<boost::asio::ip::tcp::endpoint>(metrics::parse_listen_address("127.0.0.1:9630")));
  auto v6 = metrics::parse_listen_address("[::1]:0");
  ASSERT_TRUE(std::holds_alternative<boost::asio::ip::tcp::endpoint>(v6));
  EXPECT_TRUE(std::get<boost::asio::ip::tcp::endpoint>(v6).address().is_v6());
  for (auto bad : {"127.0.0.1", "127.0.0.1:65536", "localhost:80", "1.2.3.4:x", "[::1]9630", "1.2.3.4:-1"}) {
    auto parsed = metrics::parse_listen_address(bad);
    ASSERT_TRUE(std::holds_alternative<std::string>(parsed)) << bad;
    EXPECT_NE(std::get<std::string>(parsed).find(bad), std::string::npos) << std::get<std::string>(parsed);
  }
}

// The status page shows routes, backends and interfaces: by default only a
// loopback listener serves it, any other needs an explicit on.
TEST(DaemonOptions, StatusPageIsServedByDefaultOnlyOnLoopback) {
  namespace ip = boost::asio::ip;
  const ip::tcp::endpoint loopback4(ip::make_address("127.0.0.1"), 9630), loopback6(ip::make_address("::1"), 9630);
  const ip::tcp::endpoint management(ip::make_address("198.18.0.2"), 9630), any(ip::make_address("0.0.0.0"), 9630);
  auto enabled = [](std::string_view option, const ip::tcp::endpoint& at) {
    auto answer = daemon::status_page_enabled(option, at);
    return std::holds_alternative<bool>(answer) && std::get<bool>(answer);
  };
  EXPECT_TRUE(enabled("auto", loopback4));
  EXPECT_TRUE(enabled("auto", loopback6));
  EXPECT_FALSE(enabled("auto", management));
  EXPECT_FALSE(enabled("auto", any)) << "a wildcard listener reaches every address";
  EXPECT_TRUE(enabled("on", management));
  EXPECT_FALSE(enabled("off", loopback4));
  auto bad = daemon::status_page_enabled("yes", loopback4);
  ASSERT_TRUE(std::holds_alternative<std::string>(bad));
  EXPECT_NE(std::get<std::string>(bad).find("--status-page 'yes'"), std::string::npos) << std::get<std::string>(bad);
  // Without the page only /metrics is served (the server answers 404 for the rest).
  daemon::OpRegistry ops;
  const auto without = daemon::http_pages(ops, [] { return std::string(); }, false);
  ASSERT_EQ(without.size(), 1u);
  EXPECT_EQ(without[0].path, "/metrics");
  EXPECT_EQ(daemon::http_pages(ops, [] { return std::string(); }, true).size(), 3u);
}

TEST(DaemonState, InterfacesRoundTripAndHostileFilesAreRefused) {
  const std::vector<daemon::InterfaceRecord> records{{"eth0", protocol::AttachMode::Native},
                                                     {"vb1", protocol::AttachMode::Skb}};
  auto back = daemon::interfaces_from_json(daemon::interfaces_to_json(records), "f");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, records);
  for (auto bad : {"", "[]", R"({"interfaces":{}})", R"({"interfaces":[{"name":"a/b"}]})",
                   R"({"interfaces":[{"name":"eth0","mode":"hw"}]})", R"({"interfaces":[1]})",
                   R"({"interfaces":[{"name":"eth0"},{"name":"eth0"}]})"}) {
    auto parsed = daemon::interfaces_from_json(bad, "/var/lib/sluice/interfaces.json");
    ASSERT_FALSE(parsed) << bad;
    EXPECT_NE(parsed.error().message.find("/var/lib/sluice/interfaces.json"), std::string::npos);
  }
}

TEST(DaemonState, AtomicWriteReplacesWholeFiles) {
  char dir[] = "/tmp/sluice-state-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/interfaces.json";
  ASSERT_TRUE(daemon::write_file_atomically(path, "first", 0640));
  ASSERT_TRUE(daemon::write_file_atomically(path, "second", 0640));
  auto text = daemon::read_file(path, 100);
  ASSERT_TRUE(text);
  EXPECT_EQ(**text, "second");
  EXPECT_FALSE(daemon::read_file(path, 3)) << "size bound";
  EXPECT_FALSE(*daemon::read_file(std::string(dir) + "/missing", 100));
  int files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1) << "no temp file left behind";
  std::filesystem::remove_all(dir);
}

TEST(DaemonAuth, RootOrAdminGroupMayChangeState) {
  constexpr gid_t admin = 4242;
  const daemon::Authorizer with_group(admin);
  EXPECT_TRUE(with_group.may_change_state({1, 0, 0, {}}));
  EXPECT_TRUE(with_group.may_change_state({1, 1000, admin, {}}));
  EXPECT_TRUE(with_group.may_change_state({1, 1000, 1000, {27, admin}}));
  EXPECT_FALSE(with_group.may_change_state({1, 1000, 1000, {27}}));
  const daemon::Authorizer root_only;
  EXPECT_FALSE(root_only.may_change_state({1, 1000, admin, {admin}}));
  EXPECT_TRUE(root_only.may_change_state({1, 0, 0, {}}));
  auto missing = daemon::lookup_group("sluice-no-such-group-x");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("sluice-no-such-group-x"), std::string::npos);
}

TEST(DaemonConfig, PatchChangesOnlyNamedKeys) {
  auto base = dataplane::default_config();
  protocol::ConfigPatch patch;
  patch.end_verdict = protocol::Verdict::Drop;
  patch.stages.lb = false;
  const auto next = daemon::apply_patch(base, patch);
  EXPECT_EQ(next.end_verdict, SLUICE_VERDICT_DROP);
  EXPECT_EQ(next.stages_enabled, SLUICE_STAGES_ALL & ~SLUICE_STAGE_BIT(SLUICE_STAGE_LB));
  EXPECT_EQ(next.malformed_verdict, base.malformed_verdict);
  EXPECT_EQ(next.tail_call_fail_verdict, base.tail_call_fail_verdict);
  EXPECT_TRUE(dataplane::validate_config(next));
  const auto shown = daemon::config_to_json(next);
  EXPECT_EQ(shown.at("end_verdict"), json::value("drop"));
  EXPECT_EQ(shown.at("malformed_verdict"), json::value("drop"));
  EXPECT_EQ(shown.at("non_ip_verdict"), json::value("pass"));
  EXPECT_EQ(shown.at("drop_fragments"), json::value(false));
  EXPECT_EQ(shown.at("stages").at("lb"), json::value(false));
  EXPECT_EQ(shown.at("stages").at("filter"), json::value(true));
}

// ---- the desired state the daemon keeps ----

config::DesiredState parse_state(const std::string& yaml) {
  auto parsed = config::parse_desired_state(yaml);
  EXPECT_TRUE(parsed) << parsed.error().to_string();
  return parsed ? *parsed : config::DesiredState{};
}

TEST(DaemonDesiredState, OverlayReplacesManagedSectionsAndDefaultsPerKey) {
  const auto live = parse_state("interfaces: [{name: eth0}]\n"
                                "defaults: {end_verdict: pass, drop_fragments: true}\n"
                                "rules: [{priority: 10, proto: tcp, action: drop}]\n"
                                "limits: [{class: a, pps: 5}]\n");
  const auto merged = daemon::overlay(live, parse_state("defaults: {end_verdict: drop}\nrules: []\n"));
  EXPECT_EQ(merged.interfaces, live.interfaces) << "absent section: kept";
  EXPECT_EQ(merged.limits, live.limits);
  EXPECT_TRUE(merged.rules->empty()) << "present section: the whole truth";
  EXPECT_EQ(merged.defaults->end_verdict, SLUICE_VERDICT_DROP);
  EXPECT_EQ(merged.defaults->drop_fragments, true) << "defaults merge per key";
  EXPECT_FALSE(daemon::is_whole(merged));
}

TEST(DaemonDesiredState, DefaultsMirrorTheConfigArray) {
  auto config = dataplane::default_config();
  config.drop_fragments = 1;
  filter::FilterSettings settings = filter::default_settings();
  settings.drop_sample_every = 7;
  const config::Defaults defaults = daemon::defaults_of(config, settings);
  EXPECT_EQ(defaults.drop_sample_every, 7u);
  EXPECT_EQ(defaults.drop_fragments, true);
  EXPECT_EQ(defaults.stages, SLUICE_STAGES_ALL);
  const auto back = daemon::apply_defaults(dataplane::default_config(), defaults);
  EXPECT_EQ(std::memcmp(&back, &config, sizeof back), 0) << "every key round-trips";
  config::Defaults only_verdict;
  only_verdict.end_verdict = SLUICE_VERDICT_DROP;
  const auto patched = daemon::apply_defaults(config, only_verdict);
  EXPECT_EQ(patched.end_verdict, SLUICE_VERDICT_DROP);
  EXPECT_EQ(patched.drop_fragments, 1u) << "unset keys are left alone";
}

TEST(DaemonDesiredState, PrefixListsFollowTheTableAndKeepTheOperatorsSpelling) {
  const auto old = parse_state("prefix_lists:\n  block: [198.18.0.0/24, {prefix: 198.18.1.0/24, action: pass}]\n"
                               "  allow: [198.18.2.0/24]\n")
                       .prefix_lists.value();
  auto entry = [](const char* cidr, filter::Action action, std::uint32_t rate_class = 0) {
    return filter::PrefixEntry{*maps::parse_prefix(cidr), action, rate_class};
  };
  const std::vector<config::LimitSpec> limits{{"web", 10, std::nullopt, std::nullopt, false}};
  const auto lists = daemon::prefix_lists_for(
      old,
      {entry("198.18.1.0/24", filter::Action::Pass), entry("198.18.2.0/24", filter::Action::Drop),
       entry("2001:db8::/32", filter::Action::RateLimit, 0), entry("198.18.0.0/24", filter::Action::Drop)},
      limits);
  // Unchanged meaning: where and how the operator wrote it. Changed or new: the canonical place.
  ASSERT_EQ(lists.block.size(), 4u);
  EXPECT_EQ(lists.block[0].prefix, "198.18.0.0/24");
  EXPECT_EQ(lists.block[1].prefix, "198.18.1.0/24");
  EXPECT_EQ(lists.block[1].action, filter::Action::Pass);
  EXPECT_EQ(lists.block[2].prefix, "198.18.2.0/24") << "was allowed, now dropped: moves to block";
  EXPECT_EQ(lists.block[3].rate_class, "web");
  EXPECT_TRUE(lists.allow.empty());
}

TEST(DaemonDesiredState, SameRuleSetIgnoresOrder) {
  filter::RuleSet a;
  a.prefixes = {{*maps::parse_prefix("198.18.0.0/24"), filter::Action::Drop, 0},
                {*maps::parse_prefix("2001:db8::/32"), filter::Action::Pass, 0}};
  filter::FilterRule first, second;
  first.priority = 10;
  second.priority = 20;
  second.action = filter::Action::Pass;
  a.rules = {first, second};
  filter::RuleSet b = a;
  std::reverse(b.prefixes.begin(), b.prefixes.end());
  std::reverse(b.rules.begin(), b.rules.end());
  EXPECT_TRUE(daemon::same_rule_set(a, b));
  b.rules[0].action = filter::Action::Drop;
  EXPECT_FALSE(daemon::same_rule_set(a, b));
  b = a;
  b.default_policy = filter::DefaultPolicy::Drop;
  EXPECT_FALSE(daemon::same_rule_set(a, b));
}

TEST(DaemonDesiredState, StoreWritesWholeFilesAndRefusesABadOne) {
  char dir[] = "/tmp/sluice-store-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  daemon::StateStore store(dir);
  EXPECT_FALSE(*store.read()) << "no file yet";
  const auto state = parse_state("rules: [{priority: 10, proto: udp, dport: \"53\", action: drop}]\n");
  ASSERT_TRUE(store.commit(state));
  EXPECT_EQ(store.live(), state);
  auto back = store.read();
  ASSERT_TRUE(back && *back);
  EXPECT_EQ(**back, state);
  // A hand-edited file with a bad value: the error names the file, the path and the value.
  std::ofstream(store.path()) << "rules: [{priority: 10, dport: \"9-3\", action: drop}]\n";
  auto bad = store.read();
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find(store.path()), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("rules[0].dport"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("9-3"), std::string::npos) << bad.error().message;
  // The legacy interfaces.json of an older sluiced is read for the upgrade.
  std::ofstream(std::string(dir) + "/interfaces.json") << R"({"interfaces":[{"name":"eth0","mode":"skb"}]})";
  auto legacy = store.read_legacy_interfaces();
  ASSERT_TRUE(legacy && *legacy);
  EXPECT_EQ(**legacy, (std::vector<config::InterfaceSpec>{{"eth0", dataplane::AttachMode::Skb}}));
  store.remove_legacy_interfaces();
  EXPECT_FALSE(std::filesystem::exists(std::string(dir) + "/interfaces.json"));
  std::filesystem::remove_all(dir);
}

std::vector<std::byte> drop_record(std::uint32_t reason, std::uint32_t cap_len) {
  sluice_drop_event event{};
  event.timestamp_ns = 123;
  event.ifindex = 7;
  event.pkt_len = 60;
  event.reason = reason;
  event.verdict = SLUICE_VERDICT_DROP;
  event.cap_len = cap_len;
  for (std::size_t i = 0; i < sizeof event.head; ++i) event.head[i] = static_cast<std::uint8_t>(i);
  std::vector<std::byte> bytes(sizeof event);
  std::memcpy(bytes.data(), &event, sizeof event);
  return bytes;
}

TEST(DaemonEvents, RecordsBecomeJsonAndHostileLengthsAreBounded) {
  auto event = daemon::drop_event_to_json(drop_record(SLUICE_REASON_TRUNC_ETH, 3));
  ASSERT_TRUE(event);
  EXPECT_EQ(event->at("reason"), json::value("trunc_eth"));
  EXPECT_EQ(event->at("verdict"), json::value("drop"));
  EXPECT_EQ(event->at("head_hex"), json::value("000102"));
  EXPECT_EQ(event->at("ifindex"), json::value(7));
  auto capped = daemon::drop_event_to_json(drop_record(SLUICE_REASON_TRUNC_ETH, 100000));
  EXPECT_EQ(capped->at("head_hex").as_string().size(), 2u * SLUICE_EVENT_HEAD_BYTES);
  auto short_record = drop_record(0, 0);
  short_record.pop_back();
  EXPECT_FALSE(daemon::drop_event_to_json(short_record));
}

TEST(DaemonEvents, HubFansOutWithBoundedQueuesAndKeepsHistory) {
  boost::asio::io_context io;
  daemon::EventHub hub(io);
  auto fast = hub.subscribe();
  auto slow = hub.subscribe();
  const std::size_t total = daemon::EventHub::subscriber_capacity + 10;
  for (std::size_t i = 0; i < total; ++i) {
    hub.publish(drop_record(SLUICE_REASON_TRUNC_ETH, 1));
    fast->queue().clear();  // a reader keeping up
  }
  EXPECT_EQ(fast->dropped(), 0u);
  EXPECT_EQ(slow->queue().size(), daemon::EventHub::subscriber_capacity);
  EXPECT_EQ(slow->dropped(), 10u);
  EXPECT_EQ(hub.stats().received, total);
  EXPECT_EQ(hub.stats().subscriber_dropped, 10u);
  EXPECT_EQ(hub.recent(5).size(), 5u);
  EXPECT_EQ(hub.recent(100000).size(), daemon::EventHub::history_capacity);
  slow.reset();  // a subscriber gone is simply skipped
  hub.publish(drop_record(SLUICE_REASON_TRUNC_ETH, 1));
  hub.publish(std::vector<std::byte>(3));
  EXPECT_EQ(hub.stats().malformed, 1u);

  // wait() returns once an event is pushed.
  bool woke = false;
  auto waiter = hub.subscribe();
  boost::asio::co_spawn(io, [&]() -> boost::asio::awaitable<void> {
    co_await waiter->wait();
    woke = true;
  }, boost::asio::detached);
  io.poll();
  EXPECT_FALSE(woke);
  hub.publish(drop_record(SLUICE_REASON_TRUNC_ETH, 1));
  io.poll();
  EXPECT_TRUE(woke);
}

}  // namespace
}  // namespace sluice::test
