// sluiced's state-changing ops in process, on a loaded data plane judged by
// BPF_PROG_TEST_RUN: a failure injected at every step of change() rolls the
// kernel and the file back; rule counters outlive swaps of other rules;
// status carries the rule-set generation; block.load errors name lines.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "filter_fixture.hpp"
#include "block_load.hpp"
#include "daemon_metrics.hpp"
#include "event_hub.hpp"
#include "filter_ops.hpp"
#include "server.hpp"
#include "service.hpp"
#include "sluice.skel.h"
#include "state_ops.hpp"
#include "state_store.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
using daemon::ChangeStep;

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Bytes tcp4(std::uint16_t dport) {
  return ether().ipv4("198.18.0.1", "198.18.1.1").tcp(40000, dport, {.flags = TcpFlags::SYN}).build();
}
Bytes udp4(std::uint16_t dport) { return ether().ipv4("198.18.0.1", "198.18.1.1").udp(40000, dport).build(); }

// The daemon's objects over the fixture's data plane, wired as daemon.cpp wires them.
class DaemonChangeTest : public FilterTest {
 protected:
  void SetUp() override {
    FilterTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    char dir[] = "/tmp/sluice-change-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    state_dir_ = dir;
    store_.emplace(state_dir_);
    service_.emplace(*plane_, *table_, *store_, daemon::ServicePaths{"", state_dir_}, "test");
    state_.emplace(*plane_, *table_, *store_, *service_);
    ASSERT_TRUE(state_->restore(state_->baseline(std::nullopt), config::DesiredState{}));
    daemon::register_filter_ops(ops_, *table_, *state_);
    state_->register_ops(ops_);
    block_loads_.emplace(*table_, *state_);
    block_loads_->register_ops(ops_);
  }
  void TearDown() override {
    if (!state_dir_.empty()) std::filesystem::remove_all(state_dir_);
    FilterTest::TearDown();
  }

  protocol::ProtocolError refused(const std::string& op, const json::object& args) {
    auto reply = ops_.find(op)->run(args);
    EXPECT_FALSE(reply) << op << " was expected to fail: " << json::serialize(*reply);
    return reply ? protocol::ProtocolError{protocol::ErrorCode::Failed, "(ok)"} : reply.error();
  }
  json::value result(const std::string& op, const json::object& args = {}) {
    auto reply = ops_.find(op)->run(args);
    EXPECT_TRUE(reply) << op << ": " << reply.error().message;
    return reply ? *reply : json::value();
  }
  std::uint64_t rule_packets(std::uint32_t priority) {
    const json::value listed = result("rule.list");  // kept: the loop reads into it
    for (const auto& rule : listed.at("rules").as_array())
      if (rule.at("id").to_number<std::uint32_t>() == priority) return rule.at("packets").to_number<std::uint64_t>();
    ADD_FAILURE() << "no rule " << priority;
    return 0;
  }
  std::uint64_t generation() { return service_->status()->at("filter").at("generation").to_number<std::uint64_t>(); }

  std::string state_dir_;
  std::optional<daemon::StateStore> store_;
  std::optional<daemon::Service> service_;
  std::optional<daemon::StateOps> state_;
  std::optional<daemon::BlockLoads> block_loads_;
  daemon::OpRegistry ops_;
};

// Issue 4's all-or-nothing promise, proven at each step: the apply changes the
// rule set, a filter setting and the config array, and a failure injected
// before any step (the persist included, after every kernel change is made)
// leaves verdicts, config.show, the config array and state.yaml as they were.
TEST_F(DaemonChangeTest, FailureAtAnyStepOfApplyRollsEverythingBack) {
  result("apply", {{"yaml", "rules:\n  - {priority: 10, proto: tcp, dport: 22, action: drop}\n"}});
  ASSERT_EQ(send(tcp4(22)).verdict, XDP_DROP);
  ASSERT_EQ(send(tcp4(80)).verdict, XDP_PASS);
  const std::string shown = result("config.show").at("yaml").as_string().c_str();
  const std::string file = read_text(std::filesystem::path(state_dir_) / "state.yaml");
  ASSERT_FALSE(file.empty());
  const auto config_before = plane_->config();
  ASSERT_TRUE(config_before);
  const auto settings_before = table_->settings();
  ASSERT_TRUE(settings_before);

  const std::string wanted =
      "rules:\n  - {priority: 10, proto: tcp, dport: 80, action: drop}\n"
      "defaults: {drop_fragments: true, drop_sample_every: 7}\n";
  for (ChangeStep failing : {ChangeStep::FilterSet, ChangeStep::FilterSettings, ChangeStep::Config,
                             ChangeStep::Interfaces, ChangeStep::Persist}) {
    SCOPED_TRACE(std::string(daemon::to_string(failing)));
    std::vector<ChangeStep> seen;
    state_->set_step_hook([&](ChangeStep step) -> maps::Result<void> {
      seen.push_back(step);
      if (step == failing) return maps::Error{EIO, "injected failure"};
      return {};
    });
    const auto error = refused("apply", {{"yaml", wanted}});
    state_->set_step_hook(nullptr);
    EXPECT_EQ(error.code, protocol::ErrorCode::Failed);
    EXPECT_NE(error.message.find("apply: " + std::string(daemon::to_string(failing)) + ": injected failure"),
              std::string::npos)
        << error.message;
    EXPECT_NE(error.message.find("rolled back"), std::string::npos) << error.message;
    EXPECT_EQ(error.message.find("rollback incomplete"), std::string::npos) << "the rollback itself failed: " << error.message;
    EXPECT_EQ(seen.back(), failing) << "steps after the failing one must not run";

    // Traffic judged by the old rule set, not the new one.
    EXPECT_EQ(send(tcp4(22)).verdict, XDP_DROP);
    EXPECT_EQ(send(tcp4(80)).verdict, XDP_PASS);
    EXPECT_EQ(result("config.show").at("yaml").as_string(), shown);
    EXPECT_EQ(read_text(std::filesystem::path(state_dir_) / "state.yaml"), file);
    const auto config_after = plane_->config();
    ASSERT_TRUE(config_after);
    EXPECT_EQ(config_after->drop_fragments, config_before->drop_fragments);
    EXPECT_EQ(std::memcmp(&*config_after, &*config_before, sizeof(sluice_config)), 0);
    EXPECT_EQ(table_->settings()->drop_sample_every, settings_before->drop_sample_every);
  }

  // The same apply without a fault goes through: the hook is the only thing that failed it.
  result("apply", {{"yaml", wanted}});
  EXPECT_EQ(send(tcp4(22)).verdict, XDP_PASS);
  EXPECT_EQ(send(tcp4(80)).verdict, XDP_DROP);
  EXPECT_NE(read_text(std::filesystem::path(state_dir_) / "state.yaml"), file);
  EXPECT_EQ(plane_->config()->drop_fragments, 1u);
}

// A rollback whose undo fails must not claim "rolled back": the reply says
// what is left running, and status reports degraded until a restart.
TEST_F(DaemonChangeTest, AnIncompleteRollbackSaysSoAndStatusIsDegraded) {
  result("apply", {{"yaml", "rules:\n  - {priority: 10, proto: tcp, dport: 22, action: drop}\n"}});
  const auto sample_before = table_->settings()->drop_sample_every;
  ASSERT_NE(sample_before, 7u);
  state_->set_step_hook([](ChangeStep step) -> maps::Result<void> {
    if (step == ChangeStep::Persist) return maps::Error{EIO, "injected failure"};
    return {};
  });
  state_->set_undo_hook([](ChangeStep step) -> maps::Result<void> {
    if (step == ChangeStep::FilterSet) return maps::Error{EIO, "injected undo failure"};
    return {};
  });
  const auto error = refused("apply", {{"yaml", "rules:\n  - {priority: 10, proto: tcp, dport: 80, action: drop}\n"
                                                "defaults: {drop_sample_every: 7}\n"}});
  state_->set_step_hook(nullptr);
  state_->set_undo_hook(nullptr);
  EXPECT_NE(error.message.find("persist: injected failure"), std::string::npos) << error.message;
  EXPECT_EQ(error.message.find("rolled back"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("rollback incomplete; undoing filter rule set failed: injected undo failure"),
            std::string::npos)
      << error.message;
  // What it says is true: the new filter set still runs, the settings were undone.
  EXPECT_EQ(send(tcp4(80)).verdict, XDP_DROP);
  EXPECT_EQ(table_->settings()->drop_sample_every, sample_before);
  json::object status;
  state_->add_restore_state(status);
  EXPECT_EQ(status.at("degraded"), json::value(true));
  EXPECT_EQ(status.at("rollback_error"), json::value(error.message));
}

TEST_F(DaemonChangeTest, AddingARuleKeepsTheHitsOfTheOthers) {
  result("rule.add", {{"priority", 10}, {"proto", "udp"}, {"dport", 53}, {"action", "drop"}});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(send(udp4(53)).verdict, XDP_DROP);
  ASSERT_EQ(rule_packets(10), 3u);

  result("rule.add", {{"priority", 20}, {"proto", "tcp"}, {"dport", 22}, {"action", "drop"}});
  EXPECT_EQ(rule_packets(10), 3u) << "rule 10 was not touched";
  EXPECT_EQ(rule_packets(20), 0u);
  EXPECT_EQ(send(udp4(53)).verdict, XDP_DROP);
  EXPECT_EQ(send(tcp4(22)).verdict, XDP_DROP);
  EXPECT_EQ(rule_packets(10), 4u) << "the new generation counts on from the carried value";
  EXPECT_EQ(rule_packets(20), 1u);

  // A rule inserted before it moves it to another slot; its hits move along.
  result("rule.add", {{"priority", 5}, {"proto", "icmp"}, {"action", "drop"}});
  EXPECT_EQ(rule_packets(10), 4u);
  EXPECT_EQ(rule_packets(20), 1u);

  // A changed rule is another rule: its hits start again.
  result("apply", {{"yaml", "rules:\n  - {priority: 5, proto: icmp, action: drop}\n"
                            "  - {priority: 10, proto: udp, dport: 54, action: drop}\n"
                            "  - {priority: 20, proto: tcp, dport: 22, action: drop}\n"}});
  EXPECT_EQ(rule_packets(10), 0u);
  EXPECT_EQ(rule_packets(20), 1u);
}

TEST_F(DaemonChangeTest, StatusCarriesTheRuleSetGeneration) {
  const std::uint64_t start = generation();
  result("rule.add", {{"priority", 10}, {"proto", "udp"}, {"dport", 53}, {"action", "drop"}});
  EXPECT_EQ(generation(), start + 1);
  const json::value status = *service_->status();
  EXPECT_EQ(status.at("filter").at("rules"), json::value(1));
  // Refused and no-op changes make no generation; a prefix edits the live one in place.
  refused("rule.add", {{"priority", 10}, {"proto", "udp"}, {"action", "drop"}});
  result("apply", {{"yaml", result("config.show").at("yaml").as_string()}});
  result("block.add", {{"prefixes", json::array{"198.18.9.0/24"}}});
  EXPECT_EQ(generation(), start + 1);
  EXPECT_EQ(service_->status()->at("filter").at("prefixes"), json::value(1));
  result("rule.del", {{"id", 10}});
  EXPECT_EQ(generation(), start + 2);
  // The count lives in the pinned map: a table opened again (a restarted daemon) reads it back.
  auto reopened = filter::FilterTable::open(*plane_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(reopened->rule_set_generation(), start + 2);
  EXPECT_EQ(reopened->live_generation(), table_->live_generation());
}

TEST_F(DaemonChangeTest, BlockLoadErrorsNameTheLineOfTheContentAndLoadNothing) {
  struct Case {
    std::string content;
    std::string expected;
  };
  const std::vector<Case> cases{
      {"198.18.0.0/24\nnot-a-prefix\n", "block.load: content: line 2: bad prefix 'not-a-prefix'"},
      {"# list\n198.18.0.0/24\n\n198.18.1.0/24 block\n", "block.load: content: line 4: "},
      {"198.18.0.0/24\r\n198.18.1.0/24\r\n198.18.0.0/24\r\n", "block.load: content: line 3: prefix 198.18.0.0/24 is also on line 1"},
      {"198.18.0.0/24\n" + std::string(100'000, 'x') + "\n", "block.load: content: line 2: a line of 100000 bytes, over the 4096-byte limit"},
      {"198.18.0.0/24 rate-limit 9\n", "block.load: content: line 1: "},
  };
  for (const auto& c : cases) {
    const auto error = refused("block.load", {{"content", c.content}});
    EXPECT_EQ(error.code, protocol::ErrorCode::BadArgs) << error.message;
    EXPECT_NE(error.message.find(c.expected), std::string::npos) << error.message;
    EXPECT_EQ(error.message.find(state_dir_), std::string::npos) << error.message;
    EXPECT_EQ(error.message.find(".block-load"), std::string::npos) << error.message;
    EXPECT_LT(error.message.size(), 400u) << "a hostile line is not echoed";
    EXPECT_TRUE(table_->list_prefixes().empty());
  }
  // Nothing of a temp file is left in the state dir, and good content loads.
  EXPECT_EQ(result("block.load", {{"content", "198.18.0.0/24\n198.18.1.0/24 pass # ok\n"}}).at("loaded"), json::value(2));
  // No temp file is left: state.yaml and the one generation of prefix files it names.
  for (const auto& entry : std::filesystem::directory_iterator(state_dir_)) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name == "state.yaml" || name == daemon::prefix_snapshot_name(*store_->prefix_generation()) ||
                name == daemon::prefix_journal_name(*store_->prefix_generation()))
        << name;
  }
  EXPECT_EQ(send(tcp4(80)).verdict, XDP_DROP);
}

// A start whose state file cannot be made live (a rule names an interface
// that is not there): the state committed and shown is what the data plane
// runs, the operator's file is kept aside, status says degraded and why, and
// the next change that makes a filter set live clears it.
TEST_F(DaemonChangeTest, RestoreThatCannotMakeTheRuleSetLiveCommitsWhatIsLiveAndSaysDegraded) {
  json::object status;
  state_->add_restore_state(status);
  EXPECT_EQ(status.at("degraded"), json::value(false)) << "a clean start";
  const std::string state_path = state_dir_ + "/state.yaml";
  const std::string wanted_text = "defaults: {drop_sample_every: 7}\n"
                                  "rules:\n  - {priority: 10, iface: sl-nosuch0, proto: icmp, action: drop}\n";
  {
    std::ofstream file(state_path);
    file << wanted_text;
  }
  auto wanted = store_->read();
  ASSERT_TRUE(wanted && *wanted) << (wanted ? "no file" : wanted.error().message);
  const auto generation_before = generation();

  EXPECT_TRUE(state_->restore(state_->baseline(std::nullopt), **wanted));

  ASSERT_TRUE(state_->restore_error().has_value());
  EXPECT_NE(state_->restore_error()->find("sl-nosuch0"), std::string::npos) << *state_->restore_error();
  EXPECT_NE(state_->restore_error()->find("state.yaml.rejected"), std::string::npos) << *state_->restore_error();
  status = {};
  state_->add_restore_state(status);
  EXPECT_EQ(status.at("degraded"), json::value(true));
  EXPECT_EQ(status.at("restore_error"), json::value(*state_->restore_error()));
  // Nothing claims the rule: not the live state, not config.show, not the file.
  EXPECT_TRUE(store_->live().rules && store_->live().rules->empty());
  const std::string shown(result("config.show").at("yaml").as_string());
  EXPECT_EQ(shown.find("sl-nosuch0"), std::string::npos) << shown;
  EXPECT_EQ(read_text(state_path).find("sl-nosuch0"), std::string::npos) << read_text(state_path);
  // The filter was written whole (what runs is what is reported), in one swap.
  EXPECT_EQ(generation(), generation_before + 1);
  // What could be made live was: the defaults.
  EXPECT_EQ(service_->config_get()->at("drop_sample_every"), json::value(7)) << shown;
  EXPECT_NE(shown.find("drop_sample_every: 7"), std::string::npos) << shown;
  // The operator's file is kept for fixing.
  EXPECT_EQ(read_text(state_path + ".rejected"), wanted_text);

  // A change that makes a filter set live ends the degraded state.
  result("rule.add", {{"proto", "udp"}, {"dport", 9}, {"action", "drop"}});
  status = {};
  state_->add_restore_state(status);
  EXPECT_EQ(status.at("degraded"), json::value(false));
  EXPECT_FALSE(status.contains("restore_error"));
}

// conn.list and the /metrics count read the connection tables in bounded
// chunks; the whole-table count runs at most once per interval.
TEST_F(DaemonChangeTest, ConntrackReadsAreBoundedAndCountedAtMostOncePerInterval) {
  result("rule.add", {{"priority", 10}, {"proto", "tcp"}, {"dport", 80}, {"action", "pass-track"}});
  auto syn_from = [](std::uint16_t sport) {
    return ether().ipv4("198.18.0.1", "198.18.1.1").tcp(sport, 80, {.flags = TcpFlags::SYN}).build();
  };
  constexpr int flows = 12;
  for (int i = 0; i < flows; ++i) ASSERT_EQ(send(syn_from(static_cast<std::uint16_t>(41000 + i))).verdict, XDP_PASS);

  // A listing stops at its limit and says it was cut; the total is the count.
  const auto listed = result("conn.list", {{"limit", 5}});
  EXPECT_EQ(listed.at("flows").as_array().size(), 5u) << json::serialize(listed);
  EXPECT_EQ(listed.at("truncated"), json::value(true));
  EXPECT_EQ(listed.at("total"), json::value(flows));
  const auto all = result("conn.list", {{"limit", 100}});
  EXPECT_EQ(all.at("flows").as_array().size(), std::size_t{flows});
  EXPECT_EQ(all.at("truncated"), json::value(false));

  daemon::ConntrackView view(*plane_, std::chrono::hours(1));
  auto first = view.count();
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->flows, std::uint64_t{flows});
  ASSERT_EQ(send(syn_from(42000)).verdict, XDP_PASS);
  auto cached = view.count();
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->flows, std::uint64_t{flows}) << "within the interval: the last count, no walk";
  EXPECT_EQ(cached->counted_at, first->counted_at);
  daemon::ConntrackView fresh(*plane_, std::chrono::seconds(0));
  EXPECT_EQ(fresh.count()->flows, std::uint64_t{flows + 1});
  EXPECT_EQ(fresh.first_flows(3)->size(), 3u);
  EXPECT_EQ(fresh.first_flows(0)->size(), 0u);
}

// The protocol door of strict input: rule.add refuses what no packet can
// match and integers written with a leading zero, and changes nothing.
TEST_F(DaemonChangeTest, RuleAddRefusesUnmatchableIcmpRulesAndNonDecimalText) {
  const auto before = generation();
  auto v6_icmp = refused("rule.add", {{"src", "2001:db8::/32"}, {"proto", "icmp"}, {"icmp_type", 128}, {"action", "drop"}});
  EXPECT_EQ(v6_icmp.code, protocol::ErrorCode::BadArgs);
  EXPECT_NE(v6_icmp.message.find("icmp_type 128 with protocol icmp and an IPv6 address"), std::string::npos)
      << v6_icmp.message;
  auto v4_icmpv6 = refused("rule.add", {{"dst", "198.18.0.0/15"}, {"proto", "icmpv6"}, {"icmp_type", 8}, {"action", "pass"}});
  EXPECT_NE(v4_icmpv6.message.find("icmp_type 8 with protocol icmpv6 and an IPv4 address"), std::string::npos)
      << v4_icmpv6.message;
  auto port = refused("rule.add", {{"proto", "tcp"}, {"dport", "080"}, {"action", "drop"}});
  EXPECT_NE(port.message.find("port '080': a leading zero is not allowed"), std::string::npos) << port.message;
  auto proto = refused("rule.add", {{"proto", "06"}, {"action", "drop"}});
  EXPECT_NE(proto.message.find("protocol '06'"), std::string::npos) << proto.message;
  EXPECT_EQ(generation(), before) << "a refused rule changes nothing";
  EXPECT_TRUE(result("rule.list").at("rules").as_array().empty());
  // The same ICMP types under their own family's protocol are fine.
  result("rule.add", {{"src", "2001:db8::/32"}, {"proto", "icmpv6"}, {"icmp_type", 128}, {"action", "pass"}});
  result("rule.add", {{"src", "198.18.0.0/15"}, {"proto", "icmp"}, {"icmp_type", 8}, {"action", "pass"}});
  EXPECT_EQ(result("rule.list").at("rules").as_array().size(), 2u);
}

TEST_F(DaemonChangeTest, BlockLoadTakesDecimalClassNumbersOnly) {
  // Before: "03" was read as class 3 (std::from_chars takes leading zeros).
  auto octal = refused("block.load", {{"content", "198.18.0.0/24 rate-limit 03\n"}});
  EXPECT_NE(octal.message.find("line 1: rate-limit needs a class number: '03': a leading zero is not allowed"),
            std::string::npos)
      << octal.message;
  auto sign = refused("block.load", {{"content", "198.18.0.0/24 drop\n198.18.1.0/24 rate-limit +3\n"}});
  EXPECT_NE(sign.message.find("line 2: rate-limit needs a class number: '+3': a sign is not allowed"),
            std::string::npos)
      << sign.message;
  EXPECT_TRUE(result("block.list").at("prefixes").as_array().empty()) << "a bad line loads nothing";
}

// Before: the event hub read the drop_events ring to its end in one turn of
// the io_context; under a flood with drop_sample_every 1 the ring refills as
// fast as it is read, and the control socket and /metrics waited behind it.
// Now a turn handles events_per_turn records, then lets what is ready run.
TEST_F(FilterTest, EventHubReadsTheRingInBoundedTurnsAndOtherWorkRunsBetween) {
  auto settings = filter::default_settings();
  settings.drop_sample_every = 1;
  ASSERT_TRUE(table_->set_settings(settings));
  filter::RuleSet set;
  set.prefixes = {{cidr("198.18.0.0/24"), filter::Action::Drop}};
  replace(set);
  constexpr std::size_t flood = 1000;  // fits the 256 KiB ring (168 bytes a record)
  const Bytes frame = ether().ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).build();
  for (std::size_t i = 0; i < flood; ++i) ASSERT_EQ(send(frame).verdict, XDP_DROP);

  namespace asio = boost::asio;
  asio::io_context io;
  daemon::EventHub hub(io);
  auto subscription = hub.subscribe();
  // Another coroutine on the same io_context, woken by the first event: how
  // many records had the hub read by the time it got to run?
  std::optional<std::uint64_t> read_when_woken;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await subscription->wait();
        read_when_woken = hub.stats().received;
      },
      asio::detached);
  ASSERT_TRUE(hub.start(*maps::MapFd::from_skeleton(plane_->skeleton()->maps.drop_events)));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (hub.stats().received < flood && std::chrono::steady_clock::now() < deadline)
    io.run_one_for(std::chrono::milliseconds(100));
  EXPECT_EQ(hub.stats().received, flood) << "every record is read, over several turns";
  ASSERT_TRUE(read_when_woken.has_value());
  EXPECT_EQ(*read_when_woken, daemon::EventHub::events_per_turn) << "other work ran after one bounded turn";
  EXPECT_EQ(subscription->queue().size(), flood);
  hub.stop();
  io.run_for(std::chrono::milliseconds(50));
}

TEST_F(FilterTest, RingBufferConsumesABoundedBatchAndTheRestLater) {
  auto settings = filter::default_settings();
  settings.drop_sample_every = 1;
  ASSERT_TRUE(table_->set_settings(settings));
  filter::RuleSet set;
  set.prefixes = {{cidr("198.18.0.0/24"), filter::Action::Drop}};
  replace(set);
  const Bytes frame = ether().ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).build();
  for (int i = 0; i < 25; ++i) ASSERT_EQ(send(frame).verdict, XDP_DROP);
  std::size_t delivered = 0;
  auto ring = maps::RingBuffer::from(*maps::MapFd::from_skeleton(plane_->skeleton()->maps.drop_events),
                                     [&](std::span<const std::byte>) { ++delivered; });
  ASSERT_TRUE(ring) << ring.error().message;
  for (std::size_t expected : {10u, 10u, 5u, 0u}) {
    auto consumed = ring->consume(10);
    ASSERT_TRUE(consumed) << consumed.error().message;
    EXPECT_EQ(*consumed, expected);
  }
  EXPECT_EQ(delivered, 25u) << "each record once: a full batch consumed its last record";
  EXPECT_FALSE(ring->consume(0));
  auto all = ring->consume();
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, 0u);
}

}  // namespace
}  // namespace sluice::test
