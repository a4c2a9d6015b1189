#pragma once
// Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted.
//
// Each backend's permutation of the N table positions (N prime) comes from
// two hashes of its stable identity — its address family and bytes, never a
// slot id, which differs between boxes — so every box with the same backend
// set builds the same table. The hashes are our own (FNV-1a over the bytes,
// then a 64-bit finaliser): byte at a time, so the same on every host and
// every endianness, unlike std::hash.
//
// Weights: each backend's number of entries is fixed first by largest-
// remainder apportionment of N over the weights (so it is within one entry of
// N * w / W). The fill then gives backends turns in proportion to their
// weights (turn j of a backend of weight w comes at virtual time j / w, ties
// in address order), each turn taking the next free position of its
// permutation, until it holds its quota: O(N log B). Turns in proportion keep
// the Maglev property that a backend's first
// preferences are its own, which is what keeps disruption near 1/N when the
// set changes.
#include <cstdint>
#include <span>
#include <vector>

#include "lb_model.hpp"

namespace sluice::lb {

struct MaglevBackend {
  Address address;
  std::uint32_t weight = 1;  // 1..SLUICE_LB_WEIGHT_MAX
};

// A 64-bit hash of bytes; deterministic across hosts. Exposed for the tests.
std::uint64_t maglev_hash(std::span<const std::uint8_t> bytes, std::uint64_t seed);

// The table: N entries, each an index into `backends` (input order does not
// matter: the same set in any order gives the same backend at each entry).
// An empty set gives an empty vector. Errors (EINVAL) name the bad value:
// table_size not prime or over SLUICE_LB_MAGLEV_SIZE_MAX, more backends
// than entries, a weight outside 1..SLUICE_LB_WEIGHT_MAX, a duplicate address.
// `seed` varies the permutations (0: the default every box uses).
Result<std::vector<std::uint32_t>> build_maglev(std::span<const MaglevBackend> backends, std::uint32_t table_size,
                                                std::uint64_t seed = 0);

// Entries a backend of `weight` gets out of `total_weight` in a table of
// `table_size`, before the remainders are shared out: table_size * weight / total.
double maglev_expected_share(std::uint32_t table_size, std::uint32_t weight, std::uint64_t total_weight);

}  // namespace sluice::lb
