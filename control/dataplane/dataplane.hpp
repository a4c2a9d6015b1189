#pragma once
// Dataplane: the loaded sluice BPF object — entry program, stage programs and
// every map — and the one adapter the rest of user space goes through to
// reach them. Loading reuses maps already pinned under the pin directory, so
// a restarted daemon keeps counters, conntrack and rules; stages are
// (re)installed into the program array without touching the attachment.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "contract.hpp"
#include "maps.hpp"

struct sluice_bpf;
struct egress_observer_bpf;

namespace sluice::dataplane {

using maps::Error;
using maps::Result;

struct LoadOptions {
  // bpffs directory for the map pins; empty: nothing pinned (tests, benches).
  std::string pin_dir;
  // The tables whose size is the operator's choice (memory for state):
  // entries of each of the filter's conntrack tables (established and
  // unreplied flows, one of each per family), of its rate-limit source
  // buckets, and below of the lb connection tables. A pinned table from an
  // earlier load keeps its size: a different value makes that reuse fail
  // (the daemon must not drop tracked flows). Every other table is either
  // small or made on demand (the prefix lists' DIR-24-8 copies).
  std::uint32_t conntrack_entries = SLUICE_FILTER_CONNTRACK_ENTRIES;
  std::uint32_t rate_bucket_entries = SLUICE_FILTER_RATE_BUCKETS;
  // Entries of each of the lb stage's connection tables (lb_conns_v4 and
  // lb_conns, one per family), 1..kLbConnEntriesMax.
  std::uint32_t lb_conn_entries = SLUICE_LB_CONN_ENTRIES_DEFAULT;
  // BPF_F_NO_COMMON_LRU on both connection tables: one shared table (a flow
  // keeps its backend whichever CPU its packets land on) with per-CPU
  // eviction lists instead of one. Off by default, as for the filter's
  // conntrack: per-CPU lists split the capacity by CPU, so a busy CPU evicts
  // its own live flows while idle CPUs' lists hold stale ones. docs/benchmarks.md's
  // lb table has the cost of both. Pinned tables keep their flags.
  bool lb_conn_per_cpu_lru = false;
};

// 64M connections per family: ~6 GiB of kernel memory per table, past any box's use.
inline constexpr std::uint32_t kLbConnEntriesMax = 1u << 26;
// The same bound for the filter's conntrack tables and rate buckets.
inline constexpr std::uint32_t kStateEntriesMax = 1u << 26;

// One map of the loaded object, as status and metrics show it.
struct TableInfo {
  std::string name;
  std::string type;              // bpftool's name: "hash", "lru_hash", "array", ...
  std::uint32_t max_entries = 0;
  std::uint64_t memory_bytes = 0;  // bytes_memlock
  // Sized by a LoadOptions field (conntrack, rate buckets, lb connections): the operator's choice.
  std::optional<std::string> sized_by;
};

struct VerdictCount {
  sluice_verdict verdict;
  sluice_reason reason;
  sluice_counter total;  // summed over all possible CPUs
};

// The ids of the maps a loaded program uses, ascending, without libbpf's
// internal maps (.rodata, .bss: they belong to one load and are never
// pinned). Two entry programs with the same tag and the same ids run the same
// code on the same state; the same tag alone says nothing about the maps.
Result<std::vector<std::uint32_t>> program_state_map_ids(int prog_fd);
// The same for the program with this id (e.g. the one attached to an interface).
Result<std::vector<std::uint32_t>> program_state_map_ids_by_id(std::uint32_t prog_id);

// The defaults an operator gets before changing anything: every stage on,
// pass at the end, fail open, drop malformed, pass non-IP, keep fragments.
sluice_config default_config();
// Names the first bad field and its value; nothing is written on error.
Result<void> validate_config(const sluice_config& config);

class Dataplane {
 public:
  static Result<Dataplane> load(const LoadOptions& options);

  Dataplane(Dataplane&&) noexcept;
  Dataplane& operator=(Dataplane&&) noexcept;
  Dataplane(const Dataplane&) = delete;
  Dataplane& operator=(const Dataplane&) = delete;
  ~Dataplane();

  int entry_prog_fd() const;
  // The TC egress observer (xdp/egress_observer.bpf.c), loaded on this
  // object's conntrack maps: attach it beside the entry program on every
  // attached interface (tc_attachment.hpp).
  int egress_observer_prog_fd() const;
  int stage_prog_fd(sluice_stage stage) const;
  // Every map of the object (libbpf's internal .rodata/.bss/.data excluded),
  // with its size and kernel memory. Inner maps made on demand (DIR-24-8
  // copies) are their owners' to report (FilterTable, RouteTable).
  Result<std::vector<TableInfo>> tables() const;
  // Maps found pinned and reused at load (a restart), by map name.
  const std::vector<std::string>& reused_maps() const noexcept { return reused_maps_; }

  // Writes this object's stage programs into the idle bank of stage
  // programs, then makes that bank live with one map write (stage_bank):
  // each packet runs all the old stages or all the new ones, never a mix.
  Result<void> install_stages();
  // Empties one stage's slot (in both banks): packets then meet the tail-call fail policy.
  Result<void> remove_stage(sluice_stage stage);
  // The id of the program in a stage's slot of the live bank; empty when the slot is empty.
  Result<std::optional<std::uint32_t>> installed_stage_id(sluice_stage stage) const;
  // The banks themselves (tests stage and flip them separately).
  maps::StageBanks& stage_banks() noexcept { return stages_; }

  Result<sluice_config> config() const;
  Result<void> set_config(const sluice_config& config);

  // Every (verdict, reason) with a non-zero packet count.
  Result<std::vector<VerdictCount>> verdict_counts() const;
  Result<sluice_counter> verdict_count(sluice_verdict verdict, sluice_reason reason) const;

  sluice_bpf* skeleton() const noexcept { return skeleton_.get(); }
  egress_observer_bpf* observer_skeleton() const noexcept { return observer_.get(); }

 private:
  struct SkeletonDeleter {
    void operator()(sluice_bpf* skeleton) const;
  };
  struct ObserverDeleter {
    void operator()(egress_observer_bpf* skeleton) const;
  };
  // Loads the egress observer on the maps of the loaded `skeleton_`.
  Result<void> load_observer();
  Dataplane(std::unique_ptr<sluice_bpf, SkeletonDeleter> skeleton, maps::StageBanks stages,
            maps::ArrayMap<sluice_config> config, maps::PerCpuArrayMap<sluice_counter> counters,
            std::vector<std::string> reused);

  std::unique_ptr<sluice_bpf, SkeletonDeleter> skeleton_;
  maps::StageBanks stages_;
  maps::ArrayMap<sluice_config> config_;
  maps::PerCpuArrayMap<sluice_counter> counters_;
  std::vector<std::string> reused_maps_;
  std::unique_ptr<egress_observer_bpf, ObserverDeleter> observer_;
};

}  // namespace sluice::dataplane
