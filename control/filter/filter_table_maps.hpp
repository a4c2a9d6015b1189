#pragma once
// Inside FilterTable: its map handles and what it knows each generation
// holds, and the helpers both of its source files use: filter_table.cpp
// (the rule set, settings, counters) and prefix_lists.cpp (the prefix lists
// and their DIR-24-8 copies). Not for anyone else.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "dir24_8.hpp"
#include "filter_table.hpp"

namespace sluice::filter {
namespace detail {

template <class K>
bool key_less(const K& a, const K& b) {
  return std::memcmp(&a, &b, sizeof(K)) < 0;
}
template <class K>
bool key_equal(const K& a, const K& b) {
  return std::memcmp(&a, &b, sizeof(K)) == 0;
}
template <class V>
bool value_equal(const V& a, const V& b) {
  return std::memcmp(&a, &b, sizeof(V)) == 0;
}

inline Error table_error(std::string_view operation, std::string_view reason, int errnum = EINVAL) {
  return maps::make_error_because(operation, "filter", reason, errnum);
}

template <class K, class V>
void sort_entries(std::vector<std::pair<K, V>>& entries) {
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return key_less(a.first, b.first); });
}

// Deletes keys, tolerating ones already gone (batch first, element-wise on any trouble).
template <class Map, class K>
Result<void> erase_all(Map& map, const std::vector<K>& keys) {
  if (keys.empty()) return {};
  auto batch = map.erase_batch(std::span<const K>(keys));
  if (batch && *batch == keys.size()) return {};
  for (const K& key : keys)
    if (auto gone = map.erase(key); !gone) return gone.error();
  return {};
}

template <class Map, class K, class V>
Result<void> write_all(Map& map, const std::vector<std::pair<K, V>>& entries) {
  if (entries.empty()) return {};
  std::vector<K> keys;
  std::vector<V> values;
  keys.reserve(entries.size());
  values.reserve(entries.size());
  for (const auto& [k, v] : entries) {
    keys.push_back(k);
    values.push_back(v);
  }
  auto written = map.update_batch(std::span<const K>(keys), std::span<const V>(values));
  if (!written) return written.error();
  return {};
}

template <class K>
std::vector<K> keys_of(const auto& entries) {
  std::vector<K> keys;
  for (const auto& e : entries) keys.push_back(e.first);
  return keys;
}

inline sluice_lpm_v4_key cidr_of(const sluice_filter_v4_key& key) {
  sluice_lpm_v4_key out{};
  out.prefixlen = key.prefixlen - SLUICE_FILTER_GEN_PREFIX_BITS;
  std::memcpy(out.addr, key.addr, sizeof(out.addr));
  return out;
}
inline sluice_lpm_v6_key cidr_of(const sluice_filter_v6_key& key) {
  sluice_lpm_v6_key out{};
  out.prefixlen = key.prefixlen - SLUICE_FILTER_GEN_PREFIX_BITS;
  std::memcpy(out.addr, key.addr, sizeof(out.addr));
  return out;
}

}  // namespace detail

struct FilterTable::Maps {
  maps::ArrayMap<std::uint32_t> generation;
  maps::ArrayMap<sluice_filter_settings> settings;
  maps::ArrayMap<sluice_filter_set> sets;
  maps::LpmTrie<sluice_filter_v4_key, sluice_filter_verdict> prefix_v4;
  maps::LpmTrie<sluice_filter_v6_key, sluice_filter_verdict> prefix_v6;
  maps::LpmTrie<sluice_filter_v4_key, Bitmap> src_v4, dst_v4;
  maps::LpmTrie<sluice_filter_v6_key, Bitmap> src_v6, dst_v6;
  maps::HashMap<sluice_filter_ifindex_key, Bitmap> ifindex;
  maps::ArrayMap<Bitmap> any, bytes, port_bitmaps;
  maps::ArrayMap<sluice_filter_port_bounds> port_bounds;
  maps::ArrayMap<sluice_filter_verdict> rules;
  maps::PerCpuArrayMap<sluice_counter> rule_counters;
  maps::ArrayMap<sluice_filter_rate_class> rate_classes;
  maps::HashMap<sluice_filter_rate_key, sluice_filter_rate_bucket> rate_buckets;
  maps::ArrayMap<sluice_filter_rate_aggregate> rate_aggregates;
  maps::HashMap<sluice_ct_key, sluice_ct_entry> conntrack;  // IPv6 flows
  maps::HashMap<sluice_ct_v4_key, sluice_ct_entry> conntrack_v4;
  maps::HashMap<sluice_ct_key, sluice_ct_entry> unreplied;  // IPv6 flows no reply was seen for
  maps::HashMap<sluice_ct_v4_key, sluice_ct_entry> unreplied_v4;
  maps::PerCpuArrayMap<sluice_counter> verdict_counters;
  maps::PerCpuArrayMap<sluice_counter> event_counters;
  maps::ArrayMap<sluice_filter_port_index> port_index;
  // What packets read for IPv4 sources from dir_prefixes on, slot = generation (filled in open()).
  std::vector<maps::Dir24_8Slot> src_dir;
};

// Keys (and prefix-list values) this table knows to be in one generation.
struct FilterTable::Mirror {
  std::vector<std::pair<sluice_filter_v4_key, sluice_filter_verdict>> prefix_v4;  // sorted
  std::vector<std::pair<sluice_filter_v6_key, sluice_filter_verdict>> prefix_v6;  // sorted
  std::vector<sluice_filter_v4_key> src_v4, dst_v4;
  std::vector<sluice_filter_v6_key> src_v6, dst_v6;
  std::vector<sluice_filter_ifindex_key> ifindex;
};

}  // namespace sluice::filter
