#include "filter_table.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <charconv>
#include <optional>

#include "dir24_8.hpp"
#include "filter_table_maps.hpp"
#include "sluice.skel.h"

namespace sluice::filter {

using namespace detail;

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

template <class K, class V>
std::vector<std::pair<K, V>> with_generation(std::vector<std::pair<K, V>> entries, std::uint32_t gen) {
  for (auto& e : entries) e.first.generation = gen;
  return entries;
}

}  // namespace

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
