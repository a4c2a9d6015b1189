// Rate limits an attacker cannot step around (BPF_PROG_TEST_RUN through the
// whole entry program): sources are keyed by the class's prefix length, so a
// /64 holder does not get 2^64 buckets; a class's aggregate bucket caps a
// flood from many (spoofed) sources as a whole; and two CPUs charging one
// bucket at once admit exactly its burst.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "filter_fixture.hpp"
// after the contract: the skeleton names its structs
#include "sluice.skel.h"

namespace sluice::test {
namespace {

using filter::Action;
using filter::FilterRule;

constexpr std::uint64_t kNano = 1'000'000'000;

Bytes udp_from(const std::string& src) {
  if (src.find(':') != std::string::npos) return ether().ipv6(src, "2001:db8:ffff::1").udp(1000, 53).build();
  return ether().ipv4(src, "198.18.1.1").udp(1000, 53).build();
}

// Every UDP packet is policed by `rate_class`.
filter::RuleSet udp_limited_by(const filter::RateClass& rate_class) {
  filter::RuleSet set;
  set.rate_classes = {rate_class};
  FilterRule limited;
  limited.priority = 1;
  limited.protocol = IPPROTO_UDP;
  limited.action = Action::RateLimit;
  limited.rate_class = rate_class.id;
  set.rules = {limited};
  return set;
}

// 1 packet/s: the refill during a test (milliseconds) is a small fraction of
// one packet, so a burst of N admits exactly N.
filter::RateClass slow_class(std::uint32_t id, std::uint64_t burst) {
  return filter::RateClass{.id = id, .packets_per_sec = 1, .packet_burst = burst};
}

class RateLimitTest : public FilterTest {
 protected:
  int passed(const std::string& src, int count) {
    const Bytes frame = udp_from(src);
    int n = 0;
    for (int i = 0; i < count; ++i) n += send(frame).verdict == XDP_PASS;
    return n;
  }
  std::uint64_t dropped(std::uint32_t reason) const { return packets(SLUICE_VERDICT_DROP, reason); }
};

TEST_F(RateLimitTest, Ipv6SourcesOfOneSlash64ShareABucketByDefault) {
  constexpr std::uint64_t kBurst = 3;
  replace(udp_limited_by(slow_class(1, kBurst)));
  EXPECT_EQ(passed("2001:db8:1:2::1", kBurst), static_cast<int>(kBurst));
  // Before: every /128 had a bucket of its own, so each new address passed its burst again.
  EXPECT_EQ(passed("2001:db8:1:2::ffff", 1), 0) << "another address of the same /64 spends the same bucket";
  EXPECT_EQ(passed("2001:db8:1:2:ffff:ffff:ffff:fffe", 1), 0);
  EXPECT_EQ(dropped(SLUICE_REASON_FILTER_RATE_LIMITED), 2u);
  EXPECT_EQ(passed("2001:db8:1:3::1", 1), 1) << "a different /64 has its own bucket";
  EXPECT_EQ(passed("198.18.0.1", 1), 1);
  EXPECT_EQ(passed("198.18.0.2", 1), 1) << "IPv4 is keyed per address (/32) by default";
}

// Refusals are made without the bucket's lock and leave it as it was: a
// source refused without pause still gets its rate, refilled from its last
// admitted packet (a refusal that moved the stamp without crediting the
// refill would starve it: none would pass after the first).
TEST_F(RateLimitTest, ASourceRefusedWithoutPauseStillGetsItsRate) {
  constexpr std::uint64_t kPerSec = 20;
  constexpr auto kFor = std::chrono::milliseconds(400);
  replace(udp_limited_by(filter::RateClass{.id = 1, .packets_per_sec = kPerSec, .packet_burst = 1}));
  const Bytes frame = udp_from("198.18.0.7");
  const auto start = std::chrono::steady_clock::now();
  int sent = 0, admitted = 0;
  while (std::chrono::steady_clock::now() - start < kFor) {
    admitted += send(frame).verdict == XDP_PASS;
    ++sent;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // the burst, then one packet per refill period; one period either way for where the loop's ends fall
  const double expected = 1 + seconds * kPerSec;
  EXPECT_GE(admitted, static_cast<int>(expected) - 1) << sent << " sent in " << seconds << " s";
  EXPECT_LE(admitted, static_cast<int>(expected) + 1) << sent << " sent in " << seconds << " s";
  EXPECT_GT(sent, 10 * admitted) << "most packets must have been refused for this to test refusals";
  EXPECT_EQ(dropped(SLUICE_REASON_FILTER_RATE_LIMITED), static_cast<std::uint64_t>(sent - admitted));
}

TEST_F(RateLimitTest, PrefixLengthsPerClassChooseWhatASourceIs) {
  constexpr std::uint64_t kBurst = 2;
  filter::RateClass c = slow_class(7, kBurst);
  c.v4_prefix_len = 24;
  c.v6_prefix_len = 128;
  replace(udp_limited_by(c));
  EXPECT_EQ(passed("198.18.0.1", kBurst), static_cast<int>(kBurst));
  EXPECT_EQ(passed("198.18.0.200", 1), 0) << "one /24, one bucket";
  EXPECT_EQ(passed("198.18.1.1", 1), 1) << "another /24";
  EXPECT_EQ(passed("2001:db8::1", kBurst), static_cast<int>(kBurst));
  EXPECT_EQ(passed("2001:db8::2", 1), 1) << "/128: every address is a source";

  // The bucket is keyed by the masked address, under the class id and the family.
  sluice_filter_rate_key key{};
  key.rate_class = 7;
  key.ip_version = 4;
  ASSERT_EQ(inet_pton(AF_INET, "198.18.0.0", &key.addr[0]), 1);
  sluice_filter_rate_bucket bucket{};
  EXPECT_EQ(bpf_map__lookup_elem(plane_->skeleton()->maps.filter_rate_buckets, &key, sizeof(key), &bucket,
                                 sizeof(bucket), 0),
            0)
      << "no bucket under 198.18.0.0 (the /24 of 198.18.0.1)";

  // /0: the whole family is one source.
  c.v4_prefix_len = 0;
  c.v6_prefix_len = 0;
  c.id = 8;
  replace(udp_limited_by(c));
  EXPECT_EQ(passed("198.18.5.5", kBurst), static_cast<int>(kBurst));
  EXPECT_EQ(passed("198.19.255.255", 1), 0);
  EXPECT_EQ(passed("2001:db8:9::9", kBurst), static_cast<int>(kBurst)) << "the families stay apart";
  EXPECT_EQ(passed("2001:db8:a::a", 1), 0);
}

TEST_F(RateLimitTest, AggregateBucketCapsAFloodFromManySources) {
  constexpr std::uint64_t kSourceBurst = 2;
  constexpr std::uint64_t kAggregateBurst = 10;
  filter::RateClass c = slow_class(3, kSourceBurst);
  c.aggregate_packets_per_sec = 1;
  c.aggregate_packet_burst = kAggregateBurst;
  replace(udp_limited_by(c));

  // One heavy source: its own bucket drops the excess, which does not spend the aggregate.
  constexpr int kHeavy = 20;
  EXPECT_EQ(passed("198.18.0.1", kHeavy), static_cast<int>(kSourceBurst));
  EXPECT_EQ(dropped(SLUICE_REASON_FILTER_RATE_LIMITED), kHeavy - kSourceBurst);

  // Many sources, one packet each (each within its own burst): the aggregate lets through what it has left.
  constexpr int kSources = 30;
  int spread_passed = 0;
  for (int i = 0; i < kSources; ++i) {
    const std::string src = i % 2 ? "198.18.2." + std::to_string(i) : "2001:db8:" + std::to_string(i + 1) + "::1";
    spread_passed += passed(src, 1);
  }
  EXPECT_EQ(spread_passed, static_cast<int>(kAggregateBurst - kSourceBurst));
  EXPECT_EQ(dropped(SLUICE_REASON_FILTER_AGGREGATE_RATE_LIMITED), kSources - (kAggregateBurst - kSourceBurst));
  EXPECT_EQ(dropped(SLUICE_REASON_FILTER_RATE_LIMITED), kHeavy - kSourceBurst) << "no source bucket ran dry";

  // A packet the aggregate refused spent nothing of its source's bucket.
  sluice_filter_rate_key key{};
  key.rate_class = 3;
  key.ip_version = 4;
  ASSERT_EQ(inet_pton(AF_INET, "198.18.2.29", &key.addr[0]), 1);
  sluice_filter_rate_bucket bucket{};
  ASSERT_EQ(bpf_map__lookup_elem(plane_->skeleton()->maps.filter_rate_buckets, &key, sizeof(key), &bucket,
                                 sizeof(bucket), 0),
            0);
  EXPECT_EQ(bucket.packet_tokens, kSourceBurst * kNano);

  // Clearing the buckets refills the aggregate too.
  ASSERT_TRUE(table_->clear_rate_buckets());
  EXPECT_EQ(passed("198.18.3.1", 1), 1);
}

TEST_F(RateLimitTest, ByteAggregateCountsTheBytesOfEverySource) {
  filter::RateClass c{.id = 4, .bytes_per_sec = 1, .byte_burst = 10'000};
  c.aggregate_bytes_per_sec = 1;
  c.aggregate_byte_burst = 1'000;
  replace(udp_limited_by(c));
  const Bytes big = ether().ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).payload(Bytes(400 - 42, 0)).build();
  const Bytes big2 = ether().ipv4("198.18.0.2", "198.18.1.1").udp(1, 2).payload(Bytes(400 - 42, 0)).build();
  ASSERT_EQ(big.size(), 400u);
  EXPECT_EQ(send(big).verdict, XDP_PASS);
  EXPECT_EQ(send(big2).verdict, XDP_PASS);
  EXPECT_EQ(send(big).verdict, XDP_DROP) << "1000 aggregate bytes hold two 400-byte frames";
  EXPECT_EQ(dropped(SLUICE_REASON_FILTER_AGGREGATE_RATE_LIMITED), 1u);
}

// Runs `frame` `repeat` times through prog_fd on `cpu` (BPF_PROG_TEST_RUN runs on the calling CPU).
void run_on_cpu(int prog_fd, const Bytes& frame, std::uint32_t repeat, int cpu, std::atomic<int>& ready, int& error) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); err != 0) {
    error = err;
    ready.fetch_add(1);
    return;
  }
  // Start together: the race is only there while both CPUs charge a bucket that still has tokens.
  ready.fetch_add(1);
  while (ready.load() < 2) {
  }
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = static_cast<std::uint32_t>(frame.size()),
              .repeat = repeat);
  error = bpf_prog_test_run_opts(prog_fd, &opts) == 0 ? 0 : errno;
}

class RateLimitConcurrencyTest : public RateLimitTest {
 protected:
  void SetUp() override {
    RateLimitTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    cpu_set_t allowed;
    ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
    if (!CPU_ISSET(0, &allowed) || !CPU_ISSET(1, &allowed)) GTEST_SKIP() << "needs CPUs 0 and 1 to send from both";
  }
  // kRounds times from full buckets: each CPU sends its frame kRepeat times at once. Rounds, because
  // the CPUs overlap only as long as neither is preempted (the cores are shared with other work).
  void send_from_both_cpus(const Bytes& on_cpu0, const Bytes& on_cpu1) {
    const int fd = plane_->entry_prog_fd();
    for (int round = 0; round < kRounds; ++round) {
      ASSERT_TRUE(table_->clear_rate_buckets());
      std::atomic<int> ready{0};
      int error0 = 0, error1 = 0;
      std::thread cpu0(run_on_cpu, fd, std::cref(on_cpu0), kRepeat, 0, std::ref(ready), std::ref(error0));
      std::thread cpu1(run_on_cpu, fd, std::cref(on_cpu1), kRepeat, 1, std::ref(ready), std::ref(error1));
      cpu0.join();
      cpu1.join();
      ASSERT_EQ(error0, 0) << "CPU 0: " << std::strerror(error0);
      ASSERT_EQ(error1, 0) << "CPU 1: " << std::strerror(error1);
    }
  }
  std::uint64_t passed_total() const { return packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_RULE_PASS); }

  static constexpr int kRounds = 4;
  static constexpr std::uint32_t kRepeat = 60'000;  // per CPU and round: ~20 ms
  static constexpr std::uint64_t kBurst = 50'000;   // most of it spent while both CPUs run
  static constexpr std::uint64_t kSent = kRounds * 2 * std::uint64_t{kRepeat};
};

TEST_F(RateLimitConcurrencyTest, TwoCpusChargingOneSourceAdmitExactlyItsBurst) {
  replace(udp_limited_by(slow_class(5, kBurst)));
  const Bytes frame = udp_from("198.18.0.1");
  send_from_both_cpus(frame, frame);
  // Before: an unlocked read-modify-write (and a racing bucket creation) let both CPUs spend one token.
  EXPECT_EQ(passed_total(), kRounds * kBurst) << "over-admitted: CPUs spent the same tokens";
  EXPECT_EQ(dropped(SLUICE_REASON_FILTER_RATE_LIMITED), kSent - kRounds * kBurst);
}

TEST_F(RateLimitConcurrencyTest, TwoCpusChargingOneAggregateAdmitExactlyItsBurst) {
  filter::RateClass c = slow_class(6, 2 * kRepeat);  // each source within its own burst
  c.aggregate_packets_per_sec = 1;
  c.aggregate_packet_burst = kBurst;
  replace(udp_limited_by(c));
  send_from_both_cpus(udp_from("198.18.0.1"), udp_from("2001:db8::1"));
  EXPECT_EQ(passed_total(), kRounds * kBurst) << "over-admitted: CPUs spent the same aggregate tokens";
  EXPECT_EQ(dropped(SLUICE_REASON_FILTER_AGGREGATE_RATE_LIMITED), kSent - kRounds * kBurst);
  EXPECT_EQ(dropped(SLUICE_REASON_FILTER_RATE_LIMITED), 0u);
}

}  // namespace
}  // namespace sluice::test
