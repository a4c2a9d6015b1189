// FilterTable's prefix lists (filter_table.hpp): single-prefix changes
// straight to the live generation, batch loads through a whole-set replace,
// the prefix-file format, the index of listed prefixes, and the IPv4 lists'
// DIR-24-8 copies packets read instead of the trie.
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "decimal.hpp"
#include "filter_table_maps.hpp"
#include "utf8.hpp"

namespace sluice::filter {

using namespace detail;

namespace {

template <class K>
void sort_keys(std::vector<K>& keys) {
  std::sort(keys.begin(), keys.end(), key_less<K>);
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

}  // namespace sluice::filter
