#pragma once
// The daemon's one authoritative desired state (control/config's
// DesiredState: interfaces, defaults, prefix lists, rules, rate classes),
// kept in memory and persisted to <state-dir>/state.yaml.
//
// The data plane cannot give everything back: rules and rate classes are
// compiled into bitmaps. So the YAML file, not the maps, is what a restarted
// or cold-started daemon re-applies. Every state change writes the whole file
// atomically (temp file, fsync, rename) before it counts as done.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "desired_state.hpp"
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
  Result<std::optional<config::DesiredState>> read() const;
  // interfaces.json of an older sluiced; nullopt when there is none.
  Result<std::optional<std::vector<config::InterfaceSpec>>> read_legacy_interfaces() const;
  void remove_legacy_interfaces() const;

  const config::DesiredState& live() const noexcept { return live_; }
  // Writes `next` to the file (atomically), then makes it live. On error
  // neither the file nor live() changed.
  Result<void> commit(config::DesiredState next);
  // Makes `state` live without writing it: only at startup, when the data
  // plane already runs it and the file could not be written.
  void adopt(config::DesiredState state) { live_ = std::move(state); }

  // Start-up, with the state dir locked: removes the temp files of a commit
  // killed before its rename (".state.yaml.XXXXXX"); the names removed.
  Result<std::vector<std::string>> sweep_temp_files() const;
  // Fault injection (tests, sluiced --fault-kill-before rename): runs inside
  // commit() after the temp file is written and synced, before its rename.
  void set_before_rename(std::function<void()> hook) { before_rename_ = std::move(hook); }

 private:
  std::string state_dir_;
  std::function<void()> before_rename_;
  config::DesiredState live_;
};

}  // namespace sluice::daemon
