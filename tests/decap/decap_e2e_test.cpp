// sluice-decap end to end: a client namespace sends a sluice-style
// encapsulated TCP SYN (built here, injected with an AF_PACKET socket) to a
// backend namespace that holds the VIP on loopback; the real sluice-decap
// command is attached on the backend's veth; a real TCP listener on VIP:port
// answers, and its SYN-ACK is seen arriving on the client, sent by the VIP to
// the client's own address (direct server return). status counts exactly
// what was sent; detach leaves nothing attached and nothing pinned.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <boost/json.hpp>

#include <atomic>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "decap_host.hpp"
#include "netns_lab.hpp"
#include "packet_builder.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* encap_src4 = "198.18.0.100";  // the balancer's encap source (not on the lab)
constexpr const char* encap_src6 = "2001:db8::100";
constexpr const char* vip4 = "198.18.1.10";
constexpr const char* vip6 = "2001:db8:1::10";
constexpr const char* elsewhere4 = "198.18.0.3";   // an outer destination that is not the backend's
constexpr const char* forger4 = "198.18.0.66";     // an outer source that is no balancer's
constexpr const char* forger6 = "2001:db8::66";
// The balancers' encapsulation sources, as an operator names them.
const std::string balancer_sources = std::string(" --source ") + encap_src4 + " --source 2001:db8::100/128";
constexpr std::uint16_t client_port = 40000;
constexpr std::uint16_t vip_port = 8080;
constexpr int listen_backlog = 8;
// Bounds of every wait for a frame: how long, and how many frames looked at.
constexpr auto reply_timeout = 3s;
constexpr auto silence_window = 600ms;
constexpr int max_frames_examined = 500;
constexpr auto receive_poll = std::chrono::milliseconds(100);

std::string decap_command(const Netns& ns, const std::string& args) {
  return "nsenter --net=/run/netns/" + ns.name() + " " + SLUICE_DECAP_PATH + " " + args;
}

std::string mac_text(const unsigned char* mac) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

// Owns one fd (sockets made inside a namespace stay in it after we leave).
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string mac_of(const Netns& ns, const std::string& ifname) {
  EnterNetns inside(ns);
  Fd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq req{};
  std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (sock.get() < 0 || ioctl(sock.get(), SIOCGIFHWADDR, &req) != 0) return {};
  return mac_text(reinterpret_cast<unsigned char*>(req.ifr_hwaddr.sa_data));
}

// An AF_PACKET socket on one interface of a namespace: sends frames as
// they are, and watches the frames that arrive.
class PacketPort {
 public:
  PacketPort(const Netns& ns, const std::string& ifname) : fd_(open_in(ns, ifname, ifindex_)) {}

  bool ok() const { return fd_.get() >= 0; }

  bool send(const Bytes& frame) const {
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifindex_;
    to.sll_halen = ETH_ALEN;
    return sendto(fd_.get(), frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) ==
           static_cast<ssize_t>(frame.size());
  }

  // The first arriving frame `match` accepts, within `timeout` and max_frames_examined frames.
  template <class Match>
  std::optional<Bytes> wait_for(Match&& match, std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    Bytes buf(65536);
    for (int seen = 0; seen < max_frames_examined && std::chrono::steady_clock::now() < deadline;) {
      sockaddr_ll from{};
      socklen_t from_len = sizeof from;
      const ssize_t n = recvfrom(fd_.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < 0) continue;  // receive timeout: look at the clock again
      ++seen;
      if (from.sll_pkttype == PACKET_OUTGOING) continue;
      Bytes frame(buf.begin(), buf.begin() + n);
      if (match(frame)) return frame;
    }
    return std::nullopt;
  }

 private:
  static int open_in(const Netns& ns, const std::string& ifname, int& ifindex) {
    EnterNetns inside(ns);
    ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0 || ifindex == 0) return fd;
    sockaddr_ll at{};
    at.sll_family = AF_PACKET;
    at.sll_protocol = htons(ETH_P_ALL);
    at.sll_ifindex = ifindex;
    timeval poll{0, static_cast<suseconds_t>(std::chrono::microseconds(receive_poll).count())};
    if (bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &poll, sizeof poll) != 0) {
      close(fd);
      return -1;
    }
    return fd;
  }

  int ifindex_ = 0;
  Fd fd_;
};

// A TCP listener on VIP:port inside the backend namespace; the kernel answers SYNs.
int listen_in(const Netns& ns, bool v6) {
  EnterNetns inside(ns);
  const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_storage at{};
  socklen_t len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&at);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(vip_port);
    inet_pton(AF_INET6, vip6, &a->sin6_addr);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&at);
    a->sin_family = AF_INET;
    a->sin_port = htons(vip_port);
    inet_pton(AF_INET, vip4, &a->sin_addr);
    len = sizeof *a;
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&at), len) != 0 || listen(fd, listen_backlog) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// The listener's SYN-ACK to the client: from VIP:vip_port to client:client_port, sent to the client's MAC.
bool is_syn_ack_to_client(const Bytes& f, bool v6, const std::string& client_mac,
                          std::uint16_t to_port = client_port) {
  constexpr std::size_t tcp_flags_at = 13;
  constexpr std::uint8_t syn_ack = TcpFlags::SYN | TcpFlags::ACK;
  if (f.size() < ETH_HLEN || mac_text(f.data()) != client_mac) return false;
  const std::uint16_t ethertype = (f[12] << 8) | f[13];
  std::size_t l4 = 0;
  if (!v6) {
    if (ethertype != ETH_P_IP || f.size() < ETH_HLEN + 20 || f[ETH_HLEN + 9] != IPPROTO_TCP) return false;
    const auto src = parse_ipv4(vip4), dst = parse_ipv4(TwoHostLab::client_v4);
    if (!std::equal(src.begin(), src.end(), f.begin() + ETH_HLEN + 12) ||
        !std::equal(dst.begin(), dst.end(), f.begin() + ETH_HLEN + 16))
      return false;
    l4 = ETH_HLEN + (f[ETH_HLEN] & 0x0f) * 4;
  } else {
    if (ethertype != ETH_P_IPV6 || f.size() < ETH_HLEN + 40 || f[ETH_HLEN + 6] != IPPROTO_TCP) return false;
    const auto src = parse_ipv6(vip6), dst = parse_ipv6(TwoHostLab::client_v6);
    if (!std::equal(src.begin(), src.end(), f.begin() + ETH_HLEN + 8) ||
        !std::equal(dst.begin(), dst.end(), f.begin() + ETH_HLEN + 24))
      return false;
    l4 = ETH_HLEN + 40;
  }
  if (f.size() < l4 + 20) return false;
  const std::uint16_t sport = (f[l4] << 8) | f[l4 + 1], dport = (f[l4 + 2] << 8) | f[l4 + 3];
  return sport == vip_port && dport == to_port && (f[l4 + tcp_flags_at] & syn_ack) == syn_ack;
}

// Removes the interface's pins if the test stops before its own detach.
struct PinGuard {
  std::string dir;
  ~PinGuard() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::remove(decap::default_pin_root, ec);  // only when empty
  }
};

std::uint64_t counter(const json::object& iface, const char* outcome, const char* field) {
  return iface.at("counters").as_object().at(outcome).as_object().at(field).to_number<std::uint64_t>();
}

class DecapE2eTest : public ::testing::TestWithParam<bool> {};

TEST_P(DecapE2eTest, EncapsulatedSynIsAnsweredByTheVipDirectlyToTheClient) {
  SLUICE_REQUIRE_NETNS();
  SLUICE_REQUIRE_BPFFS();
  const bool v6 = GetParam();
  TwoHostLab lab;  // client 198.18.0.1 / 2001:db8::1, "box" = the backend 198.18.0.2 / 2001:db8::2
  const Netns& backend = lab.box;
  // What docs/decap.md asks of a DSR backend: the VIP on lo, no ARP for it on the wire, loose rp_filter.
  auto setup = backend.exec(std::string("ip addr add ") + vip4 + "/32 dev lo && ip -6 addr add " + vip6 +
                            "/128 dev lo nodad && sysctl -qw net.ipv4.conf.all.arp_ignore=1 "
                            "net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.all.rp_filter=2");
  ASSERT_EQ(setup.exit_code, 0) << setup.output;
  // The kernel's link-local addresses are tentative (DAD) for about two
  // seconds after link up, and neighbour solicitations go out from the
  // link-local address: replace them with ones that need no DAD.
  using Host = std::tuple<const Netns*, std::string, std::string>;
  for (const auto& [ns, ifname, host] : {Host{&lab.client, lab.client_if, "1"}, Host{&backend, lab.box_if, "2"}}) {
    auto link_local = ns->exec("ip -6 addr flush dev " + ifname + " scope link && ip -6 addr add fe80::" + host +
                               "/64 dev " + ifname + " nodad");
    ASSERT_EQ(link_local.exit_code, 0) << link_local.output;
  }
  const std::string client_mac = mac_of(lab.client, lab.client_if);
  const std::string backend_mac = mac_of(backend, lab.box_if);
  ASSERT_FALSE(client_mac.empty());
  ASSERT_FALSE(backend_mac.empty());

  const Fd listener(listen_in(backend, v6));
  ASSERT_GE(listener.get(), 0) << "listen on the VIP: " << std::strerror(errno);
  const PacketPort client(lab.client, lab.client_if);
  ASSERT_TRUE(client.ok()) << "AF_PACKET socket in the client namespace";

  PacketBuilder syn;
  syn.eth(client_mac, backend_mac);
  if (v6)
    syn.ipv6(encap_src6, TwoHostLab::box_v6).ipv6(TwoHostLab::client_v6, vip6);
  else
    syn.ipv4(encap_src4, TwoHostLab::box_v4).ipv4(TwoHostLab::client_v4, vip4);
  syn.tcp(client_port, vip_port, {.flags = TcpFlags::SYN, .seq = 1000});
  const Bytes frame = syn.build();
  const auto answered = [&](const Bytes& f) { return is_syn_ack_to_client(f, v6, client_mac); };

  // Without sluice-decap the backend has no tunnel for it: no answer.
  ASSERT_TRUE(client.send(frame));
  EXPECT_FALSE(client.wait_for(answered, std::chrono::duration_cast<std::chrono::milliseconds>(silence_window)))
      << "the backend answered an encapsulated SYN without sluice-decap";

  const PinGuard pins{std::string(decap::default_pin_root) + "/" + lab.box_if};
  const std::string mode = v6 ? "native" : "skb";  // both attach modes, one per family
  auto attached = run_command(decap_command(backend, "attach " + lab.box_if + " --mode " + mode + balancer_sources));
  ASSERT_EQ(attached.exit_code, 0) << attached.output;

  ASSERT_TRUE(client.send(frame));
  const auto t0 = std::chrono::steady_clock::now();
  auto reply = client.wait_for(answered, std::chrono::duration_cast<std::chrono::milliseconds>(reply_timeout));
  std::fprintf(stderr, "reply after %ld ms\n", (long)std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
  ASSERT_TRUE(reply) << "no SYN-ACK from the VIP reached the client";

  // One more encapsulation, to an address the backend does not accept.
  PacketBuilder stray;
  stray.eth(client_mac, backend_mac).ipv4(encap_src4, elsewhere4).ipv4(TwoHostLab::client_v4, vip4).tcp(client_port + 1, vip_port);
  const Bytes stray_frame = stray.build();
  ASSERT_TRUE(client.send(stray_frame));

  // The attack: the same SYN, tunnelled by someone who is not a balancer.
  // Decapsulated, the listener would answer it (the inner source is
  // whatever the forger chose); dropped, nothing comes back.
  constexpr std::uint16_t forged_port = client_port + 2;
  PacketBuilder forged;
  forged.eth(client_mac, backend_mac);
  if (v6)
    forged.ipv6(forger6, TwoHostLab::box_v6).ipv6(TwoHostLab::client_v6, vip6);
  else
    forged.ipv4(forger4, TwoHostLab::box_v4).ipv4(TwoHostLab::client_v4, vip4);
  forged.tcp(forged_port, vip_port, {.flags = TcpFlags::SYN, .seq = 2000});
  const Bytes forged_frame = forged.build();
  ASSERT_TRUE(client.send(forged_frame));
  EXPECT_FALSE(client.wait_for([&](const Bytes& f) { return is_syn_ack_to_client(f, v6, client_mac, forged_port); },
                               std::chrono::duration_cast<std::chrono::milliseconds>(silence_window)))
      << "a tunnel from a source that is no balancer's reached the backend's listener";

  // A bad prefix in a refresh is refused naming it, and the set stays as it was.
  auto refused = run_command(decap_command(backend, "attach " + lab.box_if + " --mode " + mode +
                                                        " --source 198.18.0.100 --source 198.18.0.0/33"));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("bad prefix '198.18.0.0/33'"), std::string::npos) << refused.output;

  // status counts exactly the one decapsulated SYN (and the stray one), by bytes too.
  const char* decapsulated = v6 ? "decap_6in6" : "decap_4in4";
  json::object iface;
  for (int attempt = 0; attempt < 20; ++attempt) {  // the stray frame may still be in flight
    auto status = run_command(decap_command(backend, "status " + lab.box_if + " --json"));
    ASSERT_EQ(status.exit_code, 0) << status.output;
    iface = json::parse(status.output).at("interfaces").as_array().at(0).as_object();
    if (counter(iface, "not_for_us", "packets") >= 1 && counter(iface, "foreign_source", "packets") >= 1) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(iface.at("attached").as_bool());
  EXPECT_EQ(iface.at("mode").as_string(), mode);
  EXPECT_EQ(counter(iface, decapsulated, "packets"), 1u);
  EXPECT_EQ(counter(iface, decapsulated, "bytes"), frame.size());
  EXPECT_EQ(counter(iface, "not_for_us", "packets"), 1u);
  EXPECT_EQ(counter(iface, "not_for_us", "bytes"), stray_frame.size());
  EXPECT_EQ(counter(iface, "foreign_source", "packets"), 1u);
  EXPECT_EQ(counter(iface, "foreign_source", "bytes"), forged_frame.size());
  std::vector<std::string> sources;
  for (const auto& source : iface.at("sources").as_array())
    sources.emplace_back(source.as_object().at("prefix").as_string());
  EXPECT_EQ(sources, (std::vector<std::string>{"198.18.0.100/32", "2001:db8::100/128"})) << json::serialize(iface);
  for (const char* malformed : {"outer_bad_header", "outer_bad_checksum", "outer_fragment", "inner_truncated",
                                "inner_bad_header", "inner_length_mismatch", "inner_version_mismatch", "strip_failed"})
    EXPECT_EQ(counter(iface, malformed, "packets"), 0u) << malformed;
  bool lists_own_address = false;
  for (const auto& a : iface.at("addresses").as_array())
    lists_own_address |= a.as_object().at("address").as_string() == (v6 ? TwoHostLab::box_v6 : TwoHostLab::box_v4) &&
                         a.as_object().at("origin").as_string() == "interface";
  EXPECT_TRUE(lists_own_address) << json::serialize(iface);

  auto detached = run_command(decap_command(backend, "detach " + lab.box_if));
  ASSERT_EQ(detached.exit_code, 0) << detached.output;
  auto link = backend.exec("ip link show " + lab.box_if);
  EXPECT_EQ(link.output.find("xdp"), std::string::npos) << link.output;
  EXPECT_FALSE(std::filesystem::exists(pins.dir)) << pins.dir << " still pinned";
  auto after = run_command(decap_command(backend, "status " + lab.box_if + " --json"));
  ASSERT_EQ(after.exit_code, 0) << after.output;
  EXPECT_FALSE(json::parse(after.output).at("interfaces").as_array().at(0).as_object().at("attached").as_bool());
}

INSTANTIATE_TEST_SUITE_P(Family, DecapE2eTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Ipv6InIpv6" : "Ipv4InIpv4"; });

}  // namespace
}  // namespace sluice::test

namespace sluice::test {
namespace {

// Bad input: the error names the field and the value, the exit code says
// failure, and nothing is pinned or attached.
TEST(DecapCommandTest, RefusesBadArgumentsNamingFieldAndValue) {
  SLUICE_REQUIRE_NETNS();
  SLUICE_REQUIRE_BPFFS();
  TwoHostLab lab;
  const Netns& backend = lab.box;
  struct Case {
    std::string args;
    std::string names;  // what the message must contain
  };
  const std::vector<Case> cases = {
      {"attach " + lab.box_if + balancer_sources + " --address 198.18.0.300", "--address '198.18.0.300'"},
      {"attach " + lab.box_if + balancer_sources + " --address 2001:db8::1::2", "--address '2001:db8::1::2'"},
      // fail closed: no source named, no tunnel from anyone
      {"attach " + lab.box_if, "no --source given"},
      {"attach " + lab.box_if + " --source 198.18.0.1/15", "--source: bad prefix '198.18.0.1/15'"},
      {"attach " + lab.box_if + " --source 198.18.0.100 --source 2001:db8::/129", "bad prefix '2001:db8::/129'"},
      {"attach " + lab.box_if + " --source 198.18.0.100 --any-source", "--any-source and --source exclude each other"},
      {"attach " + lab.box_if + " --mode fast", "--mode 'fast'"},
      {"attach sl-nosuch0" + balancer_sources, "IFACE 'sl-nosuch0'"},
      {"attach 'a/b'" + balancer_sources, "IFACE 'a/b'"},
      {"attach averyverylongifname0" + balancer_sources, "IFACE 'averyverylongifname0'"},
      {"attach " + lab.box_if + balancer_sources + " --bpffs /tmp", "--bpffs /tmp"},
      {"status sl-nosuch0", "IFACE 'sl-nosuch0'"},
      {"detach sl-nosuch0", "IFACE 'sl-nosuch0'"},
  };
  for (const auto& c : cases) {
    auto ran = run_command(decap_command(backend, c.args));
    EXPECT_NE(ran.exit_code, 0) << c.args;
    EXPECT_NE(ran.output.find(c.names), std::string::npos) << c.args << " -> " << ran.output;
  }
  EXPECT_FALSE(std::filesystem::exists(std::string(decap::default_pin_root) + "/" + lab.box_if));
  auto link = backend.exec("ip link show " + lab.box_if);
  EXPECT_EQ(link.output.find("xdp"), std::string::npos) << link.output;
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {
namespace {

// Another XDP program on the interface: attach is refused with a reason,
// nothing is pinned, and neither attach nor detach touches that program.
TEST(DecapCommandTest, LeavesAnotherXdpProgramAlone) {
  SLUICE_REQUIRE_NETNS();
  SLUICE_REQUIRE_BPFFS();
  TwoHostLab lab;
  const Netns& backend = lab.box;
  auto foreign = backend.exec("ip link set dev " + lab.box_if + " xdpgeneric obj " + SLUICE_EMPTY_BPF_OBJ + " sec xdp");
  ASSERT_EQ(foreign.exit_code, 0) << foreign.output;
  auto attach = run_command(decap_command(backend, "attach " + lab.box_if + " --mode skb --any-source"));
  EXPECT_NE(attach.exit_code, 0);
  EXPECT_NE(attach.output.find("another XDP program holds " + lab.box_if), std::string::npos) << attach.output;
  EXPECT_FALSE(std::filesystem::exists(std::string(decap::default_pin_root) + "/" + lab.box_if));
  auto detach = run_command(decap_command(backend, "detach " + lab.box_if));
  EXPECT_EQ(detach.exit_code, 0) << detach.output;
  EXPECT_NE(detach.output.find("was not attached"), std::string::npos) << detach.output;
  auto link = backend.exec("ip link show " + lab.box_if);
  EXPECT_NE(link.output.find("xdpgeneric"), std::string::npos) << "the other program is gone: " << link.output;
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {
namespace {

// The XDP program id on ifname as the kernel reports it (0: none), read from
// inside the namespace by the calling thread.
std::uint32_t attached_prog_id(int ifindex) {
  std::uint32_t id = 0;
  if (bpf_xdp_query_id(ifindex, 0, &id) != 0) return 0;
  return id;
}

// The fault: sluice-decap on an interface whose running program no longer
// matches the pins (here: the pins were removed) loads a new one and puts it
// in place. Detaching first and attaching after left a window with no
// decap at all — and none for good when that attach failed. A thread polls
// the interface all through the replacement: it must never see it empty.
TEST(DecapCommandTest, ReplacingARunningProgramNeverLeavesTheInterfaceWithout) {
  SLUICE_REQUIRE_NETNS();
  SLUICE_REQUIRE_BPFFS();
  TwoHostLab lab;
  const Netns& backend = lab.box;
  const PinGuard pins{std::string(decap::default_pin_root) + "/" + lab.box_if};
  for (const char* mode : {"skb", "native"}) {
    SCOPED_TRACE(mode);
    const std::string attach = "attach " + lab.box_if + " --mode " + mode + balancer_sources;
    auto first = run_command(decap_command(backend, attach));
    ASSERT_EQ(first.exit_code, 0) << first.output;
    int ifindex = 0;
    std::uint32_t old_id = 0;
    {
      EnterNetns inside(backend);
      ifindex = static_cast<int>(if_nametoindex(lab.box_if.c_str()));
      old_id = attached_prog_id(ifindex);
    }
    ASSERT_NE(old_id, 0u);
    std::error_code ec;
    std::filesystem::remove_all(pins.dir, ec);  // the running program's maps: now unreachable
    ASSERT_FALSE(ec) << ec.message();

    std::atomic<bool> stop{false};
    std::atomic<int> polls{0}, empty{0};
    std::atomic<std::uint32_t> last{0};
    constexpr int max_polls = 2'000'000;
    constexpr auto max_poll_time = 10s;
    std::thread poller([&] {
      EnterNetns inside(backend);
      const auto deadline = std::chrono::steady_clock::now() + max_poll_time;
      while (!stop && polls < max_polls && std::chrono::steady_clock::now() < deadline) {
        const std::uint32_t id = attached_prog_id(ifindex);
        if (id == 0) ++empty;
        last = id;
        ++polls;
      }
    });
    while (polls == 0) std::this_thread::sleep_for(1ms);
    auto second = run_command(decap_command(backend, attach));
    stop = true;
    poller.join();
    ASSERT_EQ(second.exit_code, 0) << second.output;
    EXPECT_NE(second.output.find("attached sluice-decap"), std::string::npos) << second.output;
    EXPECT_EQ(empty, 0) << "the interface had no XDP program during the replacement (" << polls << " polls)";
    EXPECT_GT(polls, 10);
    EXPECT_NE(last.load(), 0u);
    EXPECT_NE(last.load(), old_id) << "the new program took the old one's place";
    auto status = run_command(decap_command(backend, "status " + lab.box_if + " --json"));
    ASSERT_EQ(status.exit_code, 0) << status.output;
    const auto iface = json::parse(status.output).at("interfaces").as_array().at(0).as_object();
    EXPECT_TRUE(iface.at("attached").as_bool());
    EXPECT_EQ(iface.at("prog_id").to_number<std::uint32_t>(), last.load());
    EXPECT_FALSE(iface.contains("problem")) << json::serialize(iface);

    // A replacement the kernel refuses (another mode) changes nothing: the
    // old program stays, attached and counting.
    const char* other = std::string(mode) == "skb" ? "native" : "skb";
    std::filesystem::remove_all(pins.dir, ec);
    auto refused = run_command(decap_command(backend, "attach " + lab.box_if + " --mode " + other + balancer_sources));
    EXPECT_NE(refused.exit_code, 0) << refused.output;
    {
      EnterNetns inside(backend);
      EXPECT_EQ(attached_prog_id(ifindex), last.load()) << "a refused replacement left " << lab.box_if << " changed";
    }
    auto detached = run_command(decap_command(backend, "detach " + lab.box_if));
    ASSERT_EQ(detached.exit_code, 0) << detached.output;
  }
}

}  // namespace
}  // namespace sluice::test
