#pragma once
// Value types of the load balancer: VIPs, backends, health checks and the
// stage's settings, plus validation. Pure: no BPF here, so the daemon, the
// YAML desired state, the map adapter (LbTable) and the reference model share
// one definition of what a VIP means.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "contract.hpp"
#include "error.hpp"

namespace sluice::lb {

using maps::Error;
using maps::Result;

// An IPv4 or IPv6 address, network order bytes; IPv4 in bytes[0..3].
struct Address {
  int family = 4;  // 4 or 6
  std::array<std::uint8_t, 16> bytes{};
  bool operator==(const Address&) const = default;
  auto operator<=>(const Address&) const = default;
};
// "198.18.0.1", "2001:db8::1"; anything else names the text in the error.
Result<Address> parse_address(std::string_view text);
std::string to_string(const Address& address);

enum class Protocol : std::uint8_t { Tcp = 6, Udp = 17 };
Result<Protocol> parse_protocol(std::string_view text);  // "tcp" | "udp"
std::string_view to_string(Protocol protocol);

// (address, port, protocol); port 0 = every port of the address.
struct VipKey {
  Address address;
  std::uint16_t port = 0;
  Protocol protocol = Protocol::Tcp;
  bool operator==(const VipKey&) const = default;
  auto operator<=>(const VipKey&) const = default;
};
// "198.18.0.10:80/tcp", "[2001:db8::10]:443/tcp", "198.18.0.10/udp" (port-less),
// "[2001:db8::10]/udp"; a bare IPv6 address is refused (is its last group a port?).
Result<VipKey> parse_vip_key(std::string_view text);
std::string to_string(const VipKey& key);

struct HealthCheck {
  enum class Kind { Tcp, Http } kind = Kind::Tcp;
  std::uint16_t port = 0;         // 0: the VIP's port (a port-less VIP must name one)
  std::string http_path = "/";    // Http only; "GET <path>" must answer 2xx/3xx
  std::uint32_t interval_ms = 2000;
  std::uint32_t timeout_ms = 1000;
  std::uint32_t rise = 2;  // successes that bring a down backend back
  std::uint32_t fall = 3;  // failures that take an up backend out
  bool operator==(const HealthCheck&) const = default;
};
// "tcp:8080", "http:80/healthz"
Result<HealthCheck> parse_health_check(std::string_view text);
std::string to_string(const HealthCheck& check);

enum class BackendState { Up, Draining };  // operator's intent; health is separate
struct Backend {
  Address address;
  std::uint32_t weight = 1;  // 1..SLUICE_LB_WEIGHT_MAX
  BackendState state = BackendState::Up;
  std::optional<std::array<std::uint8_t, 6>> mac;  // L2 DSR VIPs: required
  bool operator==(const Backend&) const = default;
};

struct Vip {
  VipKey key;
  std::uint32_t table_size = SLUICE_LB_MAGLEV_SIZE_DEFAULT;  // prime, <= SLUICE_LB_MAGLEV_SIZE_MAX
  bool l2_dsr = false;
  std::optional<HealthCheck> check;
  std::vector<Backend> backends;  // unique addresses
  bool operator==(const Vip&) const = default;
};

inline constexpr std::uint32_t kIcmpRateDefault = SLUICE_FWD_ICMP_RATE_DEFAULT;  // as the forward stage's
inline constexpr std::uint16_t kIcmpBurstDefault = SLUICE_FWD_ICMP_BURST_DEFAULT;
inline constexpr std::uint32_t kIcmpRateMax = 1'000'000;  // icmp_guard.h's overflow bound

struct LbSettings {
  std::optional<Address> encap_source_v4;
  std::optional<Address> encap_source_v6;
  bool entropy_source = false;  // SLUICE_LB_F_ENTROPY_SOURCE
  sluice_lb_egress egress = SLUICE_LB_EGRESS_TX;
  std::optional<std::array<std::uint8_t, 6>> next_hop_mac;
  std::optional<std::array<std::uint8_t, 6>> src_mac;
  std::uint16_t mtu = 0;  // 0: no too-big check
  std::uint32_t conn_timeout_s = 300;
  // The too-big answers' per-CPU bucket (xdp/icmp_guard.h, as the forward
  // stage's time exceeded): answers per second (0: never) and depth.
  std::uint32_t icmp_rate = kIcmpRateDefault;
  std::uint16_t icmp_burst = kIcmpBurstDefault;
  bool operator==(const LbSettings&) const = default;
};

// Everything the balancer is configured with.
struct LbConfig {
  LbSettings settings;
  std::vector<Vip> vips;  // unique keys
  bool operator==(const LbConfig&) const = default;
};

// Bounds validate() enforces (beyond the contract's SLUICE_LB_* limits).
inline constexpr std::uint32_t kCheckIntervalMsMin = 100;
inline constexpr std::uint32_t kCheckIntervalMsMax = 3'600'000;
inline constexpr std::uint32_t kCheckTimeoutMsMin = 10;  // and at most the interval
inline constexpr std::uint32_t kCheckCountMax = 100;      // rise and fall: 1..this
inline constexpr std::size_t kCheckPathMax = 1024;        // bytes of an HTTP path
inline constexpr std::uint16_t kMtuMin = 576;             // mtu: 0 (no check) or kMtuMin..kMtuMax
inline constexpr std::uint16_t kMtuMax = 9216;
// With an IPv6 VIP: the packet-too-big answer announces mtu - 40, and IPv6
// hosts ignore an MTU below 1280 (RFC 8200), so a smaller one would be
// answered forever and never delivered.
inline constexpr std::uint16_t kMtuMinIpv6Vip = 1280 + 40;
inline constexpr std::uint32_t kConnTimeoutMaxS = 86'400;  // conn_timeout_s: 1..this
// Maglev entries of all VIPs together (kernel memory, 4 bytes each): every
// VIP at the default size fits; bigger tables trade against VIP count.
inline constexpr std::uint64_t kTotalTableEntriesMax =
    std::uint64_t{SLUICE_LB_MAX_VIPS} * SLUICE_LB_MAGLEV_SIZE_DEFAULT;
// Backend slots: lb_backends minus slot 0 ("no backend"); one per (VIP, backend).
inline constexpr std::uint32_t kBackendSlots = SLUICE_LB_MAX_BACKENDS - 1;

bool is_prime(std::uint32_t n);
// Each names the first bad field and its value and changes nothing:
// "vips[2] (198.18.0.10:80/tcp): table_size 65536: not prime".
Result<void> validate(const Backend& backend, const Vip& vip);
Result<void> validate(const Vip& vip);
Result<void> validate(const LbSettings& settings);
Result<void> validate(const LbConfig& config);

// "aa:bb:cc:dd:ee:ff"
Result<std::array<std::uint8_t, 6>> parse_mac(std::string_view text);
std::string mac_to_string(const std::array<std::uint8_t, 6>& mac);

}  // namespace sluice::lb
