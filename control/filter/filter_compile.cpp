#include "filter_compile.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

namespace sluice::filter {
namespace {

void set_bit(Bitmap& bitmap, std::size_t position) {
  bitmap.word[position / SLUICE_FILTER_WORD_BITS] |= std::uint64_t{1} << (position % SLUICE_FILTER_WORD_BITS);
}

bool may_match_family(const FilterRule& rule, int family) {
  const int f = family_of(rule);
  return f == 0 || f == family;
}

// Distinct prefixes of one family used by `field` (src or dst) of any rule.
std::vector<Prefix> distinct_prefixes(const std::vector<FilterRule>& rules, std::optional<Prefix> FilterRule::*field,
                                      int family) {
  std::vector<Prefix> out;
  for (const FilterRule& rule : rules) {
    const auto& p = rule.*field;
    if (!p || family_of(*p) != family) continue;
    if (std::none_of(out.begin(), out.end(), [&](const Prefix& q) { return same_prefix(q, *p); })) out.push_back(*p);
  }
  return out;
}

// Bitmap of the rules a packet whose address lies in `where` (the longest rule
// prefix covering it; nullopt: none does) satisfies on `field`.
Bitmap prefix_field_bitmap(const std::vector<FilterRule>& rules, std::optional<Prefix> FilterRule::*field, int family,
                           const std::optional<Prefix>& where) {
  Bitmap bitmap{};
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const auto& p = rules[i].*field;
    if (!may_match_family(rules[i], family)) continue;
    if (!p || (where && covers(*p, *where))) set_bit(bitmap, i);
  }
  return bitmap;
}

template <class Key>
Key lpm_key_of(const Prefix& prefix);
template <>
sluice_filter_v4_key lpm_key_of(const Prefix& prefix) {
  return to_filter_key(std::get<sluice_lpm_v4_key>(prefix), 0);
}
template <>
sluice_filter_v6_key lpm_key_of(const Prefix& prefix) {
  return to_filter_key(std::get<sluice_lpm_v6_key>(prefix), 0);
}

template <class Key>
std::vector<std::pair<Key, Bitmap>> prefix_bitmaps(const std::vector<FilterRule>& rules,
                                                   std::optional<Prefix> FilterRule::*field, int family) {
  std::vector<std::pair<Key, Bitmap>> out;
  for (const Prefix& p : distinct_prefixes(rules, field, family))
    out.emplace_back(lpm_key_of<Key>(p), prefix_field_bitmap(rules, field, family, p));
  return out;
}

bool in_range(const std::optional<PortRange>& range, std::uint32_t port) {
  return !range || (range->first <= port && port <= range->last);
}

// The data plane visits only the words all of a packet's summaries name (sluice_maps.h).
void summarize(Bitmap& bitmap) {
  bitmap.summary = 0;
  for (std::size_t w = 0; w < SLUICE_FILTER_BITMAP_WORDS; ++w)
    if (bitmap.word[w] != 0) bitmap.summary |= std::uint64_t{1} << w;
}

void summarize_all(CompiledSet& out) {
  for (auto* list : {&out.src_v4, &out.dst_v4})
    for (auto& entry : *list) summarize(entry.second);
  for (auto* list : {&out.src_v6, &out.dst_v6})
    for (auto& entry : *list) summarize(entry.second);
  for (auto& entry : out.ifindex) summarize(entry.second);
  for (Bitmap& bitmap : out.any) summarize(bitmap);
  for (Bitmap& bitmap : out.bytes) summarize(bitmap);
  for (auto& dir : out.port_bitmaps)
    for (Bitmap& bitmap : dir) summarize(bitmap);
}

}  // namespace

sluice_filter_v4_key to_filter_key(const sluice_lpm_v4_key& key, std::uint32_t generation) {
  sluice_filter_v4_key out{};
  out.prefixlen = SLUICE_FILTER_GEN_PREFIX_BITS + key.prefixlen;
  out.generation = generation;
  std::memcpy(out.addr, key.addr, sizeof(out.addr));
  return out;
}

sluice_filter_v6_key to_filter_key(const sluice_lpm_v6_key& key, std::uint32_t generation) {
  sluice_filter_v6_key out{};
  out.prefixlen = SLUICE_FILTER_GEN_PREFIX_BITS + key.prefixlen;
  out.generation = generation;
  std::memcpy(out.addr, key.addr, sizeof(out.addr));
  return out;
}

sluice_filter_verdict to_wire(const PrefixEntry& entry) {
  return {static_cast<std::uint32_t>(entry.action), entry.action == Action::RateLimit ? entry.rate_class : 0};
}

std::vector<FilterRule> ordered_rules(const std::vector<FilterRule>& rules) {
  std::vector<FilterRule> ordered = rules;
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const FilterRule& a, const FilterRule& b) { return a.priority < b.priority; });
  return ordered;
}

CompiledSet compile(const RuleSet& set) {
  CompiledSet out;
  const std::vector<FilterRule> rules = ordered_rules(set.rules);

  for (const PrefixEntry& entry : set.prefixes) {
    if (const auto* v4 = std::get_if<sluice_lpm_v4_key>(&entry.prefix))
      out.prefix_v4.emplace_back(to_filter_key(*v4, 0), to_wire(entry));
    else
      out.prefix_v6.emplace_back(to_filter_key(std::get<sluice_lpm_v6_key>(entry.prefix), 0), to_wire(entry));
  }

  out.src_v4 = prefix_bitmaps<sluice_filter_v4_key>(rules, &FilterRule::src, 4);
  out.dst_v4 = prefix_bitmaps<sluice_filter_v4_key>(rules, &FilterRule::dst, 4);
  out.src_v6 = prefix_bitmaps<sluice_filter_v6_key>(rules, &FilterRule::src, 6);
  out.dst_v6 = prefix_bitmaps<sluice_filter_v6_key>(rules, &FilterRule::dst, 6);
  out.any[SLUICE_FILTER_ANY_SRC_V4] = prefix_field_bitmap(rules, &FilterRule::src, 4, std::nullopt);
  out.any[SLUICE_FILTER_ANY_DST_V4] = prefix_field_bitmap(rules, &FilterRule::dst, 4, std::nullopt);
  out.any[SLUICE_FILTER_ANY_SRC_V6] = prefix_field_bitmap(rules, &FilterRule::src, 6, std::nullopt);
  out.any[SLUICE_FILTER_ANY_DST_V6] = prefix_field_bitmap(rules, &FilterRule::dst, 6, std::nullopt);

  std::set<std::uint32_t> ifindexes;
  for (const FilterRule& rule : rules)
    if (rule.ifindex) ifindexes.insert(*rule.ifindex);
  for (std::uint32_t ifindex : ifindexes) {
    Bitmap bitmap{};
    for (std::size_t i = 0; i < rules.size(); ++i)
      if (!rules[i].ifindex || *rules[i].ifindex == ifindex) set_bit(bitmap, i);
    out.ifindex.emplace_back(ifindex, bitmap);
  }

  out.bytes.assign(SLUICE_FILTER_BYTE_COUNT * SLUICE_FILTER_BYTE_VALUES, Bitmap{});
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const FilterRule& rule = rules[i];
    for (std::uint32_t value = 0; value < SLUICE_FILTER_BYTE_VALUES; ++value) {
      if (!rule.protocol || *rule.protocol == value)
        set_bit(out.bytes[SLUICE_FILTER_BYTE_PROTO * SLUICE_FILTER_BYTE_VALUES + value], i);
      if (!rule.tcp_flags || (value & rule.tcp_flags->mask) == rule.tcp_flags->value)
        set_bit(out.bytes[SLUICE_FILTER_BYTE_TCP_FLAGS * SLUICE_FILTER_BYTE_VALUES + value], i);
      if (!rule.icmp_type || *rule.icmp_type == value)
        set_bit(out.bytes[SLUICE_FILTER_BYTE_ICMP_TYPE * SLUICE_FILTER_BYTE_VALUES + value], i);
    }
    if (!rule.ifindex) set_bit(out.any[SLUICE_FILTER_ANY_IFINDEX], i);
    if (!rule.src_ports && !rule.dst_ports) set_bit(out.any[SLUICE_FILTER_ANY_PORTS], i);
    if (!rule.tcp_flags) set_bit(out.any[SLUICE_FILTER_ANY_FLAGS], i);
    if (!rule.icmp_type) set_bit(out.any[SLUICE_FILTER_ANY_ICMP], i);
  }

  constexpr std::uint32_t port_space = SLUICE_FILTER_PORT_SPACE;
  for (int dir = 0; dir < SLUICE_FILTER_PORT_DIRS; ++dir) {
    const auto FilterRule::*field = dir == SLUICE_FILTER_PORT_SRC ? &FilterRule::src_ports : &FilterRule::dst_ports;
    std::set<std::uint32_t> starts{0};
    for (const FilterRule& rule : rules) {
      const auto& range = rule.*field;
      if (!range) continue;
      starts.insert(range->first);
      if (range->last + 1u < port_space) starts.insert(range->last + 1u);
    }
    auto bounds = std::make_unique<sluice_filter_port_bounds>();
    std::memset(bounds.get(), 0, sizeof(*bounds));
    bounds->count = static_cast<std::uint32_t>(starts.size());
    std::size_t k = 0;
    for (std::uint32_t start : starts) {
      bounds->start[k++] = static_cast<std::uint16_t>(start);
      Bitmap bitmap{};
      // every port of an elementary interval lies in the same rule ranges: its first stands for all
      for (std::size_t i = 0; i < rules.size(); ++i)
        if (in_range(rules[i].*field, start)) set_bit(bitmap, i);
      out.port_bitmaps[dir].push_back(bitmap);
    }
    // the direct index: every port of interval k (start[k] up to the next start) maps to k
    auto index = std::make_unique<sluice_filter_port_index>();
    for (std::uint32_t i = 0; i < bounds->count; ++i) {
      const std::uint32_t end = i + 1 < bounds->count ? bounds->start[i + 1] : port_space;
      for (std::uint32_t port = bounds->start[i]; port < end; ++port) index->interval[port] = static_cast<std::uint16_t>(i);
    }
    out.port_index[dir] = std::move(index);
    out.port_bounds[dir] = std::move(bounds);
  }

  for (const FilterRule& rule : rules) {
    out.rule_actions.push_back(
        {static_cast<std::uint32_t>(rule.action), rule.action == Action::RateLimit ? rule.rate_class : 0});
    out.priorities.push_back(rule.priority);
  }
  for (const RateClass& c : set.rate_classes) {
    sluice_filter_rate_class& wire = out.rate_classes[c.id];
    wire.source = {c.packets_per_sec, c.packet_burst, c.bytes_per_sec, c.byte_burst};
    wire.syn_only = c.syn_only ? 1 : 0;
    wire.defined = 1;
    wire.aggregate = {c.aggregate_packets_per_sec, c.aggregate_packet_burst, c.aggregate_bytes_per_sec,
                      c.aggregate_byte_burst};
    wire.v4_source_mask = v4_source_mask(c.v4_prefix_len);
    const auto v6_mask = v6_source_mask(c.v6_prefix_len);
    std::copy(v6_mask.begin(), v6_mask.end(), wire.v6_source_mask);
  }
  summarize_all(out);
  out.header.rule_count = static_cast<std::uint32_t>(rules.size());
  out.header.default_verdict = static_cast<std::uint32_t>(set.default_policy);
  // Lookups whose structure stays empty: the data plane takes their known answer instead.
  const auto skip_if = [&](bool empty, std::uint32_t bit) { out.header.skip_lookups |= empty ? bit : 0u; };
  skip_if(out.src_v4.empty(), SLUICE_FILTER_SKIP_SRC_V4);
  skip_if(out.dst_v4.empty(), SLUICE_FILTER_SKIP_DST_V4);
  skip_if(out.src_v6.empty(), SLUICE_FILTER_SKIP_SRC_V6);
  skip_if(out.dst_v6.empty(), SLUICE_FILTER_SKIP_DST_V6);
  skip_if(out.ifindex.empty(), SLUICE_FILTER_SKIP_IFINDEX);
  skip_if(out.port_bounds[SLUICE_FILTER_PORT_SRC]->count == 1, SLUICE_FILTER_SKIP_SPORT);
  skip_if(out.port_bounds[SLUICE_FILTER_PORT_DST]->count == 1, SLUICE_FILTER_SKIP_DPORT);
  return out;
}

}  // namespace sluice::filter
