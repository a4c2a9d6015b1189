// Stateful parts of the filter, deterministic: connection tracking (both
// directions, TCP states, timeouts), token-bucket rate limits (per source,
// SYN-only), and sampled drop events in the ring buffer.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <thread>

#include "filter_fixture.hpp"
// after the contract: the skeleton names its structs
#include "sluice.skel.h"

namespace sluice::test {
namespace {

using filter::Action;
using filter::FilterRule;

Bytes tcp(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport, std::uint8_t flags,
          std::uint32_t seq = 0, std::uint32_t ack = 0) {
  return ether().ipv4(src, dst).tcp(sport, dport, {.flags = flags, .seq = seq, .ack = ack}).build();
}

// Inbound to port 80 is pass-and-track; everything else is dropped.
filter::RuleSet tracked_web() {
  filter::RuleSet set;
  FilterRule web;
  web.priority = 1;
  web.dst_ports = filter::PortRange{80, 80};
  web.protocol = IPPROTO_TCP;
  web.action = Action::PassTrack;
  set.rules = {web};
  set.default_policy = filter::DefaultPolicy::Drop;
  return set;
}

TEST_F(FilterTest, ConntrackLetsRepliesOfATrackedFlowThroughAndCountsBothDirections) {
  replace(tracked_web());
  const Bytes syn = tcp("198.18.0.1", "198.18.1.1", 40000, 80, TcpFlags::SYN);
  const Bytes syn_ack = tcp("198.18.1.1", "198.18.0.1", 80, 40000, TcpFlags::SYN | TcpFlags::ACK, 0, 1);
  const Bytes ack = tcp("198.18.0.1", "198.18.1.1", 40000, 80, TcpFlags::ACK, 1, 1);  // acks the SYN-ACK (ISN 0)
  EXPECT_EQ(send(syn_ack).verdict, XDP_DROP) << "no flow yet: the reply direction has no rule";
  EXPECT_EQ(send(syn).verdict, XDP_PASS);
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_RULE_PASS), 1u);
  EXPECT_EQ(send(syn_ack).verdict, XDP_PASS);
  EXPECT_EQ(send(ack).verdict, XDP_PASS);
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_CONNTRACK), 2u);
  auto flows = table_->tracked_flows();
  ASSERT_TRUE(flows);
  ASSERT_EQ(flows->size(), 1u);
  const auto& entry = (*flows)[0].entry;
  EXPECT_EQ(entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_ESTABLISHED));
  EXPECT_EQ(entry.packets[0] + entry.packets[1], 3u);
  EXPECT_EQ(entry.packets[0], 2u) << "198.18.0.1:40000 is the lower endpoint: its direction is A->B";
  EXPECT_EQ(entry.bytes[1], syn_ack.size());
  // FIN moves it to closing; the rules still do not run for it
  EXPECT_EQ(send(tcp("198.18.1.1", "198.18.0.1", 80, 40000, TcpFlags::FIN | TcpFlags::ACK, 1, 1)).verdict, XDP_PASS);
  flows = table_->tracked_flows();
  ASSERT_TRUE(flows);
  EXPECT_EQ((*flows)[0].entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_CLOSING));
  // an unrelated flow is not let through
  EXPECT_EQ(send(tcp("198.18.1.1", "198.18.0.1", 80, 40001, TcpFlags::ACK)).verdict, XDP_DROP);
}

// The originator's ACK after its SYN is no proof that a reply came (a blind
// spoofer sends it too): without a seen reply the flow stays unreplied in
// TCP_SYN and idles out on the SYN timeout (filter_conntrack_test.cpp has
// the attacks; the egress observer sees replies that bypass XDP).
TEST_F(FilterTest, ConntrackOriginatorsAckAloneDoesNotEstablish) {
  auto settings = filter::default_settings();
  settings.ct_timeout_s[SLUICE_CT_TCP_SYN] = 1;
  ASSERT_TRUE(table_->set_settings(settings));
  replace(tracked_web());
  const Bytes syn = tcp("198.18.0.1", "198.18.1.1", 40000, 80, TcpFlags::SYN);
  const Bytes ack = tcp("198.18.0.1", "198.18.1.1", 40000, 80, TcpFlags::ACK, 1, 1);
  EXPECT_EQ(send(syn).verdict, XDP_PASS);
  EXPECT_EQ(send(syn).verdict, XDP_PASS) << "a retransmitted SYN";
  EXPECT_EQ(send(ack).verdict, XDP_PASS);
  auto flows = table_->tracked_flows();
  ASSERT_TRUE(flows);
  ASSERT_EQ(flows->size(), 1u);
  EXPECT_EQ((*flows)[0].entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_SYN));
  EXPECT_EQ((*flows)[0].entry.replied, 0u);
  EXPECT_EQ((*flows)[0].entry.dirs_seen, 1u << SLUICE_CT_DIR_A_TO_B) << "the reply was never seen";
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  const Bytes syn_ack = tcp("198.18.1.1", "198.18.0.1", 80, 40000, TcpFlags::SYN | TcpFlags::ACK, 0, 1);
  EXPECT_EQ(send(syn_ack).verdict, XDP_DROP) << "the unreplied entry idled out on the SYN timeout";
}

// The SYN-ACK alone leaves the flow opening (a server answers spoofed SYNs
// too); the originator's ACK of it establishes.
TEST_F(FilterTest, ConntrackEstablishesOnTheOriginatorsAckOfTheSynAck) {
  replace(tracked_web());
  EXPECT_EQ(send(tcp("198.18.0.1", "198.18.1.1", 40000, 80, TcpFlags::SYN)).verdict, XDP_PASS);
  EXPECT_EQ(send(tcp("198.18.1.1", "198.18.0.1", 80, 40000, TcpFlags::SYN | TcpFlags::ACK, 0, 1)).verdict, XDP_PASS);
  auto opening = table_->tracked_flows();
  ASSERT_TRUE(opening);
  ASSERT_EQ(opening->size(), 1u);
  EXPECT_EQ((*opening)[0].entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_SYN));
  EXPECT_EQ((*opening)[0].entry.replied, 0u);
  EXPECT_EQ(send(tcp("198.18.0.1", "198.18.1.1", 40000, 80, TcpFlags::ACK, 1, 1)).verdict, XDP_PASS);
  auto flows = table_->tracked_flows();
  ASSERT_TRUE(flows);
  ASSERT_EQ(flows->size(), 1u);
  EXPECT_EQ((*flows)[0].entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_ESTABLISHED));
  EXPECT_EQ((*flows)[0].entry.dirs_seen, (1u << SLUICE_CT_DIR_A_TO_B) | (1u << SLUICE_CT_DIR_B_TO_A));
}

// IPv4 and IPv6 flows live in separate tables (IPv4 under a compact key);
// both track both directions and read back in one form.
TEST_F(FilterTest, ConntrackTracksIpv4AndIpv6FlowsAndReportsBoth) {
  filter::RuleSet set = tracked_web();
  replace(set);
  const Bytes syn6 = ether().ipv6("2001:db8::9", "2001:db8::1").tcp(40000, 80, {.flags = TcpFlags::SYN}).build();
  const Bytes reply6 =
      ether().ipv6("2001:db8::1", "2001:db8::9").tcp(80, 40000, {.flags = TcpFlags::SYN | TcpFlags::ACK, .ack = 1}).build();
  // 198.18.1.1 (the server) is the higher address: the client's packets are A->B
  const Bytes syn4 = tcp("198.18.0.1", "198.18.1.1", 40000, 80, TcpFlags::SYN);
  const Bytes reply4 = tcp("198.18.1.1", "198.18.0.1", 80, 40000, TcpFlags::SYN | TcpFlags::ACK, 0, 1);
  EXPECT_EQ(send(reply6).verdict, XDP_DROP) << "no IPv6 flow yet";
  EXPECT_EQ(send(syn6).verdict, XDP_PASS);
  EXPECT_EQ(send(syn4).verdict, XDP_PASS);
  EXPECT_EQ(send(reply6).verdict, XDP_PASS);
  EXPECT_EQ(send(reply4).verdict, XDP_PASS);
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_CONNTRACK), 2u);
  auto flows = table_->tracked_flows();
  ASSERT_TRUE(flows);
  ASSERT_EQ(flows->size(), 2u);
  const auto v4 = std::find_if(flows->begin(), flows->end(), [](const auto& f) { return f.key.ip_version == 4; });
  const auto v6 = std::find_if(flows->begin(), flows->end(), [](const auto& f) { return f.key.ip_version == 6; });
  ASSERT_NE(v4, flows->end());
  ASSERT_NE(v6, flows->end());
  const std::uint32_t lower_v4 = htonl(0xc6120001), higher_v4 = htonl(0xc6120101);  // 198.18.0.1, 198.18.1.1
  EXPECT_EQ(v4->key.addr_a[0], lower_v4);
  EXPECT_EQ(v4->key.addr_b[0], higher_v4);
  EXPECT_EQ(v4->key.addr_a[1] | v4->key.addr_a[2] | v4->key.addr_a[3], 0u);
  EXPECT_EQ(v4->key.port_a, 40000);
  EXPECT_EQ(v4->key.port_b, 80);
  EXPECT_EQ(v4->key.proto, IPPROTO_TCP);
  EXPECT_EQ(v4->entry.packets[SLUICE_CT_DIR_A_TO_B], 1u);
  EXPECT_EQ(v4->entry.packets[SLUICE_CT_DIR_B_TO_A], 1u);
  // Handshakes not finished (no ACK of the SYN-ACK yet): both are still opening.
  EXPECT_EQ(v4->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_SYN));
  // 2001:db8::1 (the server) is the lower address here: the client's packets are B->A
  EXPECT_EQ(v6->key.port_a, 80);
  EXPECT_EQ(v6->key.port_b, 40000);
  EXPECT_EQ(v6->entry.packets[SLUICE_CT_DIR_B_TO_A], 1u);
  EXPECT_EQ(v6->entry.bytes[SLUICE_CT_DIR_A_TO_B], reply6.size());
  EXPECT_EQ(v6->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_SYN));
  ASSERT_TRUE(table_->clear_conntrack());
  flows = table_->tracked_flows();
  ASSERT_TRUE(flows);
  EXPECT_TRUE(flows->empty()) << "clear_conntrack empties both tables";
  EXPECT_EQ(send(reply4).verdict, XDP_DROP);
  EXPECT_EQ(send(reply6).verdict, XDP_DROP);
}

TEST_F(FilterTest, ConntrackEntryExpiresAfterItsStateTimeout) {
  auto settings = filter::default_settings();
  settings.ct_timeout_s[SLUICE_CT_TCP_SYN] = 1;
  ASSERT_TRUE(table_->set_settings(settings));
  replace(tracked_web());
  EXPECT_EQ(send(tcp("198.18.0.1", "198.18.1.1", 40000, 80, TcpFlags::SYN)).verdict, XDP_PASS);
  const Bytes reply = tcp("198.18.1.1", "198.18.0.1", 80, 40000, TcpFlags::SYN | TcpFlags::ACK, 0, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  EXPECT_EQ(send(reply).verdict, XDP_DROP) << "the SYN-only entry idled past 1 s";
  auto flows = table_->tracked_flows();
  ASSERT_TRUE(flows);
  EXPECT_TRUE(flows->empty()) << "the expired entry was removed";
}

TEST_F(FilterTest, ConntrackOffMakesPassTrackAPlainPass) {
  auto settings = filter::default_settings();
  settings.conntrack = false;
  ASSERT_TRUE(table_->set_settings(settings));
  replace(tracked_web());
  EXPECT_EQ(send(tcp("198.18.0.1", "198.18.1.1", 40000, 80, TcpFlags::SYN)).verdict, XDP_PASS);
  EXPECT_EQ(send(tcp("198.18.1.1", "198.18.0.1", 80, 40000, TcpFlags::SYN | TcpFlags::ACK, 0, 1)).verdict, XDP_DROP);
  auto flows = table_->tracked_flows();
  ASSERT_TRUE(flows);
  EXPECT_TRUE(flows->empty());
}

TEST_F(FilterTest, RateLimitDropsBeyondTheBurstPerSource) {
  filter::RuleSet set;
  set.rate_classes = {filter::RateClass{.id = 1, .packets_per_sec = 1, .packet_burst = 5}};
  FilterRule limited;
  limited.priority = 1;
  limited.protocol = IPPROTO_UDP;
  limited.action = Action::RateLimit;
  limited.rate_class = 1;
  set.rules = {limited};
  replace(set);
  const Bytes a = ether().ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).build();
  const Bytes b = ether().ipv4("198.18.0.2", "198.18.1.1").udp(1, 2).build();
  int passed = 0;
  for (int i = 0; i < 8; ++i) passed += send(a).verdict == XDP_PASS;
  // 1 packet/s refills at most one more during the loop
  EXPECT_GE(passed, 5);
  EXPECT_LE(passed, 6);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RATE_LIMITED), static_cast<std::uint64_t>(8 - passed));
  EXPECT_EQ(send(b).verdict, XDP_PASS) << "another source has its own bucket";
}

TEST_F(FilterTest, ByteRateLimitCountsBytes) {
  filter::RuleSet set;
  set.rate_classes = {filter::RateClass{.id = 2, .bytes_per_sec = 1, .byte_burst = 1000}};
  set.prefixes = {{cidr("198.18.0.0/24"), Action::RateLimit, 2}};
  replace(set);
  const Bytes big = ether().ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).payload(Bytes(400 - 42, 0)).build();
  ASSERT_EQ(big.size(), 400u);
  EXPECT_EQ(send(big).verdict, XDP_PASS);
  EXPECT_EQ(send(big).verdict, XDP_PASS);
  EXPECT_EQ(send(big).verdict, XDP_DROP) << "1000-byte burst holds two 400-byte frames";
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RATE_LIMITED), 1u);
}

// The bucket of one IPv4 source, as the data plane keys it.
sluice_filter_rate_key rate_key_v4(std::uint32_t rate_class, const char* src) {
  sluice_filter_rate_key key{};
  key.rate_class = rate_class;
  key.ip_version = 4;
  EXPECT_EQ(inet_pton(AF_INET, src, &key.addr[0]), 1) << src;
  return key;
}

TEST_F(FilterTest, RateRefillSaturatesAtTheLargestLimitsAfterALongIdle) {
  // The largest limits validation allows: burst 1e10 bytes = 1e19 nano-bytes, near 2^64.
  constexpr std::uint64_t kNano = 1'000'000'000;
  constexpr std::uint64_t kByteBurstNano = filter::kMaxByteBurst * kNano;
  constexpr std::uint32_t kClass = 3;
  filter::RuleSet set;
  set.rate_classes = {filter::RateClass{.id = kClass,
                                        .packets_per_sec = filter::kMaxPacketsPerSec,
                                        .packet_burst = filter::kMaxPacketBurst,
                                        .bytes_per_sec = filter::kMaxBytesPerSec,
                                        .byte_burst = filter::kMaxByteBurst}};
  set.prefixes = {{cidr("198.18.0.0/24"), Action::RateLimit, kClass}};
  replace(set);
  const Bytes frame = ether().ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).build();
  ASSERT_EQ(send(frame).verdict, XDP_PASS);  // creates the bucket

  // A bucket last refilled at boot (idle ever since) holding the token count
  // at which the unsaturated sum tokens + refill (refill capped at one burst
  // plus one rate step) lands exactly on 2^64, i.e. wraps to 0 tokens.
  bpf_map* buckets = plane_->skeleton()->maps.filter_rate_buckets;
  const sluice_filter_rate_key key = rate_key_v4(kClass, "198.18.0.1");
  sluice_filter_rate_bucket bucket{};
  ASSERT_EQ(bpf_map__lookup_elem(buckets, &key, sizeof(key), &bucket, sizeof(bucket), 0), 0)
      << "no bucket under the IPv4 key of the source";
  bucket.last_ns = 1;
  bucket.byte_tokens = 0 - (kByteBurstNano + filter::kMaxBytesPerSec);  // mod 2^64
  ASSERT_LT(bucket.byte_tokens, kByteBurstNano);
  ASSERT_EQ(bpf_map__update_elem(buckets, &key, sizeof(key), &bucket, sizeof(bucket), BPF_EXIST), 0);

  // Traffic far within the rate passes: the idle bucket is full, not wrapped.
  constexpr int kWithinRate = 10;
  for (int i = 0; i < kWithinRate; ++i) EXPECT_EQ(send(frame).verdict, XDP_PASS) << "packet " << i;
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RATE_LIMITED), 0u);
  ASSERT_EQ(bpf_map__lookup_elem(buckets, &key, sizeof(key), &bucket, sizeof(bucket), 0), 0);
  // refilled to the burst, then spent by the packets (plus refills of at most the time the loop took)
  EXPECT_GE(bucket.byte_tokens, kByteBurstNano - kWithinRate * frame.size() * kNano);
  EXPECT_LE(bucket.byte_tokens, kByteBurstNano);
}

TEST_F(FilterTest, RateBucketsOfIpv4AndIpv6SourcesWithTheSameFirstWordAreSeparate) {
  constexpr std::uint32_t kClass = 5;
  constexpr std::uint64_t kBurst = 2;
  filter::RuleSet set;
  set.rate_classes = {filter::RateClass{.id = kClass, .packets_per_sec = 1, .packet_burst = kBurst}};
  FilterRule limited;  // no address: matches both families
  limited.priority = 1;
  limited.protocol = IPPROTO_UDP;
  limited.action = Action::RateLimit;
  limited.rate_class = kClass;
  set.rules = {limited};
  replace(set);
  // c612:1:: starts with the bytes of 198.18.0.1 (c6 12 00 01), the rest zero
  const Bytes v4 = ether().ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).build();
  const Bytes v6 = ether().ipv6("c612:1::", "2001:db8::2").udp(1, 2).build();
  // spend the IPv4 bucket; 1 packet/s refills at most one more during the loop
  int v4_dropped = 0;
  for (std::uint64_t i = 0; i < kBurst + 2; ++i) v4_dropped += send(v4).verdict == XDP_DROP;
  ASSERT_GE(v4_dropped, 1) << "the IPv4 source's bucket is empty";
  EXPECT_EQ(send(v6).verdict, XDP_PASS) << "the IPv6 source has its own bucket";
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RATE_LIMITED), static_cast<std::uint64_t>(v4_dropped));
}

TEST_F(FilterTest, SynOnlyLimitDropsSynFloodButNotTheRest) {
  filter::RuleSet set;
  set.rate_classes = {filter::RateClass{.id = 4, .packets_per_sec = 1, .packet_burst = 2, .syn_only = true}};
  set.prefixes = {{cidr("198.18.0.0/15"), Action::RateLimit, 4}};
  replace(set);
  const Bytes syn = tcp("198.18.0.9", "198.18.1.1", 1, 80, TcpFlags::SYN);
  const Bytes ack = tcp("198.18.0.9", "198.18.1.1", 1, 80, TcpFlags::ACK);
  int syn_passed = 0;
  for (int i = 0; i < 6; ++i) syn_passed += send(syn).verdict == XDP_PASS;
  EXPECT_GE(syn_passed, 2);
  EXPECT_LE(syn_passed, 3);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_SYN_RATE_LIMITED), static_cast<std::uint64_t>(6 - syn_passed));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(send(ack).verdict, XDP_PASS);
}

TEST_F(FilterTest, SampledDropsReachTheRingBufferWithReasonAndHead) {
  auto settings = filter::default_settings();
  settings.drop_sample_every = 1;  // every drop: deterministic
  ASSERT_TRUE(table_->set_settings(settings));
  filter::RuleSet set;
  set.prefixes = {{cidr("198.18.0.0/24"), Action::Drop}};
  replace(set);
  std::vector<sluice_drop_event> events;
  auto ring = maps::RingBuffer::from(*maps::MapFd::from_skeleton(plane_->skeleton()->maps.drop_events),
                                     [&](std::span<const std::byte> record) {
                                       sluice_drop_event ev{};
                                       std::memcpy(&ev, record.data(), std::min(record.size(), sizeof(ev)));
                                       events.push_back(ev);
                                     });
  ASSERT_TRUE(ring) << ring.error().message;
  const Bytes small = ether().ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).build();
  const Bytes large = ether().ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).payload(Bytes(300, 0x5a)).build();
  EXPECT_EQ(send(small).verdict, XDP_DROP);
  EXPECT_EQ(send(large).verdict, XDP_DROP);
  EXPECT_EQ(send(ether().ipv4("198.18.1.1", "198.18.0.1").udp(1, 2).build()).verdict, XDP_PASS);
  ASSERT_TRUE(ring->consume());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].reason, static_cast<std::uint32_t>(SLUICE_REASON_FILTER_BLOCKLIST));
  EXPECT_EQ(events[0].verdict, static_cast<std::uint32_t>(SLUICE_VERDICT_DROP));
  EXPECT_EQ(events[0].pkt_len, small.size());
  EXPECT_EQ(events[0].cap_len, small.size());
  EXPECT_TRUE(std::equal(small.begin(), small.end(), events[0].head));
  EXPECT_EQ(events[1].pkt_len, large.size());
  EXPECT_EQ(events[1].cap_len, static_cast<std::uint32_t>(SLUICE_EVENT_HEAD_BYTES));
  EXPECT_TRUE(std::equal(large.begin(), large.begin() + SLUICE_EVENT_HEAD_BYTES, events[1].head));

  settings.drop_sample_every = 0;
  ASSERT_TRUE(table_->set_settings(settings));
  EXPECT_EQ(send(small).verdict, XDP_DROP);
  ASSERT_TRUE(ring->consume());
  EXPECT_EQ(events.size(), 2u) << "sampling off: no event";
}

TEST_F(FilterTest, SampledDropsLostToAFullRingAreCountedAndTheDropsStillAre) {
  auto settings = filter::default_settings();
  settings.drop_sample_every = 1;  // every drop: deterministic
  ASSERT_TRUE(table_->set_settings(settings));
  filter::RuleSet set;
  set.prefixes = {{cidr("198.18.0.0/24"), Action::Drop}};
  replace(set);
  auto lost = table_->drop_events_lost();
  ASSERT_TRUE(lost) << lost.error().message;
  EXPECT_EQ(*lost, 0u);
  // Each record takes more than sizeof(event) (plus the ring's header), so
  // this many events, never consumed, overflow the ring by at least the excess.
  constexpr std::size_t kExcess = 100;
  const std::size_t sends = SLUICE_DROP_EVENTS_BYTES / sizeof(sluice_drop_event) + kExcess;
  const Bytes frame = ether().ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).build();
  for (std::size_t i = 0; i < sends; ++i) ASSERT_EQ(send(frame).verdict, XDP_DROP);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_BLOCKLIST), sends) << "a lost event still counts its drop";

  lost = table_->drop_events_lost();
  ASSERT_TRUE(lost) << lost.error().message;
  EXPECT_GE(*lost, kExcess);
  std::size_t delivered = 0;
  auto ring = maps::RingBuffer::from(*maps::MapFd::from_skeleton(plane_->skeleton()->maps.drop_events),
                                     [&](std::span<const std::byte>) { ++delivered; });
  ASSERT_TRUE(ring) << ring.error().message;
  ASSERT_TRUE(ring->consume());
  EXPECT_EQ(delivered + *lost, sends) << "every sampled drop is either delivered or counted lost";
}

}  // namespace
}  // namespace sluice::test
