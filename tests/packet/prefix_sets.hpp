#pragma once
// Prefix sets for tests and benchmarks that need many realistic prefixes
// (blocklists, routing tables), generated from a seed so a run replays.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sluice_maps.h"

namespace sluice::test {

// Network mask of an IPv4 prefix length, host order (0 for /0).
std::uint32_t ipv4_mask(unsigned prefix_len);
// LPM key of addr_host/prefix_len (host bits must already be clear).
sluice_lpm_v4_key ipv4_prefix_key(std::uint32_t addr_host, unsigned prefix_len);

// `count` unique IPv4 prefixes with the length mix of a large blocklist:
// 2% /16, 13% /17-/23, 35% /24, 5% /25-/31, 45% /32 (single hosts).
std::vector<sluice_lpm_v4_key> blocklist_like_ipv4(std::size_t count, std::uint64_t seed);

}  // namespace sluice::test
