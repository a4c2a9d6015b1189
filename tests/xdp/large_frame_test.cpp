// Frames longer than 16 KiB. In skb (generic) mode the kernel linearises a
// frame of up to 64 KiB before XDP sees it (loopback's MTU is 65536), so an
// IPv6 frame whose extension headers put the TCP header past 16 KiB is real.
// The parser once masked offsets to 14 bits: such a header was read 16 KiB
// earlier, inside the attacker's option bytes, and `tcp dport 80 drop` was
// walked around. Here that frame crosses a real loopback in a namespace with
// the product's entry program attached in skb mode, next to a copy aimed at
// port 81, and the counters say which rule saw what.
//
// BPF_PROG_TEST_RUN cannot reproduce it: it puts at most a page minus
// headroom and tailroom (~3.5 KiB on 4 KiB pages) into the linear area a
// non-frags XDP program reads through data/data_end; the rest of a longer
// frame goes to fragments, out of the parser's reach, so the same frame's
// IPv6 payload length runs past the data the program sees and it is dropped
// as malformed (asserted below, so a kernel that changes this is noticed).
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "filter_fixture.hpp"
#include "netns_lab.hpp"
#include "xdp_attachment.hpp"

namespace sluice::test {
namespace {

constexpr auto DROP = SLUICE_VERDICT_DROP;
constexpr auto PASS = SLUICE_VERDICT_PASS;

constexpr std::size_t kDestOptsHeaders = SLUICE_MAX_IPV6_EXTHDRS;  // the longest chain the parser walks
constexpr std::size_t kDestOptsBytes = 2048;                      // Hdr Ext Len 255: the longest header
constexpr std::size_t kOffsetWrap = 16 * 1024;                    // the old 0x3fff mask
constexpr std::uint8_t kSkipUnknownOption = 0x1e;                 // top bits 00: a receiver skips it
constexpr std::uint8_t kMaxOptionData = 255;
// Option bytes the old parser took for a TCP header: doff 5 and flags ACK|ECE, a plausible segment.
constexpr std::uint8_t kForgedTcpByte = 0x50;

// One destination options header of exactly kDestOptsBytes: TLVs of unknown
// type (skipped by receivers) whose data the attacker fills at will.
Bytes attacker_options() {
  Bytes tlvs;
  const std::size_t body = kDestOptsBytes - 2;  // after next header and Hdr Ext Len
  while (tlvs.size() < body) {
    const std::size_t room = body - tlvs.size() - 2;
    const std::uint8_t len = static_cast<std::uint8_t>(room < kMaxOptionData ? room : kMaxOptionData);
    tlvs.push_back(kSkipUnknownOption);
    tlvs.push_back(len);
    tlvs.insert(tlvs.end(), len, kForgedTcpByte);
  }
  return tlvs;
}

// Ethernet / IPv6 / 8 x 2 KiB destination options / TCP to dport: the TCP header at 16,446.
Bytes long_chain_to(std::uint16_t dport) {
  PacketBuilder b = PacketBuilder().eth("00:00:00:00:00:00", "00:00:00:00:00:00").ipv6("2001:db8::1", "2001:db8::2");
  for (std::size_t i = 0; i < kDestOptsHeaders; ++i) b.ipv6_dest_opts({.options = attacker_options(), .pad = false});
  return b.tcp(40000, dport, {.flags = TcpFlags::SYN}).build();
}

constexpr std::size_t kTcpOffset = ETH_HLEN + 40 + kDestOptsHeaders * kDestOptsBytes;

TEST(LargeFrame, TheAttackFramePutsTcpPastTheOldMask) {
  const Bytes frame = long_chain_to(80);
  ASSERT_GT(kTcpOffset, kOffsetWrap);
  ASSERT_GE(frame.size(), kTcpOffset + 20);
  EXPECT_EQ(frame[kTcpOffset + 2], 0);  // dport 80, big endian
  EXPECT_EQ(frame[kTcpOffset + 3], 80);
  // What a 14-bit mask read instead: bytes of the first options header.
  const std::size_t wrapped = kTcpOffset & (kOffsetWrap - 1);
  EXPECT_EQ(wrapped, std::size_t{ETH_HLEN + 40});
  EXPECT_NE((frame[wrapped + 2] << 8 | frame[wrapped + 3]), 80);
}

class LargeFrameTest : public FilterTest {
 protected:
  void drop_tcp_dport_80() {
    filter::FilterRule rule;
    rule.priority = 10;
    rule.protocol = IPPROTO_TCP;
    rule.dst_ports = filter::PortRange{80, 80};
    rule.action = filter::Action::Drop;
    filter::RuleSet set;
    set.rules = {rule};
    replace(set);
  }
};

TEST_F(LargeFrameTest, TestRunCannotShowTheChainAndDropsItAsMalformed) {
  drop_tcp_dport_80();
  const RunResult result = send(long_chain_to(81));
  EXPECT_EQ(result.verdict, XDP_DROP);
  EXPECT_EQ(packets(DROP, SLUICE_REASON_IPV6_BAD_PAYLOAD_LEN), 1u)
      << "BPF_PROG_TEST_RUN now gives XDP more than a page of linear data: test the >16 KiB frame here too";
}

// Sends raw Ethernet frames on an interface of the calling thread's namespace.
class PacketSocket {
 public:
  explicit PacketSocket(const char* ifname) : fd_(socket(AF_PACKET, SOCK_RAW, 0)), ifindex_(if_nametoindex(ifname)) {}
  PacketSocket(const PacketSocket&) = delete;
  PacketSocket& operator=(const PacketSocket&) = delete;
  ~PacketSocket() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0 && ifindex_ != 0; }
  // true when the whole frame went out
  bool send(const Bytes& frame) const {
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = static_cast<int>(ifindex_);
    to.sll_halen = ETH_ALEN;
    const ssize_t sent = sendto(fd_, frame.data(), frame.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to));
    return sent == static_cast<ssize_t>(frame.size());
  }

 private:
  int fd_ = -1;
  unsigned ifindex_ = 0;
};

TEST_F(LargeFrameTest, SkbModeReadsTcpPastSixteenKibAndTheRuleDropsIt) {
  SLUICE_REQUIRE_NETNS();
  drop_tcp_dport_80();
  Netns ns("sl-jumbo");
  const auto mtu = ns.exec("ip link set lo mtu 65536 && ip link set lo up");
  ASSERT_EQ(mtu.exit_code, 0) << mtu.output;
  EnterNetns inside(ns);
  auto attached = dataplane::attach_xdp(plane_->entry_prog_fd(), "lo", dataplane::AttachMode::Skb);
  ASSERT_TRUE(attached) << attached.error().message;
  PacketSocket lo("lo");
  ASSERT_TRUE(lo.ok()) << "AF_PACKET socket on lo: " << std::strerror(errno);

  const std::uint64_t rule_drops = packets(DROP, SLUICE_REASON_FILTER_RULE_DROP);
  const std::uint64_t passed = packets(PASS, SLUICE_REASON_PIPELINE_END);
  ASSERT_TRUE(lo.send(long_chain_to(80))) << std::strerror(errno);
  ASSERT_TRUE(lo.send(long_chain_to(81))) << std::strerror(errno);
  // Loopback delivers through the backlog: wait (bounded) until both frames are counted.
  for (int i = 0; i < 200 && packets(DROP, SLUICE_REASON_FILTER_RULE_DROP) + packets(PASS, SLUICE_REASON_PIPELINE_END) <
                                 rule_drops + passed + 2;
       ++i)
    usleep(5000);
  // Port 80 met its rule; port 81 passed: the parser read the real TCP header both times.
  EXPECT_EQ(packets(DROP, SLUICE_REASON_FILTER_RULE_DROP) - rule_drops, 1u);
  EXPECT_EQ(packets(PASS, SLUICE_REASON_PIPELINE_END) - passed, 1u);

  auto detached = dataplane::detach_xdp("lo");
  EXPECT_TRUE(detached) << detached.error().message;
}

TEST(PreemptRt, AttachIsRefusedWithTheReasonAndNothingAttached) {
  SLUICE_REQUIRE_NETNS();
  auto loaded = dataplane::Dataplane::load({});
  ASSERT_TRUE(loaded) << loaded.error().message;
  Netns ns("sl-rt");
  EnterNetns inside(ns);
  const dataplane::KernelFacts realtime_flag{.realtime = "1", .uname_version = "#1 SMP PREEMPT_DYNAMIC"};
  const dataplane::KernelFacts rt_uname{.realtime = "", .uname_version = "#1 SMP PREEMPT_RT Debian 6.1.0-rt"};
  for (const auto& kernel : {realtime_flag, rt_uname}) {
    auto refused = dataplane::attach_xdp(loaded->entry_prog_fd(), "lo", dataplane::AttachMode::Skb, kernel);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().errnum, EOPNOTSUPP);
    EXPECT_NE(refused.error().message.find("PREEMPT_RT"), std::string::npos) << refused.error().message;
    EXPECT_NE(refused.error().message.find("lo"), std::string::npos) << refused.error().message;
    auto found = dataplane::find_attached("lo", "sluice_entry");
    ASSERT_TRUE(found) << found.error().message;
    EXPECT_FALSE(found->has_value());
  }
  // The same call on an ordinary kernel attaches.
  const dataplane::KernelFacts ordinary{.realtime = "0", .uname_version = "#1 SMP PREEMPT_DYNAMIC"};
  EXPECT_EQ(dataplane::unsupported_kernel(ordinary), "");
  auto attached = dataplane::attach_xdp(loaded->entry_prog_fd(), "lo", dataplane::AttachMode::Skb, ordinary);
  ASSERT_TRUE(attached) << attached.error().message;
  EXPECT_TRUE(dataplane::detach_xdp("lo"));
}

TEST(PreemptRt, RunningKernelIsReadAndThisOneIsSupported) {
  const dataplane::KernelFacts kernel = dataplane::running_kernel();
  EXPECT_FALSE(kernel.uname_version.empty());
  // The reference kernel is not PREEMPT_RT; if it ever is, every attach here is refused.
  EXPECT_EQ(dataplane::unsupported_kernel(kernel), "");
}

}  // namespace
}  // namespace sluice::test
