// The lb stage through the entry program (BPF_PROG_TEST_RUN), its maps
// written directly: verdicts, reason counters, and the bytes that leave,
// parsed field by field with checksums recomputed here.
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <sched.h>

#include <cstring>
#include <map>

#include "filter_model.hpp"
#include "lb_fixture.hpp"

namespace sluice::test {
namespace {

constexpr const char* kClientMac = "02:00:00:00:00:01";
constexpr const char* kBoxMac = "02:00:00:00:00:02";
constexpr const char* kNextHopMac = "02:00:00:00:00:fe";
constexpr std::uint32_t kVip = 7;
constexpr std::uint32_t kBackendA = 11;
constexpr std::uint32_t kBackendB = 12;

std::uint16_t be16(const Bytes& b, std::size_t off) { return static_cast<std::uint16_t>(b[off] << 8 | b[off + 1]); }
std::uint32_t be32(const Bytes& b, std::size_t off) {
  return std::uint32_t{be16(b, off)} << 16 | be16(b, off + 2);
}
Bytes slice(const Bytes& b, std::size_t off, std::size_t len) {
  return Bytes(b.begin() + static_cast<long>(off), b.begin() + static_cast<long>(off + len));
}
Bytes mac_bytes(std::string_view text) {
  const auto m = parse_mac(text);
  return Bytes(m.begin(), m.end());
}
Bytes v4_bytes(std::string_view text) {
  const auto a = parse_ipv4(text);
  return Bytes(a.begin(), a.end());
}
Bytes v6_bytes(std::string_view text) {
  const auto a = parse_ipv6(text);
  return Bytes(a.begin(), a.end());
}

PacketBuilder client() { return PacketBuilder().eth(kClientMac, kBoxMac); }

Bytes tcp_v4(std::string_view dst, std::uint16_t dport, std::uint8_t flags = TcpFlags::SYN,
             std::uint16_t sport = 40000, std::size_t payload = 32, Ipv4Opts ip = {}) {
  return client().ipv4("198.18.2.2", dst, ip).tcp(sport, dport, {.flags = flags}).payload(Bytes(payload, 0xab)).build();
}
Bytes tcp_v6(std::string_view dst, std::uint16_t dport, std::uint8_t flags = TcpFlags::SYN,
             std::uint16_t sport = 40000, std::size_t payload = 32) {
  return client().ipv6("2001:db8:2::2", dst).tcp(sport, dport, {.flags = flags}).payload(Bytes(payload, 0xcd)).build();
}

// The flow hash the stage used, from the frame as the parser reads it.
std::uint32_t hash_of(const Bytes& frame) {
  const auto parsed = filter::model::parse(frame);
  EXPECT_EQ(parsed.reason, filter::model::kParseOk);
  return lb::reference::flow_hash(parsed.pkt);
}

sluice_lb_flow_v4_key flow_v4(const Bytes& frame) {
  const auto parsed = filter::model::parse(frame);
  sluice_lb_flow_v4_key key{};
  key.src = parsed.pkt.src[0];
  key.dst = parsed.pkt.dst[0];
  key.sport = parsed.pkt.sport;
  key.dport = parsed.pkt.dport;
  key.proto = parsed.pkt.ip_proto;
  return key;
}

// A Maglev table of `size` entries all naming `id`.
std::vector<std::uint32_t> table_of(std::uint32_t id, std::uint32_t size = 7) {
  std::vector<std::uint32_t> t(1 + size, id);
  t[0] = size;
  return t;
}

class LbStage : public LbStageTest {
 protected:
  // VIP 198.18.0.10:80/tcp -> one IPv4 backend, or `backend_addr`.
  void one_vip(std::string_view vip_addr = "198.18.0.10", std::uint16_t port = 80,
               std::string_view backend_addr = "198.18.1.1", std::uint32_t flags = 0) {
    maps().put_vip(vip_key(vip_addr, port, IPPROTO_TCP), {kVip, flags});
    maps().put_backend(kBackendA, backend(backend_addr, kVip));
    maps().set_maglev(kVip, table_of(kBackendA));
    maps().set_settings(lb_settings());
  }

  // Outer IPv4 header at `off`: fields and a checksum that verifies.
  void expect_outer_v4(const Bytes& out, std::size_t off, const Bytes& src, std::string_view dst, std::size_t inner_len,
                       std::uint8_t tos) {
    EXPECT_EQ(out[off], 0x45);
    EXPECT_EQ(out[off + 1], tos);
    EXPECT_EQ(be16(out, off + 2), inner_len + 20);
    EXPECT_EQ(be16(out, off + 6), 0x4000) << "DF set, offset 0";
    EXPECT_EQ(out[off + 8], 64);
    EXPECT_EQ(out[off + 9], IPPROTO_IPIP);
    EXPECT_EQ(slice(out, off + 12, 4), src);
    EXPECT_EQ(slice(out, off + 16, 4), v4_bytes(dst));
    EXPECT_EQ(ipv4_checksum(std::span(out).subspan(off, 20)), 0) << "outer IPv4 checksum";
  }
};

TEST_F(LbStage, Ipv4InIpv4) {
  one_vip();
  const Bytes in = tcp_v4("198.18.0.10", 80, TcpFlags::SYN, 40000, 32, {.tos = 0x28});
  const auto r = send(in);
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(packets(SLUICE_VERDICT_TX, SLUICE_REASON_LB_ENCAP), 1u);
  ASSERT_EQ(r.output.size(), in.size() + 20);
  EXPECT_EQ(slice(r.output, 0, 6), mac_bytes(kNextHopMac));
  EXPECT_EQ(slice(r.output, 6, 6), mac_bytes(kBoxMac)) << "source: the MAC the frame was sent to";
  EXPECT_EQ(be16(r.output, 12), ETH_P_IP);
  expect_outer_v4(r.output, 14, v4_bytes("198.18.0.1"), "198.18.1.1", in.size() - 14, 0x28);
  EXPECT_EQ(slice(r.output, 34, in.size() - 14), slice(in, 14, in.size() - 14)) << "inner datagram byte-identical";
  EXPECT_EQ(ipv4_checksum(std::span(r.output).subspan(34, 20)), 0) << "inner IPv4 checksum untouched";

  const auto vip = maps().vip_counter(kVip);
  EXPECT_EQ(vip.packets, 1u);
  EXPECT_EQ(vip.bytes, in.size());
  EXPECT_EQ(vip.new_conns, 1u);
  const auto be = maps().backend_counter(kBackendA);
  EXPECT_EQ(be.packets, 1u);
  EXPECT_EQ(be.new_conns, 1u);
  const auto conn = maps().conn(flow_v4(in));
  ASSERT_TRUE(conn);
  EXPECT_EQ(conn->backend_id, kBackendA);
  EXPECT_EQ(conn->backend_epoch, 1u);
  EXPECT_EQ(conn->vip_id, kVip);
}

TEST_F(LbStage, Ipv6InIpv6) {
  maps().put_vip(vip_key("2001:db8::10", 443, IPPROTO_TCP), {kVip, 0});
  maps().put_backend(kBackendA, backend("2001:db8:1::1", kVip));
  maps().set_maglev(kVip, table_of(kBackendA));
  maps().set_settings(lb_settings());
  const Bytes in = tcp_v6("2001:db8::10", 443);
  const auto r = send(in);
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(packets(SLUICE_VERDICT_TX, SLUICE_REASON_LB_ENCAP), 1u);
  ASSERT_EQ(r.output.size(), in.size() + 40);
  EXPECT_EQ(be16(r.output, 12), ETH_P_IPV6);
  const std::size_t o = 14;
  const std::uint32_t flow = hash_of(in) & 0xfffff;
  EXPECT_EQ(be32(r.output, o), 0x60000000u | flow) << "version 6, class 0, flow label from the flow hash";
  EXPECT_EQ(be16(r.output, o + 4), in.size() - 14);
  EXPECT_EQ(r.output[o + 6], IPPROTO_IPV6);
  EXPECT_EQ(r.output[o + 7], 64);
  EXPECT_EQ(slice(r.output, o + 8, 16), v6_bytes("2001:db8::1"));
  EXPECT_EQ(slice(r.output, o + 24, 16), v6_bytes("2001:db8:1::1"));
  EXPECT_EQ(slice(r.output, o + 40, in.size() - 14), slice(in, 14, in.size() - 14));
}

TEST_F(LbStage, Ipv4InIpv6ForAnIpv6Backend) {
  one_vip("198.18.0.10", 80, "2001:db8:1::7");
  const Bytes in = tcp_v4("198.18.0.10", 80);
  const auto r = send(in);
  ASSERT_EQ(r.verdict, XDP_TX);
  ASSERT_EQ(r.output.size(), in.size() + 40);
  EXPECT_EQ(be16(r.output, 12), ETH_P_IPV6) << "the EtherType names the outer family";
  EXPECT_EQ(be16(r.output, 18), in.size() - 14);
  EXPECT_EQ(r.output[20], IPPROTO_IPIP);
  EXPECT_EQ(slice(r.output, 38, 16), v6_bytes("2001:db8:1::7"));
  EXPECT_EQ(slice(r.output, 54, in.size() - 14), slice(in, 14, in.size() - 14));
}

// Two tags under an outer IPv4 header: the new L2 header (22 bytes) ends where
// the received one (moved 20 bytes in) begins, so its last bytes overwrite the
// received destination MAC, which is also the new source: read before written.
TEST_F(LbStage, TwoVlanTagsUnderAnIpv4OuterHeader) {
  one_vip();
  const Bytes in =
      client().vlan(100, ETH_P_8021AD).vlan(200).ipv4("198.18.2.2", "198.18.0.10").tcp(40000, 80).payload("hi").build();
  const auto r = send(in);
  ASSERT_EQ(r.verdict, XDP_TX);
  ASSERT_EQ(r.output.size(), in.size() + 20);
  EXPECT_EQ(slice(r.output, 0, 6), mac_bytes(kNextHopMac));
  EXPECT_EQ(slice(r.output, 6, 6), mac_bytes(kBoxMac)) << "source: the MAC the frame was sent to";
  EXPECT_EQ(slice(r.output, 12, 8), slice(in, 12, 8)) << "both tags as they came";
  EXPECT_EQ(be16(r.output, 20), ETH_P_IP);
  expect_outer_v4(r.output, 22, v4_bytes("198.18.0.1"), "198.18.1.1", in.size() - 22, 0);
  EXPECT_EQ(slice(r.output, 42, in.size() - 22), slice(in, 22, in.size() - 22)) << "inner datagram byte-identical";
}

TEST_F(LbStage, EntropySourceAndConfiguredSourceMac) {
  one_vip();
  auto s = lb_settings();
  s.flags = SLUICE_LB_F_ENTROPY_SOURCE;
  const auto mac = parse_mac("02:00:00:00:00:aa");
  std::memcpy(s.src_mac, mac.data(), 6);
  maps().set_settings(s);
  const Bytes in = tcp_v4("198.18.0.10", 80);
  const auto r = send(in);
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(slice(r.output, 6, 6), mac_bytes("02:00:00:00:00:aa"));
  const std::uint32_t h = hash_of(in);
  Bytes src = v4_bytes("198.18.0.1");
  src[2] = static_cast<std::uint8_t>(h >> 8);
  src[3] = static_cast<std::uint8_t>(h);
  expect_outer_v4(r.output, 14, src, "198.18.1.1", in.size() - 14, 0);
}

TEST_F(LbStage, PortlessVipCatchesEveryPort) {
  one_vip("198.18.0.10", 0);
  for (std::uint16_t port : {1, 80, 443, 65535}) {
    const auto r = send(tcp_v4("198.18.0.10", port));
    EXPECT_EQ(r.verdict, XDP_TX) << port;
    ASSERT_GE(r.output.size(), 34u);
    EXPECT_EQ(slice(r.output, 30, 4), v4_bytes("198.18.1.1")) << port;
  }
  EXPECT_EQ(packets(SLUICE_VERDICT_TX, SLUICE_REASON_LB_ENCAP), 4u);
}

TEST_F(LbStage, ExactVipBeatsPortless) {
  maps().set_settings(lb_settings());
  maps().put_vip(vip_key("198.18.0.10", 80, IPPROTO_TCP), {1, 0});
  maps().put_vip(vip_key("198.18.0.10", 0, IPPROTO_TCP), {2, 0});
  maps().put_backend(kBackendA, backend("198.18.1.1", 1));
  maps().put_backend(kBackendB, backend("198.18.1.2", 2));
  maps().set_maglev(1, table_of(kBackendA));
  maps().set_maglev(2, table_of(kBackendB));
  auto r = send(tcp_v4("198.18.0.10", 80));
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(slice(r.output, 30, 4), v4_bytes("198.18.1.1")) << "port 80: the exact VIP";
  r = send(tcp_v4("198.18.0.10", 81));
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(slice(r.output, 30, 4), v4_bytes("198.18.1.2")) << "port 81: the port-less VIP";
  EXPECT_EQ(maps().vip_counter(1).packets, 1u);
  EXPECT_EQ(maps().vip_counter(2).packets, 1u);
}

TEST_F(LbStage, NonVipTrafficGoesOnUntouched) {
  one_vip();
  const Bytes other_addr = tcp_v4("198.18.0.11", 80);
  const Bytes other_port = tcp_v4("198.18.0.10", 81);
  const Bytes udp = client().ipv4("198.18.2.2", "198.18.0.10").udp(40000, 80).payload("x").build();
  const Bytes icmp = client().ipv4("198.18.2.2", "198.18.0.10").icmp(8, 0, icmp_echo_rest(1, 1)).build();
  const Bytes v6 = tcp_v6("2001:db8::10", 80);
  for (const Bytes* frame : {&other_addr, &other_port, &udp, &icmp, &v6}) {
    const auto r = send(*frame);
    EXPECT_EQ(r.verdict, XDP_PASS);
    EXPECT_EQ(r.output, *frame) << "untouched";
  }
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END), 5u);
  EXPECT_EQ(maps().vip_counter(kVip).packets, 0u);
}

TEST_F(LbStage, SettingsOfAnotherLayoutPassEverythingOn) {
  one_vip();
  auto s = lb_settings();
  s.version = SLUICE_LB_SETTINGS_VERSION + 1;
  maps().set_settings(s);
  const Bytes in = tcp_v4("198.18.0.10", 80);
  auto r = send(in);
  EXPECT_EQ(r.verdict, XDP_PASS);
  EXPECT_EQ(r.output, in);
  maps().set_settings(sluice_lb_settings{});  // never written
  r = send(in);
  EXPECT_EQ(r.verdict, XDP_PASS);
  EXPECT_EQ(maps().vip_counter(kVip).packets, 0u);
}

TEST_F(LbStage, L2DsrRewritesOnlyTheMacs) {
  one_vip("198.18.0.10", 80, "198.18.0.10", SLUICE_LB_VIP_F_L2_DSR);
  maps().put_backend(kBackendA, backend("198.18.0.10", kVip, 1, SLUICE_LB_BACKEND_UP, "02:00:00:00:0b:07"));
  const Bytes in = tcp_v4("198.18.0.10", 80);
  const auto r = send(in);
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(packets(SLUICE_VERDICT_TX, SLUICE_REASON_LB_L2_DSR), 1u);
  ASSERT_EQ(r.output.size(), in.size());
  EXPECT_EQ(slice(r.output, 0, 6), mac_bytes("02:00:00:00:0b:07"));
  EXPECT_EQ(slice(r.output, 6, 6), mac_bytes(kBoxMac)) << "this port's MAC: the switch must not learn the client's";
  EXPECT_EQ(slice(r.output, 12, in.size() - 12), slice(in, 12, in.size() - 12));
  EXPECT_EQ(maps().backend_counter(kBackendA).packets, 1u);
  // a backend without a MAC cannot be reached on the segment
  maps().put_backend(kBackendA, backend("198.18.0.10", kVip, 1, SLUICE_LB_BACKEND_UP, "00:00:00:00:00:00"));
  EXPECT_EQ(send(in).verdict, XDP_DROP);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_NO_BACKEND), 1u);
}

TEST_F(LbStage, TooBigIpv4AnswersFragmentationNeeded) {
  one_vip();
  auto s = lb_settings();
  s.mtu = 1500;
  maps().set_settings(s);
  for (bool df : {true, false}) {
    // 1490-byte datagram + 20 outer > 1500
    const Bytes in = client().ipv4("198.18.2.2", "198.18.0.10", {.dont_fragment = df})
                         .tcp(40000, 80, {.flags = TcpFlags::ACK})
                         .payload(Bytes(1490 - 40, 0x5a))
                         .build();
    const auto r = send(in);
    ASSERT_EQ(r.verdict, XDP_TX) << "df " << df;
    constexpr std::size_t quote = 548;
    ASSERT_EQ(r.output.size(), 14 + 20 + 8 + quote);
    EXPECT_EQ(slice(r.output, 0, 6), mac_bytes(kClientMac)) << "back to the client";
    EXPECT_EQ(slice(r.output, 6, 6), mac_bytes(kBoxMac));
    EXPECT_EQ(be16(r.output, 12), ETH_P_IP);
    EXPECT_EQ(r.output[14], 0x45);
    EXPECT_EQ(be16(r.output, 16), 20 + 8 + quote);
    EXPECT_EQ(r.output[23], IPPROTO_ICMP);
    EXPECT_EQ(slice(r.output, 26, 4), v4_bytes("198.18.0.10")) << "from the VIP";
    EXPECT_EQ(slice(r.output, 30, 4), v4_bytes("198.18.2.2"));
    EXPECT_EQ(ipv4_checksum(std::span(r.output).subspan(14, 20)), 0);
    EXPECT_EQ(r.output[34], 3);
    EXPECT_EQ(r.output[35], 4);
    EXPECT_EQ(be16(r.output, 38), 0);
    EXPECT_EQ(be16(r.output, 40), 1480) << "egress MTU minus the outer header";
    EXPECT_EQ(internet_checksum(std::span(r.output).subspan(34)), 0) << "ICMP checksum";
    EXPECT_EQ(slice(r.output, 42, quote), slice(in, 14, quote)) << "quotes the client's datagram";
  }
  EXPECT_EQ(packets(SLUICE_VERDICT_TX, SLUICE_REASON_LB_TOO_BIG), 2u);
  EXPECT_EQ(maps().backend_counter(kBackendA).packets, 0u) << "nothing reached the backend";
  // one byte less fits
  const Bytes fits = client().ipv4("198.18.2.2", "198.18.0.10").tcp(40000, 80, {.flags = TcpFlags::ACK})
                         .payload(Bytes(1480 - 40, 0x5a)).build();
  EXPECT_EQ(send(fits).output.size(), fits.size() + 20);
  EXPECT_EQ(packets(SLUICE_VERDICT_TX, SLUICE_REASON_LB_ENCAP), 1u);
}

TEST_F(LbStage, TooBigIpv6AnswersPacketTooBigWithin1280) {
  maps().put_vip(vip_key("2001:db8::10", 443, IPPROTO_TCP), {kVip, 0});
  maps().put_backend(kBackendA, backend("2001:db8:1::1", kVip));
  maps().set_maglev(kVip, table_of(kBackendA));
  auto s = lb_settings();
  s.mtu = 1500;
  maps().set_settings(s);
  const Bytes in = tcp_v6("2001:db8::10", 443, TcpFlags::ACK, 40000, 1480 - 60);  // datagram 1480 + 40 > 1500
  const auto r = send(in);
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(packets(SLUICE_VERDICT_TX, SLUICE_REASON_LB_TOO_BIG), 1u);
  constexpr std::size_t quote = 1280 - 48;
  ASSERT_EQ(r.output.size(), 14 + 40 + 8 + quote);
  EXPECT_EQ(slice(r.output, 0, 6), mac_bytes(kClientMac));
  EXPECT_EQ(r.output[14] >> 4, 6);
  EXPECT_EQ(be16(r.output, 18), 8 + quote);
  EXPECT_EQ(r.output[20], IPPROTO_ICMPV6);
  EXPECT_EQ(slice(r.output, 22, 16), v6_bytes("2001:db8::10"));
  EXPECT_EQ(slice(r.output, 38, 16), v6_bytes("2001:db8:2::2"));
  EXPECT_EQ(r.output[54], 2);
  EXPECT_EQ(r.output[55], 0);
  EXPECT_EQ(be32(r.output, 58), 1460u);
  // ICMPv6 checksum over the pseudo header (addresses, length, next header) and the message
  Bytes pseudo = slice(r.output, 22, 32);
  const std::uint32_t len = 8 + quote;
  for (int shift : {24, 16, 8, 0}) pseudo.push_back(static_cast<std::uint8_t>(len >> shift));
  pseudo.insert(pseudo.end(), {0, 0, 0, IPPROTO_ICMPV6});
  EXPECT_EQ(internet_checksum(std::span(r.output).subspan(54), checksum_add(pseudo)), 0) << "ICMPv6 checksum";
  EXPECT_EQ(slice(r.output, 62, quote), slice(in, 14, quote));
}

// Keeps the calling thread on the CPU it runs on while in scope: the answer
// bucket is per CPU, and a test that drains it must drain one.
class PinnedToOneCpu {
 public:
  PinnedToOneCpu() {
    pinned_ = sched_getaffinity(0, sizeof before_, &before_) == 0;
    const int cpu = sched_getcpu();
    cpu_set_t one;
    CPU_ZERO(&one);
    if (cpu >= 0) CPU_SET(cpu, &one);
    pinned_ = pinned_ && cpu >= 0 && sched_setaffinity(0, sizeof one, &one) == 0;
  }
  PinnedToOneCpu(const PinnedToOneCpu&) = delete;
  PinnedToOneCpu& operator=(const PinnedToOneCpu&) = delete;
  ~PinnedToOneCpu() {
    if (pinned_) sched_setaffinity(0, sizeof before_, &before_);
  }
  bool ok() const { return pinned_; }

 private:
  cpu_set_t before_{};
  bool pinned_ = false;
};

// The attack: a flood of oversized datagrams to a VIP, each of which would
// earn an ICMP answer: the box becomes a reflector (and, with forged
// sources, aims it at a victim). Past the bucket, no answer.
TEST_F(LbStage, TooBigAnswersStopPastTheBurst) {
  one_vip();
  auto s = lb_settings();
  s.mtu = 1500;
  s.icmp_rate = 1;  // one answer a second refills: none during the burst below
  s.icmp_burst = 3;
  maps().set_settings(s);
  const Bytes in = tcp_v4("198.18.0.10", 80, TcpFlags::ACK, 40000, 1490 - 40);
  constexpr int kSent = 8;
  PinnedToOneCpu pin;
  ASSERT_TRUE(pin.ok()) << "pin the thread to one CPU";
  int answered = 0;
  for (int i = 0; i < kSent; ++i) {
    const auto r = send(in);
    if (i < static_cast<int>(s.icmp_burst)) {
      EXPECT_EQ(r.verdict, XDP_TX) << "answer " << i << " is within the burst";
    } else {
      EXPECT_EQ(r.verdict, XDP_DROP) << "answer " << i << " is past the burst";
    }
    answered += r.verdict == XDP_TX;
  }
  EXPECT_EQ(answered, static_cast<int>(s.icmp_burst));
  EXPECT_EQ(packets(SLUICE_VERDICT_TX, SLUICE_REASON_LB_TOO_BIG), s.icmp_burst);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_TOO_BIG), kSent - s.icmp_burst);
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_ICMP_RATE_LIMITED), kSent - s.icmp_burst);
  EXPECT_EQ(maps().backend_counter(kBackendA).packets, 0u) << "nothing reached the backend";
}

TEST_F(LbStage, TooBigIsNeverAnsweredWithARateOfZero) {
  one_vip();
  auto s = lb_settings();
  s.mtu = 1500;
  s.icmp_rate = 0;
  maps().set_settings(s);
  EXPECT_EQ(send(tcp_v4("198.18.0.10", 80, TcpFlags::ACK, 40000, 1490 - 40)).verdict, XDP_DROP);
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_ICMP_RATE_LIMITED), 1u);
}

// Sources no answer may go to: a forger's way to aim answers at a subnet,
// the box itself, or a group.
TEST_F(LbStage, TooBigFromAMartianSourceIsNotAnswered) {
  one_vip();
  constexpr std::uint32_t kVip6 = kVip + 1;
  maps().put_vip(vip_key("2001:db8::10", 80, IPPROTO_TCP), {kVip6, 0});
  maps().put_backend(kBackendB, backend("2001:db8:1::1", kVip6));
  maps().set_maglev(kVip6, table_of(kBackendB));
  auto s = lb_settings();
  s.mtu = 1500;
  maps().set_settings(s);
  std::uint64_t sent = 0;
  for (const char* src : {"0.0.0.0", "0.1.2.3", "127.0.0.1", "127.255.0.9", "224.0.0.1", "239.1.1.1",
                          "255.255.255.255", "169.254.7.7"}) {
    const Bytes in = client().ipv4(src, "198.18.0.10").tcp(40000, 80, {.flags = TcpFlags::ACK})
                         .payload(Bytes(1490 - 40, 0x5a)).build();
    EXPECT_EQ(send(in).verdict, XDP_DROP) << src;
    ++sent;
  }
  for (const char* src : {"::", "::1", "ff02::1", "ff0e::5", "fe80::1", "febf::1"}) {
    const Bytes in = client().ipv6(src, "2001:db8::10").tcp(40000, 80, {.flags = TcpFlags::ACK})
                         .payload(Bytes(1480 - 60, 0xcd)).build();
    EXPECT_EQ(send(in).verdict, XDP_DROP) << src;
    ++sent;
  }
  EXPECT_EQ(packets(SLUICE_VERDICT_TX, SLUICE_REASON_LB_TOO_BIG), 0u);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_TOO_BIG), sent);
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_ICMP_MARTIAN), sent);
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_ICMP_RATE_LIMITED), 0u) << "no token spent on a martian";
  // neighbours of the martian ranges are answered
  for (const char* src : {"1.0.0.1", "126.255.255.255", "128.0.0.1", "223.255.255.254", "169.253.0.1", "198.18.2.2"}) {
    const Bytes in = client().ipv4(src, "198.18.0.10").tcp(40000, 80, {.flags = TcpFlags::ACK})
                         .payload(Bytes(1490 - 40, 0x5a)).build();
    EXPECT_EQ(send(in).verdict, XDP_TX) << src;
  }
  for (const char* src : {"::2", "fec0::1", "fe7f::1", "2001:db8:2::2"}) {
    const Bytes in = client().ipv6(src, "2001:db8::10").tcp(40000, 80, {.flags = TcpFlags::ACK})
                         .payload(Bytes(1480 - 60, 0xcd)).build();
    EXPECT_EQ(send(in).verdict, XDP_TX) << src;
  }
}

TEST_F(LbStage, FragmentsToAVipAreDropped) {
  one_vip();
  maps().put_vip(vip_key("198.18.0.20", 0, IPPROTO_UDP), {kVip, 0});
  // first fragment: has ports, matches the port VIP
  const Bytes first = client().ipv4("198.18.2.2", "198.18.0.10", {.more_fragments = true})
                          .tcp(40000, 80).payload(Bytes(64, 1)).build();
  // a later fragment to the port-less VIP's address
  const Bytes later = client().ipv4("198.18.2.2", "198.18.0.20", {.frag_offset_bytes = 64, .protocol_override = IPPROTO_UDP})
                          .payload(Bytes(64, 2)).build();
  // a later fragment to the port VIP's address carries no port: it matches no VIP
  const Bytes later_port = client().ipv4("198.18.2.2", "198.18.0.10", {.frag_offset_bytes = 64, .protocol_override = IPPROTO_TCP})
                               .payload(Bytes(64, 3)).build();
  EXPECT_EQ(send(first).verdict, XDP_DROP);
  EXPECT_EQ(send(later).verdict, XDP_DROP);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_FRAGMENT), 2u);
  const auto r = send(later_port);
  EXPECT_EQ(r.verdict, XDP_PASS);
  EXPECT_EQ(r.output, later_port);
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FRAGMENT), 1u);
  EXPECT_EQ(maps().conn_count_v4(), 0u) << "no connection for a fragment";
}

TEST_F(LbStage, VlanTagsAreKept) {
  one_vip("198.18.0.10", 80, "2001:db8:1::7");
  const Bytes one = client().vlan(100).ipv4("198.18.2.2", "198.18.0.10").tcp(40000, 80).payload("hi").build();
  const Bytes two = client().vlan(100, ETH_P_8021AD).vlan(200).ipv4("198.18.2.2", "198.18.0.10").tcp(40000, 80).payload("hi").build();
  auto r = send(one);
  ASSERT_EQ(r.verdict, XDP_TX);
  ASSERT_EQ(r.output.size(), one.size() + 40);
  EXPECT_EQ(slice(r.output, 12, 4), slice(one, 12, 4)) << "the tag as it came";
  EXPECT_EQ(be16(r.output, 16), ETH_P_IPV6);
  EXPECT_EQ(r.output[18 + 6], IPPROTO_IPIP);
  EXPECT_EQ(slice(r.output, 58, one.size() - 18), slice(one, 18, one.size() - 18));
  r = send(two);
  ASSERT_EQ(r.verdict, XDP_TX);
  ASSERT_EQ(r.output.size(), two.size() + 40);
  EXPECT_EQ(slice(r.output, 12, 8), slice(two, 12, 8)) << "both tags as they came";
  EXPECT_EQ(be16(r.output, 20), ETH_P_IPV6);
  EXPECT_EQ(slice(r.output, 62, two.size() - 22), slice(two, 22, two.size() - 22));
}

TEST_F(LbStage, EstablishedFlowKeepsItsBackendWhenTheTableChanges) {
  one_vip();
  maps().put_backend(kBackendB, backend("198.18.1.2", kVip));
  const Bytes syn = tcp_v4("198.18.0.10", 80, TcpFlags::SYN);
  const Bytes ack = tcp_v4("198.18.0.10", 80, TcpFlags::ACK);
  ASSERT_EQ(slice(send(syn).output, 30, 4), v4_bytes("198.18.1.1"));
  maps().set_maglev(kVip, table_of(kBackendB));  // the pool changed
  EXPECT_EQ(slice(send(ack).output, 30, 4), v4_bytes("198.18.1.1")) << "established flow stays";
  EXPECT_EQ(slice(send(tcp_v4("198.18.0.10", 80, TcpFlags::SYN, 40001)).output, 30, 4), v4_bytes("198.18.1.2"))
      << "a new flow takes the new table";
  // draining: the flow stays; a SYN on the same 5-tuple (a new connection) does not
  maps().put_backend(kBackendA, backend("198.18.1.1", kVip, 1, SLUICE_LB_BACKEND_DRAINING));
  EXPECT_EQ(slice(send(ack).output, 30, 4), v4_bytes("198.18.1.1"));
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_RESELECTED), 0u);
  EXPECT_EQ(slice(send(syn).output, 30, 4), v4_bytes("198.18.1.2"));
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_RESELECTED), 1u);
}

// The fault: a backend's health check fails. A UDP flow (QUIC, a DNS
// client's socket) never ends, so "keep it until it is idle" kept it on a
// dead backend for good; it picks a live one. A TCP connection on the same
// backend stays (draining), and an operator's drain keeps UDP too.
TEST_F(LbStage, DownBackendMovesUdpFlowsAndKeepsTcpConnections) {
  maps().put_vip(vip_key("198.18.0.10", 443, IPPROTO_UDP), {kVip, 0});
  maps().put_vip(vip_key("198.18.0.10", 443, IPPROTO_TCP), {kVip, 0});
  maps().put_backend(kBackendA, backend("198.18.1.1", kVip));
  maps().put_backend(kBackendB, backend("198.18.1.2", kVip));
  maps().set_maglev(kVip, table_of(kBackendA));
  maps().set_settings(lb_settings());
  const Bytes quic = client().ipv4("198.18.2.2", "198.18.0.10").udp(40000, 443).payload("quic").build();
  const Bytes syn = tcp_v4("198.18.0.10", 443, TcpFlags::SYN);
  const Bytes ack = tcp_v4("198.18.0.10", 443, TcpFlags::ACK);
  ASSERT_EQ(slice(send(quic).output, 30, 4), v4_bytes("198.18.1.1"));
  ASSERT_EQ(slice(send(syn).output, 30, 4), v4_bytes("198.18.1.1"));

  // an operator's drain: both stay
  maps().put_backend(kBackendA, backend("198.18.1.1", kVip, 1, SLUICE_LB_BACKEND_DRAINING));
  maps().set_maglev(kVip, table_of(kBackendB));
  EXPECT_EQ(slice(send(quic).output, 30, 4), v4_bytes("198.18.1.1")) << "drained: the UDP flow stays";
  EXPECT_EQ(slice(send(ack).output, 30, 4), v4_bytes("198.18.1.1"));
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_RESELECTED), 0u);

  // the check failed: UDP moves to a live backend (and stays there), TCP drains
  maps().put_backend(kBackendA, backend("198.18.1.1", kVip, 1, SLUICE_LB_BACKEND_DOWN));
  EXPECT_EQ(slice(send(quic).output, 30, 4), v4_bytes("198.18.1.2")) << "the UDP flow left the dead backend";
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_RESELECTED), 1u);
  EXPECT_EQ(maps().conn(flow_v4(quic))->backend_id, kBackendB);
  EXPECT_EQ(slice(send(ack).output, 30, 4), v4_bytes("198.18.1.1")) << "the TCP connection drains";
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_RESELECTED), 1u);
  // the old backend comes back: the UDP flow stays where it went
  maps().put_backend(kBackendA, backend("198.18.1.1", kVip));
  EXPECT_EQ(slice(send(quic).output, 30, 4), v4_bytes("198.18.1.2"));

  // no live backend left: the UDP flow is dropped rather than sent to the dead one
  maps().put_conn(flow_v4(quic), {coarse_now_ns(), kBackendA, 1, kVip, 0});
  maps().put_backend(kBackendA, backend("198.18.1.1", kVip, 1, SLUICE_LB_BACKEND_DOWN));
  maps().put_backend(kBackendB, backend("198.18.1.2", kVip, 1, SLUICE_LB_BACKEND_DOWN));
  EXPECT_EQ(send(quic).verdict, XDP_DROP);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_NO_BACKEND), 1u);
}

TEST_F(LbStage, FreedOrReusedBackendMakesTheFlowPickAgain) {
  one_vip();
  maps().put_backend(kBackendB, backend("198.18.1.2", kVip));
  const Bytes syn = tcp_v4("198.18.0.10", 80, TcpFlags::SYN);
  const Bytes ack = tcp_v4("198.18.0.10", 80, TcpFlags::ACK);
  ASSERT_EQ(slice(send(syn).output, 30, 4), v4_bytes("198.18.1.1"));
  maps().set_maglev(kVip, table_of(kBackendB));
  // the slot freed: even a mid-flow packet picks again
  maps().put_backend(kBackendA, backend("198.18.1.1", kVip, 1, SLUICE_LB_BACKEND_FREE));
  EXPECT_EQ(slice(send(ack).output, 30, 4), v4_bytes("198.18.1.2"));
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_RESELECTED), 1u);
  EXPECT_EQ(maps().conn(flow_v4(ack))->backend_id, kBackendB);
  // the slot reused by another backend (epoch bumped): the SYN takes the table's owner, not the slot's new tenant
  maps().put_conn(flow_v4(syn), {coarse_now_ns(), kBackendA, 1, kVip, 0});
  maps().put_backend(kBackendA, backend("198.18.1.9", kVip, 2));
  EXPECT_EQ(slice(send(syn).output, 30, 4), v4_bytes("198.18.1.2"));
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_RESELECTED), 2u);
  // an entry of another VIP's slot picks again too
  maps().put_conn(flow_v4(syn), {coarse_now_ns(), kBackendB, 1, kVip + 1, 0});
  EXPECT_EQ(slice(send(ack).output, 30, 4), v4_bytes("198.18.1.2"));
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_RESELECTED), 3u);
  EXPECT_EQ(maps().conn(flow_v4(ack))->vip_id, kVip);
}

TEST_F(LbStage, IdleEntryPicksAgainAndLastSeenIsRefreshedAtMostOnceASecond) {
  one_vip();
  auto s = lb_settings();
  s.conn_timeout_s = 5;
  maps().set_settings(s);
  maps().put_backend(kBackendB, backend("198.18.1.2", kVip));
  const Bytes ack = tcp_v4("198.18.0.10", 80, TcpFlags::ACK);
  const auto key = flow_v4(ack);
  const std::uint64_t now = coarse_now_ns();
  ASSERT_GT(now, 10'000'000'000ull) << "the box has been up for more than 10 s";
  // idle past the timeout: picks again (the table names A)
  maps().put_conn(key, {now - 6'000'000'000ull, kBackendB, 1, kVip, 0});
  EXPECT_EQ(slice(send(ack).output, 30, 4), v4_bytes("198.18.1.1"));
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_RESELECTED), 1u);
  // seen 2 s ago: holds, and last_seen is brought forward
  maps().put_conn(key, {now - 2'000'000'000ull, kBackendB, 1, kVip, 0});
  EXPECT_EQ(slice(send(ack).output, 30, 4), v4_bytes("198.18.1.2"));
  EXPECT_GE(maps().conn(key)->last_seen_ns, now - 100'000'000ull);
  // seen within the second: not rewritten
  std::uint64_t fresh = coarse_now_ns() - 200'000'000ull;
  maps().put_conn(key, {fresh, kBackendB, 1, kVip, 0});
  send(ack);
  EXPECT_EQ(maps().conn(key)->last_seen_ns, fresh) << "no write within the second";
  // written by another CPU whose clock is ahead of this one's (a tick): neither idle nor rewritten
  s.conn_timeout_s = 1;
  maps().set_settings(s);
  fresh = coarse_now_ns() + 500'000'000ull;
  maps().put_conn(key, {fresh, kBackendB, 1, kVip, 0});
  EXPECT_EQ(slice(send(ack).output, 30, 4), v4_bytes("198.18.1.2")) << "a last_seen ahead of the clock is not idle";
  EXPECT_EQ(maps().conn(key)->last_seen_ns, fresh);
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_RESELECTED), 1u);
}

TEST_F(LbStage, NoLiveBackendDrops) {
  one_vip();
  const Bytes in = tcp_v4("198.18.0.10", 80);
  maps().set_maglev(kVip, table_of(SLUICE_LB_NO_BACKEND));
  EXPECT_EQ(send(in).verdict, XDP_DROP);
  maps().set_maglev(kVip, table_of(kBackendA));
  maps().put_backend(kBackendA, backend("198.18.1.1", kVip, 1, SLUICE_LB_BACKEND_DOWN));
  EXPECT_EQ(send(in).verdict, XDP_DROP) << "a DOWN backend takes no new flow";
  maps().put_backend(kBackendA, backend("198.18.1.1", kVip + 1));
  EXPECT_EQ(send(in).verdict, XDP_DROP) << "a backend of another VIP";
  maps().put_backend(kBackendA, backend("198.18.1.1", kVip));
  maps().del_maglev(kVip);
  EXPECT_EQ(send(in).verdict, XDP_DROP) << "no table";
  maps().set_maglev(kVip, table_of(kBackendA));
  maps().set_settings(lb_settings("", "2001:db8::1"));
  EXPECT_EQ(send(in).verdict, XDP_DROP) << "no IPv4 encapsulation source";
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_NO_BACKEND), 5u);
  // an IPv6 client cannot be carried to an IPv4 backend
  maps().set_settings(lb_settings());
  maps().put_vip(vip_key("2001:db8::10", 80, IPPROTO_TCP), {kVip, 0});
  EXPECT_EQ(send(tcp_v6("2001:db8::10", 80)).verdict, XDP_DROP);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_NO_BACKEND), 6u);
  // only the pick with a live backend (dropped for want of a source address) was remembered
  EXPECT_EQ(maps().conn_count_v4(), 1u);
}

TEST_F(LbStage, ForgedMapStateFailsClosed) {
  one_vip();
  const Bytes in = tcp_v4("198.18.0.10", 80);
  struct Forged {
    const char* what;
    std::vector<std::uint32_t> table;
  };
  std::vector<std::uint32_t> too_large = table_of(kBackendA);
  too_large[0] = SLUICE_LB_MAGLEV_SIZE_MAX + 2;
  std::vector<std::uint32_t> past_array = table_of(kBackendA, 7);
  past_array[0] = 1000;  // claims more entries than the array holds
  std::vector<std::uint32_t> bad_id = table_of(SLUICE_LB_MAX_BACKENDS);
  std::vector<std::uint32_t> huge_id = table_of(0xffffffffu);
  const std::vector<Forged> forged = {
      {"size 0", {0, kBackendA, kBackendA}},
      {"size > max", too_large},
      {"size past the array", past_array},
      {"backend id = max", bad_id},
      {"backend id 2^32-1", huge_id},
  };
  std::uint64_t expected = 0;
  for (const auto& f : forged) {
    maps().set_maglev(kVip, f.table);
    const auto r = send(in);
    EXPECT_EQ(r.verdict, XDP_DROP) << f.what;
    ++expected;
    EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE), expected) << f.what;
    EXPECT_EQ(maps().event(SLUICE_LB_EVENT_CORRUPT_TABLE), expected) << f.what;
  }
  // a VIP id past the tables
  maps().set_maglev(kVip, table_of(kBackendA));
  maps().put_vip(vip_key("198.18.0.10", 80, IPPROTO_TCP), {SLUICE_LB_MAX_VIPS, 0});
  EXPECT_EQ(send(in).verdict, XDP_DROP);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE), ++expected);
  // an egress no one writes
  maps().put_vip(vip_key("198.18.0.10", 80, IPPROTO_TCP), {kVip, 0});
  auto s = lb_settings();
  s.egress = SLUICE_LB_EGRESS_COUNT;
  maps().set_settings(s);
  EXPECT_EQ(send(in).verdict, XDP_DROP);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE), ++expected);
  // a connection entry naming an id past lb_backends is not followed: Maglev picks
  maps().set_settings(lb_settings());
  maps().put_conn(flow_v4(in), {coarse_now_ns(), 0xffffffffu, 1, kVip, 0});
  const auto r = send(in);
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(slice(r.output, 30, 4), v4_bytes("198.18.1.1"));
  EXPECT_EQ(maps().event(SLUICE_LB_EVENT_RESELECTED), 1u);
}

TEST_F(LbStage, TruncatedAndMalformedFramesNeverReachTheBalancer) {
  one_vip();
  const Bytes good = tcp_v4("198.18.0.10", 80);
  const std::vector<std::pair<Bytes, std::uint32_t>> bad = {
      {Bytes(good.begin(), good.begin() + 14 + 20 + 10), SLUICE_REASON_IPV4_BAD_TOTLEN},
      {client().ipv4("198.18.2.2", "198.18.0.10").tcp(40000, 80).truncate_to(14 + 20 + 10).build(),
       SLUICE_REASON_IPV4_BAD_TOTLEN},
      {client().ipv4("198.18.2.2", "198.18.0.10").raw(Bytes(10, 0)).build(), SLUICE_REASON_PIPELINE_END},
      {client().ipv4("198.18.2.2", "198.18.0.10", {.protocol_override = IPPROTO_TCP}).raw(Bytes(10, 0)).build(),
       SLUICE_REASON_TRUNC_TCP},
      {client().ipv4("198.18.2.2", "198.18.0.10", {.ihl_override = 4}).tcp(40000, 80).build(), SLUICE_REASON_IPV4_BAD_IHL},
      {client().ipv4("198.18.2.2", "198.18.0.10").tcp(40000, 80, {.doff_override = 4}).build(), SLUICE_REASON_TCP_BAD_DOFF},
      {client().ipv4("198.18.2.2", "198.18.0.10", {.protocol_override = IPPROTO_UDP}).raw(Bytes(4, 0)).build(),
       SLUICE_REASON_TRUNC_UDP},
      {Bytes(good.begin(), good.begin() + 20), SLUICE_REASON_TRUNC_IPV4},
  };
  std::map<std::uint32_t, std::uint64_t> dropped;
  for (const auto& [frame, reason] : bad) {
    const auto r = send(frame);
    if (reason == SLUICE_REASON_PIPELINE_END) {
      EXPECT_EQ(r.verdict, XDP_PASS) << "IPv4 protocol 255: not TCP/UDP";
      continue;
    }
    EXPECT_EQ(r.verdict, XDP_DROP) << reason;
    EXPECT_EQ(packets(SLUICE_VERDICT_DROP, reason), ++dropped[reason]) << reason;
  }
  EXPECT_EQ(maps().vip_counter(kVip).packets, 0u);
  EXPECT_EQ(maps().conn_count_v4(), 0u);
}

TEST_F(LbStage, EgressRedirectAndForward) {
  one_vip();
  auto s = lb_settings();
  s.egress = SLUICE_LB_EGRESS_REDIRECT;
  maps().set_settings(s);
  const Bytes in = tcp_v4("198.18.0.10", 80);
  EXPECT_EQ(send(in).verdict, XDP_DROP) << "no egress port";
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_ENCAP_FAILED), 1u);
  maps().set_egress_port(1);  // loopback
  auto r = send(in);
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(packets(SLUICE_VERDICT_REDIRECT, SLUICE_REASON_LB_ENCAP), 1u);
  EXPECT_EQ(r.output.size(), in.size() + 20);

  s.egress = SLUICE_LB_EGRESS_FORWARD;
  maps().set_settings(s);
  r = send(in);
  EXPECT_EQ(r.verdict, XDP_PASS) << "the forward stage (a pass-through today) ends the pipeline";
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_LB_FORWARD), 1u);
  ASSERT_EQ(r.output.size(), in.size() + 20);
  expect_outer_v4(r.output, 14, v4_bytes("198.18.0.1"), "198.18.1.1", in.size() - 14, 0);
}

}  // namespace
}  // namespace sluice::test
