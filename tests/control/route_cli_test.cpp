// sluicectl's forward-stage commands without a daemon: the exact request
// line each command sends, its table for a canned reply, and usage errors
// (exit 2) that send nothing. The ops that change state are admin-only in
// the protocol's table.
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

class RouteCliTest : public ::testing::Test {
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

TEST_F(RouteCliTest, RouteAddViaSendsTheNextHop) {
  reply(R"({"id":1,"ok":true,"result":{"prefix":"198.18.2.0/24","kind":"via","via":"198.18.1.1","dev":"veth1","mac":"02:00:00:00:01:01"}})");
  const Outcome r = run_cli({"route", "add", "198.18.2.0/24", "--via", "198.18.1.1", "--dev", "veth1", "--mac", "02:00:00:00:01:01"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"route.add","args":{"prefix":"198.18.2.0/24","via":"198.18.1.1","dev":"veth1","mac":"02:00:00:00:01:01"}})"}));
  EXPECT_EQ(r.out, "added route 198.18.2.0/24 via 198.18.1.1 dev veth1 mac 02:00:00:00:01:01\n");
}

TEST_F(RouteCliTest, RouteAddGroupToStackReplaceAndDel) {
  reply(R"({"id":1,"ok":true,"result":{"prefix":"0.0.0.0/0","kind":"group","group":"wan"}})");
  EXPECT_EQ(run_cli({"route", "add", "0.0.0.0/0", "--group", "wan"}).code, kExitOk);
  reply(R"({"id":1,"ok":true,"result":{"prefix":"198.18.0.2/32","kind":"to_stack"}})");
  EXPECT_EQ(run_cli({"route", "replace", "198.18.0.2/32", "--to-stack"}).code, kExitOk);
  reply(R"({"id":1,"ok":true,"result":{"prefix":"2001:db8::/32","deleted":true}})");
  const Outcome del = run_cli({"route", "del", "2001:db8::/32"});
  EXPECT_EQ(del.code, kExitOk) << del.err;
  EXPECT_EQ(del.out, "deleted route 2001:db8::/32\n");
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"route.add","args":{"prefix":"0.0.0.0/0","group":"wan"}})",
                                              R"({"id":1,"op":"route.replace","args":{"prefix":"198.18.0.2/32","to_stack":true}})",
                                              R"({"id":1,"op":"route.del","args":{"prefix":"2001:db8::/32"}})"}));
}

TEST_F(RouteCliTest, NexthopGroupAddPairsEachFlagWithTheViaBeforeIt) {
  reply(R"({"id":1,"ok":true,"result":{"name":"wan","next_hops":[{},{}]}})");
  const Outcome r = run_cli({"nexthop", "group", "add", "wan", "--via", "198.18.1.1", "--dev", "veth1", "--mac",
                             "02:00:00:00:01:01", "--weight", "3", "--via", "198.18.1.3", "--mac", "02:00:00:00:01:03",
                             "--dev", "veth2"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"nexthop.group.add","args":{"name":"wan","next_hops":[)"
                        R"({"via":"198.18.1.1","dev":"veth1","mac":"02:00:00:00:01:01","weight":3},)"
                        R"({"via":"198.18.1.3","mac":"02:00:00:00:01:03","dev":"veth2"}]}})"}));
  EXPECT_EQ(r.out, "added group wan: 2 next hop(s)\n");
}

TEST_F(RouteCliTest, CpumapAndForwardSet) {
  reply(R"({"id":1,"ok":true,"result":{"no_route":"pass","icmp_rate":100,"icmp_burst":50,"icmp_source_v4":null,"icmp_source_v6":null,"cpus":[0,1,3],"cpumap_queue":512}})");
  const Outcome cpumap = run_cli({"cpumap", "set", "--cpus", "0-1,3", "--queue", "512"});
  EXPECT_EQ(cpumap.code, kExitOk) << cpumap.err;
  EXPECT_NE(cpumap.out.find("cpumap cpus     0-1,3\n"), std::string::npos) << cpumap.out;
  reply(R"({"id":1,"ok":true,"result":{"no_route":"drop","icmp_rate":10,"icmp_burst":5,"icmp_source_v4":"198.18.0.2","icmp_source_v6":"2001:db8::2","cpus":[],"cpumap_queue":2048}})");
  const Outcome forward = run_cli({"forward", "set", "--no-route", "drop", "--icmp-rate", "10", "--icmp-burst", "5",
                                   "--icmp-source", "198.18.0.2", "--icmp-source", "2001:db8::2"});
  EXPECT_EQ(forward.code, kExitOk) << forward.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"cpumap.set","args":{"cpus":[0,1,3],"queue":512}})",
                        R"({"id":1,"op":"forward.set","args":{"no_route":"drop","icmp_rate":10,"icmp_burst":5,)"
                        R"("icmp_source_v4":"198.18.0.2","icmp_source_v6":"2001:db8::2"}})"}));
  EXPECT_NE(forward.out.find("cpumap cpus     off"), std::string::npos) << forward.out;
}

TEST_F(RouteCliTest, RouteListShowsTargetsAndCounters) {
  reply(R"({"id":1,"ok":true,"result":{"routes":[)"
        R"({"prefix":"198.18.2.0/24","kind":"via","via":"198.18.1.1","dev":"veth1","mac":"02:00:00:00:01:01","packets":7,"bytes":700},)"
        R"({"prefix":"0.0.0.0/0","kind":"group","group":"wan","packets":null,"bytes":null}]}})");
  const Outcome r = run_cli({"route", "list"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"route.list","args":{}})"}));
  EXPECT_EQ(r.out,
            "PREFIX         TARGET                                          ORIGIN  PACKETS  BYTES\n"
            "198.18.2.0/24  via 198.18.1.1 dev veth1 mac 02:00:00:00:01:01  static  7        700\n"
            "0.0.0.0/0      group wan                                       static  -        -\n");
}

TEST_F(RouteCliTest, RouteAddWithoutMacAsksForResolution) {
  reply(R"({"id":1,"ok":true,"result":{"prefix":"198.18.2.0/24","kind":"via","via":"198.18.1.1","dev":"veth1","mac":null}})");
  const Outcome r = run_cli({"route", "add", "198.18.2.0/24", "--via", "198.18.1.1", "--dev", "veth1"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(sent(), (std::vector<std::string>{
                        R"({"id":1,"op":"route.add","args":{"prefix":"198.18.2.0/24","via":"198.18.1.1","dev":"veth1"}})"}));
  EXPECT_EQ(r.out, "added route 198.18.2.0/24 via 198.18.1.1 dev veth1 mac resolved\n");
  reply(R"({"id":1,"ok":true,"result":{"name":"wan","next_hops":[{},{}]}})");
  EXPECT_EQ(run_cli({"nexthop", "group", "add", "wan", "--via", "198.18.1.1", "--dev", "veth1", "--via", "198.18.1.3",
                     "--dev", "veth1", "--mac", "02:00:00:00:01:03"}).code,
            kExitOk);
  EXPECT_EQ(sent().back(), R"({"id":1,"op":"nexthop.group.add","args":{"name":"wan","next_hops":[)"
                           R"({"via":"198.18.1.1","dev":"veth1"},{"via":"198.18.1.3","dev":"veth1","mac":"02:00:00:00:01:03"}]}})");
}

TEST_F(RouteCliTest, RouteSyncOnOffAndTable) {
  reply(R"({"id":1,"ok":true,"result":{"enabled":true,"table":254}})");
  const Outcome on = run_cli({"route", "sync", "on"});
  EXPECT_EQ(on.code, kExitOk) << on.err;
  EXPECT_EQ(on.out, "route sync on: kernel table 254\n");
  reply(R"({"id":1,"ok":true,"result":{"enabled":true,"table":100}})");
  EXPECT_EQ(run_cli({"route", "sync", "--table", "100", "on"}).code, kExitOk);
  reply(R"({"id":1,"ok":true,"result":{"enabled":false,"table":null}})");
  const Outcome off = run_cli({"route", "sync", "off"});
  EXPECT_EQ(off.code, kExitOk) << off.err;
  EXPECT_EQ(off.out, "route sync off\n");
  EXPECT_EQ(sent(), (std::vector<std::string>{R"({"id":1,"op":"route.sync","args":{"enabled":true}})",
                                              R"({"id":1,"op":"route.sync","args":{"enabled":true,"table":100}})",
                                              R"({"id":1,"op":"route.sync","args":{"enabled":false}})"}));
}

TEST_F(RouteCliTest, ListsShowOriginAndResolution) {
  reply(R"({"id":1,"ok":true,"result":{"routes":[)"
        R"({"prefix":"198.18.2.0/24","kind":"via","via":"198.18.1.1","dev":"veth1","mac":null,"origin":"static","effective":true,"packets":1,"bytes":84},)"
        R"({"prefix":"198.18.2.0/24","kind":"via","next_hop":"kernel:veth1:198.18.1.3","origin":"kernel","effective":false,"packets":null,"bytes":null}]}})");
  const Outcome routes = run_cli({"route", "list"});
  EXPECT_EQ(routes.code, kExitOk) << routes.err;
  EXPECT_EQ(routes.out,
            "PREFIX         TARGET                                 ORIGIN           PACKETS  BYTES\n"
            "198.18.2.0/24  via 198.18.1.1 dev veth1 mac resolved  static           1        84\n"
            "198.18.2.0/24  next hop kernel:veth1:198.18.1.3       kernel (hidden)  -        -\n");
  reply(R"({"id":1,"ok":true,"result":{"next_hops":[)"
        R"({"next_hop":"198.18.1.1@veth1","dev":"veth1","mac":null,"resolve_mac":true,"resolved":false,"id":1,"src_mac":"02:00:00:00:00:09","users":1,"packets":0,"bytes":0}]}})");
  const Outcome hops = run_cli({"nexthop", "list"});
  EXPECT_EQ(hops.code, kExitOk) << hops.err;
  EXPECT_NE(hops.out.find("RESOLVED"), std::string::npos) << hops.out;
  EXPECT_NE(hops.out.find("no (to stack)"), std::string::npos) << hops.out;
}

TEST_F(RouteCliTest, BadInputIsAUsageErrorAndSendsNothing) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"route", "add", "198.18.2.1/24", "--to-stack"},
           {"route", "add", "198.18.2.0/24"},
           {"route", "add", "198.18.2.0/24", "--via", "198.18.1.1"},  // --dev goes with --via
           {"route", "add", "198.18.2.0/24", "--dev", "veth1", "--mac", "02:00:00:00:00:01"},
           {"route", "sync"},
           {"route", "sync", "maybe"},
           {"route", "sync", "--table", "0", "on"},
           {"route", "sync", "--table", "255", "on"},
           {"route", "sync", "--table", "4294967296", "on"},
           {"route", "sync", "--table", "100", "off"},
           {"route", "add", "198.18.2.0/24", "--group", "wan", "--to-stack"},
           {"route", "add", "198.18.2.0/24", "--via", "198.18.1.999", "--dev", "v", "--mac", "02:00:00:00:00:01"},
           {"route", "add", "198.18.2.0/24", "--group", "a b"},
           {"route", "del", "nonsense"},
           {"nexthop", "group", "add", "wan", "--dev", "veth1", "--via", "198.18.1.1", "--mac", "02:00:00:00:00:01"},
           {"nexthop", "group", "add", "wan", "--via", "198.18.1.1", "--mac", "02:00:00:00:00:01"},  // no --dev
           {"nexthop", "group", "add", "wan", "--via", "198.18.1.1", "--dev", "v", "--mac", "02:00:00:00:00:01", "--weight", "0"},
           {"cpumap", "set", "--cpus", "1-0"},
           {"cpumap", "set", "--queue", "0x10"},
           {"cpumap", "set"},
           {"forward", "set", "--no-route", "tx"},
           {"forward", "set"},
       }) {
    wire_->sent.clear();
    const Outcome r = run_cli(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.code, kExitUsage) << joined << ": " << r.err;
    EXPECT_TRUE(sent().empty()) << joined;
  }
}

TEST(RouteOpsTable, ChangesAreAdminOnlyListsAreNot) {
  using protocol::Access;
  for (const char* op : {"route.add", "route.replace", "route.del", "nexthop.group.add", "nexthop.group.replace",
                         "nexthop.group.del", "forward.set", "cpumap.set", "route.sync"}) {
    const auto* info = protocol::find_op(op);
    ASSERT_NE(info, nullptr) << op;
    EXPECT_EQ(info->access, Access::ChangesState) << op;
  }
  for (const char* op : {"route.list", "nexthop.list", "nexthop.group.list", "forward.show"}) {
    const auto* info = protocol::find_op(op);
    ASSERT_NE(info, nullptr) << op;
    EXPECT_EQ(info->access, Access::ReadOnly) << op;
  }
}

}  // namespace
}  // namespace sluice::cli
