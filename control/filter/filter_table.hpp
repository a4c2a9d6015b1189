#pragma once
// FilterTable: the one user-space owner of the filter stage's maps in a
// loaded Dataplane. Every change is validated first and changes nothing on
// error. A rule set (prefix lists, rules, rate classes, default policy) is
// written into the idle generation and made live by one map write; single
// prefix additions/removals go straight to the live generation (one
// element each, atomic by itself) and into the next set too.
// Implemented in filter_table.cpp, the prefix lists and their DIR-24-8
// copies in prefix_lists.cpp (filter_table_maps.hpp: what both share).
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <string_view>
#include <vector>

#include "dataplane.hpp"
#include "filter_compile.hpp"
#include "filter_rules.hpp"
#include "maps.hpp"
#include "dir24_8.hpp"
#include "prefix_index.hpp"

namespace sluice::filter {

struct RuleCounter {
  std::uint32_t priority = 0;
  sluice_counter total{};  // summed over CPUs
};

struct ReasonCounter {
  sluice_verdict verdict;
  sluice_reason reason;
  sluice_counter total{};
};

// One tracked flow as read back from the conntrack tables (IPv4 and IPv6
// flows alike in the long key form; key.ip_version tells them apart).
struct TrackedFlow {
  sluice_ct_key key{};
  sluice_ct_entry entry{};
};

// A prefix-file line is at most this long, comment included (a longer one
// is refused, and quoted only in part).
inline constexpr std::size_t kMaxPrefixFileLineBytes = 4096;
// One line of a prefix file (without its newline): nullopt for a blank or
// comment-only line. The error (EINVAL) is the reason alone, quoting the
// offending value; callers add "<file>:<line>: ". Checks the line's length,
// UTF-8, the prefix (host bits refused), the action and its rate class.
Result<std::optional<PrefixEntry>> parse_prefix_line(std::string_view line, Action default_action,
                                                     const std::vector<RateClass>& classes);

// How the IPv4 prefix lists are read (maps/sluice_maps.h, filter section):
// the LPM trie always holds them; a generation listing at least
// `dir_prefixes` IPv4 prefixes also gets a DIR-24-8 copy (64 MiB of tbl24 +
// 1 KiB per tbl8 group) that packets read instead, dropped again below half
// of that. 0: never (the trie only).
struct FilterTableOptions {
  std::size_t dir_prefixes = SLUICE_FILTER_DIR_PREFIXES_DEFAULT;
  // At most this many tbl8 groups per copy (one per /24 holding prefixes
  // longer than /24; the copy is sized to its list, with room to grow):
  // past it a change is refused with ENOSPC. 1,048,576 holds any list.
  std::uint32_t tbl8_groups_max = SLUICE_FILTER_BLOCKLIST_TBL8_GROUPS_DEFAULT;
};

// The IPv4 prefix lists' DIR-24-8 copy of one generation, for status.
struct PrefixDirInfo {
  bool plugged = false;            // packets of this generation read it (else the trie)
  std::uint32_t tbl8_groups = 0;   // capacity
  std::uint32_t tbl8_used = 0;
  std::uint64_t tbl24_bytes = 0;   // kernel memory (bytes_memlock)
  std::uint64_t tbl8_bytes = 0;
};

class FilterTable {
 public:
  // Takes its own handles on the filter maps of `plane` (the plane may go
  // away afterwards; the maps live on). Writes default settings if none
  // were ever written; a reused (pinned) live set keeps running.
  static Result<FilterTable> open(const dataplane::Dataplane& plane, FilterTableOptions options = {});

  FilterTable(FilterTable&&) noexcept;
  FilterTable& operator=(FilterTable&&) noexcept;
  ~FilterTable();

  // ---- the whole rule set ----
  const RuleSet& rule_set() const noexcept { return current_; }
  // validate + compile + write the idle generation + flip. Error: live set untouched.
  Result<void> replace(const RuleSet& set);
  std::uint32_t live_generation() const noexcept { return live_; }
  // How many rule sets went live on these maps, counting every replace of
  // every owner: the value of filter_generation, whose low bit is the live
  // slot (the data plane masks it). Survives a daemon restart with the pins.
  // Single prefix changes edit the live set in place and do not count.
  std::uint32_t rule_set_generation() const noexcept { return generation_count_; }

  // ---- prefix lists ----
  // Single-prefix changes cost O(request): checked against an index of the
  // listed prefixes (no copy or revalidation of the set), written to the
  // live generation one element each, the sorted mirror merged in one pass.
  // All or nothing: on error the request's writes are undone.
  Result<void> add_prefix(const PrefixEntry& entry);  // replaces the action of an existing prefix
  Result<void> remove_prefix(const Prefix& prefix);   // error if absent
  // What an added entry replaced (nullopt: it was not listed), in request order.
  using Replaced = std::vector<std::optional<PrefixEntry>>;
  // Each entry listed once in the request; an entry already listed takes the new action.
  Result<Replaced> add_prefixes(std::span<const PrefixEntry> entries);
  // Each must be listed; returns the entries removed, in request order.
  Result<std::vector<PrefixEntry>> remove_prefixes(std::span<const Prefix> prefixes);
  // A whole batch (block load): merged into a copy of the live set, written
  // into the idle generation and made live by the one flip, so no packet
  // sees part of it. Entries must be distinct; already listed ones take the
  // new action. Returns how many were new. E2BIG: past the lists' capacity
  // (nothing written); ENOSPC: out of DIR-24-8 tbl8 groups (undone).
  Result<std::size_t> load_prefixes(std::vector<PrefixEntry> entries);
  std::optional<PrefixEntry> find_prefix(const Prefix& prefix) const;
  std::size_t prefix_count(int family) const noexcept { return family == 4 ? v4_count_ : v6_count_; }
  const std::vector<PrefixEntry>& prefixes() const noexcept { return current_.prefixes; }
  std::vector<PrefixEntry> list_prefixes() const { return current_.prefixes; }
  // One CIDR per line, optionally followed by an action ("drop", "pass",
  // "rate-limit <class>"; default `default_action`), '#' starts a comment.
  // Any bad line refuses the whole file: "<path>:<line>: <reason>".
  // Entries are added to the live set (batch writes); returns how many.
  Result<std::size_t> load_prefix_file(const std::filesystem::path& path, Action default_action = Action::Drop);
  // The same format from memory (a control-socket request): a bad line is
  // refused with EINVAL and "line <n>: <reason>", nothing else around it.
  Result<std::size_t> load_prefix_text(std::string_view content, Action default_action = Action::Drop);

  // ---- how the prefix lists are read ----
  const FilterTableOptions& options() const noexcept { return options_; }
  Result<PrefixDirInfo> prefix_dir(std::uint32_t generation) const;
  // Why a DIR-24-8 copy could not be plugged after a prefix change that was
  // made (packets then read the trie, which is right); empty when fine.
  const std::string& prefix_dir_error() const noexcept { return dir_error_; }

  // ---- rules and rate classes (each change is a whole-set replace) ----
  Result<void> add_rule(const FilterRule& rule);
  Result<void> remove_rule(std::uint32_t priority);
  std::vector<FilterRule> list_rules() const { return ordered_rules(current_.rules); }
  Result<void> define_rate_class(const RateClass& rate_class);  // adds or redefines
  Result<void> remove_rate_class(std::uint32_t id);             // refused while in use
  Result<void> set_default_policy(DefaultPolicy policy);

  // ---- settings outside the rule set ----
  Result<void> set_settings(const FilterSettings& settings);
  Result<FilterSettings> settings() const;

  // ---- counters and state ----
  // Hits of each rule of the live set, in evaluation order. A replace keeps
  // the hits of rules it leaves unchanged (same priority, match and action);
  // changed and new rules start at 0, and so does every rule after open().
  Result<std::vector<RuleCounter>> rule_counters() const;
  // Every filter reason (32..47) with its count, for drop and pass verdicts.
  Result<std::vector<ReasonCounter>> reason_counters() const;
  // Sampled drops the data plane could not report because the drop_events
  // ring was full (summed over CPUs). Such drops are still counted under
  // their reason; only the event is lost.
  Result<std::uint64_t> drop_events_lost() const;
  Result<std::vector<TrackedFlow>> tracked_flows() const;
  Result<void> clear_conntrack();
  Result<void> clear_rate_buckets();

 private:
  struct Maps;
  struct Mirror;  // what this table wrote into one generation's LPM/hash maps
  FilterTable(std::unique_ptr<Maps> maps, std::uint32_t live, FilterTableOptions options);

  Result<void> write_generation(std::uint32_t gen, const CompiledSet& compiled);
  // Brings generation gen's IPv4 DIR-24-8 (what packets read) from the
  // prefixes `had` to `want` (both sorted, the trie's view).
  using V4Prefixes = std::vector<std::pair<sluice_filter_v4_key, sluice_filter_verdict>>;
  Result<void> sync_dir(std::uint32_t gen, const V4Prefixes& had, const V4Prefixes& want);
  // Whether generation gen should have a DIR-24-8 copy for `count` IPv4 prefixes (with hysteresis).
  bool dir_wanted(std::uint32_t gen, std::size_t count) const noexcept;
  // A fresh copy holding `prefixes`, not plugged yet.
  Result<maps::Dir24_8> build_dir(std::uint32_t gen, const V4Prefixes& prefixes) const;
  // After a prefix change the trie already holds: plug `table` (a failure is kept in dir_error_).
  void plug_dir_after_change(std::uint32_t gen, maps::Dir24_8 table);
  Result<void> wait_for_readers();
  // replace() after validation (load_prefixes validates its own way: the index keeps prefixes distinct).
  Result<void> replace_validated(const RuleSet& set);
  void rebuild_index();
  void index_put(const PrefixEntry& entry);
  void index_erase(const Prefix& prefix);
  // Before the flip: rules kept unchanged by `next` take their hit counters
  // from the live generation into generation `gen`.
  Result<void> carry_rule_counters(std::uint32_t gen, const RuleSet& next);
  // Parses and loads prefix-list text; `refuse_at(line, reason)` makes its
  // errors of bad input (line 0: the text as a whole).
  Result<std::size_t> load_prefix_lines(std::string_view content, Action default_action,
                                        const std::function<Error(std::size_t, std::string_view)>& refuse_at);

  // After a failed write whose undo (of `map`) failed too: the live
  // generation holds an unknown mix, so its DIR-24-8 is marked for a whole
  // rebuild, and the error names both failures. Returns the error to report.
  Error rollback_failed(const Error& cause, std::string_view map, const Error& undo);

  std::unique_ptr<Maps> maps_;
  FilterTableOptions options_;
  std::string dir_error_;
  std::unique_ptr<Mirror> mirror_[SLUICE_FILTER_GENERATIONS];
  std::uint32_t live_ = 0;
  std::uint32_t generation_count_ = 0;  // what filter_generation holds; live_ is its low bit
  bool flipped_since_wait_ = true;  // after open: a reader of the idle generation may still run
  // A generation's DIR-24-8 whose contents are unknown after a failed write: rebuilt whole next time.
  bool dir_unknown_[SLUICE_FILTER_GENERATIONS] = {};
  RuleSet current_;
  // Where each listed prefix is in current_.prefixes (removal swaps the last entry into the hole).
  std::unordered_map<PrefixKey, std::size_t, PrefixKeyHash> index_;
  std::size_t v4_count_ = 0, v6_count_ = 0;
};

}  // namespace sluice::filter
