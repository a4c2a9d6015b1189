// sluice-decap's XDP program through BPF_PROG_TEST_RUN: frames built here,
// the verdict, the exact output bytes and the per-outcome counters asserted.
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <netinet/in.h>

#include <bpf/libbpf.h>

#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "decap.skel.h"
#include "decap_host.hpp"
#include "packet_builder.hpp"
#include "privileges.hpp"
#include "xdp_fixture.hpp"

namespace sluice::test {
namespace {

constexpr const char* balancer_mac = "02:00:00:00:00:01";
constexpr const char* backend_mac = "02:00:00:00:00:02";
constexpr const char* encap_src4 = "198.18.0.100";
constexpr const char* backend4 = "198.18.0.2";
constexpr const char* other_host4 = "198.18.0.3";
constexpr const char* client4 = "198.18.0.1";
constexpr const char* vip4 = "198.18.1.10";
constexpr const char* encap_src6 = "2001:db8::100";
constexpr const char* balancer_prefix4 = "198.18.4.0/24";   // a second balancer pool, allowed as a prefix
constexpr const char* pool_member4 = "198.18.4.7";
constexpr const char* forger4 = "198.18.0.66";             // anyone else who can reach the backend
constexpr const char* forger6 = "2001:db8::66";
constexpr const char* backend6 = "2001:db8::2";
constexpr const char* other_host6 = "2001:db8::3";
constexpr const char* client6 = "2001:db8::1";
constexpr const char* vip6 = "2001:db8:1::10";
constexpr std::uint16_t client_port = 40000;
constexpr std::uint16_t vip_port = 80;
constexpr int xdp_pass = 2;
constexpr int xdp_drop = 1;

struct SkeletonDeleter {
  void operator()(decap_bpf* skel) const { decap_bpf__destroy(skel); }
};

// The inner packet a client sent: what the backend's stack must receive.
PacketBuilder& inner_tcp4(PacketBuilder& b) {
  return b.ipv4(client4, vip4, {.id = 7}).tcp(client_port, vip_port, {.flags = TcpFlags::SYN, .seq = 1}).payload("syn");
}
PacketBuilder& inner_tcp6(PacketBuilder& b) {
  return b.ipv6(client6, vip6).tcp(client_port, vip_port, {.flags = TcpFlags::SYN, .seq = 1}).payload("syn");
}

class DecapProgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    skel_.reset(decap_bpf__open_and_load());
    ASSERT_TRUE(skel_) << "load decap.bpf.o";
    auto fd = maps::MapFd::from_skeleton(skel_->maps.decap_addresses);
    ASSERT_TRUE(fd) << fd.error().message;
    auto addresses = maps::HashMap<sluice_decap_addr_key, sluice_decap_addr>::from(std::move(*fd));
    ASSERT_TRUE(addresses) << addresses.error().message;
    for (const char* text : {backend4, backend6}) {
      auto key = decap::parse_address(text);
      ASSERT_TRUE(key) << key.error().message;
      ASSERT_TRUE(addresses->update(*key, sluice_decap_addr{SLUICE_DECAP_ADDR_INTERFACE, 0}));
    }
    for (const char* text : {encap_src4, encap_src6, balancer_prefix4}) allow_source(text);
  }

  void allow_source(const char* text) {
    auto source = decap::parse_source(text);
    ASSERT_TRUE(source) << source.error().message;
    const sluice_decap_source value{SLUICE_DECAP_SOURCE_CONFIGURED, 0};
    if (const auto* v4 = std::get_if<sluice_decap_source4_key>(&source->prefix)) {
      auto fd = maps::MapFd::from_skeleton(skel_->maps.decap_sources_v4);
      ASSERT_TRUE(fd) << fd.error().message;
      auto trie = maps::LpmTrie<sluice_decap_source4_key, sluice_decap_source>::from(std::move(*fd));
      ASSERT_TRUE(trie) << trie.error().message;
      ASSERT_TRUE(trie->update(*v4, value));
    } else {
      auto fd = maps::MapFd::from_skeleton(skel_->maps.decap_sources_v6);
      ASSERT_TRUE(fd) << fd.error().message;
      auto trie = maps::LpmTrie<sluice_decap_source6_key, sluice_decap_source>::from(std::move(*fd));
      ASSERT_TRUE(trie) << trie.error().message;
      ASSERT_TRUE(trie->update(std::get<sluice_decap_source6_key>(source->prefix), value));
    }
  }

  RunResult run(const Bytes& frame) { return run_xdp(bpf_program__fd(skel_->progs.sluice_decap), frame); }

  sluice_decap_counter counted(sluice_decap_outcome outcome) {
    auto fd = maps::MapFd::from_skeleton(skel_->maps.decap_counters);
    EXPECT_TRUE(fd);
    auto counters = maps::PerCpuArrayMap<sluice_decap_counter>::from(std::move(*fd));
    EXPECT_TRUE(counters);
    auto per_cpu = counters->lookup(outcome);
    EXPECT_TRUE(per_cpu && *per_cpu);
    sluice_decap_counter total{};
    for (const auto& cpu : **per_cpu) {
      total.packets += cpu.packets;
      total.bytes += cpu.bytes;
    }
    return total;
  }

  // Exactly one frame was counted, under `outcome` and nowhere else.
  void expect_only(sluice_decap_outcome outcome, std::size_t frame_len) {
    for (std::uint32_t slot = 0; slot < SLUICE_DECAP_OUTCOME_COUNT; ++slot) {
      const auto c = counted(static_cast<sluice_decap_outcome>(slot));
      if (slot == outcome) {
        EXPECT_EQ(c.packets, 1u) << decap::outcome_name(slot);
        EXPECT_EQ(c.bytes, frame_len) << decap::outcome_name(slot);
      } else {
        EXPECT_EQ(c.packets, 0u) << decap::outcome_name(slot);
      }
    }
  }

  void expect_decapsulated(const Bytes& frame, const Bytes& inner_frame, sluice_decap_outcome outcome) {
    const RunResult result = run(frame);
    EXPECT_EQ(result.verdict, xdp_pass);
    EXPECT_EQ(result.output, inner_frame);
    expect_only(outcome, frame.size());
  }

  void expect_untouched(const Bytes& frame, sluice_decap_outcome outcome) {
    const RunResult result = run(frame);
    EXPECT_EQ(result.verdict, xdp_pass);
    EXPECT_EQ(result.output, frame);
    expect_only(outcome, frame.size());
  }

  void expect_dropped(const Bytes& frame, sluice_decap_outcome outcome) {
    const RunResult result = run(frame);
    EXPECT_EQ(result.verdict, xdp_drop);
    expect_only(outcome, frame.size());
  }

  std::unique_ptr<decap_bpf, SkeletonDeleter> skel_;
};

TEST_F(DecapProgTest, Ipv4InIpv4BecomesTheInnerPacket) {
  PacketBuilder outer;
  outer.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4);
  PacketBuilder inner;
  inner.eth(balancer_mac, backend_mac);
  expect_decapsulated(inner_tcp4(outer).build(), inner_tcp4(inner).build(), SLUICE_DECAP_4IN4);
}

TEST_F(DecapProgTest, Ipv6InIpv6BecomesTheInnerPacket) {
  PacketBuilder outer;
  outer.eth(balancer_mac, backend_mac).ipv6(encap_src6, backend6);
  PacketBuilder inner;
  inner.eth(balancer_mac, backend_mac);
  expect_decapsulated(inner_tcp6(outer).build(), inner_tcp6(inner).build(), SLUICE_DECAP_6IN6);
}

TEST_F(DecapProgTest, Ipv4InIpv6TakesTheIpv4EtherType) {
  PacketBuilder outer;
  outer.eth(balancer_mac, backend_mac).ipv6(encap_src6, backend6);
  PacketBuilder inner;
  inner.eth(balancer_mac, backend_mac);
  const Bytes expected = inner_tcp4(inner).build();
  ASSERT_EQ(expected[12], 0x08);  // the builder inferred ETH_P_IP for the expectation
  expect_decapsulated(inner_tcp4(outer).build(), expected, SLUICE_DECAP_4IN6);
}

TEST_F(DecapProgTest, Ipv6InIpv4TakesTheIpv6EtherType) {
  PacketBuilder outer;
  outer.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4);
  PacketBuilder inner;
  inner.eth(balancer_mac, backend_mac);
  expect_decapsulated(inner_tcp6(outer).build(), inner_tcp6(inner).build(), SLUICE_DECAP_6IN4);
}

TEST_F(DecapProgTest, OuterIpv4OptionsAreStrippedWithTheHeader) {
  PacketBuilder outer;
  outer.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4, {.options = {1, 1, 1, 0}});  // NOP NOP NOP EOL
  PacketBuilder inner;
  inner.eth(balancer_mac, backend_mac);
  const Bytes frame = inner_tcp4(outer).build();
  ASSERT_EQ(frame[ETH_HLEN] & 0x0f, 6);  // IHL 6: 24-byte outer header
  expect_decapsulated(frame, inner_tcp4(inner).build(), SLUICE_DECAP_4IN4);
}

TEST_F(DecapProgTest, VlanTagsStayAndTheInnermostEtherTypeNamesTheInnerFamily) {
  PacketBuilder outer;
  outer.eth(balancer_mac, backend_mac).vlan(100).ipv6(encap_src6, backend6);
  PacketBuilder inner;
  inner.eth(balancer_mac, backend_mac).vlan(100);
  expect_decapsulated(inner_tcp4(outer).build(), inner_tcp4(inner).build(), SLUICE_DECAP_4IN6);
}

TEST_F(DecapProgTest, TwoVlanTagsStay) {
  PacketBuilder outer;
  outer.eth(balancer_mac, backend_mac).vlan(200, ETH_P_8021AD, 3).vlan(100).ipv4(encap_src4, backend4);
  PacketBuilder inner;
  inner.eth(balancer_mac, backend_mac).vlan(200, ETH_P_8021AD, 3).vlan(100);
  expect_decapsulated(inner_tcp6(outer).build(), inner_tcp6(inner).build(), SLUICE_DECAP_6IN4);
}

TEST_F(DecapProgTest, EthernetPaddingAfterTheOuterDatagramStaysPadding) {
  // A short encapsulated packet padded to the 60-byte Ethernet minimum: the
  // padding is still behind the inner datagram, whose length says where it ends.
  PacketBuilder outer;
  outer.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4).ipv4(client4, vip4).udp(client_port, vip_port).pad_to(80);
  PacketBuilder inner;
  inner.eth(balancer_mac, backend_mac).ipv4(client4, vip4).udp(client_port, vip_port).pad_to(60);
  expect_decapsulated(outer.build(), inner.build(), SLUICE_DECAP_4IN4);
}

TEST_F(DecapProgTest, EncapsulationToAnotherAddressPassesUntouched) {
  PacketBuilder v4;
  v4.eth(balancer_mac, backend_mac).ipv4(encap_src4, other_host4);
  expect_untouched(inner_tcp4(v4).build(), SLUICE_DECAP_NOT_FOR_US);
}

TEST_F(DecapProgTest, Ipv6EncapsulationToAnotherAddressPassesUntouched) {
  PacketBuilder v6;
  v6.eth(balancer_mac, backend_mac).ipv6(encap_src6, other_host6);
  expect_untouched(inner_tcp6(v6).build(), SLUICE_DECAP_NOT_FOR_US);
}

// The attack: anyone who can reach the backend wraps a packet with a forged
// inner source (a client the edge's rules would have stopped) in IP-in-IP
// to the backend. Only the balancers' sources are decapsulated.
TEST_F(DecapProgTest, TunnelFromAForeignIpv4SourceIsDropped) {
  PacketBuilder forged;
  forged.eth(balancer_mac, backend_mac).ipv4(forger4, backend4);
  expect_dropped(inner_tcp4(forged).build(), SLUICE_DECAP_FOREIGN_SOURCE);
}

TEST_F(DecapProgTest, TunnelFromAForeignIpv6SourceIsDropped) {
  PacketBuilder forged;
  forged.eth(balancer_mac, backend_mac).ipv6(forger6, backend6);
  expect_dropped(inner_tcp4(forged).build(), SLUICE_DECAP_FOREIGN_SOURCE);
}

TEST_F(DecapProgTest, ASourceInsideAnAllowedPrefixIsDecapsulated) {
  PacketBuilder outer;
  outer.eth(balancer_mac, backend_mac).ipv4(pool_member4, backend4);
  PacketBuilder inner;
  inner.eth(balancer_mac, backend_mac);
  expect_decapsulated(inner_tcp4(outer).build(), inner_tcp4(inner).build(), SLUICE_DECAP_4IN4);
}

TEST_F(DecapProgTest, AForeignTunnelToAnotherAddressIsStillNotOurs) {
  // Not addressed here: the stack's business, whoever sent it.
  PacketBuilder v4;
  v4.eth(balancer_mac, backend_mac).ipv4(forger4, other_host4);
  expect_untouched(inner_tcp4(v4).build(), SLUICE_DECAP_NOT_FOR_US);
}

TEST_F(DecapProgTest, ParseSourceRefusesBadPrefixesNamingThem) {
  for (const char* bad : {"198.18.0.1/15", "198.18.0.0/33", "2001:db8::/129", "host", "198.18.0.0/"}) {
    auto parsed = decap::parse_source(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_NE(parsed.error().message.find(std::string("--source: bad prefix '") + bad + "'"), std::string::npos)
        << parsed.error().message;
  }
}

TEST_F(DecapProgTest, OrdinaryTrafficPassesUntouched) {
  PacketBuilder tcp;
  tcp.eth(balancer_mac, backend_mac);
  const Bytes plain = inner_tcp4(tcp).build();
  expect_untouched(plain, SLUICE_DECAP_NOT_ENCAPSULATED);
}

TEST_F(DecapProgTest, NonIpPassesUntouched) {
  expect_untouched(PacketBuilder().eth(balancer_mac, backend_mac, ETH_P_ARP).payload(Bytes(28, 0)).build(),
                   SLUICE_DECAP_NOT_ENCAPSULATED);
}

TEST_F(DecapProgTest, ThreeVlanTagsAreNotWalkedAndPassUntouched) {
  PacketBuilder deep;
  deep.eth(balancer_mac, backend_mac).vlan(1).vlan(2).vlan(3).ipv4(encap_src4, backend4);
  expect_untouched(inner_tcp4(deep).build(), SLUICE_DECAP_NOT_ENCAPSULATED);
}

TEST_F(DecapProgTest, TruncatedOuterHeaderOfOrdinaryTrafficIsTheStacksToJudge) {
  // Not even 20 bytes of IPv4: not recognisably sluice's, so not ours to drop.
  expect_untouched(PacketBuilder().eth(balancer_mac, backend_mac, ETH_P_IP).raw({0x45, 0, 0, 20, 0, 0}).build(),
                   SLUICE_DECAP_NOT_ENCAPSULATED);
}

TEST_F(DecapProgTest, OuterIhlBelowFiveIsDropped) {
  PacketBuilder b;
  b.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4, {.ihl_override = 4});
  expect_dropped(inner_tcp4(b).build(), SLUICE_DECAP_OUTER_BAD_HEADER);
}

TEST_F(DecapProgTest, OuterTotalLengthBeyondTheFrameIsDropped) {
  PacketBuilder b;
  b.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4, {.total_length_override = 1400});
  expect_dropped(inner_tcp4(b).build(), SLUICE_DECAP_OUTER_BAD_HEADER);
}

TEST_F(DecapProgTest, OuterTotalLengthShorterThanItsHeaderIsDropped) {
  PacketBuilder b;
  b.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4, {.total_length_override = 16});
  expect_dropped(inner_tcp4(b).build(), SLUICE_DECAP_OUTER_BAD_HEADER);
}

TEST_F(DecapProgTest, OuterIpv6PayloadLengthBeyondTheFrameIsDropped) {
  PacketBuilder b;
  b.eth(balancer_mac, backend_mac).ipv6(encap_src6, backend6, {.payload_length_override = 1400});
  expect_dropped(inner_tcp6(b).build(), SLUICE_DECAP_OUTER_BAD_HEADER);
}

TEST_F(DecapProgTest, OuterHeaderChecksumWrongIsDropped) {
  PacketBuilder b;
  b.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4, {.checksum_override = 0x1234});
  expect_dropped(inner_tcp4(b).build(), SLUICE_DECAP_OUTER_BAD_CHECKSUM);
}

TEST_F(DecapProgTest, OuterFirstFragmentIsDropped) {
  PacketBuilder b;
  b.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4, {.more_fragments = true});
  expect_dropped(inner_tcp4(b).build(), SLUICE_DECAP_OUTER_FRAGMENT);
}

TEST_F(DecapProgTest, OuterLaterFragmentIsDropped) {
  PacketBuilder b;
  b.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4, {.frag_offset_bytes = 1480});
  expect_dropped(inner_tcp4(b).build(), SLUICE_DECAP_OUTER_FRAGMENT);
}

TEST_F(DecapProgTest, EmptyOuterPayloadIsATruncatedInner) {
  expect_dropped(PacketBuilder().eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4, {.protocol_override = IPPROTO_IPIP}).build(),
                 SLUICE_DECAP_INNER_TRUNCATED);
}

TEST_F(DecapProgTest, InnerIpv4HeaderCutShortIsDropped) {
  expect_dropped(PacketBuilder()
                     .eth(balancer_mac, backend_mac)
                     .ipv4(encap_src4, backend4, {.protocol_override = IPPROTO_IPIP})
                     .raw({0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6})
                     .build(),
                 SLUICE_DECAP_INNER_TRUNCATED);
}

TEST_F(DecapProgTest, InnerIpv6HeaderCutShortIsDropped) {
  expect_dropped(PacketBuilder()
                     .eth(balancer_mac, backend_mac)
                     .ipv6(encap_src6, backend6, {.next_header_override = IPPROTO_IPV6})
                     .raw({0x60, 0, 0, 0, 0, 8, 6, 64})
                     .build(),
                 SLUICE_DECAP_INNER_TRUNCATED);
}

TEST_F(DecapProgTest, InnerIhlBelowFiveIsDropped) {
  PacketBuilder b;
  b.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4).ipv4(client4, vip4, {.ihl_override = 3}).udp(client_port, vip_port);
  expect_dropped(b.build(), SLUICE_DECAP_INNER_BAD_HEADER);
}

TEST_F(DecapProgTest, InnerShorterThanTheOuterPayloadIsDropped) {
  // Bytes smuggled after the inner datagram, inside the outer one.
  PacketBuilder b;
  b.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4).ipv4(client4, vip4, {.total_length_override = 28}).udp(client_port, vip_port).payload("extra");
  expect_dropped(b.build(), SLUICE_DECAP_INNER_LENGTH_MISMATCH);
}

TEST_F(DecapProgTest, InnerLongerThanTheOuterPayloadIsDropped) {
  PacketBuilder b;
  b.eth(balancer_mac, backend_mac).ipv6(encap_src6, backend6).ipv6(client6, vip6, {.payload_length_override = 200}).udp(client_port, vip_port);
  expect_dropped(b.build(), SLUICE_DECAP_INNER_LENGTH_MISMATCH);
}

TEST_F(DecapProgTest, InnerIpv6InsideAnOuterSayingIpv4IsDropped) {
  PacketBuilder b;
  b.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4, {.protocol_override = IPPROTO_IPIP});
  expect_dropped(inner_tcp6(b).build(), SLUICE_DECAP_INNER_VERSION_MISMATCH);
}

TEST_F(DecapProgTest, InnerIpv4InsideAnOuterSayingIpv6IsDropped) {
  PacketBuilder b;
  b.eth(balancer_mac, backend_mac).ipv6(encap_src6, backend6, {.next_header_override = IPPROTO_IPV6});
  expect_dropped(inner_tcp4(b).build(), SLUICE_DECAP_INNER_VERSION_MISMATCH);
}

TEST_F(DecapProgTest, CountersAccumulatePerOutcome) {
  PacketBuilder mine;
  mine.eth(balancer_mac, backend_mac).ipv4(encap_src4, backend4);
  const Bytes frame = inner_tcp4(mine).build();
  constexpr int frames = 3;
  for (int i = 0; i < frames; ++i) EXPECT_EQ(run(frame).verdict, xdp_pass);
  EXPECT_EQ(counted(SLUICE_DECAP_4IN4).packets, static_cast<std::uint64_t>(frames));
  EXPECT_EQ(counted(SLUICE_DECAP_4IN4).bytes, frames * frame.size());
}

}  // namespace
}  // namespace sluice::test
