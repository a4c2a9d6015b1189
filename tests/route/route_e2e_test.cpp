// End to end: client <-> box <-> server in namespaces this test creates, the
// box with the kernel's forwarding off (net.ipv4.ip_forward=0, IPv6
// forwarding 0), sluice attached natively to both of its veth ports. Only
// the forward stage can carry a packet across: ping v4/v6 and 12 MB over TCP
// each way arrive intact; a route removed at run time stops the traffic and
// re-added resumes it.
#include <bpf/libbpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

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

}  // namespace
}  // namespace sluice::test
