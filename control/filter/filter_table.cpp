#include "filter_table.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <charconv>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "decimal.hpp"
#include "dir24_8.hpp"
#include "sluice.skel.h"
#include "utf8.hpp"

namespace sluice::filter {
namespace {

using maps::ArrayMap;
using maps::HashMap;
using maps::LpmTrie;
using maps::PerCpuArrayMap;

template <class Handle>
Result<Handle> handle_of(const bpf_map* map) {
  auto fd = maps::MapFd::from_skeleton(map);
  if (!fd) return fd.error();
  return Handle::from(std::move(*fd));
}

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

Error table_error(std::string_view operation, std::string_view reason, int errnum = EINVAL) {
  return maps::make_error_because(operation, "filter", reason, errnum);
}

template <class K>
void sort_keys(std::vector<K>& keys) {
  std::sort(keys.begin(), keys.end(), key_less<K>);
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

// Brings a generation's map from what it holds (`had`, sorted) to `want` (sorted), touching only the difference.
template <class Map, class K, class V>
Result<void> sync_entries(Map& map, const std::vector<std::pair<K, V>>& had, const std::vector<std::pair<K, V>>& want) {
  std::vector<K> stale;
  std::vector<std::pair<K, V>> fresh;
  std::size_t i = 0, j = 0;
  while (i < had.size() || j < want.size()) {
    if (j == want.size() || (i < had.size() && key_less(had[i].first, want[j].first))) {
      stale.push_back(had[i++].first);
    } else if (i == had.size() || key_less(want[j].first, had[i].first)) {
      fresh.push_back(want[j++]);
    } else {
      if (!value_equal(had[i].second, want[j].second)) fresh.push_back(want[j]);
      ++i, ++j;
    }
  }
  if (auto erased = erase_all(map, stale); !erased) return erased;
  return write_all(map, fresh);
}

// Replaces every key of a generation (small maps: rule prefixes, ifindexes).
template <class Map, class K, class V>
Result<void> rewrite_keys(Map& map, const std::vector<K>& had, const std::vector<std::pair<K, V>>& want) {
  std::vector<K> stale;
  for (const K& key : had)
    if (std::none_of(want.begin(), want.end(), [&](const auto& e) { return key_equal(e.first, key); }))
      stale.push_back(key);
  if (auto erased = erase_all(map, stale); !erased) return erased;
  return write_all(map, want);
}

template <class K>
std::vector<K> keys_of(const auto& entries) {
  std::vector<K> keys;
  for (const auto& e : entries) keys.push_back(e.first);
  return keys;
}

template <class K, class V>
std::vector<std::pair<K, V>> with_generation(std::vector<std::pair<K, V>> entries, std::uint32_t gen) {
  for (auto& e : entries) e.first.generation = gen;
  return entries;
}

sluice_lpm_v4_key cidr_of(const sluice_filter_v4_key& key) {
  sluice_lpm_v4_key out{};
  out.prefixlen = key.prefixlen - SLUICE_FILTER_GEN_PREFIX_BITS;
  std::memcpy(out.addr, key.addr, sizeof(out.addr));
  return out;
}
sluice_lpm_v6_key cidr_of(const sluice_filter_v6_key& key) {
  sluice_lpm_v6_key out{};
  out.prefixlen = key.prefixlen - SLUICE_FILTER_GEN_PREFIX_BITS;
  std::memcpy(out.addr, key.addr, sizeof(out.addr));
  return out;
}

// DIR-24-8 value of a prefix-list entry (sluice_maps.h): the action, never 0, with the rate class above it.
std::uint32_t dir_value(const sluice_filter_verdict& verdict) {
  return verdict.action | verdict.rate_class << SLUICE_FILTER_DIR_CLASS_SHIFT;
}

std::vector<maps::Dir24_8Entry> dir_entries(const std::vector<std::pair<sluice_filter_v4_key, sluice_filter_verdict>>& prefixes) {
  std::vector<maps::Dir24_8Entry> out;
  out.reserve(prefixes.size());
  for (const auto& [key, verdict] : prefixes) out.push_back({cidr_of(key), dir_value(verdict)});
  return out;
}

// Up to this many changed prefixes, a DIR-24-8 is updated prefix by prefix
// (each recomputes one /24 block or the blocks of one shorter prefix, a few
// microseconds); beyond it, and beyond 1/kDirRebuildFraction of the set,
// one assign() recomputes all 2^24 blocks (~1 s at 1M prefixes) instead.
constexpr std::size_t kDirIncrementalChanges = 65'536;
constexpr std::size_t kDirRebuildFraction = 4;

// A prefix line without its comment: the longest IPv6 prefix, "rate-limit"
// and a class id fit many times over.
constexpr std::size_t kMaxPrefixLineBytes = 256;

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r");
  return std::string(text.substr(first, last - first + 1));
}

}  // namespace

namespace {
// The first bytes of a line for an error message, unprintable bytes as \xHH.
std::string quoted_start(std::string_view text) {
  constexpr std::size_t shown = 40;
  std::string out = "'";
  for (unsigned char c : text.substr(0, shown)) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      constexpr char digits[] = "0123456789abcdef";
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out + (text.size() > shown ? "'..." : "'");
}

}  // namespace

Result<std::optional<PrefixEntry>> parse_prefix_line(std::string_view line, Action default_action,
                                                     const std::vector<RateClass>& classes) {
  auto refuse = [](std::string reason) { return Error{EINVAL, std::move(reason)}; };
  if (line.size() > kMaxPrefixFileLineBytes)
    return refuse("a line of " + std::to_string(line.size()) + " bytes, over the " + std::to_string(kMaxPrefixFileLineBytes) +
                  "-byte limit: " + quoted_start(line));
  if (auto bad = invalid_utf8_at(line))
    return refuse("invalid UTF-8 at byte " + std::to_string(*bad + 1) + ": " + quoted_start(line));
  std::string text = trim(line.substr(0, line.find('#')));
  if (text.empty()) return std::optional<PrefixEntry>{};
  // Errors quote the line's words: a hostile long line is refused without being echoed.
  if (text.size() > kMaxPrefixLineBytes)
    return refuse(std::to_string(text.size()) + " characters before any comment; a prefix line has at most " +
                  std::to_string(kMaxPrefixLineBytes));
  std::istringstream words(text);
  std::string cidr, action_word, class_word, extra;
  words >> cidr >> action_word >> class_word >> extra;
  if (!extra.empty()) return refuse("unexpected '" + extra + "' after the action");
  auto prefix = maps::parse_prefix(cidr);
  if (!prefix) return refuse(prefix.error().message);
  PrefixEntry entry{*prefix, default_action, 0};
  if (!action_word.empty()) {
    auto action = parse_action(action_word);
    if (!action) return refuse(action.error().message);
    entry.action = *action;
  }
  if (entry.action == Action::RateLimit) {
    // Decimal, as every integer (maps/decimal.hpp); validate() checks that the class exists.
    const auto id = maps::parse_decimal(class_word, 0, std::numeric_limits<std::uint32_t>::max());
    if (!id.value) return refuse("rate-limit needs a class number: " + id.problem);
    entry.rate_class = static_cast<std::uint32_t>(*id.value);
  } else if (!class_word.empty()) {
    return refuse("unexpected '" + class_word + "' after action " + std::string(to_string(entry.action)));
  }
  if (auto valid = validate(entry, classes); !valid) return refuse(valid.error().message);
  return std::optional<PrefixEntry>{entry};
}

struct FilterTable::Maps {
  ArrayMap<std::uint32_t> generation;
  ArrayMap<sluice_filter_settings> settings;
  ArrayMap<sluice_filter_set> sets;
  LpmTrie<sluice_filter_v4_key, sluice_filter_verdict> prefix_v4;
  LpmTrie<sluice_filter_v6_key, sluice_filter_verdict> prefix_v6;
  LpmTrie<sluice_filter_v4_key, Bitmap> src_v4, dst_v4;
  LpmTrie<sluice_filter_v6_key, Bitmap> src_v6, dst_v6;
  HashMap<sluice_filter_ifindex_key, Bitmap> ifindex;
  ArrayMap<Bitmap> any, bytes, port_bitmaps;
  ArrayMap<sluice_filter_port_bounds> port_bounds;
  ArrayMap<sluice_filter_verdict> rules;
  PerCpuArrayMap<sluice_counter> rule_counters;
  ArrayMap<sluice_filter_rate_class> rate_classes;
  HashMap<sluice_filter_rate_key, sluice_filter_rate_bucket> rate_buckets;
  ArrayMap<sluice_filter_rate_aggregate> rate_aggregates;
  HashMap<sluice_ct_key, sluice_ct_entry> conntrack;  // IPv6 flows
  HashMap<sluice_ct_v4_key, sluice_ct_entry> conntrack_v4;
  HashMap<sluice_ct_key, sluice_ct_entry> unreplied;  // IPv6 flows no reply was seen for
  HashMap<sluice_ct_v4_key, sluice_ct_entry> unreplied_v4;
  PerCpuArrayMap<sluice_counter> verdict_counters;
  PerCpuArrayMap<sluice_counter> event_counters;
  ArrayMap<sluice_filter_port_index> port_index;
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

FilterTable::FilterTable(std::unique_ptr<Maps> maps, std::uint32_t live, FilterTableOptions options)
    : maps_(std::move(maps)), options_(options), live_(live) {
  for (auto& m : mirror_) m = std::make_unique<Mirror>();
}
FilterTable::FilterTable(FilterTable&&) noexcept = default;
FilterTable& FilterTable::operator=(FilterTable&&) noexcept = default;
FilterTable::~FilterTable() = default;

Result<FilterTable> FilterTable::open(const dataplane::Dataplane& plane, FilterTableOptions options) {
  if (options.tbl8_groups_max == 0 || options.tbl8_groups_max > SLUICE_DIR24_8_TBL8_GROUPS_MAX)
    return table_error("open filter", "tbl8_groups_max " + std::to_string(options.tbl8_groups_max) + " is not 1.." +
                                          std::to_string(SLUICE_DIR24_8_TBL8_GROUPS_MAX));
  const auto& m = plane.skeleton()->maps;
#define SLUICE_OPEN(var, type, map)                \
  auto var = handle_of<type>(m.map);               \
  if (!var) return var.error();
  SLUICE_OPEN(generation, ArrayMap<std::uint32_t>, filter_generation)
  SLUICE_OPEN(settings, ArrayMap<sluice_filter_settings>, filter_settings)
  SLUICE_OPEN(sets, ArrayMap<sluice_filter_set>, filter_sets)
  using PrefixV4 = LpmTrie<sluice_filter_v4_key, sluice_filter_verdict>;
  using PrefixV6 = LpmTrie<sluice_filter_v6_key, sluice_filter_verdict>;
  using RuleV4 = LpmTrie<sluice_filter_v4_key, Bitmap>;
  using RuleV6 = LpmTrie<sluice_filter_v6_key, Bitmap>;
  SLUICE_OPEN(prefix_v4, PrefixV4, filter_prefix_v4)
  SLUICE_OPEN(prefix_v6, PrefixV6, filter_prefix_v6)
  SLUICE_OPEN(src_v4, RuleV4, filter_src_v4)
  SLUICE_OPEN(dst_v4, RuleV4, filter_dst_v4)
  SLUICE_OPEN(src_v6, RuleV6, filter_src_v6)
  SLUICE_OPEN(dst_v6, RuleV6, filter_dst_v6)
  using IfindexMap = HashMap<sluice_filter_ifindex_key, Bitmap>;
  SLUICE_OPEN(ifindex, IfindexMap, filter_ifindex)
  SLUICE_OPEN(any, ArrayMap<Bitmap>, filter_any_bitmaps)
  SLUICE_OPEN(bytes, ArrayMap<Bitmap>, filter_byte_bitmaps)
  SLUICE_OPEN(port_bitmaps, ArrayMap<Bitmap>, filter_port_bitmaps)
  SLUICE_OPEN(port_bounds, ArrayMap<sluice_filter_port_bounds>, filter_port_bounds)
  SLUICE_OPEN(rules, ArrayMap<sluice_filter_verdict>, filter_rules)
  SLUICE_OPEN(rule_counters, PerCpuArrayMap<sluice_counter>, filter_rule_counters)
  SLUICE_OPEN(rate_classes, ArrayMap<sluice_filter_rate_class>, filter_rate_classes)
  using BucketMap = HashMap<sluice_filter_rate_key, sluice_filter_rate_bucket>;
  SLUICE_OPEN(rate_buckets, BucketMap, filter_rate_buckets)
  SLUICE_OPEN(rate_aggregates, ArrayMap<sluice_filter_rate_aggregate>, filter_rate_aggregates)
  using CtMap = HashMap<sluice_ct_key, sluice_ct_entry>;
  SLUICE_OPEN(conntrack, CtMap, filter_conntrack)
  using CtV4Map = HashMap<sluice_ct_v4_key, sluice_ct_entry>;
  SLUICE_OPEN(conntrack_v4, CtV4Map, filter_conntrack_v4)
  SLUICE_OPEN(unreplied, CtMap, filter_ct_unreplied)
  SLUICE_OPEN(unreplied_v4, CtV4Map, filter_ct_unreplied_v4)
  SLUICE_OPEN(verdict_counters, PerCpuArrayMap<sluice_counter>, verdict_counters)
  SLUICE_OPEN(event_counters, PerCpuArrayMap<sluice_counter>, filter_event_counters)
  SLUICE_OPEN(port_index, ArrayMap<sluice_filter_port_index>, filter_port_index)
#undef SLUICE_OPEN
  auto handles = std::unique_ptr<Maps>(new Maps{
      std::move(*generation), std::move(*settings), std::move(*sets), std::move(*prefix_v4), std::move(*prefix_v6),
      std::move(*src_v4), std::move(*dst_v4), std::move(*src_v6), std::move(*dst_v6), std::move(*ifindex),
      std::move(*any), std::move(*bytes), std::move(*port_bitmaps), std::move(*port_bounds), std::move(*rules),
      std::move(*rule_counters), std::move(*rate_classes), std::move(*rate_buckets), std::move(*rate_aggregates), std::move(*conntrack),
      std::move(*conntrack_v4), std::move(*unreplied), std::move(*unreplied_v4), std::move(*verdict_counters), std::move(*event_counters), std::move(*port_index), {}});
  for (std::uint32_t gen = 0; gen < SLUICE_FILTER_GENERATIONS; ++gen) {
    auto outer24 = maps::MapFd::from_skeleton(m.fsrc4_tbl24);
    if (!outer24) return outer24.error();
    auto outer8 = maps::MapFd::from_skeleton(m.fsrc4_tbl8);
    if (!outer8) return outer8.error();
    // Emptied: a previous owner's copy is rebuilt from the trie below (packets read the trie meanwhile).
    auto dir = maps::Dir24_8Slot::open(std::move(*outer24), std::move(*outer8), gen, "fsrc4_g" + std::to_string(gen));
    if (!dir) return dir.error();
    handles->src_dir.push_back(std::move(*dir));
  }

  auto live = handles->generation.lookup(0);
  if (!live) return live.error();
  FilterTable table(std::move(handles), (*live ? **live : 0) & (SLUICE_FILTER_GENERATIONS - 1), options);
  table.generation_count_ = *live ? **live : 0;

  // Learn what a previous owner (a restarted daemon) left in each generation.
  Maps& h = *table.maps_;
  auto prefixes_v4 = h.prefix_v4.lookup_batch();
  if (!prefixes_v4) return prefixes_v4.error();
  for (auto& [k, v] : *prefixes_v4) table.mirror_[k.generation & 1]->prefix_v4.emplace_back(k, v);
  auto prefixes_v6 = h.prefix_v6.lookup_batch();
  if (!prefixes_v6) return prefixes_v6.error();
  for (auto& [k, v] : *prefixes_v6) table.mirror_[k.generation & 1]->prefix_v6.emplace_back(k, v);
  auto learn = [&](const auto& map, auto member) -> Result<void> {
    auto keys = map.keys();
    if (!keys) return keys.error();
    for (const auto& k : *keys) (table.mirror_[k.generation & 1].get()->*member).push_back(k);
    return {};
  };
  if (auto ok = learn(h.src_v4, &Mirror::src_v4); !ok) return ok.error();
  if (auto ok = learn(h.dst_v4, &Mirror::dst_v4); !ok) return ok.error();
  if (auto ok = learn(h.src_v6, &Mirror::src_v6); !ok) return ok.error();
  if (auto ok = learn(h.dst_v6, &Mirror::dst_v6); !ok) return ok.error();
  if (auto ok = learn(h.ifindex, &Mirror::ifindex); !ok) return ok.error();
  for (auto& mirror : table.mirror_) {
    sort_entries(mirror->prefix_v4);
    sort_entries(mirror->prefix_v6);
  }
  // The tries are the source of truth: a generation big enough gets its DIR-24-8 copy rebuilt from its trie.
  for (std::uint32_t gen = 0; gen < SLUICE_FILTER_GENERATIONS; ++gen) {
    const V4Prefixes& listed = table.mirror_[gen]->prefix_v4;
    if (!table.dir_wanted(gen, listed.size())) continue;
    auto built = table.build_dir(gen, listed);
    if (!built) return built.error();
    if (auto plugged = h.src_dir[gen].plug(std::move(*built)); !plugged) return plugged.error();
  }
  const Mirror& live_mirror = *table.mirror_[table.live_];
  for (const auto& [k, v] : live_mirror.prefix_v4)
    table.current_.prefixes.push_back({cidr_of(k), static_cast<Action>(v.action), v.rate_class});
  for (const auto& [k, v] : live_mirror.prefix_v6)
    table.current_.prefixes.push_back({cidr_of(k), static_cast<Action>(v.action), v.rate_class});
  table.rebuild_index();
  auto header = h.sets.lookup(table.live_);
  if (!header) return header.error();
  if (*header && (*header)->default_verdict == SLUICE_VERDICT_DROP) table.current_.default_policy = DefaultPolicy::Drop;

  auto settings_now = h.settings.lookup(0);
  if (!settings_now) return settings_now.error();
  if (!*settings_now || (*settings_now)->version != SLUICE_FILTER_SETTINGS_VERSION) {
    if (auto written = h.settings.update(0, to_wire(default_settings())); !written) return written.error();
  }
  return table;
}

Result<void> FilterTable::wait_for_readers() {
  // XDP programs run inside RCU read-side sections; MEMBARRIER_CMD_GLOBAL
  // returns after synchronize_rcu(), so no packet that read the old
  // generation number is still being classified when it returns.
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0)
    return maps::make_error("wait for packets in flight (membarrier)", "filter", errno);
  flipped_since_wait_ = false;
  return {};
}

bool FilterTable::dir_wanted(std::uint32_t gen, std::size_t count) const noexcept {
  if (options_.dir_prefixes == 0) return false;
  // Hysteresis: a list hovering at the threshold does not build and drop 64 MiB at every change.
  if (maps_->src_dir[gen].plugged()) return count * 2 >= options_.dir_prefixes;
  return count >= options_.dir_prefixes;
}

Result<maps::Dir24_8> FilterTable::build_dir(std::uint32_t gen, const V4Prefixes& prefixes) const {
  const auto entries = dir_entries(prefixes);
  return maps_->src_dir[gen].build(entries, maps::dir24_8_groups_wanted(entries, options_.tbl8_groups_max));
}

void FilterTable::plug_dir_after_change(std::uint32_t gen, maps::Dir24_8 table) {
  auto plugged = maps_->src_dir[gen].plug(std::move(table));
  // Known: a fresh copy, or none (the trie answers). A failed unplug leaves
  // the old copy, which lacks this change, plugged: unknown, rebuilt next time.
  dir_unknown_[gen] = !plugged && maps_->src_dir[gen].plugged();
  dir_error_ = plugged ? std::string() : plugged.error().message;
}

Result<PrefixDirInfo> FilterTable::prefix_dir(std::uint32_t generation) const {
  if (generation >= SLUICE_FILTER_GENERATIONS)
    return table_error("prefix list tables", "generation " + std::to_string(generation) + " is not 0 or 1");
  const maps::Dir24_8Slot& slot = maps_->src_dir[generation];
  PrefixDirInfo info;
  if (!slot.plugged()) return info;
  auto bytes24 = maps::map_memory_bytes(slot.table()->tbl24());
  if (!bytes24) return bytes24.error();
  auto bytes8 = maps::map_memory_bytes(slot.table()->tbl8());
  if (!bytes8) return bytes8.error();
  info.plugged = true;
  info.tbl8_groups = slot.table()->groups_capacity();
  info.tbl8_used = slot.table()->groups_used();
  info.tbl24_bytes = *bytes24;
  info.tbl8_bytes = *bytes8;
  return info;
}

Result<void> FilterTable::sync_dir(std::uint32_t gen, const V4Prefixes& had, const V4Prefixes& want) {
  // gen is the idle generation: no packet reads it, so its copy may come, go or be rebuilt in any order.
  maps::Dir24_8Slot& slot = maps_->src_dir[gen];
  auto fresh_copy = [&]() -> Result<void> {
    auto built = build_dir(gen, want);
    if (!built) return built.error();
    if (auto plugged = slot.plug(std::move(*built)); !plugged) return plugged;
    dir_unknown_[gen] = false;
    return {};
  };
  if (!dir_wanted(gen, want.size())) {
    if (auto gone = slot.unplug(); !gone) return gone;
    dir_unknown_[gen] = false;
    return {};
  }
  if (!slot.plugged()) return fresh_copy();
  maps::Dir24_8& dir = *slot.table();
  std::vector<sluice_lpm_v4_key> stale;
  std::vector<std::pair<sluice_lpm_v4_key, std::uint32_t>> fresh;
  if (!dir_unknown_[gen]) {
    std::size_t i = 0, j = 0;
    while (i < had.size() || j < want.size()) {
      if (j == want.size() || (i < had.size() && key_less(had[i].first, want[j].first))) {
        stale.push_back(cidr_of(had[i++].first));
      } else if (i == had.size() || key_less(want[j].first, had[i].first)) {
        fresh.emplace_back(cidr_of(want[j].first), dir_value(want[j].second));
        ++j;
      } else {
        if (!value_equal(had[i].second, want[j].second)) fresh.emplace_back(cidr_of(want[j].first), dir_value(want[j].second));
        ++i, ++j;
      }
    }
  }
  const std::size_t changes = stale.size() + fresh.size();
  const bool incremental = !dir_unknown_[gen] &&
                           (changes <= kDirIncrementalChanges || changes * kDirRebuildFraction <= want.size());
  Result<void> done{};
  if (incremental) {
    // Erase first: the groups they free are reused (after a grace period) by the inserts.
    for (const auto& prefix : stale)
      if (auto gone = dir.erase(prefix); !gone) {
        done = gone.error();
        break;
      }
    if (done)
      for (const auto& [prefix, value] : fresh)
        if (auto put = dir.insert(prefix, value); !put) {
          done = put;
          break;
        }
  } else {
    done = dir.assign(dir_entries(want));
  }
  // assign() fails without writing; a failed incremental pass leaves a mix: rebuild it whole next time.
  dir_unknown_[gen] = !done && (incremental || dir_unknown_[gen]);
  // Out of groups below the most allowed: a bigger copy.
  if (!done && done.error().errnum == ENOSPC && dir.groups_capacity() < options_.tbl8_groups_max) return fresh_copy();
  return done;
}

Result<void> FilterTable::write_generation(std::uint32_t gen, const CompiledSet& c) {
  Maps& h = *maps_;
  Mirror& had = *mirror_[gen];
  Mirror want;
  want.prefix_v4 = with_generation(c.prefix_v4, gen);
  want.prefix_v6 = with_generation(c.prefix_v6, gen);
  sort_entries(want.prefix_v4);
  sort_entries(want.prefix_v6);
  const auto src_v4 = with_generation(c.src_v4, gen), dst_v4 = with_generation(c.dst_v4, gen);
  const auto src_v6 = with_generation(c.src_v6, gen), dst_v6 = with_generation(c.dst_v6, gen);
  std::vector<std::pair<sluice_filter_ifindex_key, Bitmap>> ifx;
  for (const auto& [index, bitmap] : c.ifindex) ifx.push_back({{gen, index}, bitmap});
  want.src_v4 = keys_of<sluice_filter_v4_key>(src_v4);
  want.dst_v4 = keys_of<sluice_filter_v4_key>(dst_v4);
  want.src_v6 = keys_of<sluice_filter_v6_key>(src_v6);
  want.dst_v6 = keys_of<sluice_filter_v6_key>(dst_v6);
  want.ifindex = keys_of<sluice_filter_ifindex_key>(ifx);

  // On failure the generation holds an unknown mix: remember every key that
  // may be there (with a value no set uses) so the next write cleans it up.
  auto poison = [&](const Error& error) -> Error {
    auto merge = [](auto& into, const auto& from) { into.insert(into.end(), from.begin(), from.end()); };
    for (auto& e : want.prefix_v4) e.second.action = SLUICE_FILTER_ACTION_NONE;
    for (auto& e : want.prefix_v6) e.second.action = SLUICE_FILTER_ACTION_NONE;
    auto unique_merge = [&](auto& into, const auto& from) {
      merge(into, from);
      sort_entries(into);
      into.erase(std::unique(into.begin(), into.end(), [](const auto& a, const auto& b) { return key_equal(a.first, b.first); }),
                 into.end());
    };
    unique_merge(had.prefix_v4, want.prefix_v4);
    unique_merge(had.prefix_v6, want.prefix_v6);
    merge(had.src_v4, want.src_v4);
    merge(had.dst_v4, want.dst_v4);
    merge(had.src_v6, want.src_v6);
    merge(had.dst_v6, want.dst_v6);
    merge(had.ifindex, want.ifindex);
    return error;
  };
#define SLUICE_TRY(expr)                          \
  if (auto ok_ = (expr); !ok_) return poison(ok_.error());
  // The DIR-24-8 first: running out of tbl8 groups (ENOSPC) fails before anything else is written.
  if (auto synced = sync_dir(gen, had.prefix_v4, want.prefix_v4); !synced) return synced.error();
  SLUICE_TRY(sync_entries(h.prefix_v4, had.prefix_v4, want.prefix_v4))
  SLUICE_TRY(sync_entries(h.prefix_v6, had.prefix_v6, want.prefix_v6))
  SLUICE_TRY(rewrite_keys(h.src_v4, had.src_v4, src_v4))
  SLUICE_TRY(rewrite_keys(h.dst_v4, had.dst_v4, dst_v4))
  SLUICE_TRY(rewrite_keys(h.src_v6, had.src_v6, src_v6))
  SLUICE_TRY(rewrite_keys(h.dst_v6, had.dst_v6, dst_v6))
  SLUICE_TRY(rewrite_keys(h.ifindex, had.ifindex, ifx))

  std::vector<std::pair<std::uint32_t, Bitmap>> arrays;
  for (std::uint32_t i = 0; i < SLUICE_FILTER_ANY_COUNT; ++i) arrays.emplace_back(gen * SLUICE_FILTER_ANY_COUNT + i, c.any[i]);
  SLUICE_TRY(write_all(h.any, arrays))
  arrays.clear();
  for (std::uint32_t i = 0; i < c.bytes.size(); ++i)
    arrays.emplace_back(gen * SLUICE_FILTER_BYTE_COUNT * SLUICE_FILTER_BYTE_VALUES + i, c.bytes[i]);
  SLUICE_TRY(write_all(h.bytes, arrays))
  for (std::uint32_t dir = 0; dir < SLUICE_FILTER_PORT_DIRS; ++dir) {
    const std::uint32_t slot = gen * SLUICE_FILTER_PORT_DIRS + dir;
    arrays.clear();
    for (std::uint32_t k = 0; k < c.port_bitmaps[dir].size(); ++k)
      arrays.emplace_back(slot * SLUICE_FILTER_MAX_PORT_INTERVALS + k, c.port_bitmaps[dir][k]);
    SLUICE_TRY(write_all(h.port_bitmaps, arrays))
    SLUICE_TRY(h.port_bounds.update(slot, *c.port_bounds[dir]))
    SLUICE_TRY(h.port_index.update(slot, *c.port_index[dir]))
  }
  std::vector<std::pair<std::uint32_t, sluice_filter_verdict>> actions;
  std::vector<std::pair<std::uint32_t, std::vector<sluice_counter>>> zeros;
  for (std::uint32_t i = 0; i < c.rule_actions.size(); ++i) {
    actions.emplace_back(gen * SLUICE_FILTER_MAX_RULES + i, c.rule_actions[i]);
    zeros.emplace_back(gen * SLUICE_FILTER_MAX_RULES + i, std::vector<sluice_counter>(h.rule_counters.cpu_count()));
  }
  SLUICE_TRY(write_all(h.rules, actions))
  SLUICE_TRY(write_all(h.rule_counters, zeros))
  std::vector<std::pair<std::uint32_t, sluice_filter_rate_class>> classes;
  for (std::uint32_t i = 0; i < SLUICE_FILTER_MAX_RATE_CLASSES; ++i)
    classes.emplace_back(gen * SLUICE_FILTER_MAX_RATE_CLASSES + i, c.rate_classes[i]);
  SLUICE_TRY(write_all(h.rate_classes, classes))
  SLUICE_TRY(h.sets.update(gen, c.header))
#undef SLUICE_TRY
  *mirror_[gen] = std::move(want);
  return {};
}

Result<void> FilterTable::replace(const RuleSet& set) {
  if (auto valid = validate(set); !valid) return valid;
  return replace_validated(set);
}

Result<void> FilterTable::replace_validated(const RuleSet& set) {
  const CompiledSet compiled = compile(set);
  const std::uint32_t idle = live_ ^ 1;
  if (flipped_since_wait_) {
    if (auto waited = wait_for_readers(); !waited) return waited;
  }
  if (auto written = write_generation(idle, compiled); !written) return written;
  if (auto carried = carry_rule_counters(idle, set); !carried) return carried;
  // The one write that makes the new set live: a count whose low bit is the idle generation.
  const std::uint32_t next_count = generation_count_ + 1;
  static_assert(SLUICE_FILTER_GENERATIONS == 2, "the count's low bit names the generation");
  if ((next_count & 1) != idle) return table_error("replace rule set", "generation count and live slot disagree", EIO);
  if (auto flipped = maps_->generation.update(0, next_count); !flipped) return flipped;
  generation_count_ = next_count;
  live_ = idle;
  flipped_since_wait_ = true;
  current_ = set;
  rebuild_index();
  return {};
}

void FilterTable::rebuild_index() {
  index_.clear();
  index_.reserve(current_.prefixes.size());
  v4_count_ = v6_count_ = 0;
  for (std::size_t i = 0; i < current_.prefixes.size(); ++i) {
    index_[prefix_key(current_.prefixes[i].prefix)] = i;
    ++(current_.prefixes[i].prefix.index() == 0 ? v4_count_ : v6_count_);
  }
}

void FilterTable::index_put(const PrefixEntry& entry) {
  auto [at, fresh] = index_.try_emplace(prefix_key(entry.prefix), current_.prefixes.size());
  if (!fresh) {
    current_.prefixes[at->second] = entry;
    return;
  }
  current_.prefixes.push_back(entry);
  ++(entry.prefix.index() == 0 ? v4_count_ : v6_count_);
}

void FilterTable::index_erase(const Prefix& prefix) {
  auto at = index_.find(prefix_key(prefix));
  if (at == index_.end()) return;
  const std::size_t hole = at->second;
  index_.erase(at);
  if (hole + 1 != current_.prefixes.size()) {
    current_.prefixes[hole] = std::move(current_.prefixes.back());
    index_[prefix_key(current_.prefixes[hole].prefix)] = hole;
  }
  current_.prefixes.pop_back();
  --(prefix.index() == 0 ? v4_count_ : v6_count_);
}

std::optional<PrefixEntry> FilterTable::find_prefix(const Prefix& prefix) const {
  auto at = index_.find(prefix_key(prefix));
  if (at == index_.end()) return std::nullopt;
  return current_.prefixes[at->second];
}

Result<void> FilterTable::carry_rule_counters(std::uint32_t gen, const RuleSet& next) {
  // An operator changing one rule must not lose the hits of the others. A
  // rule is kept when its priority, match and action are all unchanged; hits
  // counted on the live slot between this copy and the flip are lost.
  const std::vector<FilterRule> live_rules = ordered_rules(current_.rules);
  const std::vector<FilterRule> next_rules = ordered_rules(next.rules);
  std::vector<std::pair<std::uint32_t, std::vector<sluice_counter>>> carried;
  for (std::uint32_t i = 0; i < next_rules.size(); ++i) {
    const auto same = std::lower_bound(live_rules.begin(), live_rules.end(), next_rules[i].priority,
                                       [](const FilterRule& r, std::uint32_t priority) { return r.priority < priority; });
    if (same == live_rules.end() || !(*same == next_rules[i])) continue;
    const auto from = static_cast<std::uint32_t>(live_ * SLUICE_FILTER_MAX_RULES + (same - live_rules.begin()));
    auto per_cpu = maps_->rule_counters.lookup(from);
    if (!per_cpu) return per_cpu.error();
    if (*per_cpu) carried.emplace_back(gen * SLUICE_FILTER_MAX_RULES + i, std::move(**per_cpu));
  }
  return write_all(maps_->rule_counters, carried);
}

Error FilterTable::rollback_failed(const Error& cause, std::string_view map, const Error& undo) {
  // Which entries the undo left behind is unknown: only a whole rebuild from the trie is safe.
  dir_unknown_[live_] = true;
  return Error{cause.errnum, cause.message + "; rollback of " + std::string(map) + " failed too (" + undo.message +
                                 "): the live prefix list may be inconsistent until the next rule set is written"};
}

Result<void> FilterTable::add_prefix(const PrefixEntry& entry) {
  auto added = add_prefixes(std::span<const PrefixEntry>(&entry, 1));
  if (!added) return added.error();
  return {};
}

Result<void> FilterTable::remove_prefix(const Prefix& prefix) {
  auto removed = remove_prefixes(std::span<const Prefix>(&prefix, 1));
  if (!removed) return removed.error();
  return {};
}

namespace {
// Merges sorted `from` into sorted `into` in one pass; `from` wins on equal keys.
template <class K, class V>
void merge_sorted(std::vector<std::pair<K, V>>& into, const std::vector<std::pair<K, V>>& from) {
  if (from.empty()) return;
  std::vector<std::pair<K, V>> out;
  out.reserve(into.size() + from.size());
  std::size_t i = 0, j = 0;
  while (i < into.size() || j < from.size()) {
    if (j == from.size() || (i < into.size() && key_less(into[i].first, from[j].first))) out.push_back(into[i++]);
    else if (i == into.size() || key_less(from[j].first, into[i].first)) out.push_back(from[j++]);
    else out.push_back(from[j++]), ++i;
  }
  into = std::move(out);
}
// Removes sorted `keys` from sorted `into` in one pass.
template <class K, class V>
void erase_sorted(std::vector<std::pair<K, V>>& into, const std::vector<K>& keys) {
  if (keys.empty()) return;
  std::size_t j = 0;
  std::erase_if(into, [&](const auto& e) {
    while (j < keys.size() && key_less(keys[j], e.first)) ++j;
    return j < keys.size() && key_equal(keys[j], e.first);
  });
}
}  // namespace

Result<FilterTable::Replaced> FilterTable::add_prefixes(std::span<const PrefixEntry> entries) {
  // Checked against the index, nothing else: O(request).
  Replaced replaced;
  replaced.reserve(entries.size());
  std::unordered_map<PrefixKey, std::size_t, PrefixKeyHash> in_request;
  std::size_t new_v4 = 0, new_v6 = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const PrefixEntry& entry = entries[i];
    if (auto valid = validate(entry, current_.rate_classes); !valid) return valid.error();
    if (auto [seen, fresh] = in_request.emplace(prefix_key(entry.prefix), i); !fresh)
      return table_error("add prefixes", "prefix " + maps::to_string(entry.prefix) + " is given twice (entries " +
                                             std::to_string(seen->second) + " and " + std::to_string(i) + ")");
    replaced.push_back(find_prefix(entry.prefix));
    if (!replaced.back()) ++(entry.prefix.index() == 0 ? new_v4 : new_v6);
  }
  if (v4_count_ + new_v4 > SLUICE_FILTER_MAX_V4_PREFIXES || v6_count_ + new_v6 > SLUICE_FILTER_MAX_V6_PREFIXES)
    return table_error("add prefixes", "the lists would hold " + std::to_string(v4_count_ + new_v4) + " IPv4 / " +
                                           std::to_string(v6_count_ + new_v6) + " IPv6 prefixes; at most " +
                                           std::to_string(SLUICE_FILTER_MAX_V4_PREFIXES) + " / " +
                                           std::to_string(SLUICE_FILTER_MAX_V6_PREFIXES),
                       E2BIG);

  Mirror& live = *mirror_[live_];
  V4Prefixes v4, v4_before;  // v4_before: what the changed v4 entries were, to undo
  std::vector<sluice_filter_v4_key> v4_new;
  std::vector<std::optional<sluice_filter_verdict>> v4_prev;  // per v4 entry
  std::vector<std::pair<sluice_filter_v6_key, sluice_filter_verdict>> v6, v6_before;
  std::vector<sluice_filter_v6_key> v6_new;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const PrefixEntry& entry = entries[i];
    if (const auto* k = std::get_if<sluice_lpm_v4_key>(&entry.prefix)) {
      v4.emplace_back(to_filter_key(*k, live_), to_wire(entry));
      v4_prev.push_back(replaced[i] ? std::optional(to_wire(*replaced[i])) : std::nullopt);
      if (replaced[i]) v4_before.emplace_back(v4.back().first, to_wire(*replaced[i]));
      else v4_new.push_back(v4.back().first);
    } else {
      v6.emplace_back(to_filter_key(std::get<sluice_lpm_v6_key>(entry.prefix), live_), to_wire(entry));
      if (replaced[i]) v6_before.emplace_back(v6.back().first, to_wire(*replaced[i]));
      else v6_new.push_back(v6.back().first);
    }
  }
  // What packets read first (ENOSPC: out of tbl8 groups), then the tries; any failure undoes the request.
  // A copy that is missing (the list grew past dir_prefixes), out of groups below the most allowed, or of
  // unknown contents is built fresh instead, and plugged once the tries hold the change.
  maps::Dir24_8Slot& slot = maps_->src_dir[live_];
  const bool want_dir = dir_wanted(live_, v4_count_ + new_v4);
  maps::Dir24_8* dir = want_dir && slot.plugged() && !dir_unknown_[live_] ? slot.table() : nullptr;
  bool fresh_dir = want_dir && !dir;
  std::size_t dir_done = 0;
  auto undo_dir = [&]() -> Result<void> {
    for (std::size_t i = dir_done; i-- > 0;) {
      const auto cidr = cidr_of(v4[i].first);
      Result<void> undone{};
      if (v4_prev[i]) undone = dir->insert(cidr, dir_value(*v4_prev[i]));
      else if (auto gone = dir->erase(cidr); !gone) undone = gone.error();
      if (!undone) return undone;
    }
    return {};
  };
  for (; dir && dir_done < v4.size(); ++dir_done) {
    if (auto put = dir->insert(cidr_of(v4[dir_done].first), dir_value(v4[dir_done].second)); !put) {
      if (auto undone = undo_dir(); !undone) return rollback_failed(put.error(), "fsrc4 DIR-24-8", undone.error());
      if (put.error().errnum != ENOSPC || dir->groups_capacity() >= options_.tbl8_groups_max) return put.error();
      dir_done = 0, dir = nullptr, fresh_dir = true;
      break;
    }
  }
  std::optional<maps::Dir24_8> fresh;
  if (fresh_dir) {
    V4Prefixes after = live.prefix_v4, added = v4;
    sort_entries(added);
    merge_sorted(after, added);
    auto built = build_dir(live_, after);
    if (!built) return built.error();
    fresh = std::move(*built);
  }
  auto undo_tries = [&]() -> std::optional<Error> {
    std::optional<Error> failed;
    auto note = [&](Result<void> r) {
      if (!r && !failed) failed = r.error();
    };
    note(erase_all(maps_->prefix_v4, v4_new));
    note(write_all(maps_->prefix_v4, v4_before));
    note(erase_all(maps_->prefix_v6, v6_new));
    note(write_all(maps_->prefix_v6, v6_before));
    if (auto undone = undo_dir(); !undone) note(undone);
    return failed;
  };
  for (auto written : {write_all(maps_->prefix_v4, v4), write_all(maps_->prefix_v6, v6)}) {
    if (written) continue;
    if (auto undo_error = undo_tries()) return rollback_failed(written.error(), "the prefix tries", *undo_error);
    return written.error();
  }
  sort_entries(v4);
  sort_entries(v6);
  merge_sorted(live.prefix_v4, v4);
  merge_sorted(live.prefix_v6, v6);
  for (const PrefixEntry& entry : entries) index_put(entry);
  if (fresh) plug_dir_after_change(live_, std::move(*fresh));
  return replaced;
}

Result<std::vector<PrefixEntry>> FilterTable::remove_prefixes(std::span<const Prefix> prefixes) {
  std::vector<PrefixEntry> removed;
  removed.reserve(prefixes.size());
  std::unordered_map<PrefixKey, std::size_t, PrefixKeyHash> in_request;
  for (std::size_t i = 0; i < prefixes.size(); ++i) {
    auto entry = find_prefix(prefixes[i]);
    if (!entry) return table_error("remove prefix", "prefix " + maps::to_string(prefixes[i]) + " is not listed", ENOENT);
    if (auto [seen, fresh] = in_request.emplace(prefix_key(prefixes[i]), i); !fresh)
      return table_error("remove prefixes", "prefix " + maps::to_string(prefixes[i]) + " is given twice (entries " +
                                                std::to_string(seen->second) + " and " + std::to_string(i) + ")");
    removed.push_back(*entry);
  }
  Mirror& live = *mirror_[live_];
  V4Prefixes v4;
  std::vector<std::pair<sluice_filter_v6_key, sluice_filter_verdict>> v6;
  for (const PrefixEntry& entry : removed) {
    if (const auto* k = std::get_if<sluice_lpm_v4_key>(&entry.prefix)) v4.emplace_back(to_filter_key(*k, live_), to_wire(entry));
    else v6.emplace_back(to_filter_key(std::get<sluice_lpm_v6_key>(entry.prefix), live_), to_wire(entry));
  }
  // Erasing can need a tbl8 group (a /24 erased under longer prefixes): DIR-24-8 first, tries second.
  // A list falling below half of dir_prefixes loses its copy first (packets read the trie, which is right).
  maps::Dir24_8Slot& slot = maps_->src_dir[live_];
  if (slot.plugged() && !dir_wanted(live_, v4_count_ - v4.size())) {
    if (auto gone = slot.unplug(); !gone) return gone.error();
    dir_unknown_[live_] = false;
  }
  maps::Dir24_8* dir = slot.plugged() && !dir_unknown_[live_] ? slot.table() : nullptr;
  bool fresh_dir = slot.plugged() && !dir;
  std::size_t dir_done = 0;
  auto undo_dir = [&]() -> Result<void> {
    for (std::size_t i = dir_done; i-- > 0;)
      if (auto undone = dir->insert(cidr_of(v4[i].first), dir_value(v4[i].second)); !undone) return undone;
    return {};
  };
  for (; dir && dir_done < v4.size(); ++dir_done) {
    if (auto gone = dir->erase(cidr_of(v4[dir_done].first)); !gone) {
      if (auto undone = undo_dir(); !undone) return rollback_failed(gone.error(), "fsrc4 DIR-24-8", undone.error());
      if (gone.error().errnum != ENOSPC || dir->groups_capacity() >= options_.tbl8_groups_max) return gone.error();
      dir_done = 0, dir = nullptr, fresh_dir = true;
      break;
    }
  }
  const auto v4_keys = keys_of<sluice_filter_v4_key>(v4);
  std::optional<maps::Dir24_8> fresh;
  if (fresh_dir) {
    V4Prefixes after = live.prefix_v4;
    auto gone_keys = v4_keys;
    sort_keys(gone_keys);
    erase_sorted(after, gone_keys);
    auto built = build_dir(live_, after);
    if (!built) return built.error();
    fresh = std::move(*built);
  }
  const auto v6_keys = keys_of<sluice_filter_v6_key>(v6);
  auto erased = erase_all(maps_->prefix_v4, v4_keys);
  if (erased) erased = erase_all(maps_->prefix_v6, v6_keys);
  if (!erased) {
    std::optional<Error> failed;
    for (auto undone : {write_all(maps_->prefix_v4, v4), write_all(maps_->prefix_v6, v6), undo_dir()})
      if (!undone && !failed) failed = undone.error();
    if (failed) return rollback_failed(erased.error(), "the prefix tries", *failed);
    return erased.error();
  }
  auto sorted_v4 = v4_keys;
  auto sorted_v6 = v6_keys;
  sort_keys(sorted_v4);
  sort_keys(sorted_v6);
  erase_sorted(live.prefix_v4, sorted_v4);
  erase_sorted(live.prefix_v6, sorted_v6);
  for (const PrefixEntry& entry : removed) index_erase(entry.prefix);
  if (fresh) plug_dir_after_change(live_, std::move(*fresh));
  return removed;
}

Result<std::size_t> FilterTable::load_prefixes(std::vector<PrefixEntry> entries) {
  for (const PrefixEntry& entry : entries)
    if (auto valid = validate(entry, current_.rate_classes); !valid) return valid.error();
  // Where each entry is listed now (npos: new), one index lookup per entry.
  constexpr std::size_t unlisted = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> listed_at(entries.size(), unlisted);
  std::size_t fresh = 0, new_v4 = 0, new_v6 = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (auto at = index_.find(prefix_key(entries[i].prefix)); at != index_.end()) listed_at[i] = at->second;
    else ++fresh, ++(entries[i].prefix.index() == 0 ? new_v4 : new_v6);
  }
  if (v4_count_ + new_v4 > SLUICE_FILTER_MAX_V4_PREFIXES || v6_count_ + new_v6 > SLUICE_FILTER_MAX_V6_PREFIXES)
    return table_error("load prefixes", "the lists would hold " + std::to_string(v4_count_ + new_v4) + " IPv4 / " +
                                            std::to_string(v6_count_ + new_v6) + " IPv6 prefixes; at most " +
                                            std::to_string(SLUICE_FILTER_MAX_V4_PREFIXES) + " / " +
                                            std::to_string(SLUICE_FILTER_MAX_V6_PREFIXES),
                       E2BIG);
  // The rest of the set is unchanged and was validated when it went live;
  // the prefixes are distinct by the index (listed ones are overwritten in place).
  RuleSet next = current_;
  {
    // Distinct: a listed prefix given twice would be written twice into the
    // same slot, a new one twice appended twice. Marks in the copy's slots
    // catch the first; a sort of the new ones the second.
    std::vector<bool> rewritten(next.prefixes.size());
    std::vector<PrefixKey> appended;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (listed_at[i] == unlisted) {
        appended.push_back(prefix_key(entries[i].prefix));
        next.prefixes.push_back(entries[i]);
        continue;
      }
      if (rewritten[listed_at[i]])
        return table_error("load prefixes", "prefix " + maps::to_string(entries[i].prefix) + " is given twice");
      rewritten[listed_at[i]] = true;
      next.prefixes[listed_at[i]] = entries[i];
    }
    std::sort(appended.begin(), appended.end(), [](const PrefixKey& a, const PrefixKey& b) { return a.bytes < b.bytes; });
    if (auto twice = std::adjacent_find(appended.begin(), appended.end()); twice != appended.end())
      return table_error("load prefixes", "a prefix is given twice");
  }
  if (auto done = replace_validated(next); !done) return done.error();
  return fresh;
}

Result<std::size_t> FilterTable::load_prefix_file(const std::filesystem::path& path, Action default_action) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return maps::make_error("open prefix file", path.string(), errno ? errno : ENOENT, maps::ErrnoSubject::Path);
  std::ostringstream whole;
  whole << in.rdbuf();
  if (in.bad()) return maps::make_error("read prefix file", path.string(), EIO, maps::ErrnoSubject::Path);
  const std::string content = std::move(whole).str();
  return load_prefix_lines(content, default_action, [&](std::size_t line, std::string_view reason) {
    const std::string where = line ? path.string() + ":" + std::to_string(line) : path.string();
    return table_error("load prefix file", where + ": " + std::string(reason));
  });
}

Result<std::size_t> FilterTable::load_prefix_text(std::string_view content, Action default_action) {
  // No operation or object around the reason: the caller (block.load) names the request field itself.
  return load_prefix_lines(content, default_action, [](std::size_t line, std::string_view reason) {
    return Error{EINVAL, (line ? "line " + std::to_string(line) + ": " : std::string()) + std::string(reason)};
  });
}

Result<std::size_t> FilterTable::load_prefix_lines(std::string_view content, Action default_action,
                                                   const std::function<Error(std::size_t, std::string_view)>& refuse_at) {
  std::vector<PrefixEntry> loaded;
  std::vector<std::size_t> line_of;  // line number of each loaded entry, for errors found after parsing
  std::size_t number = 0;
  auto refuse = [&](const std::string& reason) { return refuse_at(number, reason); };
  for (std::size_t at = 0; at < content.size();) {
    const std::size_t end = std::min(content.find('\n', at), content.size());
    const std::string_view line = content.substr(at, end - at);
    at = end + 1;
    ++number;
    auto parsed = parse_prefix_line(line, default_action, current_.rate_classes);
    if (!parsed) return refuse(parsed.error().message);
    if (!*parsed) continue;
    const PrefixEntry& entry = **parsed;
    loaded.push_back(entry);
    line_of.push_back(number);
  }

  // A listed prefix takes the file's action; the file itself must not repeat one.
  {
    RuleSet file_only;
    file_only.prefixes = loaded;
    file_only.rate_classes = current_.rate_classes;
    if (auto valid = validate(file_only); !valid) {
      // Only on failure (no cost for a good million-line file): name the lines of a repeated prefix.
      std::map<std::string, std::size_t> first_line;
      for (std::size_t i = 0; i < loaded.size(); ++i) {
        const std::string key = maps::to_string(loaded[i].prefix);
        if (auto [seen, fresh] = first_line.emplace(key, line_of[i]); !fresh)
          return refuse_at(line_of[i], "prefix " + key + " is also on line " + std::to_string(seen->second));
      }
      return refuse_at(0, valid.error().message);
    }
  }
  // Into the idle generation, made live by one flip: no packet sees part of the file.
  const std::size_t count = loaded.size();
  if (auto done = load_prefixes(std::move(loaded)); !done)
    return done.error().errnum == E2BIG ? refuse_at(0, done.error().message) : done.error();
  return count;
}

Result<void> FilterTable::add_rule(const FilterRule& rule) {
  RuleSet next = current_;
  next.rules.push_back(rule);
  return replace(next);
}

Result<void> FilterTable::remove_rule(std::uint32_t priority) {
  RuleSet next = current_;
  const auto removed = std::erase_if(next.rules, [&](const FilterRule& r) { return r.priority == priority; });
  if (removed == 0) return table_error("remove rule", "no rule has priority " + std::to_string(priority), ENOENT);
  return replace(next);
}

Result<void> FilterTable::define_rate_class(const RateClass& rate_class) {
  RuleSet next = current_;
  std::erase_if(next.rate_classes, [&](const RateClass& c) { return c.id == rate_class.id; });
  next.rate_classes.push_back(rate_class);
  return replace(next);
}

Result<void> FilterTable::remove_rate_class(std::uint32_t id) {
  RuleSet next = current_;
  if (std::erase_if(next.rate_classes, [&](const RateClass& c) { return c.id == id; }) == 0)
    return table_error("remove rate class", "rate class " + std::to_string(id) + " is not defined", ENOENT);
  return replace(next);  // validation refuses it while a rule or prefix uses the class
}

Result<void> FilterTable::set_default_policy(DefaultPolicy policy) {
  RuleSet next = current_;
  next.default_policy = policy;
  return replace(next);
}

Result<void> FilterTable::set_settings(const FilterSettings& settings) {
  if (auto valid = validate(settings); !valid) return valid;
  return maps_->settings.update(0, to_wire(settings));
}

Result<FilterSettings> FilterTable::settings() const {
  auto wire = maps_->settings.lookup(0);
  if (!wire) return wire.error();
  if (!*wire) return default_settings();
  FilterSettings s;
  s.conntrack = (*wire)->conntrack_enabled != 0;
  s.drop_invalid_tcp_flags = (*wire)->drop_invalid_tcp_flags != 0;
  s.drop_sample_every = (*wire)->drop_sample_every;
  for (std::size_t i = 0; i < SLUICE_CT_STATE_COUNT; ++i) s.ct_timeout_s[i] = (*wire)->ct_timeout_s[i];
  return s;
}

Result<std::vector<RuleCounter>> FilterTable::rule_counters() const {
  std::vector<RuleCounter> out;
  const auto rules = ordered_rules(current_.rules);
  for (std::uint32_t i = 0; i < rules.size(); ++i) {
    auto per_cpu = maps_->rule_counters.lookup(live_ * SLUICE_FILTER_MAX_RULES + i);
    if (!per_cpu) return per_cpu.error();
    sluice_counter total{};
    if (*per_cpu)
      for (const auto& c : **per_cpu) total.packets += c.packets, total.bytes += c.bytes;
    out.push_back({rules[i].priority, total});
  }
  return out;
}

Result<std::vector<ReasonCounter>> FilterTable::reason_counters() const {
  std::vector<ReasonCounter> out;
  for (std::uint32_t verdict : {SLUICE_VERDICT_DROP, SLUICE_VERDICT_PASS}) {
    for (std::uint32_t reason = SLUICE_REASON_FIRST_FILTER; reason <= SLUICE_REASON_FILTER_LAST; ++reason) {
      auto per_cpu = maps_->verdict_counters.lookup(contract::counter_index(verdict, reason));
      if (!per_cpu) return per_cpu.error();
      sluice_counter total{};
      if (*per_cpu)
        for (const auto& c : **per_cpu) total.packets += c.packets, total.bytes += c.bytes;
      out.push_back({static_cast<sluice_verdict>(verdict), static_cast<sluice_reason>(reason), total});
    }
  }
  return out;
}

Result<std::uint64_t> FilterTable::drop_events_lost() const {
  auto per_cpu = maps_->event_counters.lookup(SLUICE_FILTER_EVENT_SAMPLE_LOST);
  if (!per_cpu) return per_cpu.error();
  std::uint64_t lost = 0;
  if (*per_cpu)
    for (const auto& c : **per_cpu) lost += c.packets;
  return lost;
}

Result<std::vector<TrackedFlow>> FilterTable::tracked_flows() const {
  std::vector<TrackedFlow> out;
  // IPv4 flows in the one reported form: addresses in word 0, ip_version 4.
  for (const auto* table : {&maps_->conntrack_v4, &maps_->unreplied_v4}) {
    auto v4 = table->entries();
    if (!v4) return v4.error();
    for (const auto& [k, v] : *v4) {
      sluice_ct_key key{};
      key.addr_a[0] = k.addr_a;
      key.addr_b[0] = k.addr_b;
      key.port_a = k.port_a;
      key.port_b = k.port_b;
      key.proto = k.proto;
      key.ip_version = 4;
      out.push_back({key, v});
    }
  }
  for (const auto* table : {&maps_->conntrack, &maps_->unreplied}) {
    auto v6 = table->entries();
    if (!v6) return v6.error();
    for (const auto& [k, v] : *v6) out.push_back({k, v});
  }
  return out;
}

Result<void> FilterTable::clear_conntrack() {
  for (auto* table : {&maps_->conntrack_v4, &maps_->unreplied_v4}) {
    auto v4 = table->keys();
    if (!v4) return v4.error();
    if (auto erased = erase_all(*table, *v4); !erased) return erased;
  }
  for (auto* table : {&maps_->conntrack, &maps_->unreplied}) {
    auto v6 = table->keys();
    if (!v6) return v6.error();
    if (auto erased = erase_all(*table, *v6); !erased) return erased;
  }
  return {};
}

Result<void> FilterTable::clear_rate_buckets() {
  auto keys = maps_->rate_buckets.keys();
  if (!keys) return keys.error();
  if (auto erased = erase_all(maps_->rate_buckets, *keys); !erased) return erased;
  // An aggregate of last_ns 0 is full again (the lock word is not written from user space).
  std::vector<std::pair<std::uint32_t, sluice_filter_rate_aggregate>> full;
  for (std::uint32_t id = 0; id < SLUICE_FILTER_MAX_RATE_CLASSES; ++id) full.emplace_back(id, sluice_filter_rate_aggregate{});
  return write_all(maps_->rate_aggregates, full);
}

}  // namespace sluice::filter
