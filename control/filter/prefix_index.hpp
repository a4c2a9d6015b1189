#pragma once
// A prefix as a fixed-size, hashable key: what the prefix-list index and
// the block-load staging look prefixes up by (no string per entry).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "prefix.hpp"

namespace sluice::filter {

struct PrefixKey {
  // [0] family (4 or 6), [1] prefix length, [2..] the address (IPv4: 4 bytes, rest 0).
  std::array<std::uint8_t, 18> bytes{};
  bool operator==(const PrefixKey&) const = default;
};

inline PrefixKey prefix_key(const maps::Prefix& prefix) {
  PrefixKey key;
  if (const auto* v4 = std::get_if<sluice_lpm_v4_key>(&prefix)) {
    key.bytes[0] = 4;
    key.bytes[1] = static_cast<std::uint8_t>(v4->prefixlen);
    std::memcpy(key.bytes.data() + 2, v4->addr, sizeof(v4->addr));
  } else {
    const auto& v6 = std::get<sluice_lpm_v6_key>(prefix);
    key.bytes[0] = 6;
    key.bytes[1] = static_cast<std::uint8_t>(v6.prefixlen);
    std::memcpy(key.bytes.data() + 2, v6.addr, sizeof(v6.addr));
  }
  return key;
}

struct PrefixKeyHash {
  std::size_t operator()(const PrefixKey& key) const noexcept {
    std::uint64_t hash = 1469598103934665603ull;  // FNV-1a 64
    for (std::uint8_t byte : key.bytes) hash = (hash ^ byte) * 1099511628211ull;
    return static_cast<std::size_t>(hash);
  }
};

}  // namespace sluice::filter
