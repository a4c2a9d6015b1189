#pragma once
// Turns a validated RuleSet into the map contents of one generation: the
// per-field bitmaps of the linear bit vector search, the elementary port
// intervals, the rule actions and the prefix lists. Pure and deterministic;
// FilterTable writes the result, tests inspect it.
#include <array>
#include <memory>
#include <utility>
#include <vector>

#include "filter_rules.hpp"

namespace sluice::filter {

using Bitmap = sluice_filter_bitmap;

struct CompiledSet {
  // Generation fields of the keys are 0 here; the writer fills them in.
  std::vector<std::pair<sluice_filter_v4_key, sluice_filter_verdict>> prefix_v4;
  std::vector<std::pair<sluice_filter_v6_key, sluice_filter_verdict>> prefix_v6;
  std::vector<std::pair<sluice_filter_v4_key, Bitmap>> src_v4, dst_v4;
  std::vector<std::pair<sluice_filter_v6_key, Bitmap>> src_v6, dst_v6;
  std::vector<std::pair<std::uint32_t, Bitmap>> ifindex;  // ifindex -> bitmap
  std::array<Bitmap, SLUICE_FILTER_ANY_COUNT> any{};
  std::vector<Bitmap> bytes;  // SLUICE_FILTER_BYTE_COUNT * 256, index field * 256 + value
  std::array<std::unique_ptr<sluice_filter_port_bounds>, SLUICE_FILTER_PORT_DIRS> port_bounds;
  std::array<std::unique_ptr<sluice_filter_port_index>, SLUICE_FILTER_PORT_DIRS> port_index;  // port -> interval
  std::array<std::vector<Bitmap>, SLUICE_FILTER_PORT_DIRS> port_bitmaps;  // one per interval
  std::vector<sluice_filter_verdict> rule_actions;                        // by position
  std::vector<std::uint32_t> priorities;                                  // position -> priority
  std::array<sluice_filter_rate_class, SLUICE_FILTER_MAX_RATE_CLASSES> rate_classes{};
  sluice_filter_set header{};
};

// Rules in evaluation order (ascending priority).
std::vector<FilterRule> ordered_rules(const std::vector<FilterRule>& rules);
// `set` must have passed validate().
CompiledSet compile(const RuleSet& set);

sluice_filter_v4_key to_filter_key(const sluice_lpm_v4_key& key, std::uint32_t generation);
sluice_filter_v6_key to_filter_key(const sluice_lpm_v6_key& key, std::uint32_t generation);
sluice_filter_verdict to_wire(const PrefixEntry& entry);

}  // namespace sluice::filter
