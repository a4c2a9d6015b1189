// sluicectl without a daemon: each command's exact request line, its table
// for a canned reply, its exit code, and hostile replies. The packet-head
// decoder and the pcap writer are tested here too.
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "packet_builder.hpp"
#include "packet_head.hpp"
#include "pcap_writer.hpp"
#include "protocol.hpp"
#include "sluicectl.hpp"

namespace sluice::cli {
namespace {

using test::PacketBuilder;
using test::TcpFlags;

// Replays canned reply lines and records every request line.
struct Wire {
  std::vector<std::string> sent;
  std::deque<std::string> replies;
  int connects = 0;
  bool refuse = false;
};

class FakeTransport final : public Transport {
 public:
  explicit FakeTransport(std::shared_ptr<Wire> wire) : wire_(std::move(wire)) {}
  TransportResult<void> write_line(std::string_view line) override {
    EXPECT_EQ(line.back(), '\n');
    wire_->sent.emplace_back(line.substr(0, line.size() - 1));
    return {};
  }
  TransportResult<std::string> read_line(std::optional<std::chrono::milliseconds>) override {
    if (wire_->replies.empty()) return TransportError{"daemon closed the connection"};
    std::string line = std::move(wire_->replies.front());
    wire_->replies.pop_front();
    return TransportResult<std::string>(boost::system::in_place_value, std::move(line));
  }

 private:
  std::shared_ptr<Wire> wire_;
};

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

class CliTest : public ::testing::Test {
 protected:
  Outcome run_cli(std::vector<std::string> args, std::string input = "") {
    std::ostringstream out, err;
    std::istringstream in(input);
    Env env(out, err, in);
    env.connect = [wire = wire_](const std::string& path) -> TransportResult<std::unique_ptr<Transport>> {
      ++wire->connects;
      if (wire->refuse) return TransportError{"cannot connect to " + path + ": No such file or directory"};
      return std::unique_ptr<Transport>(std::make_unique<FakeTransport>(wire));
    };
    env.interface_name = [](std::uint32_t ifindex) { return ifindex == 2 ? std::string("eth0") : "if" + std::to_string(ifindex); };
    env.monotonic_to_realtime_ns = [] { return std::int64_t{0}; };
    env.interrupted = [this] { return interrupted_(); };
    env.sleep = [this](std::chrono::milliseconds d) { slept_ += d; };
    const int code = run(args, env);
    return {code, out.str(), err.str()};
  }

  void reply(std::string line) { wire_->replies.push_back(std::move(line)); }
  const std::vector<std::string>& sent() const { return wire_->sent; }

  std::shared_ptr<Wire> wire_ = std::make_shared<Wire>();
  std::function<bool()> interrupted_ = [] { return false; };
  std::chrono::milliseconds slept_{0};
};

std::string hex(const std::vector<std::uint8_t>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (auto b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

// ---- status ----

constexpr const char* kStatusReply =
    R"({"id":1,"ok":true,"result":{"version":"0.1.0","pid":4242,"uptime_seconds":3723,"pin_dir":"/sys/fs/bpf/sluice",)"
    R"("interfaces":[{"name":"eth0","ifindex":2,"mode":"native","dispatcher":false,"prog_id":57},)"
    R"({"name":"veth-lab1","ifindex":14,"mode":"skb","dispatcher":true,"prog_id":1203}],)"
    R"("stages":{"filter":true,"lb":false,"forward":true},)"
    R"("filter":{"generation":7,"rules":3,"prefixes":12,"rate_classes":1},"reused_maps":["config","verdict_counters"]}})";

TEST_F(CliTest, StatusSendsTheRequestAndPrintsTables) {
  reply(kStatusReply);
  const Outcome r = run_cli({"status"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"status","args":{}})"}));
  EXPECT_EQ(r.out,
            "version      0.1.0\n"
            "pid          4242\n"
            "uptime       1h 2m 3s\n"
            "pin dir      /sys/fs/bpf/sluice\n"
            "stages       filter on, lb off, forward on\n"
            "filter       generation 7: 3 rules, 12 prefixes, 1 rate classes\n"
            "reused maps  config, verdict_counters\n"
            "\n"
            "INTERFACE  IFINDEX  MODE    DISPATCHER  PROG ID\n"
            "eth0             2  native  no               57\n"
            "veth-lab1       14  skb     yes            1203\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(CliTest, StatusPutsADegradedStartFirst) {
  reply(R"({"id":1,"ok":true,"result":{"version":"0.1.0","pid":1,"uptime_seconds":1,"pin_dir":"/p",)"
        R"("interfaces":[],"reused_maps":[],"degraded":true,)"
        R"("restore_error":"filter rule set not made live: rules[0].iface: no interface 'eth9'"}})");
  const Outcome r = run_cli({"status"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out.rfind("DEGRADED     filter rule set not made live: rules[0].iface: no interface 'eth9'\n", 0), 0u)
      << r.out;
  // Not degraded: no such line at all.
  reply(R"({"id":1,"ok":true,"result":{"version":"0.1.0","interfaces":[],"degraded":false}})");
  EXPECT_EQ(run_cli({"status"}).out.find("DEGRADED"), std::string::npos);
}

TEST_F(CliTest, JsonPrintsTheRawResult) {
  reply(R"({"id":1,"ok":true,"result":{"version":"0.1.0","interfaces":[]}})");
  const Outcome r = run_cli({"--json", "status"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_EQ(r.out, "{\"version\":\"0.1.0\",\"interfaces\":[]}\n");
}

TEST_F(CliTest, GlobalOptionsAfterTheSubcommand) {
  reply(R"({"id":1,"ok":true,"result":{"interfaces":[]}})");
  const Outcome r = run_cli({"status", "--json", "--socket", "/tmp/other.sock"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "{\"interfaces\":[]}\n");
}

TEST_F(CliTest, StatusWithoutInterfacesSaysSo) {
  // sluiced sends uptime as a fraction of seconds.
  reply(R"({"id":1,"ok":true,"result":{"version":"0.1.0","pid":1,"uptime_seconds":65.73,"pin_dir":"/p",)"
        R"("interfaces":[],"stages":{"filter":true,"lb":true,"forward":true},"reused_maps":[]}})");
  const Outcome r = run_cli({"status"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_NE(r.out.find("uptime       1m 5s\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("reused maps  none\n\nno interfaces attached\n"), std::string::npos) << r.out;
}

// ---- failures ----

TEST_F(CliTest, DaemonErrorExitsOneWithTheMessage) {
  reply(R"j({"id":1,"ok":false,"error":{"code":"failed","message":"attach eth9: no such device (ENODEV)"}})j");
  const Outcome r = run_cli({"attach", "eth9"});
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "sluicectl: attach: attach eth9: no such device (ENODEV) [failed]\n");
}

// Sets (or unsets) SLUICE_SOCKET for one test and puts back what the host had:
// the host's environment must not decide which path a test expects.
class ScopedSocketEnv {
 public:
  explicit ScopedSocketEnv(const char* value) {
    if (const char* old = std::getenv(kName)) saved_ = old;
    if (value) ::setenv(kName, value, 1);
    else ::unsetenv(kName);
  }
  ~ScopedSocketEnv() {
    if (saved_) ::setenv(kName, saved_->c_str(), 1);
    else ::unsetenv(kName);
  }

 private:
  static constexpr const char* kName = "SLUICE_SOCKET";
  std::optional<std::string> saved_;
};

// The paths below are only handed to the fake connect (nothing is opened),
// so no file of the host can change the outcome.
TEST_F(CliTest, UnreachableDaemonExitsThree) {
  ScopedSocketEnv no_env(nullptr);
  wire_->refuse = true;
  const Outcome r = run_cli({"--socket", "/tmp/sluice-cli-test-absent.sock", "status"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_EQ(r.err, "sluicectl: cannot connect to /tmp/sluice-cli-test-absent.sock: No such file or directory\n");
}

TEST_F(CliTest, SocketOptionAndEnvironmentChooseThePath) {
  wire_->refuse = true;
  {
    ScopedSocketEnv no_env(nullptr);
    EXPECT_EQ(run_cli({"status"}).err, std::string("sluicectl: cannot connect to ") + kDefaultSocket +
                                           ": No such file or directory\n")
        << "the default path";
    EXPECT_EQ(run_cli({"--socket", "/tmp/x.sock", "status"}).err,
              "sluicectl: cannot connect to /tmp/x.sock: No such file or directory\n");
  }
  ScopedSocketEnv env("/tmp/from-env.sock");
  EXPECT_EQ(run_cli({"status"}).err, "sluicectl: cannot connect to /tmp/from-env.sock: No such file or directory\n");
  EXPECT_EQ(run_cli({"--socket", "/tmp/x.sock", "status"}).err,
            "sluicectl: cannot connect to /tmp/x.sock: No such file or directory\n")
      << "the option wins over the environment";
}

TEST_F(CliTest, ReplyWithTheWrongIdIsRefused) {
  reply(R"({"id":7,"ok":true,"result":{}})");
  const Outcome r = run_cli({"config", "get"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_EQ(r.err, "sluicectl: reply to config.get carries id 7, expected 1\n");
}

TEST_F(CliTest, GarbageReplyIsRefused) {
  reply("this is not json");
  const Outcome r = run_cli({"status"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_NE(r.err.find("bad reply to status: reply is not valid JSON"), std::string::npos) << r.err;
}

TEST_F(CliTest, WrongShapedResultIsRefusedNotCrashed) {
  reply(R"({"id":1,"ok":true,"result":{"interfaces":"eth0"}})");
  Outcome r = run_cli({"status"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_EQ(r.err, "sluicectl: unexpected reply to status: field interfaces missing or not a list\n");
  reply(R"({"id":1,"ok":true,"result":[1,2]})");
  r = run_cli({"stats"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_EQ(r.err, "sluicectl: unexpected reply to stats: stats result is an array, expected an object\n");
}

TEST_F(CliTest, DaemonClosingEarlyIsUnavailable) {
  const Outcome r = run_cli({"status"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_EQ(r.err, "sluicectl: daemon closed the connection\n");
}

// ---- usage errors: nothing is sent ----

TEST_F(CliTest, UsageErrorsSendNothing) {
  struct Case {
    std::vector<std::string> args;
    std::string err_contains;
  };
  const std::vector<Case> cases{
      {{}, "a command is required"},
      {{"attach"}, "IFACE is required"},
      {{"attach", "a/b"}, "bad interface name 'a/b'"},
      {{"attach", "averyveryverylongname"}, "longer than 15 bytes"},
      {{"attach", "eth0", "--mode", "generic"}, "generic not in {native,skb}"},
      {{"detach", ""}, "bad interface name ''"},
      {{"config"}, "A subcommand is required"},
      {{"config", "set"}, "config set: nothing to change"},
      {{"config", "set", "--end-verdict", "reject"}, "bad verdict 'reject': expected pass or drop"},
      {{"config", "set", "--default-verdict", "drop"}, "--default-verdict"},
      {{"filter"}, "A subcommand is required"},
      {{"filter", "policy", "reject"}, "bad verdict 'reject': expected pass or drop"},
      {{"filter", "policy", "drop", "pass"}, "unexpected argument 'pass'"},
      {{"config", "set", "--drop-fragments", "yes"}, "yes not in {on,off}"},
      {{"config", "set", "--stages", "filter,nat"}, "bad stage 'nat' in --stages 'filter,nat'"},
      {{"config", "set", "--stages", ""}, "empty --stages"},
      {{"stats", "--watch", "0"}, "--watch"},
      {{"events", "-c", "0"}, "-c"},
      {{"events", "-c", "-3"}, "-c"},
      {{"capture"}, "--write is required"},
      {{"apply"}, "--file is required"},
      {{"apply", "-f", "/nonexistent/sluice.yaml"}, "cannot read /nonexistent/sluice.yaml"},
      {{"nat", "add"}, "unknown command 'nat'"},
      {{"vip", "add"}, "VIP is required"},  // lb_cli_test.cpp has the rest of vip/backend/lb
      {{"status", "now"}, "unexpected argument 'now'"},
      {{"detach", "eth0", "eth1"}, "unexpected argument 'eth1'"},
  };
  for (const auto& c : cases) {
    const Outcome r = run_cli(c.args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_EQ(r.code, kExitUsage) << joined << "\n" << r.err;
    EXPECT_NE(r.err.find(c.err_contains), std::string::npos) << joined << "\nstderr: " << r.err;
  }
  EXPECT_TRUE(sent().empty());
  EXPECT_EQ(wire_->connects, 0);
}

TEST_F(CliTest, HelpExitsZero) {
  const Outcome r = run_cli({"--help"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_NE(r.out.find("attach"), std::string::npos);
  EXPECT_NE(r.out.find("Exit status"), std::string::npos);
}

// ---- attach / detach / shutdown ----

TEST_F(CliTest, AttachDetachShutdownRequests) {
  reply(R"({"id":1,"ok":true,"result":{}})");
  Outcome r = run_cli({"attach", "eth0", "--mode", "skb"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_EQ(r.out, "attached to eth0 (skb)\n");
  reply(R"({"id":1,"ok":true,"result":{}})");
  r = run_cli({"attach", "eth1"});
  reply(R"({"id":1,"ok":true,"result":{}})");
  r = run_cli({"detach", "eth0"});
  EXPECT_EQ(r.out, "detached from eth0\n");
  reply(R"({"id":1,"ok":true,"result":{}})");
  r = run_cli({"shutdown", "--detach"});
  reply(R"({"id":1,"ok":true,"result":{}})");
  r = run_cli({"shutdown"});
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"attach","args":{"iface":"eth0","mode":"skb"}})",
                        R"({"id":1,"op":"attach","args":{"iface":"eth1","mode":"native"}})",
                        R"({"id":1,"op":"detach","args":{"iface":"eth0"}})",
                        R"({"id":1,"op":"shutdown","args":{"detach":true}})",
                        R"({"id":1,"op":"shutdown","args":{"detach":false}})",
                    }));
}

// ---- config ----

constexpr const char* kConfigReply =
    R"({"id":1,"ok":true,"result":{"end_verdict":"pass","tail_call_fail_verdict":"pass",)"
    R"("malformed_verdict":"drop","non_ip_verdict":"pass","drop_fragments":false,)"
    R"("stages":{"filter":true,"lb":true,"forward":false}}})";

TEST_F(CliTest, ConfigGetPrintsPairs) {
  reply(kConfigReply);
  const Outcome r = run_cli({"config", "get"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"config.get","args":{}})"}));
  EXPECT_EQ(r.out,
            "end_verdict             pass\n"
            "tail_call_fail_verdict  pass\n"
            "malformed_verdict       drop\n"
            "non_ip_verdict          pass\n"
            "drop_fragments          off\n"
            "stages                  filter on, lb on, forward off\n");
}

TEST_F(CliTest, ConfigSetSendsOnlyTheGivenKeys) {
  reply(kConfigReply);
  Outcome r = run_cli({"config", "set", "--end-verdict", "drop", "--drop-fragments", "on"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  reply(kConfigReply);
  r = run_cli({"config", "set", "--tail-call-fail", "drop", "--malformed", "pass", "--non-ip", "drop", "--stages",
               "forward,filter"});
  reply(kConfigReply);
  r = run_cli({"config", "set", "--stages", "none"});
  EXPECT_EQ(sent(),
            (std::vector<std::string>{
                R"({"id":1,"op":"config.set","args":{"end_verdict":"drop","drop_fragments":true}})",
                R"({"id":1,"op":"config.set","args":{"tail_call_fail_verdict":"drop","malformed_verdict":"pass",)"
                R"("non_ip_verdict":"drop","stages":{"filter":true,"lb":false,"forward":true}}})",
                R"({"id":1,"op":"config.set","args":{"stages":{"filter":false,"lb":false,"forward":false}}})",
            }));
}

TEST_F(CliTest, FilterPolicySetsOrShowsTheDefaultPolicy) {
  reply(R"({"id":1,"ok":true,"result":{"default_policy":"drop"}})");
  Outcome r = run_cli({"filter", "policy", "drop"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "default policy: drop\n");
  reply(R"({"id":1,"ok":true,"result":{"rules":[],"default_policy":"drop"}})");
  r = run_cli({"filter", "policy"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "drop\n");
  reply(R"({"id":1,"ok":true,"result":{"rules":[],"default_policy":"pass"}})");
  r = run_cli({"rule", "list"});
  EXPECT_EQ(r.out, "no rules\ndefault policy: pass\n");
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"filter.policy","args":{"policy":"drop"}})",
                        R"({"id":1,"op":"rule.list","args":{}})",
                        R"({"id":1,"op":"rule.list","args":{}})",
                    }));
}

TEST_F(CliTest, ConfigShowPrintsTheYaml) {
  reply(R"({"id":1,"ok":true,"result":{"yaml":"interfaces:\n  - name: eth0\n    mode: native"}})");
  const Outcome r = run_cli({"config", "show"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"config.show","args":{}})"}));
  EXPECT_EQ(r.out, "interfaces:\n  - name: eth0\n    mode: native\n");
}

// ---- stats ----

constexpr const char* kStatsReply =
    R"({"id":%d,"ok":true,"result":{"counters":[)"
    R"({"verdict":"pass","reason":"pipeline_end","packets":1200,"bytes":98000},)"
    R"({"verdict":"drop","reason":"trunc_ipv4","packets":3,"bytes":180}]}})";

std::string stats_reply(int id) {
  char line[512];
  std::snprintf(line, sizeof line, kStatsReply, id);
  return line;
}

TEST_F(CliTest, StatsTableWithTotal) {
  reply(stats_reply(1));
  const Outcome r = run_cli({"stats"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_EQ(r.out,
            "VERDICT  REASON        PACKETS  BYTES\n"
            "pass     pipeline_end     1200  98000\n"
            "drop     trunc_ipv4          3    180\n"
            "total                     1203  98180\n");
}

TEST_F(CliTest, StatsWatchRepeatsUntilInterrupted) {
  for (int id = 1; id <= 3; ++id) reply(stats_reply(id));
  int checks = 0;
  // Interrupted after the third table's sleep starts: three requests.
  interrupted_ = [&] { return slept_ >= std::chrono::milliseconds(5000); };
  const Outcome r = run_cli({"stats", "--watch", "2"});
  (void)checks;
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"stats","args":{}})", R"({"id":2,"op":"stats","args":{}})",
                                              R"({"id":3,"op":"stats","args":{}})"}));
  EXPECT_EQ(wire_->connects, 1);  // one connection for the whole watch
  std::size_t tables = 0;
  for (std::size_t at = r.out.find("VERDICT"); at != std::string::npos; at = r.out.find("VERDICT", at + 1)) ++tables;
  EXPECT_EQ(tables, 3u);
}

// ---- events ----

std::vector<std::uint8_t> ssh_syn() {
  return PacketBuilder()
      .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
      .ipv4("198.18.0.1", "198.18.1.1")
      .tcp(40000, 22, {.flags = TcpFlags::SYN})
      .build();
}

std::string event_line(int id, std::uint64_t ts, std::uint32_t ifindex, const std::vector<std::uint8_t>& head,
                       std::uint32_t pkt_len, const char* reason = "trunc_ipv4") {
  return "{\"id\":" + std::to_string(id) + ",\"ok\":true,\"event\":{\"timestamp_ns\":" + std::to_string(ts) +
         ",\"ifindex\":" + std::to_string(ifindex) + ",\"reason\":\"" + reason +
         "\",\"verdict\":\"drop\",\"pkt_len\":" + std::to_string(pkt_len) + ",\"head_hex\":\"" + hex(head) + "\"}}";
}

TEST_F(CliTest, EventsAreDecoded) {
  const auto v6 = PacketBuilder()
                      .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                      .vlan(100)
                      .ipv6("2001:db8::1", "2001:db8::2")
                      .udp(5353, 53)
                      .build();
  reply(event_line(1, 3'723'000'123'000, 2, ssh_syn(), 1500));
  reply(event_line(1, 3'724'500'000'000, 9, v6, 90, "fragment"));
  reply(R"({"id":1,"ok":true,"result":{"events":2}})");
  const Outcome r = run_cli({"events", "-c", "2"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"events","args":{"follow":false,"max":2}})"}));
  EXPECT_EQ(r.out,
            "TIME (UTC)       IFACE       VERDICT   REASON                    LEN  PACKET\n"
            "01:02:03.000123  eth0        drop      trunc_ipv4               1500  198.18.0.1:40000 > 198.18.1.1:22 tcp [S]\n"
            "01:02:04.500000  if9         drop      fragment                   90  vlan 100 [2001:db8::1]:5353 > "
            "[2001:db8::2]:53 udp\n"
            "2 events\n");
}

TEST_F(CliTest, EventsFollowWithoutCount) {
  reply(R"({"id":1,"ok":true,"result":{"events":0}})");
  const Outcome r = run_cli({"events", "--follow"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"events","args":{"follow":true}})"}));
  EXPECT_EQ(r.out, "no drop events\n");
}

TEST_F(CliTest, EventsJsonIsOneObjectPerLine) {
  reply(event_line(1, 5, 2, ssh_syn(), 60));
  reply(R"({"id":1,"ok":true,"result":{"events":1}})");
  const Outcome r = run_cli({"events", "--json"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_EQ(r.out, "{\"timestamp_ns\":5,\"ifindex\":2,\"reason\":\"trunc_ipv4\",\"verdict\":\"drop\",\"pkt_len\":60,"
                   "\"head_hex\":\"" + hex(ssh_syn()) + "\"}\n{\"events\":1}\n");
}

TEST_F(CliTest, HostileEventIsRefused) {
  reply(R"({"id":1,"ok":true,"event":{"timestamp_ns":1,"ifindex":2,"pkt_len":60,"head_hex":"zz"}})");
  Outcome r = run_cli({"events"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_EQ(r.err, "sluicectl: unexpected reply to events: event head_hex \"zz\" is not hex of at most 128 bytes\n");
  reply(R"({"id":1,"ok":true,"event":{"timestamp_ns":-1,"ifindex":2,"pkt_len":60,"head_hex":""}})");
  r = run_cli({"events"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_NE(r.err.find("event needs unsigned timestamp_ns"), std::string::npos) << r.err;
  reply(R"({"id":1,"ok":true,"event":{"timestamp_ns":1,"ifindex":2,"pkt_len":60,"head_hex":")" + std::string(258, 'a') +
        "\"}}");
  r = run_cli({"events"});
  EXPECT_EQ(r.code, kExitUnavailable);
}

// ---- capture ----

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "sluicectl-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (std::filesystem::path(path_) / name).string(); }

 private:
  std::string path_;
};

TEST_F(CliTest, CaptureWritesAPcapTcpdumpReads) {
  TempDir dir;
  const std::string path = dir.file("drops.pcap");
  const auto syn = ssh_syn();
  const std::vector<std::uint8_t> truncated(syn.begin(), syn.begin() + 20);
  reply(event_line(1, 1'700'000'000'250'000'000, 2, syn, 1514));
  reply(event_line(1, 1'700'000'001'000'000'000, 2, truncated, 20));
  reply(R"({"id":1,"ok":true,"result":{"events":2}})");
  const Outcome r = run_cli({"capture", "-w", path, "-c", "2"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"events","args":{"follow":true,"max":2}})"}));
  EXPECT_EQ(r.err, "sluicectl: 2 packets written to " + path + "\n");

  char errbuf[PCAP_ERRBUF_SIZE];
  pcap_t* pcap = pcap_open_offline(path.c_str(), errbuf);
  ASSERT_NE(pcap, nullptr) << errbuf;
  EXPECT_EQ(pcap_datalink(pcap), DLT_EN10MB);
  pcap_pkthdr* header = nullptr;
  const u_char* data = nullptr;
  ASSERT_EQ(pcap_next_ex(pcap, &header, &data), 1);
  EXPECT_EQ(header->caplen, syn.size());
  EXPECT_EQ(header->len, 1514u);
  EXPECT_EQ(header->ts.tv_sec, 1'700'000'000);
  EXPECT_EQ(header->ts.tv_usec, 250'000);
  EXPECT_EQ(std::vector<std::uint8_t>(data, data + header->caplen), syn);
  ASSERT_EQ(pcap_next_ex(pcap, &header, &data), 1);
  EXPECT_EQ(header->caplen, 20u);
  EXPECT_EQ(header->len, 20u);
  EXPECT_EQ(pcap_next_ex(pcap, &header, &data), PCAP_ERROR_BREAK);
  pcap_close(pcap);
}

TEST_F(CliTest, CaptureToAnUnwritablePathFailsBeforeConnecting) {
  const Outcome r = run_cli({"capture", "-w", "/nonexistent-dir/x.pcap"});
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_NE(r.err.find("/nonexistent-dir/x.pcap"), std::string::npos) << r.err;
  EXPECT_EQ(wire_->connects, 0);
}

// ---- apply ----

TEST_F(CliTest, ApplySendsTheFileTextAndPrintsTheDiff) {
  TempDir dir;
  const std::string path = dir.file("desired.yaml");
  const std::string yaml = "interfaces:\n  - name: eth0\ndefaults:\n  end_verdict: drop\n";
  std::ofstream(path) << yaml;
  reply(R"({"id":1,"ok":true,"result":{"diff":["+ interface eth0: mode native","~ defaults.end_verdict: pass -> drop"]}})");
  Outcome r = run_cli({"apply", "-f", path, "--dry-run"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"apply","args":{"yaml":"interfaces:\n  - name: eth0\ndefaults:\n  end_verdict: drop\n","dry_run":true}})"}));
  EXPECT_EQ(r.out,
            "+ interface eth0: mode native\n"
            "~ defaults.end_verdict: pass -> drop\n"
            "(dry run: nothing changed)\n");
  reply(R"({"id":1,"ok":true,"result":{"diff":[]}})");
  r = run_cli({"apply", "-f", "-"}, yaml);
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_EQ(r.out, "no changes\n");
  EXPECT_EQ(sent().back(),
            R"({"id":1,"op":"apply","args":{"yaml":"interfaces:\n  - name: eth0\ndefaults:\n  end_verdict: drop\n","dry_run":false}})");
}

TEST_F(CliTest, ApplyRefusesABadFileLocallyWithItsLine) {
  TempDir dir;
  const std::string path = dir.file("bad.yaml");
  std::ofstream(path) << "rules:\n  - priority: 1\n    dport: 9-3\n    action: drop\n";
  const Outcome r = run_cli({"apply", "-f", path});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_EQ(r.err, "sluicectl: " + path +
                       ": rules[0].dport: port range '9-3': ports 9-3: first port above last (line 3, column 12)\n");
  EXPECT_TRUE(sent().empty());
}

TEST_F(CliTest, ApplyRefusesWhatTheDaemonWouldCallTooLarge) {
  TempDir dir;
  const std::string path = dir.file("big.yaml");
  {
    std::ofstream file(path);
    file << "prefix_lists:\n  block:\n";
    for (int i = 0; i < 70000; ++i)
      file << "    - 10." << (i >> 16 & 0xff) << "." << (i >> 8 & 0xff) << "." << (i & 0xff) << "\n";
  }
  const Outcome r = run_cli({"apply", "-f", path});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_NE(r.err.find("request too large"), std::string::npos) << r.err;
  EXPECT_TRUE(sent().empty());
}

// ---- the filter: block, rule, limit, conn ----

TEST_F(CliTest, BlockCommandsSendTheirExactRequests) {
  struct Case {
    std::vector<std::string> args;
    std::string request;
    std::string out;
  };
  const std::vector<Case> cases{
      {{"block", "add", "198.18.0.0/15"}, R"({"id":1,"op":"block.add","args":{"prefixes":["198.18.0.0/15"]}})",
       "added 1 prefix\n"},
      // Bare addresses are host prefixes; IPv6 is sent in canonical form.
      {{"block", "add", "198.18.7.9", "2001:DB8:0::/32", "--action", "pass"},
       R"({"id":1,"op":"block.add","args":{"prefixes":["198.18.7.9/32","2001:db8::/32"],"action":"pass"}})",
       "added 2 prefixes\n"},
      {{"block", "add", "198.19.0.0/16", "--action", "drop"},
       R"({"id":1,"op":"block.add","args":{"prefixes":["198.19.0.0/16"],"action":"drop"}})", "added 1 prefix\n"},
      {{"block", "add", "--action", "limit:web-1", "198.18.0.0/24"},
       R"({"id":1,"op":"block.add","args":{"prefixes":["198.18.0.0/24"],"action":"rate-limit","rate_class":"web-1"}})",
       "added 1 prefix\n"},
      {{"block", "del", "198.18.0.0/15", "2001:db8::1"},
       R"({"id":1,"op":"block.del","args":{"prefixes":["198.18.0.0/15","2001:db8::1/128"]}})", "removed 2 prefixes\n"},
      {{"block", "list"}, R"({"id":1,"op":"block.list","args":{}})", "no prefixes listed\n"},
  };
  for (const auto& c : cases) {
    wire_->sent.clear();
    reply(R"({"id":1,"ok":true,"result":{"added":)" + std::to_string(c.out.find("2 ") == std::string::npos ? 1 : 2) +
          R"(,"removed":2,"prefixes":[]}})");
    const Outcome r = run_cli(c.args);
    EXPECT_EQ(r.code, kExitOk) << c.request << "\n" << r.err;
    EXPECT_EQ(sent(), std::vector<std::string>{c.request});
    EXPECT_EQ(r.out, c.out) << c.request;
  }
}

TEST_F(CliTest, BlockListTable) {
  reply(R"({"id":1,"ok":true,"result":{"prefixes":[{"prefix":"198.18.0.0/15","action":"drop"},)"
        R"({"prefix":"2001:db8:ffff::/48","action":"pass"},)"
        R"({"prefix":"198.19.4.0/24","action":"rate-limit","rate_class":"syn-flood"}]}})");
  const Outcome r = run_cli({"block", "list"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "PREFIX              ACTION\n"
            "198.18.0.0/15       drop\n"
            "2001:db8:ffff::/48  pass\n"
            "198.19.4.0/24       limit:syn-flood\n");
  reply(R"({"id":1,"ok":true,"result":{"prefixes":[{"prefix":"198.18.0.0/15","action":"drop"}]}})");
  EXPECT_EQ(run_cli({"block", "list", "--json"}).out,
            "{\"prefixes\":[{\"prefix\":\"198.18.0.0/15\",\"action\":\"drop\"}]}\n");
  reply(R"({"id":1,"ok":true,"result":{"prefixes":[7]}})");
  const Outcome bad = run_cli({"block", "list"});
  EXPECT_EQ(bad.code, kExitUnavailable);
  EXPECT_EQ(bad.err, "sluicectl: unexpected reply to block.list: prefix entry is a number, expected an object\n");
}

TEST_F(CliTest, BlockLoadStreamsTheFileInOneLoad) {
  TempDir dir;
  const std::string path = dir.file("blocklist.txt");
  const std::string content = "# edge blocklist\n198.18.0.0/15\n2001:db8::/32 pass\n";
  std::ofstream(path) << content;
  reply(R"({"id":1,"ok":true,"result":{"load":7}})");
  reply(R"({"id":2,"ok":true,"result":{"lines":3,"prefixes":2}})");
  reply(R"({"id":3,"ok":true,"result":{"loaded":2,"new":2,"lines":3}})");
  Outcome r = run_cli({"block", "load", path});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "loaded 2 prefixes from " + path + "\n") << "no progress line: stdout is not a terminal";
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"block.load.begin","args":{"source":")" + path + R"("}})",
                        R"({"id":2,"op":"block.load.chunk","args":{"load":7,"data":"# edge blocklist\n198.18.0.0/15\n2001:db8::/32 pass\n"}})",
                        R"({"id":3,"op":"block.load.commit","args":{"load":7}})",
                    }));
  wire_->sent.clear();
  reply(R"({"id":1,"ok":true,"result":{"load":8}})");
  reply(R"({"id":2,"ok":true,"result":{"lines":3,"prefixes":2}})");
  reply(R"({"id":3,"ok":true,"result":{"loaded":2,"new":0,"lines":3}})");
  r = run_cli({"block", "load", "-", "--action", "pass"}, content);
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "loaded 2 prefixes from standard input\n");
  ASSERT_EQ(sent().size(), 3u);
  EXPECT_EQ(sent()[0], R"({"id":1,"op":"block.load.begin","args":{"source":"standard input","action":"pass"}})");
}

TEST_F(CliTest, BlockLoadRelaysTheDaemonsBadLine) {
  TempDir dir;
  const std::string path = dir.file("bad.txt");
  std::ofstream(path) << "198.18.0.0/15\nnot-a-prefix\n";
  reply(R"({"id":1,"ok":true,"result":{"load":1}})");
  reply(R"({"id":2,"ok":false,"error":{"code":"bad_args","message":"block.load.chunk: )" + path +
        R"(:2: bad prefix 'not-a-prefix'"}})");
  const Outcome r = run_cli({"block", "load", path});
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_EQ(r.err, "sluicectl: block.load.chunk: " + path + ":2: bad prefix 'not-a-prefix' [bad_args]\n");
}

TEST_F(CliTest, BlockLoadCutsAFileOfAnySizeIntoChunksOfWholeLines) {
  TempDir dir;
  const std::string big = dir.file("big.txt");
  std::string content;
  for (int i = 0; content.size() <= 3 * protocol::max_request_bytes; ++i)
    content += "198." + std::to_string(18 + (i >> 16 & 1)) + "." + std::to_string(i >> 8 & 0xff) + "." +
               std::to_string(i & 0xff) + "/32\n";
  std::ofstream(big) << content;
  const std::size_t chunks = content.size() / (128 * 1024) + 1;
  reply(R"({"id":1,"ok":true,"result":{"load":3}})");
  for (std::size_t i = 0; i < chunks; ++i)
    reply(R"({"id":)" + std::to_string(i + 2) + R"(,"ok":true,"result":{"lines":1,"prefixes":1}})");
  reply(R"({"id":)" + std::to_string(chunks + 2) + R"(,"ok":true,"result":{"loaded":5,"new":5,"lines":5}})");
  const Outcome r = run_cli({"block", "load", big});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  std::string joined;
  std::size_t data_requests = 0;
  for (const auto& line : sent()) {
    ASSERT_LE(line.size(), protocol::max_request_bytes);
    const auto request = boost::json::parse(line).as_object();
    if (request.at("op") != "block.load.chunk") continue;
    const std::string data(request.at("args").at("data").as_string());
    EXPECT_EQ(data.back(), '\n') << "a chunk ends at a line end";
    joined += data;
    ++data_requests;
  }
  EXPECT_GT(data_requests, 3u);
  EXPECT_EQ(joined, content) << "the chunks are the file, byte for byte";
}

TEST_F(CliTest, BlockLoadRefusesWhatJsonCannotCarryNamingTheLineAndAborts) {
  TempDir dir;
  const std::string path = dir.file("latin1.txt");
  std::ofstream(path, std::ios::binary) << "198.18.0.0/15\n198.18.2.0/24 # caf\xe9\n";
  reply(R"({"id":1,"ok":true,"result":{"load":4}})");
  reply(R"({"id":2,"ok":true,"result":{"aborted":true}})");
  const Outcome r = run_cli({"block", "load", path});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_EQ(r.err, "sluicectl: " + path + ":2: invalid UTF-8 at byte 20: '198.18.2.0/24 # caf\\xe9'\n");
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"block.load.begin","args":{"source":")" + path + R"("}})",
                        R"({"id":2,"op":"block.load.abort","args":{"load":4}})",
                    }))
      << "nothing of the file sent, the load aborted";
}

TEST_F(CliTest, RuleAddSendsEveryOptionAndPrintsTheId) {
  struct Case {
    std::vector<std::string> args;
    std::string args_json;
  };
  const std::vector<Case> cases{
      {{"rule", "add", "--proto", "icmp", "--action", "drop"}, R"({"proto":"icmp","action":"drop"})"},
      {{"rule", "add", "--priority", "10", "--src", "198.18.0.0/15", "--dst", "198.19.0.1", "--proto", "tcp", "--sport",
        "1024-65535", "--dport", "22", "--tcp-flags", "syn,!ack", "--iface", "eth0", "--action", "limit:ssh"},
       R"({"priority":10,"src":"198.18.0.0/15","dst":"198.19.0.1/32","proto":"tcp","sport":"1024-65535","dport":"22",)"
       R"("tcp_flags":"syn,!ack","iface":"eth0","action":"rate-limit","rate_class":"ssh"})"},
      // Protocol numbers with a name are sent by name; flags in wire order.
      {{"rule", "add", "--proto", "17", "--dport", "53-53", "--action", "track"},
       R"({"proto":"udp","dport":"53","action":"pass-track"})"},
      {{"rule", "add", "--proto", "47", "--action", "pass"}, R"({"proto":"47","action":"pass"})"},
      {{"rule", "add", "--proto", "tcp", "--tcp-flags", "!ack,syn", "--action", "drop"},
       R"({"proto":"tcp","tcp_flags":"syn,!ack","action":"drop"})"},
      {{"rule", "add", "--src", "2001:db8::/32", "--proto", "icmpv6", "--icmp-type", "128", "--action", "drop"},
       R"({"src":"2001:db8::/32","proto":"icmpv6","icmp_type":128,"action":"drop"})"},
      {{"rule", "add", "--priority", "0", "--action", "pass"}, R"({"priority":0,"action":"pass"})"},
      {{"rule", "add", "--priority", "4294967295", "--sport", "0", "--action", "drop"},
       R"({"priority":4294967295,"sport":"0","action":"drop"})"},
  };
  for (const auto& c : cases) {
    wire_->sent.clear();
    reply(R"({"id":1,"ok":true,"result":{"id":42}})");
    const Outcome r = run_cli(c.args);
    EXPECT_EQ(r.code, kExitOk) << c.args_json << "\n" << r.err;
    EXPECT_EQ(sent(), std::vector<std::string>{R"({"id":1,"op":"rule.add","args":)" + c.args_json + "}"});
    EXPECT_EQ(r.out, "42\n");
  }
  reply(R"({"id":1,"ok":true,"result":{"id":42}})");
  EXPECT_EQ(run_cli({"rule", "add", "--action", "drop", "--json"}).out, "{\"id\":42}\n");
  reply(R"({"id":1,"ok":true,"result":{}})");
  const Outcome bad = run_cli({"rule", "add", "--action", "drop"});
  EXPECT_EQ(bad.code, kExitUnavailable);
  EXPECT_EQ(bad.err, "sluicectl: unexpected reply to rule.add: field id missing or not a number\n");
}

TEST_F(CliTest, RuleDelAndList) {
  reply(R"({"id":1,"ok":true,"result":{}})");
  Outcome r = run_cli({"rule", "del", "42"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "deleted rule 42\n");
  reply(R"({"id":1,"ok":true,"result":{"rules":[]}})");
  r = run_cli({"rule", "list"});
  EXPECT_EQ(r.out, "no rules\n");
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"rule.del","args":{"id":42}})",
                                              R"({"id":1,"op":"rule.list","args":{}})"}));
}

TEST_F(CliTest, RuleListTableWithHitCounters) {
  reply(R"({"id":1,"ok":true,"result":{"rules":[)"
        R"({"id":10,"priority":10,"src":"198.18.0.0/15","proto":"tcp","dport":"22","tcp_flags":"syn,!ack",)"
        R"("iface":"eth0","action":"drop","packets":1200,"bytes":72000},)"
        R"({"id":20,"priority":20,"proto":1,"icmp_type":8,"action":"pass-track","packets":3,"bytes":252},)"
        R"({"id":30,"priority":30,"dst":"2001:db8::/32","proto":17,"sport":"1024-65535","action":"rate-limit",)"
        R"("rate_class":"dns","packets":0,"bytes":0},)"
        R"({"id":40,"priority":40,"tcp_flags":{"mask":18,"value":2},"action":"pass","packets":0,"bytes":0},)"
        R"({"id":1000,"priority":1000,"action":"drop","packets":7,"bytes":420}]}})");
  const Outcome r = run_cli({"rule", "list"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "  ID  ACTION     PACKETS  BYTES  MATCH\n"
            "  10  drop          1200  72000  iface eth0 src 198.18.0.0/15 tcp dport 22 flags syn,!ack\n"
            "  20  track            3    252  icmp icmp-type 8\n"
            "  30  limit:dns        0      0  dst 2001:db8::/32 udp sport 1024-65535\n"
            "  40  pass             0      0  flags syn,!ack\n"
            "1000  drop             7    420  any\n");
}

TEST_F(CliTest, RuleListShowsPriorityWhenItIsNotTheId) {
  reply(R"({"id":1,"ok":true,"result":{"rules":[{"id":1,"priority":5,"action":"drop","packets":0,"bytes":0},)"
        R"({"id":2,"priority":7,"src":"198.18.0.0/15","action":"pass","packets":1,"bytes":60}]}})");
  const Outcome r = run_cli({"rule", "list"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "ID  PRIORITY  ACTION  PACKETS  BYTES  MATCH\n"
            " 1         5  drop          0      0  any\n"
            " 2         7  pass          1     60  src 198.18.0.0/15\n");
}

TEST_F(CliTest, LimitCommands) {
  reply(R"({"id":1,"ok":true,"result":{}})");
  Outcome r = run_cli({"limit", "set", "web", "--pps", "1000"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "rate class web created\n");
  reply(R"({"id":1,"ok":true,"result":{"class":"syn.flood_2","id":1,"created":false}})");
  r = run_cli({"limit", "set", "syn.flood_2", "--pps", "200", "--bps", "8000000", "--burst", "50", "--syn-only"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "rate class syn.flood_2 redefined\n");
  reply(R"({"id":1,"ok":true,"result":{}})");
  r = run_cli({"limit", "del", "web"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "rate class web deleted\n");
  reply(R"({"id":1,"ok":true,"result":{"limits":[]}})");
  r = run_cli({"limit", "list"});
  EXPECT_EQ(r.out, "no rate-limit classes\n");
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"limit.set","args":{"class":"web","pps":1000}})",
                        R"({"id":1,"op":"limit.set","args":{"class":"syn.flood_2","pps":200,"bps":8000000,"burst":50,"syn_only":true}})",
                        R"({"id":1,"op":"limit.del","args":{"class":"web"}})",
                        R"({"id":1,"op":"limit.list","args":{}})",
                    }));
}

TEST_F(CliTest, LimitListTable) {
  reply(R"({"id":1,"ok":true,"result":{"limits":[)"
        R"({"class":"web","id":0,"pps":1000,"burst":1000,"bps":0,"syn_only":false,"v4_prefix_len":32,)"
        R"("v6_prefix_len":64,"aggregate_pps":0,"aggregate_burst":0,"aggregate_bps":0},)"
        R"({"class":"syn-flood","id":1,"pps":200,"burst":50,"bps":8000000,"syn_only":true,"v4_prefix_len":24,)"
        R"("v6_prefix_len":48,"aggregate_pps":5000,"aggregate_burst":6000,"aggregate_bps":9000}]}})");
  const Outcome r = run_cli({"limit", "list"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "CLASS       PPS  BURST      BPS  SYN ONLY  SOURCE   AGGREGATE\n"
            "web        1000   1000        -  no        /32 /64  -\n"
            "syn-flood   200     50  8000000  yes       /24 /48  pps 5000 burst 6000 bps 9000\n");
}

TEST_F(CliTest, LimitSetSourcePrefixAndAggregate) {
  reply(R"({"id":1,"ok":true,"result":{}})");
  Outcome r = run_cli({"limit", "set", "web", "--pps", "100", "--v4-prefix-len", "24", "--v6-prefix-len", "0",
                       "--aggregate-pps", "5000", "--aggregate-burst", "6000", "--aggregate-bps", "1000000"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"limit.set","args":{"class":"web","pps":100,"v4_prefix_len":24,"v6_prefix_len":0,)"
                        R"("aggregate_pps":5000,"aggregate_bps":1000000,"aggregate_burst":6000}})"}));
  const std::vector<std::pair<std::vector<std::string>, std::string>> refused = {
      {{"limit", "set", "web", "--pps", "1", "--v4-prefix-len", "33"}, "--v4-prefix-len: Value 33 not in range 0 to 32"},
      {{"limit", "set", "web", "--pps", "1", "--v6-prefix-len", "129"}, "--v6-prefix-len: Value 129 not in range 0 to 128"},
      {{"limit", "set", "web", "--pps", "1", "--v6-prefix-len", "-1"}, "--v6-prefix-len"},
      {{"limit", "set", "web", "--pps", "1", "--aggregate-pps", "0"}, "--aggregate-pps: Value 0 not in range"},
      {{"limit", "set", "web", "--pps", "1", "--aggregate-burst", "5"}, "--aggregate-burst requires --aggregate-pps"},
  };
  for (const auto& [args, err] : refused) {
    r = run_cli(args);
    EXPECT_EQ(r.code, kExitUsage) << args.back() << "\n" << r.err;
    EXPECT_NE(r.err.find(err), std::string::npos) << "stderr: " << r.err;
  }
  EXPECT_EQ(sent().size(), 1u) << "a refused command sends nothing";
}

TEST_F(CliTest, ConnList) {
  reply(R"({"id":1,"ok":true,"result":{"flows":[)"
        R"({"proto":6,"ip_version":4,"src":"198.18.0.1","sport":40000,"dst":"198.18.0.2","dport":22,)"
        R"("state":"tcp_established","packets":[12,10],"bytes":[1500,4200],"last_seen_ns":5},)"
        R"({"proto":58,"ip_version":6,"src":"2001:db8::1","sport":null,"dst":"2001:db8::2","dport":null,)"
        R"("state":"icmp","packets":2,"bytes":208},)"
        R"({"proto":17,"ip_version":6,"src":"2001:db8::1","sport":5353,"dst":"2001:db8::2","dport":53,)"
        R"("state":"udp_replied","packets":[1,1],"bytes":[80,120]}],"total":3,"truncated":false}})");
  Outcome r = run_cli({"conn", "list", "--limit", "3"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "PROTO   SOURCE              DESTINATION       STATE            PACKETS  BYTES\n"
            "tcp     198.18.0.1:40000    198.18.0.2:22     tcp_established       22   5700\n"
            "icmpv6  2001:db8::1         2001:db8::2       icmp                   2    208\n"
            "udp     [2001:db8::1]:5353  [2001:db8::2]:53  udp_replied            2    200\n");
  reply(R"({"id":1,"ok":true,"result":{"flows":[]}})");
  r = run_cli({"conn", "list"});
  EXPECT_EQ(r.out, "no tracked flows\n");
  reply(R"({"id":1,"ok":true,"result":{"flows":[{"proto":1,"ip_version":4,"src":"198.18.0.1","sport":null,)"
        R"("dst":"198.18.0.2","dport":null,"state":"icmp","packets":[1,1],"bytes":[84,84]}],"total":7,"truncated":true}})");
  r = run_cli({"conn", "list", "--limit", "1"});
  EXPECT_EQ(r.out,
            "PROTO  SOURCE      DESTINATION  STATE  PACKETS  BYTES\n"
            "icmp   198.18.0.1  198.18.0.2   icmp         2    168\n"
            "showing 1 of 7 tracked flows (--limit N shows more)\n");
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"conn.list","args":{"limit":3}})",
                                              R"({"id":1,"op":"conn.list","args":{}})",
                                              R"({"id":1,"op":"conn.list","args":{"limit":1}})"}));
}

TEST_F(CliTest, FilterUsageErrorsNameTheOptionAndValueAndSendNothing) {
  struct Case {
    std::vector<std::string> args;
    std::string err;  // the whole first line of stderr
  };
  const std::vector<Case> cases{
      {{"block"}, "A subcommand is required"},
      {{"block", "add"}, "CIDR is required"},
      {{"block", "add", "198.18.0.0/33"}, "CIDR: bad prefix '198.18.0.0/33'"},
      {{"block", "add", "198.18.0.1/15"}, "CIDR: bad prefix '198.18.0.1/15'"},
      {{"block", "add", "198.18.0.0/15", "bogus"}, "CIDR: bad prefix 'bogus'"},
      {{"block", "add", "198.18.0.0/15", "--action", "reject"},
       "--action: bad action 'reject': expected drop, pass or limit:CLASS"},
      {{"block", "add", "198.18.0.0/15", "--action", "track"},
       "--action: bad action 'track': tracking is for rules, not prefix lists"},
      {{"block", "add", "198.18.0.0/15", "--action", "limit:"}, "--action: bad action 'limit:': bad class ''"},
      {{"block", "add", "198.18.0.0/15", "--action", "limit:a b"}, "--action: bad action 'limit:a b': bad class 'a b'"},
      {{"block", "del"}, "CIDR is required"},
      {{"block", "del", "2001:db8::/129"}, "CIDR: bad prefix '2001:db8::/129'"},
      {{"block", "load"}, "FILE is required"},
      {{"block", "load", "/nonexistent/list.txt"}, "cannot read /nonexistent/list.txt"},
      {{"block", "load", "/dev/null", "--action", "limit:web"}, "--action: limit:web not in {drop,pass}"},
      {{"block", "list", "extra"}, "unexpected argument 'extra'"},
      {{"rule"}, "A subcommand is required"},
      {{"rule", "add"}, "--action is required"},
      {{"rule", "add", "--action", "deny"}, "--action: bad action 'deny': expected drop, pass, track or limit:CLASS"},
      {{"rule", "add", "--action", "drop", "--src", "198.18.0.0/99"}, "--src: bad prefix '198.18.0.0/99'"},
      {{"rule", "add", "--action", "drop", "--dst", "2001:db8::1%eth0"}, "--dst: bad prefix '2001:db8::1%eth0'"},
      {{"rule", "add", "--action", "drop", "--proto", "gre"},
       "--proto: protocol 'gre': expected tcp, udp, icmp, icmpv6 or a number"},
      {{"rule", "add", "--action", "drop", "--proto", "256"}, "--proto: protocol '256'"},
      {{"rule", "add", "--action", "drop", "--dport", "9-3"}, "--dport: port range '9-3'"},
      {{"rule", "add", "--action", "drop", "--sport", "65536"}, "--sport: port range '65536'"},
      {{"rule", "add", "--action", "drop", "--dport", "http"}, "--dport: port range 'http'"},
      {{"rule", "add", "--action", "drop", "--tcp-flags", "syn,fin,syn"},
       "--tcp-flags: bad tcp_flags 'syn,fin,syn': flag 'syn' given twice"},
      {{"rule", "add", "--action", "drop", "--tcp-flags", "sin"}, "--tcp-flags: bad tcp_flags 'sin': unknown flag 'sin'"},
      {{"rule", "add", "--action", "drop", "--icmp-type", "256"}, "--icmp-type: '256': out of range; expected a decimal integer in 0..255"},
      {{"rule", "add", "--action", "drop", "--iface", "a/b"}, "--iface: bad interface name 'a/b'"},
      {{"rule", "add", "--action", "drop", "--priority", "-1"}, "--priority"},
      {{"rule", "add", "--action", "drop", "--priority", "4294967296"}, "--priority"},
      {{"rule", "add", "--action", "drop", "--src", "198.18.0.0/15", "--dst", "2001:db8::/32"},
       "--src 198.18.0.0/15 and --dst 2001:db8::/32 are of different address families"},
      {{"rule", "add", "--action", "drop", "--proto", "icmp", "--dport", "22"}, "--dport 22 needs --proto tcp or udp, not icmp"},
      {{"rule", "add", "--action", "drop", "--proto", "icmp", "--sport", "22"}, "--sport 22 needs --proto tcp or udp, not icmp"},
      {{"rule", "add", "--action", "drop", "--proto", "udp", "--tcp-flags", "syn"}, "--tcp-flags syn needs --proto tcp, not udp"},
      {{"rule", "add", "--action", "drop", "--proto", "tcp", "--icmp-type", "8"},
       "--icmp-type 8 needs --proto icmp or icmpv6, not tcp"},
      {{"rule", "add", "--action", "drop", "--icmp-type", "8", "--dport", "22"}, "--icmp-type cannot be combined with ports"},
      // No packet can match these (the filter model refuses them too).
      {{"rule", "add", "--action", "drop", "--src", "2001:db8::/32", "--proto", "icmp", "--icmp-type", "128"},
       "--icmp-type 128 --proto icmp: icmp_type 128 with protocol icmp and an IPv6 address: IPv6 carries ICMP as icmpv6"},
      {{"rule", "add", "--action", "drop", "--dst", "198.18.0.0/15", "--proto", "icmpv6", "--icmp-type", "8"},
       "--icmp-type 8 --proto icmpv6: icmp_type 8 with protocol icmpv6 and an IPv4 address"},
      {{"rule", "del"}, "ID is required"},
      {{"rule", "del", "x"}, "ID"},
      {{"rule", "del", "-4"}, "ID"},
      {{"limit"}, "A subcommand is required"},
      {{"limit", "set", "web"}, "--pps is required"},
      {{"limit", "set", "--pps", "10"}, "CLASS is required"},
      {{"limit", "set", "web!", "--pps", "10"}, "CLASS: bad class 'web!'"},
      {{"limit", "set", std::string(33, 'c'), "--pps", "10"}, "CLASS: bad class '" + std::string(33, 'c') + "'"},
      {{"limit", "set", "web", "--pps", "0"}, "--pps: '0': out of range; expected a decimal integer in 1..1000000000"},
      {{"limit", "set", "web", "--pps", "fast"}, "--pps"},
      {{"limit", "set", "web", "--pps", "10", "--bps", "0"}, "--bps: '0': out of range"},
      {{"limit", "set", "web", "--pps", "10", "--burst", "0"}, "--burst: '0': out of range"},
      {{"limit", "del"}, "CLASS is required"},
      {{"limit", "del", "a/b"}, "CLASS: bad class 'a/b'"},
      {{"conn"}, "A subcommand is required"},
      {{"conn", "list", "--limit", "0"}, "--limit: '0': out of range"},
      {{"conn", "list", "--limit", "many"}, "--limit"},
      {{"conn", "list", "--limit", "100001"}, "--limit: '100001': out of range; expected a decimal integer in 1..100000"},
  };
  for (const auto& c : cases) {
    const Outcome r = run_cli(c.args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_EQ(r.code, kExitUsage) << joined << "\n" << r.err;
    EXPECT_NE(r.err.find(c.err), std::string::npos) << joined << "\nstderr: " << r.err;
  }
  EXPECT_TRUE(sent().empty());
  EXPECT_EQ(wire_->connects, 0);
}

// Integers are decimal everywhere, one parser for all (maps/decimal.hpp).
// Before: CLI11 converted with strtoull base 0, so `rule del 010` deleted
// rule 8, `--priority 0x20` made rule 32 and `--pps 0100` set 64.
TEST_F(CliTest, IntegerOptionsAreDecimalOnlyAndABadFormExitsTwoNamingTheOptionAndValue) {
  struct Form {
    std::string text;
    std::string why;
  };
  const std::vector<Form> forms{
      {"010", "a leading zero is not allowed"}, {"0x20", "a base prefix is not allowed"},
      {"+5", "a sign is not allowed"},          {"-1", "a sign is not allowed"},
      {"1e3", "only the digits 0-9 are allowed"}, {"", "empty"},
  };
  // Each integer option, as the words before the value and the option's name in the error.
  struct IntegerOption {
    std::vector<std::string> before;
    std::vector<std::string> after;
    std::string name;
  };
  const std::vector<IntegerOption> options{
      {{"rule", "del"}, {}, "ID"},
      {{"rule", "add", "--action", "drop", "--priority"}, {}, "--priority"},
      {{"rule", "add", "--action", "drop", "--proto", "icmp", "--icmp-type"}, {}, "--icmp-type"},
      {{"limit", "set", "web", "--pps"}, {}, "--pps"},
      {{"limit", "set", "web", "--pps", "10", "--bps"}, {}, "--bps"},
      {{"limit", "set", "web", "--pps", "10", "--burst"}, {}, "--burst"},
      {{"conn", "list", "--limit"}, {}, "--limit"},
      {{"events", "-c"}, {}, "--count"},
      {{"capture", "-w", "/dev/null", "-c"}, {}, "--count"},
      {{"config", "set", "--drop-sample-every"}, {}, "--drop-sample-every"},
  };
  for (const auto& option : options) {
    for (const auto& form : forms) {
      std::vector<std::string> args = option.before;
      args.push_back(form.text);
      args.insert(args.end(), option.after.begin(), option.after.end());
      std::string joined;
      for (const auto& a : args) joined += a + " ";
      const Outcome r = run_cli(args);
      EXPECT_EQ(r.code, kExitUsage) << joined << "\n" << r.err;
      const std::string expected = option.name + ": '" + form.text + "': " + form.why;
      EXPECT_NE(r.err.find(expected), std::string::npos) << joined << "\nexpected: " << expected << "\nstderr: " << r.err;
    }
  }
  EXPECT_TRUE(sent().empty());
  EXPECT_EQ(wire_->connects, 0);
}

TEST_F(CliTest, DecimalIntegersAreSentAsTheirValue) {
  reply(R"({"id":1,"ok":true,"result":{"id":8,"deleted":true}})");
  Outcome r = run_cli({"rule", "del", "8"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  reply(R"({"id":1,"ok":true,"result":{"id":0,"deleted":true}})");
  r = run_cli({"rule", "del", "0"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  reply(R"({"id":1,"ok":true,"result":{"id":32}})");
  r = run_cli({"rule", "add", "--priority", "32", "--proto", "icmp", "--icmp-type", "0", "--action", "pass"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  reply(R"({"id":1,"ok":true,"result":{"class":"web","id":0,"created":true}})");
  r = run_cli({"limit", "set", "web", "--pps", "100", "--burst", "10"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  reply(kConfigReply);
  r = run_cli({"config", "set", "--drop-sample-every", "1"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  reply(kConfigReply);
  r = run_cli({"config", "set", "--drop-sample-every", "0", "--end-verdict", "pass"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"rule.del","args":{"id":8}})",
                        R"({"id":1,"op":"rule.del","args":{"id":0}})",
                        R"({"id":1,"op":"rule.add","args":{"priority":32,"proto":"icmp","icmp_type":0,"action":"pass"}})",
                        R"({"id":1,"op":"limit.set","args":{"class":"web","pps":100,"burst":10}})",
                        R"({"id":1,"op":"config.set","args":{"drop_sample_every":1}})",
                        R"({"id":1,"op":"config.set","args":{"end_verdict":"pass","drop_sample_every":0}})",
                    }));
}

// ---- packet heads ----

TEST(PacketHead, DecodesCommonFrames) {
  EXPECT_EQ(describe_packet_head(ssh_syn()), "198.18.0.1:40000 > 198.18.1.1:22 tcp [S]");
  EXPECT_EQ(describe_packet_head(PacketBuilder()
                                     .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                                     .vlan(10)
                                     .vlan(20)
                                     .ipv4("10.0.0.1", "10.0.0.2")
                                     .icmp(8, 0)
                                     .build()),
            "vlan 10 vlan 20 10.0.0.1 > 10.0.0.2 icmp type 8 code 0");
  EXPECT_EQ(describe_packet_head(PacketBuilder()
                                     .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                                     .ipv6("fe80::1", "ff02::1")
                                     .ipv6_hop_by_hop()
                                     .icmpv6(135, 0)
                                     .build()),
            "fe80::1 > ff02::1 icmpv6 type 135 code 0");
  EXPECT_EQ(describe_packet_head(PacketBuilder()
                                     .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                                     .ipv4("10.0.0.1", "10.0.0.2", {.frag_offset_bytes = 1480})
                                     .udp(1, 2)
                                     .build()),
            "10.0.0.1 > 10.0.0.2 proto 17 fragment offset 1480");
  EXPECT_EQ(describe_packet_head(PacketBuilder()
                                     .eth("02:00:00:00:00:01", "02:00:00:00:00:02", 0x88cc)
                                     .payload("lldp")
                                     .build()),
            "ethertype 0x88cc");
}

TEST(PacketHead, EveryTruncationIsNamedNotOverread) {
  const auto frame = PacketBuilder()
                         .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                         .vlan(7)
                         .ipv6("2001:db8::1", "2001:db8::2")
                         .ipv6_dest_opts()
                         .tcp(1, 2, {.flags = TcpFlags::SYN | TcpFlags::ACK})
                         .build();
  EXPECT_EQ(describe_packet_head(frame), "vlan 7 [2001:db8::1]:1 > [2001:db8::2]:2 tcp [S.]");
  // Every prefix of the frame decodes to something without reading past it
  // (AddressSanitizer builds turn an over-read into a failure).
  for (std::size_t n = 0; n < frame.size(); ++n) {
    const std::vector<std::uint8_t> head(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
    const std::string text = describe_packet_head(head);
    EXPECT_FALSE(text.empty());
    if (n < 14) {
      EXPECT_NE(text.find("truncated ethernet"), std::string::npos) << n;
    }
  }
  EXPECT_EQ(describe_packet_head(std::vector<std::uint8_t>(frame.begin(), frame.begin() + 20)), "vlan 7 ipv6 (truncated header)");
}

TEST(PacketHead, HexDecoding) {
  EXPECT_EQ(decode_hex("00fFa5", 3), (std::vector<std::uint8_t>{0x00, 0xff, 0xa5}));
  EXPECT_EQ(decode_hex("", 3), std::vector<std::uint8_t>{});
  EXPECT_FALSE(decode_hex("abc", 3));
  EXPECT_FALSE(decode_hex("0g", 3));
  EXPECT_FALSE(decode_hex("00112233", 3));
}

}  // namespace
}  // namespace sluice::cli
