// Unit tests of the packet builder against independent facts: hand-derived
// frames (bytes computed with Python's struct and confirmed by tcpdump -vvv),
// a checksum verifier and frame walker written here from the RFCs (sharing no
// code with the builder), and, when installed, tcpdump itself.
#include "packet_builder.hpp"
#include "privileges.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <netinet/in.h>
#include <string>
#include <unistd.h>

using namespace sluice::test;

namespace {

// ---- independent reference code ------------------------------------------

uint16_t be16(const Bytes& f, std::size_t at) { return static_cast<uint16_t>(f.at(at) << 8 | f.at(at + 1)); }
uint32_t be32(const Bytes& f, std::size_t at) {
  return uint32_t{be16(f, at)} << 16 | be16(f, at + 2);
}

// RFC 1071 sum, folded, not inverted: 0xFFFF over data with a right checksum.
uint32_t ref_sum(const uint8_t* p, std::size_t n, uint32_t acc = 0) {
  for (std::size_t i = 0; i < n; ++i) acc += (i % 2 == 0) ? uint32_t{p[i]} << 8 : p[i];
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >> 16);
  return acc;
}

struct Walk {
  std::size_t l3 = 0;  // offset of the IP header
  int version = 0;     // 4 or 6
  std::size_t l4 = 0;  // offset of the upper-layer header
  std::size_t l4_len = 0;
  uint8_t proto = 0;
  std::vector<uint8_t> src, final_dst;
  std::vector<std::size_t> ext_offsets;  // IPv6 extension headers
};

// Walks Ethernet, any VLAN tags, IPv4 or IPv6 with its extension chain, using
// the length fields in the frame.
Walk walk(const Bytes& f) {
  Walk w;
  std::size_t off = 12;
  uint16_t type = be16(f, off);
  while (type == 0x8100 || type == 0x88a8) {
    off += 4;
    type = be16(f, off);
  }
  off += 2;
  w.l3 = off;
  if (type == 0x0800) {
    w.version = 4;
    std::size_t ihl = (f.at(off) & 0xf) * 4u;
    w.proto = f.at(off + 9);
    w.src.assign(f.begin() + off + 12, f.begin() + off + 16);
    w.final_dst.assign(f.begin() + off + 16, f.begin() + off + 20);
    w.l4 = off + ihl;
    w.l4_len = be16(f, off + 2) - ihl;
  } else if (type == 0x86dd) {
    w.version = 6;
    uint8_t nh = f.at(off + 6);
    std::size_t end = off + 40 + be16(f, off + 4);
    w.src.assign(f.begin() + off + 8, f.begin() + off + 24);
    w.final_dst.assign(f.begin() + off + 24, f.begin() + off + 40);
    std::size_t cur = off + 40;
    while (nh == 0 || nh == 43 || nh == 44 || nh == 51 || nh == 60) {
      w.ext_offsets.push_back(cur);
      std::size_t len;
      if (nh == 44) len = 8;
      else if (nh == 51) len = (f.at(cur + 1) + 2u) * 4;
      else len = (f.at(cur + 1) + 1u) * 8;
      if (nh == 43 && f.at(cur + 2) == 0 && f.at(cur + 3) > 0) {
        std::size_t n = f.at(cur + 1) / 2;
        std::size_t last = cur + 8 + 16 * (n - 1);
        w.final_dst.assign(f.begin() + last, f.begin() + last + 16);
      }
      nh = f.at(cur);
      cur += len;
    }
    w.proto = nh;
    w.l4 = cur;
    w.l4_len = end - cur;
  }
  return w;
}

// True if the upper-layer checksum (TCP/UDP/ICMPv6 with pseudo header, ICMP
// without) verifies.
bool l4_checksum_ok(const Bytes& f) {
  Walk w = walk(f);
  uint32_t acc = 0;
  if (w.proto != 1) {  // ICMPv4 has no pseudo header
    acc = ref_sum(w.src.data(), w.src.size(), acc);
    acc = ref_sum(w.final_dst.data(), w.final_dst.size(), acc);
    acc += w.proto;
    acc += static_cast<uint32_t>(w.l4_len);  // fits in 16 bits here
  }
  acc = ref_sum(f.data() + w.l4, w.l4_len, acc);
  return acc == 0xffff;
}

bool ipv4_header_ok(const Bytes& f, std::size_t l3) {
  std::size_t ihl = (f.at(l3) & 0xf) * 4u;
  return ref_sum(f.data() + l3, ihl) == 0xffff;
}

const char* kSrcMac = "02:00:00:00:00:01";
const char* kDstMac = "02:00:00:00:00:02";

// ---- hand-derived frames ---------------------------------------------------
// Generated with Python struct + an RFC 1071 checksum, and verified with
// `tcpdump -nn -vvv -e -r`: "cksum 0x6e6e (correct)" / "[udp sum ok]".

// 02:..:01 > 02:..:02 IPv4 198.18.0.1.40000 > 198.18.1.1.80 id 7 DF ttl 64
// SYN seq 1 win 65535 options [mss 1460].
const Bytes kIpv4TcpSyn = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x2c, 0x00, 0x07, 0x40, 0x00, 0x40, 0x06, 0xad, 0x9e, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12,
    0x01, 0x01, 0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02,
    0xff, 0xff, 0x6e, 0x6e, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
};

// IPv6 2001:db8::1.5353 > 2001:db8::2.53 flowlabel 0x12345 hlim 64, UDP "abc".
const Bytes kIpv6Udp = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x60, 0x01,
    0x23, 0x45, 0x00, 0x0b, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x14, 0xe9, 0x00, 0x35, 0x00, 0x0b, 0xca, 0xe2, 0x61, 0x62,
    0x63,
};

TEST(PacketBuilderKnown, Ipv4TcpSynMatchesHandDerivedBytes) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv4("198.18.0.1", "198.18.1.1", {.ttl = 64, .id = 7, .dont_fragment = true})
                .tcp(40000, 80, {.flags = TcpFlags::SYN, .seq = 1, .window = 65535, .options = {2, 4, 5, 0xb4}})
                .build();
  EXPECT_EQ(f, kIpv4TcpSyn);
}

TEST(PacketBuilderKnown, Ipv6UdpMatchesHandDerivedBytes) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv6("2001:db8::1", "2001:db8::2", {.hop_limit = 64, .flow_label = 0x12345})
                .udp(5353, 53)
                .payload("abc")
                .build();
  EXPECT_EQ(f, kIpv6Udp);
}

TEST(PacketBuilderKnown, ReferenceVerifierRejectsCorruptedFrames) {
  // The verifiers used below must be able to fail.
  EXPECT_TRUE(l4_checksum_ok(kIpv4TcpSyn));
  EXPECT_TRUE(ipv4_header_ok(kIpv4TcpSyn, 14));
  EXPECT_TRUE(l4_checksum_ok(kIpv6Udp));
  Bytes bad = kIpv4TcpSyn;
  bad[14 + 8] ^= 1;  // TTL: header checksum breaks, TCP's does not
  EXPECT_FALSE(ipv4_header_ok(bad, 14));
  EXPECT_TRUE(l4_checksum_ok(bad));
  bad = kIpv4TcpSyn;
  bad[14 + 12] ^= 0x10;  // source address: both break
  EXPECT_FALSE(ipv4_header_ok(bad, 14));
  EXPECT_FALSE(l4_checksum_ok(bad));
  bad = kIpv6Udp;
  bad.back() ^= 0x20;
  EXPECT_FALSE(l4_checksum_ok(bad));
}

// ---- helpers ----------------------------------------------------------------

TEST(PacketBuilderHelpers, ParseMac) {
  EXPECT_EQ(parse_mac("02:1a:FF:00:9c:01"), (Mac{0x02, 0x1a, 0xff, 0x00, 0x9c, 0x01}));
  EXPECT_EQ(parse_mac("02-1a-ff-00-9c-01"), (Mac{0x02, 0x1a, 0xff, 0x00, 0x9c, 0x01}));
  EXPECT_THROW(parse_mac("02:1a:ff:00:9c"), std::invalid_argument);
  EXPECT_THROW(parse_mac("02:1a:ff:00:9c:0g"), std::invalid_argument);
  EXPECT_THROW(parse_mac("02:1a:ff:00:9c:011"), std::invalid_argument);
  EXPECT_THROW(PacketBuilder().ipv4("1.2.3", "1.2.3.4"), std::invalid_argument);
  EXPECT_THROW(PacketBuilder().ipv6("2001:db8::1", "2001:db8:::2"), std::invalid_argument);
}

TEST(PacketBuilderHelpers, Ipv4ChecksumOfKnownHeader) {
  // RFC 1071 style example header (Wikipedia "IPv4 header checksum"):
  // 4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7 -> checksum b861.
  Bytes h = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
             0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(ipv4_checksum(h), 0);
  h[10] = h[11] = 0;
  EXPECT_EQ(ipv4_checksum(h), 0xb861);
  // Odd length: the last byte is padded with zero.
  Bytes odd = {0x01, 0x02, 0x03};
  EXPECT_EQ(internet_checksum(odd), static_cast<uint16_t>(~(0x0102 + 0x0300)));
}

// ---- checksums ---------------------------------------------------------------

std::vector<std::pair<std::string, Bytes>> checksum_cases() {
  std::vector<std::pair<std::string, Bytes>> c;
  auto v4 = [] { return PacketBuilder().eth(kSrcMac, kDstMac); };
  c.emplace_back("v4 tcp", v4().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2, {.flags = TcpFlags::ACK | TcpFlags::PSH, .seq = 0xdeadbeef, .ack = 42}).payload("GET / HTTP/1.1\r\n").build());
  c.emplace_back("v4 tcp opts odd payload", v4().ipv4("10.0.0.1", "10.0.0.2", {.options = {0x94, 0x04, 0, 0}}).tcp(1, 2, {.options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0}}).payload("x").build());
  c.emplace_back("v4 udp", v4().vlan(7).ipv4("192.0.2.1", "192.0.2.200").udp(53, 5353).payload("abcde").build());
  c.emplace_back("v4 udp empty", v4().ipv4("192.0.2.1", "192.0.2.200").udp(1, 1).build());
  c.emplace_back("v4 icmp echo", v4().ipv4("192.0.2.1", "192.0.2.2").icmp(8, 0, icmp_echo_rest(0x1234, 1)).payload("ping!").build());
  c.emplace_back("v4 icmp error", v4().ipv4("192.0.2.1", "192.0.2.2").icmp(3, 4, 1400).ipv4("192.0.2.2", "198.51.100.1").tcp(80, 1234).build());
  auto v6 = [] { return PacketBuilder().eth(kSrcMac, kDstMac).ipv6("2001:db8::a", "2001:db8:1::b"); };
  c.emplace_back("v6 tcp", v6().tcp(443, 50000, {.flags = TcpFlags::SYN | TcpFlags::ACK}).build());
  c.emplace_back("v6 udp odd", v6().udp(1, 2).payload("odd").build());
  c.emplace_back("v6 icmpv6 echo", v6().icmpv6(128, 0, icmp_echo_rest(1, 2)).payload("ping6").build());
  c.emplace_back("v6 hbh+dst udp", v6().ipv6_hop_by_hop().ipv6_dest_opts({.options = {0x1e, 0x02, 0xaa, 0xbb}}).udp(9, 9).payload("z").build());
  c.emplace_back("v6 rh0 tcp", v6().ipv6_routing({"2001:db8:2::1", "2001:db8:3::1"}).tcp(1, 2).payload("via").build());
  c.emplace_back("v6 frag+ah icmpv6", v6().ipv6_fragment(0, true, 77).ipv6_ah().icmpv6(1, 4).payload("err").build());
  c.emplace_back("qinq v6 udp", PacketBuilder().eth(kSrcMac, kDstMac).vlan(10, ETH_P_8021AD).vlan(20).ipv6("::1", "::2").udp(7, 7).payload("q").build());
  return c;
}

TEST(PacketBuilderChecksum, AllLayersVerifyWithIndependentVerifier) {
  for (const auto& [name, f] : checksum_cases()) {
    SCOPED_TRACE(name);
    Walk w = walk(f);
    ASSERT_NE(w.version, 0);
    if (w.version == 4) {
      EXPECT_TRUE(ipv4_header_ok(f, w.l3));
    }
    EXPECT_TRUE(l4_checksum_ok(f));
    EXPECT_EQ(w.l4 + w.l4_len, f.size()) << "lengths must cover exactly the frame";
  }
}

TEST(PacketBuilderChecksum, InnerPacketOfIcmpErrorHasItsOwnChecksums) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv4("192.0.2.1", "192.0.2.2")
                .icmp(3, 4, 1400)
                .ipv4("192.0.2.2", "198.51.100.1")
                .tcp(80, 1234)
                .build();
  // Re-frame the inner packet behind an Ethernet header and verify it alone.
  Bytes inner(f.begin(), f.begin() + 14);
  inner.insert(inner.end(), f.begin() + 14 + 20 + 8, f.end());
  EXPECT_TRUE(ipv4_header_ok(inner, 14));
  EXPECT_TRUE(l4_checksum_ok(inner));
  EXPECT_EQ(f[14 + 9], IPPROTO_ICMP);
  EXPECT_EQ(inner[14 + 9], IPPROTO_TCP);
}

TEST(PacketBuilderChecksum, RoutingHeaderFinalDestinationInPseudoHeader) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv6("2001:db8::a", "2001:db8:2::1")
                .ipv6_routing({"2001:db8:3::1", "2001:db8:4::1"})
                .udp(1, 2)
                .payload("payload")
                .build();
  Walk w = walk(f);
  const Ipv6Addr last = parse_ipv6("2001:db8:4::1");
  EXPECT_EQ(w.final_dst, std::vector<uint8_t>(last.begin(), last.end()));
  EXPECT_TRUE(l4_checksum_ok(f));
  // With segments_left = 0 the IPv6 destination is final.
  Bytes g = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv6("2001:db8::a", "2001:db8:2::1")
                .ipv6_routing({"2001:db8:3::1"}, {.segments_left = 0})
                .udp(1, 2)
                .payload("payload")
                .build();
  EXPECT_TRUE(l4_checksum_ok(g));
  // And the two checksums differ, so the final destination mattered.
  EXPECT_NE(be16(f, walk(f).l4 + 6), be16(g, walk(g).l4 + 6));
}

TEST(PacketBuilderChecksum, UdpComputedZeroIsSentAsAllOnes) {
  auto base = PacketBuilder().eth(kSrcMac, kDstMac).ipv4("10.1.1.1", "10.2.2.2").udp(1000, 2000);
  Bytes f0 = PacketBuilder(base).payload({0, 0}).build();
  uint16_t c0 = be16(f0, 14 + 20 + 6);
  // A payload word equal to the checksum of the zero-payload datagram makes
  // the one's-complement sum 0xFFFF, i.e. a computed checksum of 0.
  Bytes f = PacketBuilder(base).payload({static_cast<uint8_t>(c0 >> 8), static_cast<uint8_t>(c0)}).build();
  EXPECT_EQ(be16(f, 14 + 20 + 6), 0xffff);
  EXPECT_TRUE(l4_checksum_ok(f));
}

// ---- lengths -------------------------------------------------------------------

TEST(PacketBuilderLengths, Ipv4TotalLengthWithOptionsAndVlans) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .vlan(100)
                .vlan(200)
                .ipv4("10.0.0.1", "10.0.0.2", {.options = {0x01, 0x01, 0x01, 0x07, 0x07}})  // 5 bytes -> 8
                .udp(1, 2)
                .payload("0123456789")
                .build();
  const std::size_t l3 = 14 + 8;
  EXPECT_EQ(f.size(), l3 + 28 + 8 + 10);
  EXPECT_EQ(f[l3] & 0xf, 7);  // 28 / 4
  EXPECT_EQ(be16(f, l3 + 2), 28 + 8 + 10);
  EXPECT_EQ(be16(f, l3 + 28 + 4), 8 + 10);  // UDP length
  // Option bytes as given, padded with zeros.
  EXPECT_EQ(Bytes(f.begin() + l3 + 20, f.begin() + l3 + 28), (Bytes{1, 1, 1, 7, 7, 0, 0, 0}));
  EXPECT_TRUE(ipv4_header_ok(f, l3));
  EXPECT_TRUE(l4_checksum_ok(f));
}

TEST(PacketBuilderLengths, Ipv6PayloadLengthWithAndWithoutExtensionHeaders) {
  Bytes plain = PacketBuilder().eth(kSrcMac, kDstMac).ipv6("::1", "::2").udp(1, 2).payload("abcd").build();
  EXPECT_EQ(be16(plain, 14 + 4), 12);
  EXPECT_EQ(plain[14 + 6], IPPROTO_UDP);
  EXPECT_EQ(be16(plain, 14 + 40 + 4), 12);

  Bytes ext = PacketBuilder()
                  .eth(kSrcMac, kDstMac)
                  .ipv6("::1", "::2")
                  .ipv6_hop_by_hop()                                     // 8
                  .ipv6_dest_opts({.options = Bytes{0x1e, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}})  // 2+12 -> 16
                  .udp(1, 2)
                  .payload("abcd")
                  .build();
  EXPECT_EQ(be16(ext, 14 + 4), 8 + 16 + 12);
  EXPECT_EQ(be16(ext, 14 + 40 + 24 + 4), 12);  // UDP length excludes ext headers
  EXPECT_EQ(ext.size(), 14u + 40 + 24 + 12);
  EXPECT_TRUE(l4_checksum_ok(ext));
}

TEST(PacketBuilderLengths, ThreeVlanTagsOuterFirst) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .vlan(200, ETH_P_8021AD, 5)
                .vlan(100, ETH_P_8021Q, 3, true)
                .vlan(4095)
                .ipv4("10.0.0.1", "10.0.0.2")
                .icmp(8, 0)
                .build();
  EXPECT_EQ(be16(f, 12), 0x88a8);
  EXPECT_EQ(be16(f, 14), 5 << 13 | 200);
  EXPECT_EQ(be16(f, 16), 0x8100);
  EXPECT_EQ(be16(f, 18), 3 << 13 | 1 << 12 | 100);
  EXPECT_EQ(be16(f, 20), 0x8100);
  EXPECT_EQ(be16(f, 22), 4095);
  EXPECT_EQ(be16(f, 24), 0x0800);
  EXPECT_EQ(f[26], 0x45);
  EXPECT_EQ(f.size(), 26u + 20 + 8);
  EXPECT_TRUE(l4_checksum_ok(f));
}

// ---- IPv6 extension headers ----------------------------------------------------

TEST(PacketBuilderIpv6Ext, ChainingAndHdrExtLen) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv6("2001:db8::1", "2001:db8::2")
                .ipv6_hop_by_hop({.options = {0x05, 0x02, 0x00, 0x00}})  // router alert, 2+4 -> 8
                .ipv6_routing({"2001:db8::10", "2001:db8::20"})          // 8+32 = 40
                .ipv6_fragment(1208, true, 0xabcdef01)                   // 8
                .ipv6_dest_opts()                                        // 8
                .ipv6_ah({.spi = 0x01020304, .seq = 9})                  // 24
                .tcp(1, 2)
                .build();
  const std::size_t ip = 14, hbh = ip + 40, rh = hbh + 8, fr = rh + 40, dst = fr + 8, ah = dst + 8,
                    tcp = ah + 24;
  EXPECT_EQ(be16(f, 12), 0x86dd);
  EXPECT_EQ(f[ip + 6], 0);  // -> hop-by-hop
  EXPECT_EQ(be16(f, ip + 4), tcp + 20 - hbh);
  // Hop-by-hop: next, len 0, router alert, PadN(2 bytes) to 8.
  EXPECT_EQ(Bytes(f.begin() + hbh, f.begin() + rh), (Bytes{43, 0, 5, 2, 0, 0, 1, 0}));
  // Routing type 0: next, len 4, type 0, segments left 2, reserved, addresses.
  EXPECT_EQ(Bytes(f.begin() + rh, f.begin() + rh + 8), (Bytes{44, 4, 0, 2, 0, 0, 0, 0}));
  EXPECT_EQ(f[rh + 8 + 15], 0x10);
  EXPECT_EQ(f[rh + 8 + 16 + 15], 0x20);
  // Fragment: next, reserved, offset 1208 | M, id.
  EXPECT_EQ(f[fr], 60);
  EXPECT_EQ(f[fr + 1], 0);
  EXPECT_EQ(be16(f, fr + 2), 1208 | 1);
  EXPECT_EQ(be32(f, fr + 4), 0xabcdef01u);
  // Destination options: next, len 0, PadN(4) filling 6 bytes.
  EXPECT_EQ(Bytes(f.begin() + dst, f.begin() + ah), (Bytes{51, 0, 1, 4, 0, 0, 0, 0}));
  // AH: next, payload len (24/4 - 2 = 4), reserved, SPI, seq, 12 ICV bytes.
  EXPECT_EQ(f[ah], IPPROTO_TCP);
  EXPECT_EQ(f[ah + 1], 4);
  EXPECT_EQ(be32(f, ah + 4), 0x01020304u);
  EXPECT_EQ(be32(f, ah + 8), 9u);
  EXPECT_EQ(f.size(), tcp + 20);
  Walk w = walk(f);
  EXPECT_EQ(w.ext_offsets, (std::vector<std::size_t>{hbh, rh, fr, dst, ah}));
  EXPECT_EQ(w.l4, tcp);
  EXPECT_TRUE(l4_checksum_ok(f));
}

TEST(PacketBuilderIpv6Ext, Pad1AndNoNextHeader) {
  // 2 + 5 option bytes leave one byte: Pad1.
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv6("::1", "::2")
                .ipv6_dest_opts({.options = {0x1e, 3, 1, 2, 3}})
                .build();
  EXPECT_EQ(f[14 + 6], 60);
  EXPECT_EQ(Bytes(f.begin() + 54, f.end()), (Bytes{59, 0, 0x1e, 3, 1, 2, 3, 0}));
  EXPECT_EQ(be16(f, 14 + 4), 8);
  // Without padding the header is short and the length field rounds up.
  Bytes g = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv6("::1", "::2")
                .ipv6_hop_by_hop({.options = {0x1e, 1, 9}, .pad = false})
                .build();
  EXPECT_EQ(Bytes(g.begin() + 54, g.end()), (Bytes{59, 0, 0x1e, 1, 9}));
}

TEST(PacketBuilderIpv6Ext, NonFirstFragmentCarriesRawBytes) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv6("2001:db8::1", "2001:db8::2")
                .ipv6_fragment(8, false, 5, {.next_header_override = IPPROTO_TCP})
                .raw({1, 2, 3, 4, 5, 6, 7, 8})
                .build();
  EXPECT_EQ(f[14 + 6], IPPROTO_FRAGMENT);
  EXPECT_EQ(f[54], IPPROTO_TCP);
  EXPECT_EQ(be16(f, 56), 8);  // offset 8, M = 0
  EXPECT_EQ(be16(f, 14 + 4), 16);
  EXPECT_THROW(PacketBuilder().ipv6_fragment(12, false, 1), std::invalid_argument);
}

// ---- IPv4 fragments --------------------------------------------------------------

TEST(PacketBuilderIpv4, FragmentFields) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv4("10.0.0.1", "10.0.0.2", {.id = 0x4242, .more_fragments = true, .frag_offset_bytes = 1480, .protocol_override = IPPROTO_UDP})
                .raw({0xde, 0xad})
                .build();
  EXPECT_EQ(be16(f, 14 + 4), 0x4242);
  EXPECT_EQ(be16(f, 14 + 6), 0x2000 | 185);
  EXPECT_EQ(f[14 + 9], IPPROTO_UDP);
  EXPECT_TRUE(ipv4_header_ok(f, 14));
  Bytes df = PacketBuilder().eth(kSrcMac, kDstMac).ipv4("10.0.0.1", "10.0.0.2", {.dont_fragment = true, .reserved_flag = true}).udp(1, 2).build();
  EXPECT_EQ(be16(df, 14 + 6), 0x8000 | 0x4000);
  EXPECT_THROW(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2", {.frag_offset_bytes = 4}), std::invalid_argument);
}

// ---- overrides -------------------------------------------------------------------

TEST(PacketBuilderOverrides, Ipv4HeaderFields) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv4("10.0.0.1", "10.0.0.2",
                      {.tos = 0xb8, .ihl_override = 4, .total_length_override = 9999, .version_override = 6, .protocol_override = 253})
                .udp(1, 2)
                .build();
  EXPECT_EQ(f[14], 0x64);  // version 6, IHL 4
  EXPECT_EQ(f[15], 0xb8);
  EXPECT_EQ(be16(f, 16), 9999);
  EXPECT_EQ(f[14 + 9], 253);
  EXPECT_EQ(f.size(), 14u + 20 + 8);  // the bytes emitted do not follow the overrides
  // The checksum is still computed, over the 20 bytes emitted.
  EXPECT_EQ(ref_sum(f.data() + 14, 20), 0xffff);
  Bytes c = PacketBuilder().eth(kSrcMac, kDstMac).ipv4("10.0.0.1", "10.0.0.2", {.checksum_override = 0xbeef}).udp(1, 2).build();
  EXPECT_EQ(be16(c, 14 + 10), 0xbeef);
  EXPECT_FALSE(ipv4_header_ok(c, 14));
}

TEST(PacketBuilderOverrides, Ipv6HeaderFields) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv6("::1", "::2", {.hop_limit = 1, .traffic_class = 0xab, .flow_label = 0xfffff, .payload_length_override = 1000, .version_override = 4, .next_header_override = 200})
                .udp(1, 2)
                .build();
  EXPECT_EQ(be32(f, 14), 0x4u << 28 | 0xabu << 20 | 0xfffff);
  EXPECT_EQ(be16(f, 18), 1000);
  EXPECT_EQ(f[20], 200);
  EXPECT_EQ(f[21], 1);
  EXPECT_EQ(f.size(), 14u + 40 + 8);
}

TEST(PacketBuilderOverrides, ExtensionHeaderLengthsAndNextHeaders) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv6("::1", "::2")
                .ipv6_hop_by_hop({.hdr_ext_len_override = 200, .next_header_override = 17})
                .ipv6_routing({"::3"}, {.routing_type = 4, .segments_left = 7, .hdr_ext_len_override = 99})
                .ipv6_ah({.icv = {}, .payload_len_override = 0})
                .tcp(1, 2)
                .build();
  EXPECT_EQ(f[54], 17);
  EXPECT_EQ(f[55], 200);
  EXPECT_EQ(f[62], IPPROTO_AH);
  EXPECT_EQ(f[63], 99);
  EXPECT_EQ(f[64], 4);
  EXPECT_EQ(f[65], 7);
  const std::size_t ah = 62 + 24;
  EXPECT_EQ(f[ah], IPPROTO_TCP);
  EXPECT_EQ(f[ah + 1], 0);
  EXPECT_EQ(f.size(), ah + 12 + 20);
  EXPECT_EQ(be16(f, 18), f.size() - 54);  // payload length still from real bytes
}

TEST(PacketBuilderOverrides, RoutingTypeData) {
  Bytes f = PacketBuilder()
                .eth(kSrcMac, kDstMac)
                .ipv6("::1", "::2")
                .ipv6_routing({}, {.routing_type = 253, .segments_left = 1, .type_data = Bytes{9, 9, 9}})
                .build();
  EXPECT_EQ(Bytes(f.begin() + 54, f.end()), (Bytes{59, 0, 253, 1, 9, 9, 9, 0}));
}

TEST(PacketBuilderOverrides, L4Fields) {
  auto base = PacketBuilder().eth(kSrcMac, kDstMac).ipv4("10.0.0.1", "10.0.0.2");
  Bytes t = PacketBuilder(base)
                .tcp(1, 2, {.flags = TcpFlags::FIN | TcpFlags::URG | TcpFlags::ECE | TcpFlags::CWR, .urg_ptr = 3, .doff_override = 15, .checksum_override = 0x1234, .reserved_bits = 0xf})
                .build();
  const std::size_t l4 = 14 + 20;
  EXPECT_EQ(t[l4 + 12], 0xff);  // doff 15, reserved 0xf
  EXPECT_EQ(t[l4 + 13], 0x01 | 0x20 | 0x40 | 0x80);
  EXPECT_EQ(be16(t, l4 + 16), 0x1234);
  EXPECT_EQ(be16(t, l4 + 18), 3);
  EXPECT_EQ(t.size(), l4 + 20);

  Bytes u = PacketBuilder(base).udp(1, 2, {.length_override = 4, .checksum_override = 0}).payload("abc").build();
  EXPECT_EQ(be16(u, l4 + 4), 4);
  EXPECT_EQ(be16(u, l4 + 6), 0);
  EXPECT_EQ(be16(u, 14 + 2), 20 + 8 + 3);

  Bytes i = PacketBuilder(base).icmp(0, 0, 0, {.checksum_override = 0x0bad}).build();
  EXPECT_EQ(be16(i, l4 + 2), 0x0bad);
  EXPECT_FALSE(l4_checksum_ok(i));
}

TEST(PacketBuilderOverrides, EthertypeAndRawArpFrame) {
  // ARP request: a non-IP frame with an explicit EtherType and raw payload.
  Bytes arp = {0, 1, 8, 0, 6, 4, 0, 1};
  Bytes f = PacketBuilder().eth(kSrcMac, "ff:ff:ff:ff:ff:ff", ETH_P_ARP).payload(arp).build();
  EXPECT_EQ(Bytes(f.begin(), f.begin() + 6), Bytes(6, 0xff));  // destination first on the wire
  EXPECT_EQ(Bytes(f.begin() + 6, f.begin() + 12), (Bytes{2, 0, 0, 0, 0, 1}));
  EXPECT_EQ(be16(f, 12), 0x0806);
  EXPECT_EQ(Bytes(f.begin() + 14, f.end()), arp);
  // Override wins over inference.
  Bytes g = PacketBuilder().eth(kSrcMac, kDstMac, 0x1234).ipv4("1.1.1.1", "2.2.2.2").build();
  EXPECT_EQ(be16(g, 12), 0x1234);
  EXPECT_EQ(g[14 + 9], 255);  // nothing after IPv4: protocol 255
  Bytes v = PacketBuilder().eth(kSrcMac, kDstMac).vlan(1, ETH_P_8021Q, 0, false, ETH_P_ARP).raw(arp).build();
  EXPECT_EQ(be16(v, 16), 0x0806);
  // Nothing to infer from: refuse rather than guess.
  EXPECT_THROW(PacketBuilder().eth(kSrcMac, kDstMac).payload("x").build(), std::logic_error);
}

// ---- truncation and padding ---------------------------------------------------------

TEST(PacketBuilderFinal, TruncateAfterChecksums) {
  auto b = PacketBuilder().eth(kSrcMac, kDstMac).ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).payload("data");
  Bytes full = b.build();
  Bytes cut = PacketBuilder(b).truncate_to(14 + 20 + 10).build();
  ASSERT_EQ(cut.size(), 14u + 20 + 10);
  EXPECT_TRUE(std::equal(cut.begin(), cut.end(), full.begin()));
  EXPECT_EQ(be16(cut, 16), 20 + 20 + 4);  // total length of the full packet
  EXPECT_EQ(PacketBuilder(b).truncate_to(1000).build(), full);
  EXPECT_EQ(PacketBuilder(b).truncate_to(0).build().size(), 0u);
}

TEST(PacketBuilderFinal, PadToAddsZeroTrailerOutsideIpLength) {
  auto b = PacketBuilder().eth(kSrcMac, kDstMac).ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).payload("a");
  Bytes full = b.build();
  ASSERT_EQ(full.size(), 14u + 20 + 8 + 1);
  Bytes padded = PacketBuilder(b).pad_to(60).build();
  ASSERT_EQ(padded.size(), 60u);
  EXPECT_TRUE(std::equal(full.begin(), full.end(), padded.begin()));
  EXPECT_TRUE(std::all_of(padded.begin() + full.size(), padded.end(), [](uint8_t x) { return x == 0; }));
  EXPECT_EQ(be16(padded, 16), 29);
  EXPECT_EQ(be16(padded, 14 + 20 + 4), 9);
  EXPECT_TRUE(l4_checksum_ok(padded));  // walker uses IP total length
  EXPECT_EQ(PacketBuilder(b).pad_to(10).build(), full);
  Bytes trailer = {0xca, 0xfe};
  Bytes t = PacketBuilder(b).trailer(trailer).pad_to(50).build();
  EXPECT_EQ(t[full.size()], 0xca);
  EXPECT_EQ(t[full.size() + 1], 0xfe);
  EXPECT_EQ(t.size(), 50u);
  EXPECT_EQ(be16(t, 16), 29);
  // pad then truncate
  EXPECT_EQ(PacketBuilder(b).pad_to(60).truncate_to(50).build().size(), 50u);
}

TEST(PacketBuilderFinal, BuilderIsReusable) {
  auto b = PacketBuilder().eth(kSrcMac, kDstMac).ipv6("::1", "::2");
  Bytes t = PacketBuilder(b).tcp(1, 2).build();
  Bytes u = PacketBuilder(b).udp(1, 2).build();
  EXPECT_EQ(t[20], IPPROTO_TCP);
  EXPECT_EQ(u[20], IPPROTO_UDP);
  EXPECT_EQ(b.build(), b.build());
  EXPECT_EQ(b.build()[20], IPPROTO_NONE);
}

// ---- tcpdump cross-check -------------------------------------------------------------

TEST(PacketBuilderTcpdump, TcpdumpFindsNoBadChecksums) {
  if (std::system("command -v tcpdump >/dev/null 2>&1") != 0) SLUICE_SKIP_OR_FAIL("skipped: tcpdump not installed");
  char path[] = "/tmp/sluice_packet_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  auto cases = checksum_cases();
  {
    std::ofstream out(path, std::ios::binary);
    auto u32 = [&](uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
    auto u16 = [&](uint16_t v) { out.write(reinterpret_cast<const char*>(&v), 2); };
    u32(0xa1b2c3d4); u16(2); u16(4); u32(0); u32(0); u32(65535); u32(1);  // pcap, Ethernet
    for (const auto& [name, f] : cases) {
      u32(0); u32(0); u32(static_cast<uint32_t>(f.size())); u32(static_cast<uint32_t>(f.size()));
      out.write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(f.size()));
    }
  }
  std::string cmd = std::string("tcpdump -nn -vvv -r ") + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string text;
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof buf, p)) text.append(buf, n);
  pclose(p);
  std::remove(path);
  SCOPED_TRACE(text);
  EXPECT_EQ(text.find("bad "), std::string::npos);
  EXPECT_EQ(text.find("incorrect"), std::string::npos);
  // tcpdump did check: it says so for the frames it verifies.
  EXPECT_NE(text.find("(correct)"), std::string::npos);
  EXPECT_NE(text.find("sum ok"), std::string::npos);
}

}  // namespace
