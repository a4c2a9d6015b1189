// Origins and MAC-less next hops in RouteTable, through BPF_PROG_TEST_RUN:
// a Static and a Kernel route for one prefix, the Static one carries the
// packets, removing it reveals the Kernel one; a next hop with resolve_mac
// sends its routes' packets to the stack until its neighbour is usable,
// then to the neighbour's MAC, and follows the MAC as it changes.
#include <arpa/inet.h>
#include <net/if.h>

#include <gtest/gtest.h>

#include <map>

#include "route_fixture.hpp"

namespace sluice::test {
namespace {

using route::IpAddress;
using route::Origin;
using route::RouteTarget;

Bytes udp4_to(const char* dst, std::uint16_t sport = 40000) {
  return PacketBuilder().eth(kClientMac, kRouterMac).ipv4("198.18.0.1", dst, {.ttl = 64}).udp(sport, 53).payload("x").build();
}
Bytes udp6_to(const char* dst) {
  return PacketBuilder().eth(kClientMac, kRouterMac).ipv6("2001:db8::1", dst, {.hop_limit = 64}).udp(40000, 53).payload("x").build();
}
route::Mac dst_mac(const RunResult& out) {
  route::Mac mac;
  std::copy_n(out.output.begin(), 6, mac.begin());
  return mac;
}

IpAddress ip(const char* text) {
  auto parsed = IpAddress::parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed.value_or(IpAddress{});
}

// The neighbour table a test controls; what lookups asked is kept.
class FakeNeighbours : public route::NeighbourSource {
 public:
  std::optional<route::Mac> lookup(std::uint32_t ifindex, const IpAddress& address) override {
    ++lookups;
    auto it = known.find({ifindex, address});
    if (it == known.end()) return std::nullopt;
    return it->second;
  }
  std::map<std::pair<std::uint32_t, IpAddress>, route::Mac> known;
  int lookups = 0;
};

route::NextHopSpec macless(const char* gateway) {
  route::NextHopSpec spec;
  spec.interface = kTestEgress;
  spec.src_mac = mac_of(kRouterMac);
  spec.gateway = ip(gateway);
  spec.resolve_mac = true;
  return spec;
}

class RouteOrigins : public RouteStageTest {};

TEST_F(RouteOrigins, StaticWinsOverKernelAndRemovingItRevealsTheKernelRoute) {
  ASSERT_OK(table_->add_next_hop("static", test_hop(1)));
  ASSERT_OK(table_->add_next_hop("synced", test_hop(2)));
  const auto p = prefix("198.18.5.0/24");
  ASSERT_OK(table_->add_route(p, RouteTarget::next_hop("synced"), Origin::Kernel));
  auto out = run(udp4_to("198.18.5.1"));
  ASSERT_EQ(out.verdict, XDP_REDIRECT);
  EXPECT_EQ(dst_mac(out), test_hop(2).dst_mac) << "the kernel route alone carries the packet";

  ASSERT_OK(table_->add_route(p, RouteTarget::next_hop("static")));
  out = run(udp4_to("198.18.5.1"));
  ASSERT_EQ(out.verdict, XDP_REDIRECT);
  EXPECT_EQ(dst_mac(out), test_hop(1).dst_mac) << "the static route wins";
  // A kernel change under a static route changes nothing packets see.
  ASSERT_OK(table_->replace_route(p, RouteTarget::to_stack(), Origin::Kernel));
  out = run(udp4_to("198.18.5.1"));
  ASSERT_EQ(out.verdict, XDP_REDIRECT);
  EXPECT_EQ(dst_mac(out), test_hop(1).dst_mac);

  auto routes = table_->list_routes();
  ASSERT_TRUE(routes);
  ASSERT_EQ(routes->size(), 2u);
  EXPECT_EQ((*routes)[0].origin, Origin::Static);
  EXPECT_TRUE((*routes)[0].effective);
  EXPECT_TRUE((*routes)[0].counter.has_value());
  EXPECT_EQ((*routes)[1].origin, Origin::Kernel);
  EXPECT_FALSE((*routes)[1].effective);
  EXPECT_FALSE((*routes)[1].counter.has_value()) << "the counter belongs to the effective entry";
  EXPECT_EQ(table_->route_count(), 1u) << "one prefix in the maps";

  // Each origin is its own entry.
  auto again = table_->add_route(p, RouteTarget::next_hop("static"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().errnum, EEXIST);
  ASSERT_OK(table_->replace_route(p, RouteTarget::next_hop("synced"), Origin::Kernel));
  auto busy = table_->remove_next_hop("synced");
  ASSERT_FALSE(busy) << "a next hop of a non-effective route is still in use";
  EXPECT_EQ(busy.error().errnum, EBUSY);

  // The static route removed: the kernel one is revealed, no resync needed.
  ASSERT_OK(table_->remove_route(p));
  out = run(udp4_to("198.18.5.1"));
  ASSERT_EQ(out.verdict, XDP_REDIRECT);
  EXPECT_EQ(dst_mac(out), test_hop(2).dst_mac) << "removing the static route reveals the kernel one";
  auto missing = table_->remove_route(p);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().errnum, ENOENT) << "no static route left";
  ASSERT_OK(table_->remove_route(p, Origin::Kernel));
  out = run(udp4_to("198.18.5.1"));
  EXPECT_EQ(out.verdict, XDP_PASS) << "no route: the no-route verdict (pass)";
  EXPECT_EQ(table_->route_count(), 0u);
  EXPECT_TRUE(table_->list_routes()->empty());
}

TEST_F(RouteOrigins, Ipv6OriginsAndDir24_8FollowTheEffectiveRoute) {
  open_table({.dir_threshold = 1});  // the IPv4 copy is plugged from the first route: it must follow origins too
  ASSERT_OK(table_->add_next_hop("static", test_hop(1)));
  ASSERT_OK(table_->add_next_hop("synced", test_hop(2)));
  ASSERT_OK(table_->add_route(prefix("2001:db8:5::/48"), RouteTarget::next_hop("synced"), Origin::Kernel));
  ASSERT_OK(table_->add_route(prefix("2001:db8:5::/48"), RouteTarget::next_hop("static"), Origin::Static));
  ASSERT_OK(table_->add_route(prefix("198.18.6.0/24"), RouteTarget::next_hop("static")));
  ASSERT_OK(table_->add_route(prefix("198.18.6.0/24"), RouteTarget::next_hop("synced"), Origin::Kernel));
  ASSERT_TRUE(table_->dir24_8_active()) << table_->dir24_8_error();
  EXPECT_EQ(dst_mac(run(udp6_to("2001:db8:5::1"))), test_hop(1).dst_mac);
  EXPECT_EQ(dst_mac(run(udp4_to("198.18.6.1"))), test_hop(1).dst_mac);
  ASSERT_OK(table_->remove_route(prefix("2001:db8:5::/48")));
  ASSERT_OK(table_->remove_route(prefix("198.18.6.0/24")));
  EXPECT_EQ(dst_mac(run(udp6_to("2001:db8:5::1"))), test_hop(2).dst_mac);
  EXPECT_EQ(dst_mac(run(udp4_to("198.18.6.1"))), test_hop(2).dst_mac) << "the DIR-24-8 copy followed";
}

TEST_F(RouteOrigins, MaclessNextHopGoesToTheStackUntilResolvedAndFollowsTheMac) {
  FakeNeighbours neighbours;
  table_->set_neighbour_source(&neighbours);
  const std::uint32_t lo = if_nametoindex(kTestEgress);
  ASSERT_GT(lo, 0u);

  // A resolve_mac next hop needs a gateway.
  auto no_gateway = macless("198.18.1.9");
  no_gateway.gateway.reset();
  auto refused = table_->add_next_hop("g", no_gateway);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("gateway"), std::string::npos) << refused.error().message;

  ASSERT_OK(table_->add_next_hop("gw", macless("198.18.1.9")));
  EXPECT_EQ(neighbours.lookups, 1) << "asked at once";
  ASSERT_OK(table_->add_route(prefix("198.18.7.0/24"), RouteTarget::next_hop("gw")));
  auto hops = table_->list_next_hops();
  ASSERT_TRUE(hops);
  EXPECT_FALSE(hops->front().resolved);

  const auto to_stack = packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FWD_TO_STACK);
  auto out = run(udp4_to("198.18.7.1"));
  EXPECT_EQ(out.verdict, XDP_PASS) << "unresolved: the kernel gets it";
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FWD_TO_STACK), to_stack + 1) << "counted as to the stack";
  EXPECT_EQ(table_->list_routes()->front().counter->packets, 1u) << "and by the route";

  const auto first = mac_of("02:00:00:00:07:01"), second = mac_of("02:00:00:00:07:02");
  ASSERT_OK(table_->neighbour_changed(lo, ip("198.18.1.9"), first));
  out = run(udp4_to("198.18.7.1"));
  ASSERT_EQ(out.verdict, XDP_REDIRECT);
  EXPECT_EQ(dst_mac(out), first);
  EXPECT_TRUE(table_->list_next_hops()->front().resolved);
  EXPECT_EQ(table_->list_next_hops()->front().spec.dst_mac, first);

  ASSERT_OK(table_->neighbour_changed(lo, ip("198.18.1.9"), second));
  EXPECT_EQ(dst_mac(run(udp4_to("198.18.7.1"))), second) << "the MAC change is followed";
  // Another neighbour's news changes nothing.
  ASSERT_OK(table_->neighbour_changed(lo, ip("198.18.1.10"), std::nullopt));
  EXPECT_EQ(run(udp4_to("198.18.7.1")).verdict, XDP_REDIRECT);

  ASSERT_OK(table_->neighbour_changed(lo, ip("198.18.1.9"), std::nullopt));  // FAILED or deleted
  EXPECT_EQ(run(udp4_to("198.18.7.1")).verdict, XDP_PASS) << "a neighbour gone sends to the stack again";
  ASSERT_OK(table_->neighbour_changed(lo, ip("198.18.1.9"), mac_of("01:00:5e:00:00:01")));
  EXPECT_EQ(run(udp4_to("198.18.7.1")).verdict, XDP_PASS) << "a multicast MAC is not a usable neighbour";

  // Known to the source when added: resolved at once (v6 too).
  neighbours.known[{lo, ip("2001:db8:1::9")}] = first;
  ASSERT_OK(table_->add_next_hop("gw6", macless("2001:db8:1::9")));
  ASSERT_OK(table_->add_route(prefix("2001:db8:7::/48"), RouteTarget::next_hop("gw6")));
  out = run(udp6_to("2001:db8:7::1"));
  ASSERT_EQ(out.verdict, XDP_REDIRECT);
  EXPECT_EQ(dst_mac(out), first);
  // refresh_neighbours asks again (after the source rebuilt its cache).
  neighbours.known[{lo, ip("198.18.1.9")}] = second;
  ASSERT_OK(table_->refresh_neighbours());
  EXPECT_EQ(dst_mac(run(udp4_to("198.18.7.1"))), second);
  table_->set_neighbour_source(nullptr);
}

TEST_F(RouteOrigins, GroupUsesOnlyResolvedMembersAndTheStackWhenNoneIs) {
  const std::uint32_t lo = if_nametoindex(kTestEgress);
  ASSERT_OK(table_->add_next_hop("a", macless("198.18.1.21")));
  ASSERT_OK(table_->add_next_hop("b", macless("198.18.1.22")));
  ASSERT_OK(table_->add_group("ab", {{"a", 1}, {"b", 1}}));
  ASSERT_OK(table_->add_route(prefix("198.18.8.0/24"), RouteTarget::group("ab")));
  EXPECT_EQ(run(udp4_to("198.18.8.1")).verdict, XDP_PASS) << "no member resolved: to the stack";

  const auto mac_a = mac_of("02:00:00:00:08:0a"), mac_b = mac_of("02:00:00:00:08:0b");
  ASSERT_OK(table_->neighbour_changed(lo, ip("198.18.1.21"), mac_a));
  for (std::uint16_t port = 40000; port < 40064; ++port) {
    auto out = run(udp4_to("198.18.8.1", port));
    ASSERT_EQ(out.verdict, XDP_REDIRECT);
    ASSERT_EQ(dst_mac(out), mac_a) << "only the resolved member carries flows";
  }
  ASSERT_OK(table_->neighbour_changed(lo, ip("198.18.1.22"), mac_b));
  std::set<route::Mac> seen;
  for (std::uint16_t port = 40000; port < 40064; ++port) seen.insert(dst_mac(run(udp4_to("198.18.8.1", port))));
  EXPECT_EQ(seen.size(), 2u) << "both members carry flows once both are resolved";
  ASSERT_OK(table_->neighbour_changed(lo, ip("198.18.1.21"), std::nullopt));
  ASSERT_OK(table_->neighbour_changed(lo, ip("198.18.1.22"), std::nullopt));
  EXPECT_EQ(run(udp4_to("198.18.8.1")).verdict, XDP_PASS) << "none resolved again: to the stack";
}

}  // namespace
}  // namespace sluice::test
