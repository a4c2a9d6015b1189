// sluicectl's load-balancer commands without a daemon: the exact request
// line each command sends, its table for a canned reply, and usage errors
// (exit 2) that send nothing.
#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "ops.hpp"
#include "sluicectl.hpp"

namespace sluice::cli {
namespace {

struct Wire {
  std::vector<std::string> sent;
  std::deque<std::string> replies;
};

class FakeTransport final : public Transport {
 public:
  explicit FakeTransport(std::shared_ptr<Wire> wire) : wire_(std::move(wire)) {}
  TransportResult<void> write_line(std::string_view line) override {
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

class LbCliTest : public ::testing::Test {
 protected:
  Outcome run_cli(std::vector<std::string> args) {
    std::ostringstream out, err;
    std::istringstream in;
    Env env(out, err, in);
    env.connect = [wire = wire_](const std::string&) -> TransportResult<std::unique_ptr<Transport>> {
      return std::unique_ptr<Transport>(std::make_unique<FakeTransport>(wire));
    };
    env.monotonic_to_realtime_ns = [] { return std::int64_t{0}; };
    const int code = run(args, env);
    return {code, out.str(), err.str()};
  }
  void reply(std::string line) { wire_->replies.push_back(std::move(line)); }
  const std::vector<std::string>& sent() const { return wire_->sent; }
  std::shared_ptr<Wire> wire_ = std::make_shared<Wire>();
};

TEST_F(LbCliTest, VipAddSendsEveryOption) {
  reply(R"({"id":1,"ok":true,"result":{"vip":"198.18.0.10:80/tcp"}})");
  const Outcome r = run_cli({"vip", "add", "198.18.0.10:80/tcp", "--table-size", "251", "--l2", "--check",
                             "http:8080/healthz", "--check-interval-ms", "500", "--check-fall", "2"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"vip.add","args":{"vip":"198.18.0.10:80/tcp","table_size":251,"l2_dsr":true,)"
                        R"("check":"http:8080/healthz","check_interval_ms":500,"check_fall":2}})"}));
  EXPECT_EQ(r.out, "added vip 198.18.0.10:80/tcp\n");
}

TEST_F(LbCliTest, BadInputIsAUsageErrorAndSendsNothing) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"vip", "add", "198.18.0.10:80/sctp"},
           {"vip", "add", "198.18.0.10:80/tcp", "--table-size", "0x10"},
           {"vip", "add", "198.18.0.10:80/tcp", "--check", "icmp:1"},
           {"vip", "add", "198.18.0.10:80/tcp", "--check-rise", "2"},  // tuning without --check
           {"backend", "add", "198.18.0.10:80/tcp", "198.18.1.999"},
           {"backend", "add", "198.18.0.10:80/tcp", "198.18.1.1", "--weight", "1001"},
           {"backend", "add", "198.18.0.10:80/tcp", "198.18.1.1", "--mac", "zz:00:00:00:00:00"},
           {"backend", "set", "198.18.0.10:80/tcp", "198.18.1.1"},  // --weight required
           {"lb", "set"},
           {"lb", "set", "--egress", "teleport"},
           {"lb", "set", "--encap-source", "198.18.0.1", "--encap-source", "198.18.0.2"},
           {"vip"},
       }) {
    const Outcome r = run_cli(args);
    EXPECT_EQ(r.code, kExitUsage) << args[0] << " " << (args.size() > 1 ? args[1] : "") << ": " << r.err;
    EXPECT_FALSE(r.err.empty());
  }
  EXPECT_TRUE(sent().empty());
}

TEST_F(LbCliTest, BackendCommandsSendTheirOps) {
  // Each command is its own connection: its request id is 1.
  for (int i = 0; i < 5; ++i) reply(R"({"id":1,"ok":true,"result":{"vip":"v","address":"a","weight":3}})");
  EXPECT_EQ(run_cli({"backend", "add", "[2001:db8::10]:443/tcp", "2001:db8:1::1", "--weight", "3"}).code, kExitOk);
  EXPECT_EQ(run_cli({"backend", "set", "198.18.0.10:80/tcp", "198.18.1.1", "--weight", "3"}).code, kExitOk);
  EXPECT_EQ(run_cli({"backend", "drain", "198.18.0.10:80/tcp", "198.18.1.1"}).code, kExitOk);
  EXPECT_EQ(run_cli({"backend", "del", "198.18.0.10:80/tcp", "198.18.1.1"}).code, kExitOk);
  EXPECT_EQ(run_cli({"vip", "del", "198.18.0.10:80/tcp"}).code, kExitOk);
  EXPECT_EQ(sent(),
            (std::vector<std::string>{
                R"({"id":1,"op":"backend.add","args":{"vip":"[2001:db8::10]:443/tcp","address":"2001:db8:1::1","weight":3}})",
                R"({"id":1,"op":"backend.set","args":{"vip":"198.18.0.10:80/tcp","address":"198.18.1.1","weight":3}})",
                R"({"id":1,"op":"backend.drain","args":{"vip":"198.18.0.10:80/tcp","address":"198.18.1.1"}})",
                R"({"id":1,"op":"backend.del","args":{"vip":"198.18.0.10:80/tcp","address":"198.18.1.1"}})",
                R"({"id":1,"op":"vip.del","args":{"vip":"198.18.0.10:80/tcp"}})"}));
}

TEST_F(LbCliTest, BackendListPrintsStateHealthShareAndCounters) {
  reply(R"({"id":1,"ok":true,"result":{"backends":[)"
        R"({"vip":"198.18.0.10:80/tcp","address":"198.18.1.1","backend_id":1,"weight":2,"state":"up","health":"up",)"
        R"("table_entries":167,"share":0.6653,"packets":10,"bytes":1500,"new_conns":2},)"
        R"({"vip":"198.18.0.10:80/tcp","address":"198.18.1.2","backend_id":2,"weight":1,"state":"draining",)"
        R"("health":"down","table_entries":0,"share":0.0,"packets":0,"bytes":0,"new_conns":0}]}})");
  const Outcome r = run_cli({"backend", "list", "198.18.0.10:80/tcp"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"backend.list","args":{"vip":"198.18.0.10:80/tcp"}})"}));
  EXPECT_EQ(r.out,
            "VIP                 BACKEND     ID  WEIGHT  STATE     HEALTH  SHARE  PACKETS  BYTES  CONNS\n"
            "198.18.0.10:80/tcp  198.18.1.1   1       2  up        up      66.5%       10   1500      2\n"
            "198.18.0.10:80/tcp  198.18.1.2   2       1  draining  down     0.0%        0      0      0\n");
}

TEST_F(LbCliTest, VipListAndJson) {
  const std::string result =
      R"({"vips":[{"vip":"198.18.0.10:80/tcp","vip_id":0,"table_size":251,"l2_dsr":false,)"
      R"("check":{"type":"tcp","port":80,"spec":"tcp:80"},"backends":3,"backends_in_table":2,)"
      R"("packets":7,"bytes":700,"new_conns":1}]})";
  reply(R"({"id":1,"ok":true,"result":)" + result + "}");
  Outcome r = run_cli({"vip", "list"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "VIP                 ID  TABLE  L2  CHECK   BACKENDS  PACKETS  BYTES  CONNS\n"
            "198.18.0.10:80/tcp   0    251  no  tcp:80       2/3        7    700      1\n");
  reply(R"({"id":1,"ok":true,"result":)" + result + "}");
  r = run_cli({"--json", "vip", "list"});
  EXPECT_EQ(r.out, result + "\n");
}

TEST_F(LbCliTest, LbSetSplitsSourcesByFamily) {
  reply(R"({"id":1,"ok":true,"result":{"encap_source_v4":"198.18.0.1","encap_source_v6":"2001:db8::1",)"
        R"("entropy_source":true,"egress":"forward","next_hop_mac":null,"src_mac":null,"mtu":1500,"conn_timeout_s":60}})");
  const Outcome r = run_cli({"lb", "set", "--encap-source", "198.18.0.1", "--encap-source", "2001:db8::1", "--entropy",
                             "on", "--egress", "forward", "--mtu", "1500", "--conn-timeout", "60"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"lb.set","args":{"encap_source_v4":"198.18.0.1","encap_source_v6":"2001:db8::1",)"
                        R"("entropy_source":true,"egress":"forward","mtu":1500,"conn_timeout_s":60}})"}));
  EXPECT_NE(r.out.find("egress           forward"), std::string::npos) << r.out;
}

TEST_F(LbCliTest, DaemonRefusalIsExitOneWithItsMessage) {
  reply(R"x({"id":1,"ok":false,"error":{"code":"bad_args","message":"backend.add: vip: 198.18.0.10:80/tcp is not a VIP (vip.list)"}})x");
  const Outcome r = run_cli({"backend", "add", "198.18.0.10:80/tcp", "198.18.1.1"});
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_EQ(r.err, "sluicectl: backend.add: vip: 198.18.0.10:80/tcp is not a VIP (vip.list) [bad_args]\n");
}

TEST_F(LbCliTest, HostileReplyIsUnavailable) {
  reply(R"({"id":1,"ok":true,"result":{"vips":7}})");
  const Outcome r = run_cli({"vip", "list"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_NE(r.err.find("unexpected reply"), std::string::npos) << r.err;
}

TEST_F(LbCliTest, EventsShowHealthChangesAndCaptureSkipsThem) {
  reply(R"({"id":1,"ok":true,"event":{"type":"lb_health","time_ns":1,"vip":"198.18.0.10:80/tcp",)"
        R"("backend":"198.18.1.1","health":"down"}})");
  reply(R"({"id":1,"ok":true,"result":{"events":1,"dropped":0}})");
  const Outcome r = run_cli({"events", "-c", "1"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("lb health: backend 198.18.1.1 of 198.18.0.10:80/tcp is down\n"), std::string::npos) << r.out;
}

// The protocol's table: lb changes need what filter changes need (root or
// the admin group); the lists are read-only like rule.list.
TEST(LbOpsAccess, ChangesNeedTheFilterChangesAccess) {
  const auto* rule_add = protocol::find_op("rule.add");
  ASSERT_TRUE(rule_add);
  for (const char* op : {"vip.add", "vip.del", "backend.add", "backend.set", "backend.drain", "backend.del", "lb.set"}) {
    const auto* info = protocol::find_op(op);
    ASSERT_TRUE(info) << op;
    EXPECT_EQ(info->access, rule_add->access) << op;
    EXPECT_FALSE(info->streaming);
  }
  for (const char* op : {"vip.list", "backend.list", "lb.show"}) {
    const auto* info = protocol::find_op(op);
    ASSERT_TRUE(info) << op;
    EXPECT_EQ(info->access, protocol::Access::ReadOnly) << op;
  }
}

}  // namespace
}  // namespace sluice::cli
