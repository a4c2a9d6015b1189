#include "maglev.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <limits>
#include <numeric>
#include <string>

namespace sluice::lb {
namespace {

constexpr std::uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ull;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ull;
// Two fixed, unrelated seeds make the offset and the skip two independent hashes.
constexpr std::uint64_t kOffsetSeed = 0x9e3779b97f4a7c15ull;
constexpr std::uint64_t kSkipSeed = 0xc2b2ae3d27d4eb4full;
constexpr std::uint32_t kEmpty = std::numeric_limits<std::uint32_t>::max();
// Identity of a backend: its family, then all 16 address bytes.
constexpr std::size_t kIdentityBytes = 1 + 16;

// splitmix64's finaliser: every input bit reaches every output bit.
std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

std::array<std::uint8_t, kIdentityBytes> identity_of(const Address& address) {
  std::array<std::uint8_t, kIdentityBytes> id{};
  id[0] = static_cast<std::uint8_t>(address.family);
  std::copy(address.bytes.begin(), address.bytes.end(), id.begin() + 1);
  return id;
}

Error maglev_error(const std::string& reason) { return Error{EINVAL, "maglev: " + reason}; }

}  // namespace

std::uint64_t maglev_hash(std::span<const std::uint8_t> bytes, std::uint64_t seed) {
  std::uint64_t h = kFnvOffsetBasis ^ mix64(seed);
  for (std::uint8_t byte : bytes) {
    h ^= byte;
    h *= kFnvPrime;
  }
  return mix64(h);
}

double maglev_expected_share(std::uint32_t table_size, std::uint32_t weight, std::uint64_t total_weight) {
  if (total_weight == 0) return 0.0;
  return static_cast<double>(table_size) * weight / static_cast<double>(total_weight);
}

Result<std::vector<std::uint32_t>> build_maglev(std::span<const MaglevBackend> backends, std::uint32_t table_size,
                                                std::uint64_t seed) {
  if (!is_prime(table_size) || table_size > SLUICE_LB_MAGLEV_SIZE_MAX)
    return maglev_error("table_size " + std::to_string(table_size) + ": must be a prime up to " +
                        std::to_string(SLUICE_LB_MAGLEV_SIZE_MAX));
  if (backends.empty()) return std::vector<std::uint32_t>{};
  if (backends.size() > table_size)
    return maglev_error(std::to_string(backends.size()) + " backends: more than table_size " +
                        std::to_string(table_size) + " entries");
  const std::size_t count = backends.size();

  // Canonical order (by identity) makes the result independent of the input order.
  std::vector<std::uint32_t> order(count);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return identity_of(backends[a].address) < identity_of(backends[b].address);
  });
  std::uint64_t total_weight = 0;
  for (std::size_t k = 0; k < count; ++k) {
    const MaglevBackend& backend = backends[order[k]];
    if (backend.weight == 0 || backend.weight > SLUICE_LB_WEIGHT_MAX)
      return maglev_error("backend " + to_string(backend.address) + ": weight " + std::to_string(backend.weight) +
                          ": must be 1.." + std::to_string(SLUICE_LB_WEIGHT_MAX));
    if (k > 0 && backends[order[k - 1]].address == backend.address)
      return maglev_error("backend " + to_string(backend.address) + ": listed twice");
    total_weight += backend.weight;
  }

  // Quotas: largest remainder, ties to the canonical order. Sum is exactly N.
  std::vector<std::uint32_t> quota(count);
  std::vector<std::uint64_t> remainder(count);
  std::uint64_t assigned = 0;
  for (std::size_t k = 0; k < count; ++k) {
    const std::uint64_t share = std::uint64_t{table_size} * backends[order[k]].weight;
    quota[k] = static_cast<std::uint32_t>(share / total_weight);
    remainder[k] = share % total_weight;
    assigned += quota[k];
  }
  std::vector<std::uint32_t> by_remainder(count);
  std::iota(by_remainder.begin(), by_remainder.end(), 0u);
  std::stable_sort(by_remainder.begin(), by_remainder.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return remainder[a] > remainder[b]; });
  for (std::uint64_t i = 0; assigned < table_size; ++i, ++assigned) ++quota[by_remainder[i]];

  // Permutations: position_j = (offset + j * skip) mod N; N prime and
  // 1 <= skip < N visit every position once.
  std::vector<std::uint32_t> position(count), skip(count);
  for (std::size_t k = 0; k < count; ++k) {
    const auto id = identity_of(backends[order[k]].address);
    position[k] = static_cast<std::uint32_t>(maglev_hash(id, seed ^ kOffsetSeed) % table_size);
    skip[k] = table_size == 1 ? 1 : static_cast<std::uint32_t>(maglev_hash(id, seed ^ kSkipSeed) % (table_size - 1) + 1);
  }

  std::vector<std::uint32_t> table(table_size, kEmpty);
  std::vector<std::uint32_t> held(count, 0);
  auto take_next = [&](std::size_t k) {
    while (table[position[k]] != kEmpty) {
      position[k] += skip[k];
      if (position[k] >= table_size) position[k] -= table_size;
    }
    table[position[k]] = order[k];
    ++held[k];
  };
  // Turns in proportion to weight: backend k's j-th turn comes at virtual
  // time j / w_k; turns run in time order, ties in canonical order. Times
  // are compared exactly in integers (j <= N, w <= SLUICE_LB_WEIGHT_MAX:
  // the products fit 64 bits), so every host takes the same turns.
  auto later = [&](std::uint32_t a, std::uint32_t b) {
    const std::uint64_t time_a = std::uint64_t{held[a] + 1} * backends[order[b]].weight;
    const std::uint64_t time_b = std::uint64_t{held[b] + 1} * backends[order[a]].weight;
    return time_a != time_b ? time_a > time_b : a > b;
  };
  std::vector<std::uint32_t> turns;  // a min-heap of backends by their next turn
  for (std::uint32_t k = 0; k < count; ++k)
    if (quota[k] > 0) turns.push_back(k);
  std::make_heap(turns.begin(), turns.end(), later);
  for (std::uint32_t filled = 0; filled < table_size; ++filled) {
    std::pop_heap(turns.begin(), turns.end(), later);
    const std::uint32_t k = turns.back();
    take_next(k);
    if (held[k] == quota[k]) turns.pop_back();
    else std::push_heap(turns.begin(), turns.end(), later);
  }
  return table;
}

}  // namespace sluice::lb
