#include "prefix_sets.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <random>
#include <unordered_set>

namespace sluice::test {

std::uint32_t ipv4_mask(unsigned prefix_len) {
  constexpr unsigned address_bits = 32;
  return prefix_len == 0 ? 0 : ~std::uint32_t{0} << (address_bits - prefix_len);
}

sluice_lpm_v4_key ipv4_prefix_key(std::uint32_t addr_host, unsigned prefix_len) {
  sluice_lpm_v4_key key{};
  key.prefixlen = prefix_len;
  const std::uint32_t addr_be = htonl(addr_host);
  std::memcpy(key.addr, &addr_be, sizeof(key.addr));
  return key;
}

std::vector<sluice_lpm_v4_key> blocklist_like_ipv4(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto length = [&] {
    const int percentile = std::uniform_int_distribution<int>(0, 99)(rng);
    if (percentile < 2) return 16u;
    if (percentile < 15) return std::uniform_int_distribution<unsigned>(17, 23)(rng);
    if (percentile < 50) return 24u;
    if (percentile < 55) return std::uniform_int_distribution<unsigned>(25, 31)(rng);
    return 32u;
  };
  constexpr unsigned length_bits = 6;  // prefix lengths 0..32 fit in 6 bits of the dedup key
  std::unordered_set<std::uint64_t> seen;
  std::vector<sluice_lpm_v4_key> keys;
  keys.reserve(count);
  while (keys.size() < count) {
    const unsigned len = length();
    const std::uint32_t addr = static_cast<std::uint32_t>(rng()) & ipv4_mask(len);
    if (!seen.insert(std::uint64_t{addr} << length_bits | len).second) continue;
    keys.push_back(ipv4_prefix_key(addr, len));
  }
  return keys;
}

}  // namespace sluice::test
