// NeighbourTable and KernelMirror against a real kernel, in namespaces this
// test creates (the box's netlink sockets are opened inside its namespace):
// a MAC-less next hop gets the peer veth's MAC and follows it when the peer's
// MAC changes; `ip route add/replace/del` in the box's main table become
// Kernel routes in RouteTable (next hop, ECMP group, to-stack, skipped),
// static routes win, an overrun is healed by a resync, the mirror refuses to
// grow past its bound, and stop() leaves nothing of its own behind.
#include <bpf/bpf.h>
#include <net/if.h>
#include <poll.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "kernel_mirror.hpp"
#include "neighbour_table.hpp"
#include "netlink_watch.hpp"
#include "netns_lab.hpp"
#include "route_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using route::IpAddress;
using route::Origin;
using route::RouteTarget;

constexpr const char* kClientLabMac = "02:5c:00:00:0a:01";
constexpr const char* kClientNewMac = "02:5c:00:00:0a:99";

void must(const CommandResult& result, const std::string& what) {
  ASSERT_EQ(result.exit_code, 0) << what << ": " << result.output;
}

class RouteNetlink : public RouteStageTest {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_NETNS();
    RouteStageTest::SetUp();
    if (HasFatalFailure()) return;
    lab_.emplace();
    must(lab_->client.exec("ip link set dev " + lab_->client_if + " address " + kClientLabMac +
                           " && sysctl -qw net.ipv4.conf." + lab_->client_if + ".arp_notify=1 net.ipv6.conf." +
                           lab_->client_if + ".ndisc_notify=1"),
         "client MAC and change notices");
    // The box takes a gratuitous ARP at once (no 1 s lock after the last update).
    must(lab_->box.exec("sysctl -qw net.ipv4.neigh." + lab_->box_if + ".locktime=0"), "box locktime");
  }
  void TearDown() override {
    {
      std::optional<EnterNetns> in_box;
      if (lab_) in_box.emplace(lab_->box);
      mirror_.reset();
      neighbours_.reset();
    }
    lab_.reset();
  }

  // Inside the box: the netlink sockets live in its namespace, RouteTable reads its interfaces.
  void open_watchers(route::KernelMirrorOptions options = {}, bool mirror = true) {
    EnterNetns in_box(lab_->box);
    auto neighbours = route::NeighbourTable::open(*table_);
    ASSERT_TRUE(neighbours) << neighbours.error().message;
    neighbours_ = std::move(*neighbours);
    if (!mirror) return;
    auto opened = route::KernelMirror::open(*table_, options);
    ASSERT_TRUE(opened) << opened.error().message;
    mirror_ = std::move(*opened);
  }

  // Runs the event loop sluiced would (poll both fds, process) until done() or the deadline.
  // The limit only bounds a failure: a passing wait returns at once, and a
  // loaded CI machine (the suite runs in parallel) can take seconds to
  // deliver a netlink notification.
  bool pump_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 10000ms) {
    EnterNetns in_box(lab_->box);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (true) {
      if (done()) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      pollfd fds[2] = {{neighbours_->fd(), POLLIN, 0}, {mirror_ ? mirror_->fd() : -1, POLLIN, 0}};
      ::poll(fds, 2, 50);
      auto n = neighbours_->process_pending();
      EXPECT_TRUE(n) << n.error().message;
      if (mirror_) {
        auto m = mirror_->process_pending();
        EXPECT_TRUE(m) << m.error().message;
      }
    }
  }

  void box(const std::string& command) { must(lab_->box.exec(command), command); }

  std::optional<route::NextHopInfo> hop(const std::string& name) const {
    auto hops = table_->list_next_hops();
    if (!hops) return std::nullopt;
    for (const auto& h : *hops)
      if (h.name == name) return h;
    return std::nullopt;
  }
  std::optional<route::RouteInfo> route_of(const char* p, Origin origin = Origin::Kernel) const {
    auto routes = table_->list_routes();
    if (!routes) return std::nullopt;
    for (const auto& r : *routes)
      if (maps::to_string(r.prefix) == p && r.origin == origin) return r;
    return std::nullopt;
  }
  // The next hop's element in fwd_nexthops: what packets read.
  route::Mac map_mac(std::uint32_t id) const {
    sluice_fwd_nexthop value{};
    EXPECT_EQ(bpf_map_lookup_elem(map_fd("fwd_nexthops"), &id, &value), 0);
    route::Mac mac;
    std::copy_n(value.dst_mac, 6, mac.begin());
    return mac;
  }
  std::string kernel_hop(const char* gateway) const { return "kernel:" + lab_->box_if + ":" + gateway; }

  std::optional<TwoHostLab> lab_;
  std::unique_ptr<route::NeighbourTable> neighbours_;
  std::unique_ptr<route::KernelMirror> mirror_;
};

route::NextHopSpec macless(const std::string& ifname, const char* gateway) {
  route::NextHopSpec spec;
  spec.interface = ifname;
  spec.gateway = IpAddress::parse(gateway);
  spec.resolve_mac = true;
  return spec;
}

TEST_F(RouteNetlink, MaclessNextHopGetsThePeersMacAndFollowsItsChange) {
  open_watchers({}, /*mirror=*/false);
  {
    EnterNetns in_box(lab_->box);
    ASSERT_OK(table_->add_next_hop("client4", macless(lab_->box_if, TwoHostLab::client_v4)));
    ASSERT_OK(table_->add_next_hop("client6", macless(lab_->box_if, TwoHostLab::client_v6)));
    ASSERT_OK(table_->add_route(prefix("198.18.40.0/24"), RouteTarget::next_hop("client4")));
  }
  EXPECT_GE(neighbours_->stats().probes, 2u) << "the kernel was asked to resolve both";
  const auto old_mac = mac_of(kClientLabMac), new_mac = mac_of(kClientNewMac);
  auto resolved_to = [&](const char* name, route::Mac mac) {
    return [this, name, mac] {
      auto h = hop(name);
      return h && h->resolved && h->spec.dst_mac == mac;
    };
  };
  ASSERT_TRUE(pump_until(resolved_to("client4", old_mac))) << "IPv4 neighbour resolved through ARP";
  ASSERT_TRUE(pump_until(resolved_to("client6", old_mac))) << "IPv6 neighbour resolved through NDP";
  EXPECT_EQ(map_mac(hop("client4")->id), old_mac) << "and written where packets read it";
  EXPECT_EQ(map_mac(hop("client6")->id), old_mac);

  // The peer changes its MAC; its gratuitous ARP / unsolicited NA update the box's neighbours.
  // (The kernel sends no usable unsolicited NA while the peer's link-local address is tentative.)
  for (int i = 0; i < 40 && !lab_->client.exec("ip -6 addr show dev " + lab_->client_if + " tentative").output.empty(); ++i)
    std::this_thread::sleep_for(100ms);
  must(lab_->client.exec("ip link set dev " + lab_->client_if + " address " + kClientNewMac), "new MAC");
  EXPECT_TRUE(pump_until(resolved_to("client4", new_mac))) << "IPv4 next hop followed the new MAC";
  EXPECT_TRUE(pump_until(resolved_to("client6", new_mac)))
      << "IPv6 next hop followed the new MAC; the box's neighbours: " << lab_->box.exec("ip -6 neigh show").output;
  EXPECT_EQ(map_mac(hop("client4")->id), new_mac);
  EXPECT_EQ(map_mac(hop("client6")->id), new_mac);

  // A neighbour the box is told is somewhere else (as an admin or a daemon would): followed too.
  box("ip neigh replace " + std::string(TwoHostLab::client_v4) + " lladdr 02:5c:00:00:0a:77 dev " + lab_->box_if +
      " nud permanent");
  EXPECT_TRUE(pump_until(resolved_to("client4", mac_of("02:5c:00:00:0a:77"))));
}

TEST_F(RouteNetlink, MirrorFollowsAddChangeDeleteEcmpTypesAndMetrics) {
  open_watchers();
  // The connected subnet (a device route) is there from the start: to the stack.
  auto connected = route_of("198.18.0.0/24");
  ASSERT_TRUE(connected) << "the box's connected subnet was mirrored at open";
  EXPECT_EQ(connected->target, RouteTarget::to_stack());
  EXPECT_TRUE(route_of("2001:db8::/64")) << "and its IPv6 one";

  box("ip route add 198.18.20.0/24 via 198.18.0.1");
  ASSERT_TRUE(pump_until([&] { return route_of("198.18.20.0/24").has_value(); }));
  EXPECT_EQ(route_of("198.18.20.0/24")->target, RouteTarget::next_hop(kernel_hop("198.18.0.1")));
  EXPECT_TRUE(pump_until([&] { auto h = hop(kernel_hop("198.18.0.1")); return h && h->resolved; }))
      << "the auto next hop resolved through the neighbour table";
  EXPECT_EQ(hop(kernel_hop("198.18.0.1"))->spec.dst_mac, mac_of(kClientLabMac));

  box("ip route add 198.18.21.0/24 nexthop via 198.18.0.1 weight 1 nexthop via 198.18.0.3 weight 3");
  ASSERT_TRUE(pump_until([&] { return route_of("198.18.21.0/24").has_value(); }));
  const auto ecmp = route_of("198.18.21.0/24")->target;
  ASSERT_EQ(ecmp.kind, RouteTarget::Kind::Group);
  auto groups = table_->list_groups();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].name, ecmp.name);
  ASSERT_EQ(groups[0].members.size(), 2u);
  EXPECT_EQ(groups[0].members[0].next_hop, kernel_hop("198.18.0.1"));
  EXPECT_EQ(groups[0].members[0].weight, 1u);
  EXPECT_EQ(groups[0].members[1].next_hop, kernel_hop("198.18.0.3"));
  EXPECT_EQ(groups[0].members[1].weight, 3u) << "the kernel's weights";

  box("ip route add default via 198.18.0.1 && ip -6 route add default via 2001:db8::1");
  ASSERT_TRUE(pump_until([&] { return route_of("0.0.0.0/0") && route_of("::/0"); })) << "default routes";
  EXPECT_EQ(route_of("0.0.0.0/0")->target, RouteTarget::next_hop(kernel_hop("198.18.0.1")));
  EXPECT_EQ(route_of("::/0")->target, RouteTarget::next_hop(kernel_hop("2001:db8::1")));
  box("ip -6 route add 2001:db8:20::/48 via 2001:db8::1");
  box("ip route add blackhole 198.18.22.0/24");
  box("ip route add unreachable 198.18.24.0/24");
  box("ip route add 198.18.23.0/24 tos 0x10 via 198.18.0.1");
  ASSERT_TRUE(pump_until([&] { return route_of("2001:db8:20::/48") && route_of("198.18.24.0/24"); }));
  EXPECT_EQ(route_of("2001:db8:20::/48")->target, RouteTarget::next_hop(kernel_hop("2001:db8::1")));
  EXPECT_EQ(route_of("198.18.22.0/24")->target, RouteTarget::to_stack()) << "blackhole: the kernel drops it";
  EXPECT_EQ(route_of("198.18.24.0/24")->target, RouteTarget::to_stack()) << "unreachable: the kernel answers";
  EXPECT_FALSE(route_of("198.18.23.0/24")) << "a TOS route is skipped, never mistranslated";
  EXPECT_EQ(mirror_->stats().skipped, 1u);
  EXPECT_EQ(mirror_->stats().via_group, 1u);
  EXPECT_GE(mirror_->stats().via_next_hop, 2u);

  // Changed in the kernel, changed here; the old next hop stays while the group uses it.
  box("ip route replace 198.18.20.0/24 via 198.18.0.3");
  ASSERT_TRUE(pump_until([&] {
    return route_of("198.18.20.0/24")->target == RouteTarget::next_hop(kernel_hop("198.18.0.3"));
  }));
  // Metrics: the lowest is mirrored; removing it reveals the next.
  box("ip route add 198.18.20.0/24 via 198.18.0.1 metric 100");
  box("ip route del 198.18.20.0/24 via 198.18.0.3 metric 0");
  ASSERT_TRUE(pump_until([&] {
    return route_of("198.18.20.0/24")->target == RouteTarget::next_hop(kernel_hop("198.18.0.1"));
  })) << "the metric-100 route took over";

  // A static route for a synced prefix wins; the kernel route stays underneath.
  {
    EnterNetns in_box(lab_->box);
    ASSERT_OK(table_->add_next_hop("static", {lab_->box_if, mac_of("02:5c:00:00:0a:55")}));
    ASSERT_OK(table_->add_route(prefix("198.18.22.0/24"), RouteTarget::next_hop("static")));
  }
  EXPECT_TRUE(route_of("198.18.22.0/24", Origin::Static)->effective);
  EXPECT_FALSE(route_of("198.18.22.0/24")->effective);

  // Deleted in the kernel: gone here, with the group and the next hops only it used.
  box("ip route del 198.18.21.0/24");
  box("ip route del 198.18.20.0/24");
  box("ip route del default && ip -6 route del default");
  ASSERT_TRUE(pump_until([&] {
    return !route_of("198.18.21.0/24") && !route_of("198.18.20.0/24") && !route_of("0.0.0.0/0") && !route_of("::/0");
  }));
  EXPECT_TRUE(table_->list_groups().empty()) << "the ECMP group went with its route";
  EXPECT_FALSE(hop(kernel_hop("198.18.0.3"))) << "an auto next hop no route uses is removed";
  EXPECT_FALSE(hop(kernel_hop("198.18.0.1")));

  // A link going down: IPv4 flushes its routes without a notification per route; the link event resyncs.
  box("ip route add 198.18.30.0/24 via 198.18.0.1");
  ASSERT_TRUE(pump_until([&] { return route_of("198.18.30.0/24").has_value(); }));
  const auto resyncs = mirror_->stats().resyncs;
  box("ip link set " + lab_->box_if + " down");
  EXPECT_TRUE(pump_until([&] { return !route_of("198.18.30.0/24") && !route_of("198.18.0.0/24"); }))
      << "routes the kernel flushed with the link are gone here too";
  EXPECT_GT(mirror_->stats().resyncs, resyncs);
  box("ip link set " + lab_->box_if + " up");
  EXPECT_TRUE(pump_until([&] { return route_of("198.18.0.0/24").has_value(); })) << "back with the link";

  // Stopping removes every Kernel route and auto next hop, and only those.
  {
    EnterNetns in_box(lab_->box);
    ASSERT_OK(mirror_->stop());
  }
  auto routes = table_->list_routes();
  ASSERT_TRUE(routes);
  ASSERT_EQ(routes->size(), 1u);
  EXPECT_EQ(routes->front().origin, Origin::Static);
  auto hops = table_->list_next_hops();
  ASSERT_EQ(hops->size(), 1u);
  EXPECT_EQ(hops->front().name, "static");
}

TEST_F(RouteNetlink, OverrunIsHealedByResyncAndTheMirrorIsBounded) {
  // A receive buffer too small for a burst of notifications: the kernel drops them (ENOBUFS).
  open_watchers({.receive_buffer_bytes = 2048});
  std::string batch;
  constexpr int kBurst = 300;
  for (int i = 0; i < kBurst; ++i)
    batch += "route add 198.19." + std::to_string(i / 256) + "." + std::to_string(i % 256) + "/32 via 198.18.0.1\n";
  const std::string file = "/tmp/sluice-route-batch-" + std::to_string(getpid());
  must(run_command("printf '" + batch + "' > " + file), "batch file");
  box("ip -batch " + file);
  std::remove(file.c_str());
  auto all_there = [&] {
    for (int i = 0; i < kBurst; i += 37)
      if (!route_of(("198.19." + std::to_string(i / 256) + "." + std::to_string(i % 256) + "/32").c_str())) return false;
    return route_of("198.19.1.43/32").has_value();
  };
  ASSERT_TRUE(pump_until(all_there)) << "every route of the burst mirrored";
  EXPECT_GE(mirror_->stats().resyncs, 1u) << "the burst overran the socket: healed by a dump";
  EXPECT_EQ(mirror_->stats().via_next_hop, static_cast<std::size_t>(kBurst));
  // Idempotent: another resync writes nothing new and changes nothing.
  const auto before = table_->list_routes()->size();
  {
    EnterNetns in_box(lab_->box);
    ASSERT_OK(mirror_->resync());
  }
  EXPECT_EQ(table_->list_routes()->size(), before);
  EXPECT_EQ(table_->list_next_hops()->size(), 1u) << "one auto next hop shared by every route through it";

  // Bounded: a mirror allowed 10 prefixes mirrors 10 and counts the rest.
  {
    EnterNetns in_box(lab_->box);
    ASSERT_OK(mirror_->stop());
    mirror_.reset();
    auto bounded = route::KernelMirror::open(*table_, {.max_routes = 10});
    ASSERT_TRUE(bounded) << bounded.error().message;
    mirror_ = std::move(*bounded);
  }
  EXPECT_EQ(table_->route_count(), 10u);
  EXPECT_GE(mirror_->stats().refused_full, static_cast<std::size_t>(kBurst - 10)) << "refused and counted";
}

// sluiced's shape: one io_context drives both watchers; `ip route add` becomes a resolved kernel route.
TEST_F(RouteNetlink, AnAsioIoContextDrivesTheWatchers) {
  open_watchers();
  EnterNetns in_box(lab_->box);  // the io_context runs here, where the sockets and interfaces are
  boost::asio::io_context io;
  std::string error;
  auto note = [&](const maps::Error& e) { error = e.message; };
  route::NetlinkWatch neighbours(io, neighbours_->fd(), [&] { return neighbours_->process_pending(); }, note);
  route::NetlinkWatch routes(io, mirror_->fd(), [&] { return mirror_->process_pending(); }, note);
  box("ip route add 198.18.50.0/24 via 198.18.0.1");
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  auto done = [&] {
    auto h = hop(kernel_hop("198.18.0.1"));
    return route_of("198.18.50.0/24") && h && h->resolved;
  };
  while (!done() && std::chrono::steady_clock::now() < deadline) io.run_for(50ms);
  EXPECT_TRUE(done()) << "mirrored and resolved through the io_context";
  EXPECT_EQ(error, "");
}

// A changed kernel route whose new next hop cannot be installed must not
// keep carrying packets to the gateway the kernel left: it goes to the stack,
// and takes its next hop once there is room again.
TEST_F(RouteNetlink, AKernelRouteThatCannotBeInstalledGoesToTheStackNotItsOldGateway) {
  open_watchers();
  box("ip route add 198.18.40.0/24 via 198.18.0.1");
  ASSERT_TRUE(pump_until([&] { return route_of("198.18.40.0/24").has_value(); }));
  ASSERT_EQ(route_of("198.18.40.0/24")->target, RouteTarget::next_hop(kernel_hop("198.18.0.1")));
  // Every next-hop id taken: the mirror cannot add the route's new gateway.
  std::vector<std::string> fill;
  {
    EnterNetns in_box(lab_->box);
    for (int i = 0;; ++i) {
      const std::string name = "fill-" + std::to_string(i);
      if (!table_->add_next_hop(name, {lab_->box_if, mac_of("02:5c:00:00:0b:01")})) break;
      fill.push_back(name);
      ASSERT_LT(i, SLUICE_FWD_MAX_NEXTHOPS) << "the next-hop table never filled";
    }
  }
  box("ip route replace 198.18.40.0/24 via 198.18.0.3");
  ASSERT_TRUE(pump_until([&] {
    const auto route = route_of("198.18.40.0/24");
    return route && route->target == RouteTarget::to_stack();
  }))
      << "the route left its old gateway for the stack";
  EXPECT_EQ(mirror_->stats().fallbacks, 1u);
  EXPECT_FALSE(hop(kernel_hop("198.18.0.1"))) << "the old gateway's next hop went with its last route";

  // Room again: the next resync gives the route its next hop.
  {
    EnterNetns in_box(lab_->box);
    ASSERT_OK(table_->remove_next_hop(fill.back()));
    ASSERT_OK(mirror_->resync());
  }
  EXPECT_EQ(route_of("198.18.40.0/24")->target, RouteTarget::next_hop(kernel_hop("198.18.0.3")));
}

// A flapping link: each flap asks for a dump, but dumps are spaced, and the
// one that is due runs from the deadline (the io_context's timer) even when
// no further notification comes.
TEST_F(RouteNetlink, LinkFlapsCostSpacedDumpsAndTheLastStateWins) {
  open_watchers();
  EnterNetns in_box(lab_->box);
  boost::asio::io_context io;
  std::string error;
  auto note = [&](const maps::Error& e) { error = e.message; };
  route::NetlinkWatch neighbours(io, neighbours_->fd(), [&] { return neighbours_->process_pending(); }, note);
  route::NetlinkWatch routes(
      io, mirror_->fd(), [&] { return mirror_->process_pending(); }, note, [&] { return mirror_->next_deadline(); });
  box("ip route add 198.18.41.0/24 via 198.18.0.1");
  const auto settle = [&](auto done, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < until) io.run_for(20ms);
    return done();
  };
  ASSERT_TRUE(settle([&] { return route_of("198.18.41.0/24").has_value(); }, 3000ms));
  const auto before = mirror_->stats().resyncs;
  // Flaps 50 ms apart, while the io_context runs: each one is read on its own.
  constexpr int kFlaps = 12;
  std::string flaps;
  for (int i = 0; i < kFlaps; ++i)
    flaps += "ip link set " + lab_->box_if + " down && ip link set " + lab_->box_if + " up && sleep 0.05 && ";
  const auto flapping_from = std::chrono::steady_clock::now();
  std::atomic<bool> flapped{false};
  std::thread flapper([&] {
    box(flaps + "ip route replace 198.18.41.0/24 via 198.18.0.1");
    flapped = true;
  });
  while (!flapped) io.run_for(10ms);
  flapper.join();
  const auto flapping = std::chrono::steady_clock::now() - flapping_from;
  // The link is up again at the end and the route back: the last dump must see that.
  ASSERT_TRUE(settle([&] { return !mirror_->next_deadline() && mirror_->stats().resyncs > before; }, 3000ms));
  io.run_for(2 * route::KernelMirror::kLinkResyncSpacing);  // nothing more is due
  const auto dumps = mirror_->stats().resyncs - before;
  EXPECT_GE(dumps, 1u);
  // One dump at the first flap, at most one per spacing while they go on, one after (and one of slack).
  const auto spaced = static_cast<std::uint64_t>(flapping / route::KernelMirror::kLinkResyncSpacing) + 3;
  EXPECT_LE(dumps, std::min<std::uint64_t>(spaced, kFlaps / 2)) << kFlaps << " flaps in "
      << std::chrono::duration_cast<std::chrono::milliseconds>(flapping).count() << " ms: spaced dumps, not one per flap";
  EXPECT_FALSE(mirror_->next_deadline());
  EXPECT_TRUE(route_of("198.18.0.0/24")) << "the connected subnet, back with the link";
  EXPECT_EQ(route_of("198.18.41.0/24")->target, RouteTarget::next_hop(kernel_hop("198.18.0.1")));
  EXPECT_EQ(error, "");
}

TEST_F(RouteNetlink, TablesThatCannotBeMirroredAreRefused) {
  EnterNetns in_box(lab_->box);
  for (std::uint32_t table : {0u, route::kLocalTable}) {
    auto refused = route::KernelMirror::open(*table_, {.table = table});
    ASSERT_FALSE(refused) << "table " << table;
    EXPECT_EQ(refused.error().errnum, EINVAL);
    EXPECT_NE(refused.error().message.find("table " + std::to_string(table)), std::string::npos);
  }
  EXPECT_EQ(table_->route_count(), 0u) << "nothing written";
}

}  // namespace
}  // namespace sluice::test
