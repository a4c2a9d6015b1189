#include "kv_map.hpp"

#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "contract.hpp"
#include "prefix.hpp"
#include "privileges.hpp"

namespace sluice::maps {
namespace {

constexpr std::uint32_t kSmallEntries = 16;

template <class Handle>
Handle make(bpf_map_type type, const char* name, std::uint32_t key_size, std::uint32_t value_size,
            std::uint32_t max_entries, std::uint32_t flags = 0) {
  auto map = MapFd::create(type, name, key_size, value_size, max_entries, flags);
  if (!map) throw MapError(map.error());
  return Handle::from(std::move(*map)).value();
}

using U32Hash = HashMap<std::uint32_t, std::uint64_t>;

U32Hash make_hash(const char* name, std::uint32_t max_entries = kSmallEntries,
                  bpf_map_type type = BPF_MAP_TYPE_HASH) {
  return make<U32Hash>(type, name, sizeof(std::uint32_t), sizeof(std::uint64_t), max_entries);
}

TEST(HashMap, UpdateLookupErase) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto table = make_hash("hash_basic");
  EXPECT_EQ(table.lookup(1).value(), std::nullopt);  // absent is not an error
  ASSERT_TRUE(table.update(1, 100));
  ASSERT_TRUE(table.update(1, 101, UpdateFlag::Exist));
  ASSERT_TRUE(table.update(2, 200, UpdateFlag::NoExist));
  EXPECT_EQ(table.lookup(1).value(), std::optional<std::uint64_t>{101});
  EXPECT_EQ(table.lookup(2).value(), std::optional<std::uint64_t>{200});
  EXPECT_TRUE(table.erase(1).value());
  EXPECT_FALSE(table.erase(1).value());  // already gone
  EXPECT_EQ(table.lookup(1).value(), std::nullopt);
}

TEST(HashMap, AcceptsLruHash) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto table = make_hash("lru_basic", kSmallEntries, BPF_MAP_TYPE_LRU_HASH);
  ASSERT_TRUE(table.update(3, 300));
  EXPECT_EQ(table.lookup(3).value(), std::optional<std::uint64_t>{300});
}

TEST(HashMap, NoExistOnPresentKeyIsEexist) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto table = make_hash("conn_table");
  ASSERT_TRUE(table.update(1, 1));
  auto again = table.update(1, 2, UpdateFlag::NoExist);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().errnum, EEXIST);
  EXPECT_EQ(again.error().message, "update conn_table: key exists (EEXIST)");
  EXPECT_EQ(table.lookup(1).value(), std::optional<std::uint64_t>{1});  // unchanged
}

TEST(HashMap, ExistOnAbsentKeyIsEnoent) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto table = make_hash("exist_absent");
  auto missing = table.update(9, 2, UpdateFlag::Exist);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().errnum, ENOENT);
  EXPECT_NE(missing.error().message.find("exist_absent"), std::string::npos);
  EXPECT_NE(missing.error().message.find("ENOENT"), std::string::npos);
  EXPECT_EQ(table.lookup(9).value(), std::nullopt);
}

TEST(HashMap, FullMapIsE2big) {
  SLUICE_REQUIRE_PRIVILEGES();
  constexpr std::uint32_t kCapacity = 4;
  auto table = make_hash("full_hash", kCapacity);
  for (std::uint32_t key = 0; key < kCapacity; ++key) ASSERT_TRUE(table.update(key, key));
  auto overflow = table.update(kCapacity, 0);
  ASSERT_FALSE(overflow);
  EXPECT_EQ(overflow.error().errnum, E2BIG);
  EXPECT_EQ(overflow.error().message, "update full_hash: map full (E2BIG)");
  ASSERT_TRUE(table.update(0, 5));  // replacing an existing key still works
}

TEST(HashMap, FromRejectsWrongShape) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto array = MapFd::create(BPF_MAP_TYPE_ARRAY, "not_a_hash", 4, 8, kSmallEntries);
  ASSERT_TRUE(array);
  auto as_hash = U32Hash::from(std::move(*array));
  ASSERT_FALSE(as_hash);
  EXPECT_EQ(as_hash.error().message,
            "open HashMap on not_a_hash: map type array, expected hash or lru_hash (EINVAL)");

  auto wide = MapFd::create(BPF_MAP_TYPE_HASH, "wide_value", 4, 16, kSmallEntries);
  ASSERT_TRUE(wide);
  auto narrow = U32Hash::from(std::move(*wide));
  ASSERT_FALSE(narrow);
  EXPECT_EQ(narrow.error().message, "open HashMap on wide_value: value_size 16, expected 8 (EINVAL)");

  auto long_key = MapFd::create(BPF_MAP_TYPE_HASH, "long_key", 8, 8, kSmallEntries);
  ASSERT_TRUE(long_key);
  auto short_key = U32Hash::from(std::move(*long_key));
  ASSERT_FALSE(short_key);
  EXPECT_EQ(short_key.error().message, "open HashMap on long_key: key_size 8, expected 4 (EINVAL)");
}

TEST(ArrayMap, UpdateLookupAndDeleteIsRefused) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto config = make<ArrayMap<sluice_config>>(BPF_MAP_TYPE_ARRAY, "cfg_array", sizeof(std::uint32_t),
                                              sizeof(sluice_config), 1);
  auto initial = config.lookup(0).value();
  ASSERT_TRUE(initial.has_value());  // array slots always exist, zeroed
  EXPECT_EQ(initial->version, 0u);
  sluice_config wanted{};
  wanted.version = SLUICE_CONFIG_VERSION;
  wanted.stages_enabled = SLUICE_STAGES_ALL;
  wanted.end_verdict = SLUICE_VERDICT_PASS;
  ASSERT_TRUE(config.update(0, wanted, UpdateFlag::Exist));
  auto read = config.lookup(0).value();
  ASSERT_TRUE(read);
  EXPECT_EQ(read->stages_enabled, std::uint32_t{SLUICE_STAGES_ALL});
  EXPECT_EQ(read->end_verdict, std::uint32_t{SLUICE_VERDICT_PASS});

  auto deleted = config.erase(0);
  ASSERT_FALSE(deleted);
  EXPECT_EQ(deleted.error().errnum, EINVAL);
  EXPECT_EQ(deleted.error().message, "delete cfg_array: not supported on array maps (EINVAL)");
  const std::array<std::uint32_t, 1> keys{0};
  auto batch_deleted = config.erase_batch(keys);
  ASSERT_FALSE(batch_deleted);
  EXPECT_EQ(batch_deleted.error().errnum, EINVAL);

  auto past_end = config.update(1, wanted);
  ASSERT_FALSE(past_end);
  EXPECT_EQ(past_end.error().errnum, E2BIG);
  EXPECT_EQ(config.lookup(1).value(), std::nullopt);
}

TEST(ArrayMap, KeysAreEveryIndex) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto counters = make<ArrayMap<std::uint64_t>>(BPF_MAP_TYPE_ARRAY, "idx_array", 4, 8, kSmallEntries);
  auto keys = counters.keys().value();
  std::vector<std::uint32_t> expected(kSmallEntries);
  std::iota(expected.begin(), expected.end(), 0u);
  EXPECT_EQ(keys, expected);
}

TEST(PerCpuHashMap, OneValuePerPossibleCpuAndSum) {
  SLUICE_REQUIRE_PRIVILEGES();
  const auto cpus = static_cast<std::size_t>(libbpf_num_possible_cpus());
  auto counters = make<PerCpuHashMap<std::uint32_t, sluice_counter>>(
      BPF_MAP_TYPE_PERCPU_HASH, "pcpu_counters", sizeof(std::uint32_t), sizeof(sluice_counter), kSmallEntries);
  EXPECT_EQ(counters.cpu_count(), cpus);
  std::vector<sluice_counter> per_cpu(cpus);
  for (std::size_t cpu = 0; cpu < cpus; ++cpu) per_cpu[cpu] = {cpu + 1, (cpu + 1) * 100};
  ASSERT_TRUE(counters.update(5, per_cpu));

  auto read = counters.lookup(5).value();
  ASSERT_TRUE(read);
  ASSERT_EQ(read->size(), cpus);
  for (std::size_t cpu = 0; cpu < cpus; ++cpu) {
    EXPECT_EQ((*read)[cpu].packets, cpu + 1) << "cpu " << cpu;
    EXPECT_EQ((*read)[cpu].bytes, (cpu + 1) * 100) << "cpu " << cpu;
  }
  const auto total = sum(*read, [](sluice_counter& acc, const sluice_counter& one) {
    acc.packets += one.packets;
    acc.bytes += one.bytes;
  });
  EXPECT_EQ(total.packets, cpus * (cpus + 1) / 2);
  EXPECT_EQ(total.bytes, 100 * cpus * (cpus + 1) / 2);

  auto short_vector = counters.update(6, std::vector<sluice_counter>(cpus + 1));
  ASSERT_FALSE(short_vector);
  EXPECT_EQ(short_vector.error().errnum, EINVAL);
  EXPECT_NE(short_vector.error().message.find("per-CPU values given"), std::string::npos);
}

// A 4-byte value is laid out every 8 bytes per CPU: the stride the kernel uses.
TEST(PerCpuArrayMap, NarrowValuesUseTheKernelStride) {
  SLUICE_REQUIRE_PRIVILEGES();
  const auto cpus = static_cast<std::size_t>(libbpf_num_possible_cpus());
  auto hits = make<PerCpuArrayMap<std::uint32_t>>(BPF_MAP_TYPE_PERCPU_ARRAY, "pcpu_u32", 4, 4, 2);
  std::vector<std::uint32_t> per_cpu(cpus);
  std::iota(per_cpu.begin(), per_cpu.end(), 10u);
  ASSERT_TRUE(hits.update(1, per_cpu));
  auto read = hits.lookup(1).value();
  ASSERT_TRUE(read);
  EXPECT_EQ(*read, per_cpu);
  EXPECT_EQ(sum(*read), std::accumulate(per_cpu.begin(), per_cpu.end(), 0u));
  ASSERT_TRUE(hits.update_all_cpus(0, 7));
  EXPECT_EQ(sum(hits.lookup(0).value().value()), 7u * cpus);
  EXPECT_FALSE(hits.erase(0));
}

TEST(PerCpuHashMap, BatchRoundTrip) {
  SLUICE_REQUIRE_PRIVILEGES();
  constexpr std::uint32_t kElements = 100;
  const auto cpus = static_cast<std::size_t>(libbpf_num_possible_cpus());
  auto table = make<PerCpuHashMap<std::uint32_t, std::uint64_t>>(BPF_MAP_TYPE_PERCPU_HASH, "pcpu_batch", 4, 8,
                                                                 kElements);
  std::vector<std::uint32_t> keys(kElements);
  std::vector<std::vector<std::uint64_t>> values(kElements);
  for (std::uint32_t i = 0; i < kElements; ++i) {
    keys[i] = i * 3;
    values[i].resize(cpus);
    for (std::size_t cpu = 0; cpu < cpus; ++cpu) values[i][cpu] = i * 1000 + cpu;
  }
  EXPECT_EQ(table.update_batch(keys, values).value(), kElements);
  auto dumped = table.lookup_batch().value();
  ASSERT_EQ(dumped.size(), kElements);
  std::sort(dumped.begin(), dumped.end());
  for (std::uint32_t i = 0; i < kElements; ++i) {
    EXPECT_EQ(dumped[i].first, keys[i]);
    EXPECT_EQ(dumped[i].second, values[i]);
  }
}

TEST(HashMap, WalkSurvivesDeletingEveryOtherKey) {
  SLUICE_REQUIRE_PRIVILEGES();
  constexpr std::uint32_t kElements = 1000;
  auto table = make_hash("walk_delete", kElements);
  for (std::uint32_t key = 0; key < kElements; ++key) ASSERT_TRUE(table.update(key, key * 2));

  std::map<std::uint32_t, int> visits;
  std::size_t position = 0;
  auto walked = table.for_each_key([&](const std::uint32_t& key) {
    ++visits[key];
    // Deleting the walk's current key makes the kernel restart from the first key.
    if (position++ % 2 == 0) {
      ASSERT_TRUE(table.erase(key).value());
    }
  });
  ASSERT_TRUE(walked) << walked.error().message;
  EXPECT_EQ(*walked, kElements);
  ASSERT_EQ(visits.size(), kElements);
  for (const auto& [key, count] : visits) EXPECT_EQ(count, 1) << "key " << key;
  auto remaining = table.keys().value();
  EXPECT_EQ(remaining.size(), kElements / 2);

  auto entries = table.entries().value();
  ASSERT_EQ(entries.size(), kElements / 2);
  for (const auto& [key, value] : entries) EXPECT_EQ(value, key * 2);
  std::size_t for_each_count = 0;
  ASSERT_TRUE(table.for_each([&](std::uint32_t key, std::uint64_t value) {
    EXPECT_EQ(value, key * 2);
    ++for_each_count;
  }));
  EXPECT_EQ(for_each_count, kElements / 2);
}

// Deleting keys the walk has not reached, including the successor it already
// fetched, makes the kernel restart the walk from the first key: no key may
// be visited twice and every surviving key must still be visited.
TEST(HashMap, WalkSurvivesRestartsFromDeletedSuccessor) {
  SLUICE_REQUIRE_PRIVILEGES();
  constexpr std::uint32_t kElements = 200;
  constexpr std::uint32_t kSurvivors = 50;  // keys 0..49 survive the purge
  auto table = make_hash("walk_restart", kElements);
  for (std::uint32_t key = 0; key < kElements; ++key) ASSERT_TRUE(table.update(key, key));

  std::map<std::uint32_t, int> visits;
  bool purged = false;
  auto walked = table.for_each_key([&](const std::uint32_t& key) {
    ++visits[key];
    if (purged) return;
    purged = true;
    for (std::uint32_t other = kSurvivors; other < kElements; ++other)
      if (other != key) (void)table.erase(other).value();
  });
  ASSERT_TRUE(walked) << walked.error().message;
  for (const auto& [key, count] : visits) EXPECT_EQ(count, 1) << "key " << key;
  for (std::uint32_t key = 0; key < kSurvivors; ++key) EXPECT_EQ(visits.count(key), 1u) << "survivor " << key;
  // The first key, the survivors, at most one prefetched (already deleted) successor.
  EXPECT_LE(visits.size(), kSurvivors + 2);
}

TEST(HashMap, BatchUpdateTenThousandThenLookupBatchEquals) {
  SLUICE_REQUIRE_PRIVILEGES();
  constexpr std::uint32_t kElements = 10'000;
  auto table = make_hash("batch_hash", kElements);
  std::vector<std::uint32_t> keys(kElements);
  std::vector<std::uint64_t> values(kElements);
  for (std::uint32_t i = 0; i < kElements; ++i) {
    keys[i] = i * 7919;  // spread over buckets
    values[i] = std::uint64_t{i} << 20 | i;
  }
  EXPECT_EQ(table.update_batch(keys, values, UpdateFlag::NoExist).value(), kElements);

  auto dumped = table.lookup_batch().value();
  std::map<std::uint32_t, std::uint64_t> expected, got;
  for (std::uint32_t i = 0; i < kElements; ++i) expected[keys[i]] = values[i];
  for (const auto& [key, value] : dumped) got[key] = value;
  EXPECT_EQ(dumped.size(), kElements);
  EXPECT_EQ(got, expected);

  // NoExist again: the batch stops at the first element and says so.
  auto again = table.update_batch(keys, values, UpdateFlag::NoExist);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().errnum, EEXIST);
  EXPECT_EQ(again.error().done, 0u);
  EXPECT_NE(again.error().message.find("after 0 of 10000 elements"), std::string::npos) << again.error().message;

  const std::span<const std::uint32_t> first_half(keys.data(), kElements / 2);
  EXPECT_EQ(table.erase_batch(first_half).value(), kElements / 2);
  EXPECT_EQ(table.lookup_batch().value().size(), kElements / 2);
  EXPECT_EQ(table.lookup(keys[0]).value(), std::nullopt);
  EXPECT_EQ(table.lookup(keys[kElements - 1]).value(), std::optional<std::uint64_t>{values[kElements - 1]});

  auto absent = table.erase_batch(first_half);
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().errnum, ENOENT);

  auto mismatched = table.update_batch(first_half, std::span<const std::uint64_t>(values.data(), 1));
  ASSERT_FALSE(mismatched);
  EXPECT_EQ(mismatched.error().errnum, EINVAL);
}

TEST(ArrayMap, BatchRoundTrip) {
  SLUICE_REQUIRE_PRIVILEGES();
  constexpr std::uint32_t kElements = 3000;
  auto table = make<ArrayMap<std::uint64_t>>(BPF_MAP_TYPE_ARRAY, "batch_array", 4, 8, kElements);
  std::vector<std::uint32_t> keys(kElements);
  std::vector<std::uint64_t> values(kElements);
  for (std::uint32_t i = 0; i < kElements; ++i) {
    keys[i] = i;
    values[i] = i + 1;
  }
  EXPECT_EQ(table.update_batch(keys, values).value(), kElements);
  auto dumped = table.lookup_batch().value();
  ASSERT_EQ(dumped.size(), kElements);
  for (std::uint32_t i = 0; i < kElements; ++i) {
    EXPECT_EQ(dumped[i].first, i);
    EXPECT_EQ(dumped[i].second, i + 1);
  }
}

sluice_lpm_v4_key v4(const char* text) { return std::get<sluice_lpm_v4_key>(parse_prefix(text).value()); }

TEST(LpmTrie, LongestPrefixMatch) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto trie = make<LpmTrie<sluice_lpm_v4_key, std::uint32_t>>(
      BPF_MAP_TYPE_LPM_TRIE, "lpm_v4", sizeof(sluice_lpm_v4_key), sizeof(std::uint32_t), 64, BPF_F_NO_PREALLOC);
  ASSERT_TRUE(trie.update(v4("198.18.0.0/15"), 15));
  ASSERT_TRUE(trie.update(v4("198.18.5.0/24"), 24));
  EXPECT_EQ(trie.lookup(v4("198.19.200.1/32")).value(), std::optional<std::uint32_t>{15});
  EXPECT_EQ(trie.lookup(v4("198.18.5.7/32")).value(), std::optional<std::uint32_t>{24});
  EXPECT_EQ(trie.lookup(v4("10.0.0.1/32")).value(), std::nullopt);
  EXPECT_TRUE(trie.erase(v4("198.18.5.0/24")).value());
  EXPECT_EQ(trie.lookup(v4("198.18.5.7/32")).value(), std::optional<std::uint32_t>{15});
  auto keys = trie.keys().value();
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(to_string(keys[0]), "198.18.0.0/15");
}

TEST(LpmTrie, BatchFallsBackToElementOps) {
  SLUICE_REQUIRE_PRIVILEGES();
  constexpr std::uint32_t kElements = 256;
  auto trie = make<LpmTrie<sluice_lpm_v6_key, std::uint64_t>>(
      BPF_MAP_TYPE_LPM_TRIE, "lpm_v6", sizeof(sluice_lpm_v6_key), sizeof(std::uint64_t), kElements,
      BPF_F_NO_PREALLOC);
  std::vector<sluice_lpm_v6_key> keys(kElements);
  std::vector<std::uint64_t> values(kElements);
  for (std::uint32_t i = 0; i < kElements; ++i) {
    keys[i] = sluice_lpm_v6_key{48, {0x20, 0x01, 0x0d, 0xb8, 0, static_cast<std::uint8_t>(i)}};
    values[i] = i;
  }
  EXPECT_EQ(trie.update_batch(keys, values).value(), kElements);
  auto dumped = trie.lookup_batch().value();
  ASSERT_EQ(dumped.size(), kElements);
  std::map<std::string, std::uint64_t> got;
  for (const auto& [key, value] : dumped) got[to_string(key)] = value;
  for (std::uint32_t i = 0; i < kElements; ++i) EXPECT_EQ(got.at(to_string(keys[i])), i);

  auto probe = parse_prefix("2001:db8:7::1234").value();
  EXPECT_EQ(trie.lookup(std::get<sluice_lpm_v6_key>(probe)).value(), std::optional<std::uint64_t>{7});

  // A failing element in the fallback loop reports how many were written before it.
  std::vector<std::uint64_t> same(kElements, 0);
  auto duplicate = trie.update_batch(keys, same, UpdateFlag::NoExist);
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().errnum, EEXIST);
  EXPECT_EQ(duplicate.error().done, 0u);

  EXPECT_EQ(trie.erase_batch(keys).value(), kElements);
  EXPECT_TRUE(trie.keys().value().empty());
}

}  // namespace
}  // namespace sluice::maps
