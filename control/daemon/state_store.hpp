#pragma once
// The daemon's one authoritative desired state (control/config's
// DesiredState: interfaces, defaults, prefix lists, rules, rate classes),
// kept in memory and persisted to <state-dir>/state.yaml.
//
// The data plane cannot give everything back: rules and rate classes are
// compiled into bitmaps. So the YAML file, not the maps, is what a restarted
// or cold-started daemon re-applies. Every state change writes the whole file
// atomically (temp file, fsync, rename) before it counts as done; except the
// prefix lists, which live apart (prefix_store.hpp: a snapshot and a journal
// named by state.yaml's first line), so block.add/block.del append a record
// instead of rewriting a million prefixes.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "desired_state.hpp"
#include "prefix_store.hpp"
#include "system.hpp"

namespace sluice::daemon {

inline constexpr std::string_view state_file = "state.yaml";
// Written by sluiced before the state moved into state.yaml; read once
// (upgrade), folded into state.yaml and removed.
inline constexpr std::string_view legacy_interfaces_file = "interfaces.json";

// `live` with the sections `wanted` manages replaced by wanted's: a section
// present in `wanted` is the whole truth for it; inside defaults, per key.
config::DesiredState overlay(config::DesiredState live, const config::DesiredState& wanted);

// True when every section is present: the state the daemon holds always is,
// so config.show prints everything and applying it back changes nothing.
bool is_whole(const config::DesiredState& state);

class StateStore {
 public:
  // Empty state_dir: kept in memory only (unit tests).
  explicit StateStore(std::string state_dir);

  std::string path() const;
  // False for a store kept in memory only (no state dir).
  bool persistent() const noexcept { return !state_dir_.empty(); }
  // The state file; nullopt when there is none. A file that does not parse
  // is an error naming the file and the YAML path, value and line.
  // With the prefix lists of the snapshot and journal state.yaml names
  // (remembered for the commits that follow; files of other generations are
  // removed). A torn last journal record (never fsynced, never reported
  // accepted) is cut off.
  Result<std::optional<config::DesiredState>> read();
  // interfaces.json of an older sluiced; nullopt when there is none.
  Result<std::optional<std::vector<config::InterfaceSpec>>> read_legacy_interfaces() const;
  void remove_legacy_interfaces() const;

  const config::DesiredState& live() const noexcept { return live_; }
  // Writes `next` to the file (atomically), then makes it live. On error
  // neither the file nor live() changed.
  Result<void> commit(config::DesiredState next);
  // Changes of single prefixes (block.add/del): one journal record appended
  // and fsynced, O(changes); at the compaction bound, a new snapshot
  // generation instead. On error neither the files nor live() changed.
  Result<void> commit_prefix_changes(const std::vector<PrefixChange>& changes);
  // How `prefix` is listed in live(), O(1).
  std::optional<ListedPrefix> find_prefix(const std::string& prefix) const;
  // Builds the index find_prefix uses now rather than at the first block.* (the daemon posts it after start).
  void warm_index() const { ensure_index(); }
  // Fault injection (tests, sluiced --fault-kill-before journal / journal-synced):
  // called with "journal" before a record is appended, "journal-synced" after its fsync.
  void set_journal_hook(std::function<void(std::string_view)> hook) { journal_hook_ = std::move(hook); }
  std::size_t journal_bytes() const noexcept { return journal_bytes_; }
  std::optional<std::uint64_t> prefix_generation() const noexcept { return generation_; }
  // Makes `state` live without writing it: only at startup, when the data
  // plane already runs it and the file could not be written.
  void adopt(config::DesiredState state) {
    live_ = std::move(state);
    index_stale_ = true;
  }

  // Start-up, with the state dir locked: removes the temp files of a commit
  // killed before its rename (".state.yaml.XXXXXX"); the names removed.
  Result<std::vector<std::string>> sweep_temp_files() const;
  // Fault injection (tests, sluiced --fault-kill-before rename): runs inside
  // commit() after the temp file is written and synced, before its rename.
  void set_before_rename(std::function<void()> hook) { before_rename_ = std::move(hook); }

 private:
  // Writes state.yaml (without the prefix lists) naming the prefix files;
  // a new generation of them first when `lists` differ from what is on disk.
  Result<void> write_state(const config::DesiredState& state);
  void remove_other_generations() const;

  std::string state_dir_;
  std::function<void()> before_rename_;
  std::function<void(std::string_view)> journal_hook_;
  config::DesiredState live_;
  // Over live_.prefix_lists; rebuilt when first needed after a whole commit
  // (a start with a million prefixes does not wait for it; the first block.* does, once).
  mutable PrefixListIndex index_;
  mutable bool index_stale_ = true;
  void ensure_index() const;
  std::optional<std::uint64_t> generation_;  // of the prefix files on disk; none: not written yet
  std::uint64_t persisted_digest_ = 0;       // PrefixListIndex digest of what they hold
  std::size_t journal_bytes_ = 0;
};

}  // namespace sluice::daemon
