// End to end: client <-> box <-> server in namespaces this test creates, the
// box with the kernel's forwarding off (net.ipv4.ip_forward=0, IPv6
// forwarding 0), sluice attached natively to both of its veth ports. Only
// the forward stage can carry a packet across: ping v4/v6 and 12 MB over TCP
// each way arrive intact; a route removed at run time stops the traffic and
// re-added resumes it. With `route sync` on (KernelMirror and NeighbourTable
// driven by an event loop of their own, inside the box's namespace), a route
// added with `ip route add` in the box carries ping within a second and stops
// when deleted, v4 and v6, and an ECMP route is mirrored as a group.
#include <bpf/libbpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/eventfd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <filesystem>
#include <optional>
#include <thread>

#include "kernel_mirror.hpp"
#include "neighbour_table.hpp"
#include "netns_lab.hpp"
#include "route_fixture.hpp"
#include "xdp_attachment.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using route::RouteTarget;

constexpr const char* kClientMacE2e = "02:5c:00:00:00:01";
constexpr const char* kBoxClientSide = "02:5c:00:00:00:02";
constexpr const char* kBoxServerSide = "02:5c:00:00:01:02";
constexpr const char* kServerMacE2e = "02:5c:00:00:01:01";

void must(const CommandResult& result, const std::string& what) {
  ASSERT_EQ(result.exit_code, 0) << what << ": " << result.output;
}

class RouteE2e : public RouteStageTest {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_NETNS();
    RouteStageTest::SetUp();
    if (HasFatalFailure()) return;
    const std::string pid = std::to_string(getpid());
    client_if_ = "fc" + pid, box_client_if_ = "fb" + pid, box_server_if_ = "fB" + pid, server_if_ = "fs" + pid;
    client_.emplace("sl-fwd-client");
    box_.emplace("sl-fwd-box");
    server_.emplace("sl-fwd-server");
    must(run_command("ip link add " + client_if_ + " netns " + client_->name() + " address " + kClientMacE2e +
                     " type veth peer name " + box_client_if_ + " netns " + box_->name() + " address " + kBoxClientSide),
         "client veth");
    must(run_command("ip link add " + server_if_ + " netns " + server_->name() + " address " + kServerMacE2e +
                     " type veth peer name " + box_server_if_ + " netns " + box_->name() + " address " + kBoxServerSide),
         "server veth");
    must(client_->exec("ip addr add 198.18.0.1/24 dev " + client_if_ + " && ip -6 addr add 2001:db8::1/64 dev " +
                       client_if_ + " nodad && ip link set " + client_if_ +
                       " up && ip route add default via 198.18.0.2 && ip -6 route add default via 2001:db8::2"),
         "client addresses");
    must(server_->exec("ip addr add 198.18.1.1/24 dev " + server_if_ + " && ip -6 addr add 2001:db8:1::1/64 dev " +
                       server_if_ + " nodad && ip link set " + server_if_ +
                       " up && ip route add default via 198.18.1.2 && ip -6 route add default via 2001:db8:1::2"),
         "server addresses");
    must(box_->exec("ip addr add 198.18.0.2/24 dev " + box_client_if_ + " && ip -6 addr add 2001:db8::2/64 dev " +
                    box_client_if_ + " nodad && ip addr add 198.18.1.2/24 dev " + box_server_if_ +
                    " && ip -6 addr add 2001:db8:1::2/64 dev " + box_server_if_ + " nodad && ip link set " +
                    box_client_if_ + " up && ip link set " + box_server_if_ + " up"),
         "box addresses");
    // The kernel must not forward: only XDP carries packets across the box.
    must(box_->exec("sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0"), "forwarding off");
    auto v4 = box_->exec("sysctl -n net.ipv4.ip_forward"), v6 = box_->exec("sysctl -n net.ipv6.conf.all.forwarding");
    ASSERT_EQ(v4.output, "0\n");
    ASSERT_EQ(v6.output, "0\n");

    probe_.emplace(*plane_);
    // A native redirect into a veth reaches its peer only if the peer runs NAPI (XDP or GRO): a bare XDP_PASS on each.
    attach_pass(*client_, client_if_);
    attach_pass(*server_, server_if_);
    EnterNetns in_box(*box_);
    for (const auto& ifname : {box_client_if_, box_server_if_}) {
      auto attached = dataplane::attach_xdp(plane_->entry_prog_fd(), ifname, dataplane::AttachMode::Native);
      ASSERT_TRUE(attached) << attached.error().message;
    }
    ASSERT_OK(table_->add_next_hop("client", {box_client_if_, mac_of(kClientMacE2e)}));
    ASSERT_OK(table_->add_next_hop("server", {box_server_if_, mac_of(kServerMacE2e)}));
    for (const char* p : {"198.18.0.0/24", "2001:db8::/64"}) ASSERT_OK(table_->add_route(prefix(p), RouteTarget::next_hop("client")));
    for (const char* p : {"198.18.1.0/24", "2001:db8:1::/64"}) ASSERT_OK(table_->add_route(prefix(p), RouteTarget::next_hop("server")));
    for (const char* p : {"198.18.0.2/32", "198.18.1.2/32", "2001:db8::2/128", "2001:db8:1::2/128"})
      ASSERT_OK(table_->add_route(prefix(p), RouteTarget::to_stack()));
  }

  void TearDown() override {
    if (box_) {
      EnterNetns in_box(*box_);
      for (const auto& ifname : {box_client_if_, box_server_if_}) (void)dataplane::detach_xdp(ifname);
    }
    server_.reset();
    box_.reset();
    client_.reset();
  }

  // veth hands its peer TCP/UDP with checksums left to "hardware" (CHECKSUM_PARTIAL); XDP sees
  // bytes only, and a frame it redirects leaves without the checksum ever filled in. A real NIC
  // delivers finished checksums, so the senders here compute theirs in software (ethtool -K tx off).
  void checksum_in_software(const Netns& ns, const std::string& ifname) {
    EnterNetns in(ns);
    const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(sock, 0);
    ethtool_value off{.cmd = ETHTOOL_STXCSUM, .data = 0};
    ifreq request{};
    std::strncpy(request.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    request.ifr_data = reinterpret_cast<char*>(&off);
    const int rc = ::ioctl(sock, SIOCETHTOOL, &request);
    const int err = errno;
    ::close(sock);
    ASSERT_EQ(rc, 0) << "tx checksum off on " << ifname << ": " << std::strerror(err);
  }

  void attach_pass(const Netns& ns, const std::string& ifname) {
    checksum_in_software(ns, ifname);
    EnterNetns in(ns);
    const int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    ASSERT_GT(ifindex, 0) << ifname;
    ASSERT_EQ(bpf_xdp_attach(ifindex, probe_->pass_prog_fd(), XDP_FLAGS_DRV_MODE, nullptr), 0) << ifname;
  }

  bool ping(const Netns& from, const char* to, int count = 3) const {
    return from.exec(std::string("ping -c ") + std::to_string(count) + " -i 0.2 -W 1 " + to, 10s).exit_code == 0;
  }

  // size bytes from `sender` to `receiver` (listening on addr:port) over TCP; true when they arrive intact.
  void transfer(Netns& sender, Netns& receiver, const char* addr, int port, const std::filesystem::path& dir) {
    const auto sent = dir / "sent.bin", got = dir / "got.bin";
    must(run_command("head -c 12000000 /dev/urandom > " + sent.string()), "payload");
    const pid_t listener = receiver.spawn("exec nc -l " + std::string(addr) + " " + std::to_string(port) + " > " + got.string());
    CommandResult sent_by;
    for (int attempt = 0; attempt < 20; ++attempt) {  // until the listener is up
      std::this_thread::sleep_for(100ms);
      sent_by = sender.exec("nc -N -w 5 " + std::string(addr) + " " + std::to_string(port) + " < " + sent.string(), 30s);
      if (sent_by.exit_code == 0 || sent_by.output.find("refused") == std::string::npos) break;
    }
    const int received = receiver.wait(listener, 10000ms);  // before any ASSERT: no listener outlives the test
    ASSERT_EQ(sent_by.exit_code, 0) << "nc to " << addr << ": " << sent_by.output;
    EXPECT_EQ(received, 0);
    auto sums = run_command("sha256sum < " + sent.string() + " && sha256sum < " + got.string());
    const auto lines = sums.output;
    ASSERT_EQ(std::filesystem::file_size(got), 12000000u) << "bytes lost";
    EXPECT_EQ(lines.substr(0, 64), lines.substr(lines.find('\n') + 1, 64)) << "bytes changed";
  }

  std::optional<Netns> client_, box_, server_;
  std::optional<LookupProbe> probe_;
  std::string client_if_, box_client_if_, box_server_if_, server_if_;
};

TEST_F(RouteE2e, PingAndTcpCrossOnlyThroughXdpAndFollowTheRoutes) {
  const auto routed_before = packets(SLUICE_VERDICT_REDIRECT, SLUICE_REASON_FWD_ROUTED);
  EXPECT_TRUE(ping(*client_, "198.18.1.1")) << "IPv4 across the box";
  EXPECT_TRUE(ping(*client_, "2001:db8:1::1")) << "IPv6 across the box";
  EXPECT_TRUE(ping(*server_, "198.18.0.1")) << "IPv4 back";
  EXPECT_TRUE(ping(*server_, "2001:db8::1")) << "IPv6 back";
  EXPECT_GE(packets(SLUICE_VERDICT_REDIRECT, SLUICE_REASON_FWD_ROUTED), routed_before + 24)
      << "every echo and reply went through the forward stage";

  const auto dir = std::filesystem::temp_directory_path() / ("sluice-fwd-e2e-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  transfer(*client_, *server_, "198.18.1.1", 5301, dir);  // client -> server
  transfer(*server_, *client_, "198.18.0.1", 5302, dir);  // server -> client
  transfer(*client_, *server_, "2001:db8:1::1", 5303, dir);
  std::filesystem::remove_all(dir);

  // The route to the server removed while traffic flows: nothing crosses (the box's kernel does not forward).
  {
    EnterNetns in_box(*box_);
    ASSERT_OK(table_->remove_route(prefix("198.18.1.0/24")));
  }
  EXPECT_FALSE(ping(*client_, "198.18.1.1", 2)) << "a removed route still carries traffic";
  EXPECT_TRUE(ping(*client_, "2001:db8:1::1", 1)) << "the other routes still do";
  {
    EnterNetns in_box(*box_);
    ASSERT_OK(table_->add_route(prefix("198.18.1.0/24"), RouteTarget::next_hop("server")));
  }
  EXPECT_TRUE(ping(*client_, "198.18.1.1")) << "re-added route carries traffic again";
}

// sluiced's event loop in miniature: a thread inside the box's namespace (setns is per
// thread) that opens the netlink watchers there and processes whatever they report.
// Every RouteTable use, theirs and the test's, holds `lock`.
class SyncLoop {
 public:
  SyncLoop(const Netns& box, route::RouteTable& table, std::mutex& lock) : lock_(lock) {
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
    thread_ = std::thread([this, &box, &table] { run(box, table); });
    std::unique_lock wait(lock_);
    ready_.wait(wait, [this] { return opened_ || !error_.empty(); });
  }
  SyncLoop(const SyncLoop&) = delete;
  SyncLoop& operator=(const SyncLoop&) = delete;
  ~SyncLoop() {
    const std::uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof(one));
    thread_.join();
    ::close(stop_fd_);
  }
  std::string error() {
    std::lock_guard hold(lock_);
    return error_;
  }
  route::KernelMirrorStats stats() {
    std::lock_guard hold(lock_);
    return mirror_ ? mirror_->stats() : route::KernelMirrorStats{};
  }

 private:
  void run(const Netns& box, route::RouteTable& table) {
    EnterNetns in_box(box);
    {
      std::lock_guard hold(lock_);
      auto neighbours = route::NeighbourTable::open(table);
      auto mirror = neighbours ? route::KernelMirror::open(table) : maps::Result<std::unique_ptr<route::KernelMirror>>(neighbours.error());
      if (!mirror) {
        error_ = mirror.error().message;
        ready_.notify_all();
        return;
      }
      neighbours_ = std::move(*neighbours);
      mirror_ = std::move(*mirror);
      opened_ = true;
    }
    ready_.notify_all();
    while (true) {
      pollfd fds[3] = {{stop_fd_, POLLIN, 0}, {neighbours_->fd(), POLLIN, 0}, {mirror_->fd(), POLLIN, 0}};
      if (::poll(fds, 3, 200) < 0 && errno != EINTR) break;
      if (fds[0].revents) break;
      std::lock_guard hold(lock_);
      auto n = neighbours_->process_pending();
      auto m = mirror_->process_pending();
      if (!n && error_.empty()) error_ = n.error().message;
      if (!m && error_.empty()) error_ = m.error().message;
    }
    std::lock_guard hold(lock_);
    if (auto stopped = mirror_->stop(); !stopped && error_.empty()) error_ = stopped.error().message;
    mirror_.reset();
    neighbours_.reset();
  }

  std::mutex& lock_;
  std::condition_variable ready_;
  bool opened_ = false;
  std::string error_;
  int stop_fd_ = -1;
  std::unique_ptr<route::NeighbourTable> neighbours_;
  std::unique_ptr<route::KernelMirror> mirror_;
  std::thread thread_;
};

TEST_F(RouteE2e, RouteSyncCarriesKernelRoutesWithinASecondAndStopsWhenDeleted) {
  // Destinations behind the server that only a route through it reaches; a second server address for ECMP.
  must(server_->exec("ip link set lo up && ip addr add 198.18.9.1/32 dev lo && ip -6 addr add 2001:db8:9::1/128 dev lo"
                     " && ip addr add 198.18.1.3/24 dev " + server_if_),
       "server destinations");
  std::mutex lock;
  auto kernel_route = [&](const char* p) -> std::optional<route::RouteInfo> {
    std::lock_guard hold(lock);
    auto routes = table_->list_routes();
    if (!routes) return std::nullopt;
    for (const auto& r : *routes)
      if (maps::to_string(r.prefix) == p && r.origin == route::Origin::Kernel) return r;
    return std::nullopt;
  };
  // The route mirrored and its next hops resolved: packets can take it.
  auto usable = [&](const char* p) {
    auto r = kernel_route(p);
    if (!r || r->target.kind == RouteTarget::Kind::ToStack) return false;
    std::lock_guard hold(lock);
    std::vector<std::string> hops{r->target.name};
    if (r->target.kind == RouteTarget::Kind::Group) {
      hops.clear();
      for (const auto& g : table_->list_groups())
        if (g.name == r->target.name)
          for (const auto& m : g.members) hops.push_back(m.next_hop);
    }
    auto listed = table_->list_next_hops();
    for (const auto& name : hops)
      for (const auto& h : *listed)
        if (h.name == name && !h.resolved) return false;
    return !hops.empty();
  };
  auto within = [](std::chrono::milliseconds limit, const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  };

  EXPECT_FALSE(ping(*client_, "198.18.9.1", 1)) << "no route yet: the box's kernel does not forward";
  std::optional<SyncLoop> sync;
  sync.emplace(*box_, *table_, lock);
  ASSERT_EQ(sync->error(), "");

  must(box_->exec("ip route add 198.18.9.0/24 via 198.18.1.1"), "ip route add");
  EXPECT_TRUE(within(1000ms, [&] { return usable("198.18.9.0/24"); })) << "mirrored and resolved within a second";
  const auto routed = packets(SLUICE_VERDICT_REDIRECT, SLUICE_REASON_FWD_ROUTED);
  EXPECT_TRUE(ping(*client_, "198.18.9.1")) << "the kernel route carries ping through XDP";
  EXPECT_GE(packets(SLUICE_VERDICT_REDIRECT, SLUICE_REASON_FWD_ROUTED), routed + 6);

  must(box_->exec("ip route del 198.18.9.0/24"), "ip route del");
  EXPECT_TRUE(within(1000ms, [&] { return !kernel_route("198.18.9.0/24"); })) << "removed within a second";
  EXPECT_FALSE(ping(*client_, "198.18.9.1", 2)) << "a deleted kernel route carries nothing";

  must(box_->exec("ip -6 route add 2001:db8:9::/64 via 2001:db8:1::1"), "ip -6 route add");
  EXPECT_TRUE(within(1000ms, [&] { return usable("2001:db8:9::/64"); })) << "IPv6 mirrored and resolved within a second";
  EXPECT_TRUE(ping(*client_, "2001:db8:9::1")) << "IPv6 kernel route carries ping";
  must(box_->exec("ip -6 route del 2001:db8:9::/64"), "ip -6 route del");
  EXPECT_TRUE(within(1000ms, [&] { return !kernel_route("2001:db8:9::/64"); }));
  EXPECT_FALSE(ping(*client_, "2001:db8:9::1", 2));

  must(box_->exec("ip route add 198.18.9.0/24 nexthop via 198.18.1.1 nexthop via 198.18.1.3"), "ECMP route");
  EXPECT_TRUE(within(1000ms, [&] { return usable("198.18.9.0/24"); }));
  auto ecmp = kernel_route("198.18.9.0/24");
  ASSERT_TRUE(ecmp);
  ASSERT_EQ(ecmp->target.kind, RouteTarget::Kind::Group) << "an ECMP route is mirrored as a group";
  {
    std::lock_guard hold(lock);
    auto groups = table_->list_groups();
    ASSERT_EQ(groups.size(), 1u);
    EXPECT_EQ(groups[0].members.size(), 2u);
  }
  EXPECT_TRUE(ping(*client_, "198.18.9.1")) << "the group carries ping";
  EXPECT_EQ(sync->stats().via_group, 1u);

  // route sync off: every kernel route leaves, the static ones stay.
  sync.reset();
  EXPECT_FALSE(kernel_route("198.18.9.0/24"));
  EXPECT_FALSE(ping(*client_, "198.18.9.1", 2)) << "with sync off the kernel route carries nothing";
  EXPECT_TRUE(ping(*client_, "198.18.1.1", 1)) << "static routes unaffected";
  EXPECT_TRUE(table_->list_groups().empty());
  for (const auto& h : *table_->list_next_hops()) EXPECT_EQ(h.name.rfind("kernel:", 0), std::string::npos) << h.name;
}

}  // namespace
}  // namespace sluice::test
