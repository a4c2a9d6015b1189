#pragma once
// Value types of the filter: prefix-list entries, ordered rules, rate
// classes and the rule set that groups them, plus validation. Pure: no BPF
// here, so the control daemon, the compiler and the reference model share
// one definition of what a rule means.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "contract.hpp"
#include "error.hpp"
#include "prefix.hpp"

namespace sluice::filter {

using maps::Error;
using maps::Prefix;
using maps::Result;

enum class Action : std::uint32_t {
  Drop = SLUICE_FILTER_ACTION_DROP,
  Pass = SLUICE_FILTER_ACTION_PASS,
  PassTrack = SLUICE_FILTER_ACTION_PASS_TRACK,  // pass and create a conntrack entry
  RateLimit = SLUICE_FILTER_ACTION_RATE_LIMIT,  // token bucket of rate_class per source
};
std::string_view to_string(Action action);
// "drop", "pass", "pass-track", "rate-limit"
Result<Action> parse_action(std::string_view text);

// One source prefix of the prefix lists (blocklist / allowlist / policed sources).
struct PrefixEntry {
  Prefix prefix;
  Action action = Action::Drop;  // Drop, Pass or RateLimit
  std::uint32_t rate_class = 0;  // RateLimit only
  bool operator==(const PrefixEntry&) const;
};

struct PortRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;  // inclusive
  bool operator==(const PortRange&) const = default;
};

struct TcpFlagMatch {
  std::uint8_t mask = 0;   // flags looked at
  std::uint8_t value = 0;  // their required state: (flags & mask) == value
  bool operator==(const TcpFlagMatch&) const = default;
};

// An ordered rule: every set field must match; first match (lowest priority) wins.
struct FilterRule {
  std::uint32_t priority = 0;  // unique within a rule set; lower = evaluated first
  std::optional<Prefix> src;
  std::optional<Prefix> dst;
  std::optional<std::uint8_t> protocol;  // IPPROTO_*
  std::optional<PortRange> src_ports;    // matches TCP/UDP packets with an L4 header only
  std::optional<PortRange> dst_ports;
  std::optional<TcpFlagMatch> tcp_flags;  // TCP packets with a header only
  std::optional<std::uint8_t> icmp_type;  // ICMP/ICMPv6 packets with a header only
  std::optional<std::uint32_t> ifindex;   // ingress interface
  Action action = Action::Drop;
  std::uint32_t rate_class = 0;  // RateLimit only
  bool operator==(const FilterRule&) const;
};

// Token buckets per source prefix (the address cut to v4/v6_prefix_len, so
// a /64 holder cannot step to a fresh bucket per address), and optionally
// one aggregate bucket for all sources of the class together. A packet
// passes when its source bucket and the aggregate both have tokens, and
// spends from both only then. A rate of 0 leaves that dimension unlimited;
// both aggregate rates 0: no aggregate.
struct RateClass {
  std::uint32_t id = 0;  // < SLUICE_FILTER_MAX_RATE_CLASSES
  std::uint64_t packets_per_sec = 0;
  std::uint64_t packet_burst = 0;
  std::uint64_t bytes_per_sec = 0;
  std::uint64_t byte_burst = 0;
  bool syn_only = false;  // only TCP SYN (without ACK) spends tokens: SYN-flood limit
  std::uint32_t v4_prefix_len = SLUICE_FILTER_RATE_V4_PREFIX_DEFAULT;  // 0..32
  std::uint32_t v6_prefix_len = SLUICE_FILTER_RATE_V6_PREFIX_DEFAULT;  // 0..128
  std::uint64_t aggregate_packets_per_sec = 0;
  std::uint64_t aggregate_packet_burst = 0;
  std::uint64_t aggregate_bytes_per_sec = 0;
  std::uint64_t aggregate_byte_burst = 0;
  bool has_aggregate() const { return aggregate_packets_per_sec != 0 || aggregate_bytes_per_sec != 0; }
  bool operator==(const RateClass&) const = default;
};

enum class DefaultPolicy : std::uint32_t { Pass = SLUICE_VERDICT_PASS, Drop = SLUICE_VERDICT_DROP };

// Everything that is swapped atomically.
struct RuleSet {
  std::vector<PrefixEntry> prefixes;
  std::vector<FilterRule> rules;
  std::vector<RateClass> rate_classes;
  DefaultPolicy default_policy = DefaultPolicy::Pass;
};

// Limits accepted by validation.
inline constexpr std::uint64_t kMaxPacketsPerSec = 1'000'000'000;
inline constexpr std::uint64_t kMaxPacketBurst = 1'000'000'000;
inline constexpr std::uint64_t kMaxBytesPerSec = 100'000'000'000;
inline constexpr std::uint64_t kMaxByteBurst = 10'000'000'000;

// Each names the first bad field and its value ("rules[3] (priority 7): src_ports 9-3: first > last").
Result<void> validate(const PrefixEntry& entry, const std::vector<RateClass>& classes);
Result<void> validate(const FilterRule& rule, const std::vector<RateClass>& classes);
Result<void> validate(const RateClass& rate_class);
// The data plane's source masks of a validated class (network order): what
// a source address is ANDed with before it keys a bucket.
std::uint32_t v4_source_mask(std::uint32_t prefix_len);
std::array<std::uint32_t, 4> v6_source_mask(std::uint32_t prefix_len);
Result<void> validate(const RuleSet& set);

// An ICMP type under the other address family's ICMP protocol (an IPv6
// address with protocol icmp, an IPv4 one with icmpv6): no packet matches
// such a rule, and validate refuses it with this text.
std::optional<std::string> unmatchable_icmp_problem(const FilterRule& rule);

// "tcp" / "udp" / "icmp" / "icmpv6" / a decimal number 0..255 (maps/decimal.hpp); anything else is an error.
Result<std::uint8_t> parse_protocol(std::string_view text);
// "80", "1024-65535": decimal ports (no leading zeros, signs or base prefixes)
Result<PortRange> parse_port_range(std::string_view text);

// Per-state idle timeouts and switches outside the rule set.
struct FilterSettings {
  bool conntrack = true;
  // Drop TCP flag sets no stack sends (SLUICE_TCP_VALID_FLAG_SETS) before conntrack and rules.
  bool drop_invalid_tcp_flags = true;
  std::uint32_t drop_sample_every = 0;  // 1 in N filter drops to drop_events; 0 = off
  std::array<std::uint32_t, SLUICE_CT_STATE_COUNT> ct_timeout_s{};  // index enum sluice_ct_state
  bool operator==(const FilterSettings&) const = default;
};
FilterSettings default_settings();
Result<void> validate(const FilterSettings& settings);
sluice_filter_settings to_wire(const FilterSettings& settings);

// 4 or 6 for an address family, 0 for a rule that names none.
int family_of(const Prefix& prefix);
int family_of(const FilterRule& rule);
bool same_prefix(const Prefix& a, const Prefix& b);
// True when `outer` contains every address of `inner` (same family).
bool covers(const Prefix& outer, const Prefix& inner);
// True when prefix contains the address (network order bytes, 4 or 16 of them).
bool contains(const Prefix& prefix, const std::uint8_t* addr, int family);

}  // namespace sluice::filter
