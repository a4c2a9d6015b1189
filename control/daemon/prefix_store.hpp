#pragma once
// The prefix lists on disk, apart from state.yaml: they can hold a million
// entries, and adding one must not rewrite the million.
//
//   prefixes.<G>.list     a snapshot of both lists (block, allow), written
//                          whole and atomically (temp file, fsync, rename)
//   prefixes.<G>.journal  append-only records of block.add / block.del
//                          changes since that snapshot, each fsynced before
//                          the op replies; a record is whole or ignored
//
// state.yaml's first line names the generation G it goes with, so the
// rename of state.yaml stays the one commit point of a whole-state change:
// a start reads state.yaml, then exactly that generation's snapshot and
// journal, and removes the files of any other generation (a change killed
// before its state.yaml rename). The journal is compacted (a new
// generation written) when the next record would take it past
// kJournalCompactBytes: the same bound the loader accepts, so whatever was
// accepted loads.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "desired_state.hpp"
#include "system.hpp"

namespace sluice::daemon {

// A journal that would grow past this is compacted instead (a new snapshot).
inline constexpr std::size_t kJournalCompactBytes = std::size_t{16} << 20;
// Every snapshot and journal line is at most this long (checked when written:
// "b " + the longest IPv6 prefix + " rate-limit " + the longest class name fit).
inline constexpr std::size_t kMaxPrefixStoreLineBytes = 256;
// What a snapshot can take: both lists full, every line at its longest.
inline constexpr std::size_t kMaxSnapshotBytes =
    (std::size_t{SLUICE_FILTER_MAX_V4_PREFIXES} + SLUICE_FILTER_MAX_V6_PREFIXES + 2) * kMaxPrefixStoreLineBytes;

// An entry as listed: in which list, spelt how.
struct ListedPrefix {
  bool allow = false;  // allow list (else block)
  config::PrefixEntry spec;
  bool operator==(const ListedPrefix&) const = default;
};
// One change of one prefix: set to `now`, or removed (nullopt).
struct PrefixChange {
  std::string prefix;  // canonical CIDR
  std::optional<ListedPrefix> now;
};

// canonical prefix -> where it is in config::PrefixLists, and an
// order-independent digest of the lists (sum of per-entry hashes), kept in
// step by apply(): O(change), whatever the lists hold.
class PrefixListIndex {
 public:
  void rebuild(const config::PrefixLists& lists);
  std::optional<ListedPrefix> find(const config::PrefixLists& lists, const std::string& prefix) const;
  // Applies `change` to `lists` (removal swaps the last entry into the hole); returns its inverse.
  PrefixChange apply(config::PrefixLists& lists, const PrefixChange& change);
  std::uint64_t digest() const noexcept { return digest_; }
  std::size_t size() const noexcept { return where_.size(); }
  static std::uint64_t digest_of(const config::PrefixLists& lists);

 private:
  std::unordered_map<std::string, std::pair<bool, std::size_t>> where_;
  std::uint64_t digest_ = 0;
};

std::string prefix_snapshot_name(std::uint64_t generation);  // "prefixes.<G>.list"
std::string prefix_journal_name(std::uint64_t generation);   // "prefixes.<G>.journal"

// The snapshot file's text; error: a line over kMaxPrefixStoreLineBytes.
Result<std::string> snapshot_text(const config::PrefixLists& lists);
// Errors name "<path>:<line>: <reason>".
Result<config::PrefixLists> parse_snapshot(std::string_view text, const std::string& path);
// One journal record: the change lines and the "=" line that makes it whole.
Result<std::string> journal_record(const std::vector<PrefixChange>& changes);
struct Replayed {
  std::size_t records = 0;
  std::size_t whole_bytes = 0;  // the journal's length up to the end of its last whole record
  std::size_t torn_bytes = 0;   // after it: a record never completed (not fsynced, never reported)
};
// Applies every whole record to `lists` (kept in step with `index`).
Result<Replayed> replay_journal(std::string_view text, const std::string& path, config::PrefixLists& lists,
                                PrefixListIndex& index);

}  // namespace sluice::daemon
