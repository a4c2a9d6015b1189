#pragma once
// Maps whose values name kernel objects: user space writes a program fd (or
// an ifindex) and reads back a program id. Different enough from plain
// key/value maps to have their own handles.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "error.hpp"
#include "kv_map.hpp"
#include "map_fd.hpp"
#include "map_ops.hpp"

namespace sluice::maps {

// BPF_MAP_TYPE_PROG_ARRAY: the tail-call table (slot = enum sluice_stage).
class ProgArray {
 public:
  [[nodiscard]] static Result<ProgArray> from(MapFd map);
  [[nodiscard]] static Result<ProgArray> open_pinned(const std::string& path);

  [[nodiscard]] Result<void> set(std::uint32_t slot, int prog_fd);
  // false when the slot was already empty.
  [[nodiscard]] Result<bool> clear(std::uint32_t slot);
  // The id of the program in the slot; empty when the slot is empty.
  [[nodiscard]] Result<std::optional<std::uint32_t>> lookup(std::uint32_t slot) const;

  const MapFd& map() const noexcept { return map_; }

 private:
  explicit ProgArray(MapFd map) : map_(std::move(map)) {}
  MapFd map_;
};

// Two banks of tail-call slots (two program arrays of equal size) and the
// one-slot array that names the live bank, which the entry program reads once
// per packet (SLUICE_STAGE_BANKS in maps/sluice_maps.h). An upgrade writes
// every slot of the idle bank, then makes it live with one map write: a packet
// runs all the old stages or all the new ones, never a mix.
class StageBanks {
 public:
  static constexpr std::uint32_t kBanks = 2;

  // Both arrays must have the same number of slots; the selector is an
  // array of one u32 (bank number).
  [[nodiscard]] static Result<StageBanks> from(std::array<ProgArray, kBanks> banks, ArrayMap<std::uint32_t> selector);

  // The live bank. A value out of range (the data plane drops every packet
  // then) is an error naming it.
  [[nodiscard]] Result<std::uint32_t> live_bank() const;
  // Waits until no packet can still be running from the idle bank (it was
  // live before the last flip: an RCU grace period), then writes prog_fds
  // into its slots 0..n-1 and empties the rest. The live bank is untouched.
  // Returns the bank written, for flip().
  [[nodiscard]] Result<std::uint32_t> stage(std::span<const int> prog_fds);
  // The one map write that makes `bank` live.
  [[nodiscard]] Result<void> flip(std::uint32_t bank);
  // stage() then flip(): what an upgrade does.
  [[nodiscard]] Result<void> install(std::span<const int> prog_fds);
  // Empties `slot` in both banks (packets meet the tail-call fail policy).
  // false when it was empty in both.
  [[nodiscard]] Result<bool> clear(std::uint32_t slot);
  // The id of the program in `slot` of the live bank; empty when the slot is empty.
  [[nodiscard]] Result<std::optional<std::uint32_t>> lookup(std::uint32_t slot) const;

  const ProgArray& bank(std::uint32_t index) const { return banks_.at(index); }
  const MapFd& selector() const noexcept { return selector_.map(); }

 private:
  StageBanks(std::array<ProgArray, kBanks> banks, ArrayMap<std::uint32_t> selector)
      : banks_(std::move(banks)), selector_(std::move(selector)) {}
  std::array<ProgArray, kBanks> banks_;
  ArrayMap<std::uint32_t> selector_;
};

// One device map or CPU map slot as read back: prog_id 0 means no program.
struct DevMapEntry {
  std::uint32_t ifindex = 0;
  std::uint32_t prog_id = 0;
};
struct CpuMapEntry {
  std::uint32_t qsize = 0;
  std::uint32_t prog_id = 0;
};

// BPF_MAP_TYPE_DEVMAP / DEVMAP_HASH with value struct bpf_devmap_val or a bare u32 ifindex.
class DevMap {
 public:
  [[nodiscard]] static Result<DevMap> from(MapFd map);
  [[nodiscard]] static Result<DevMap> open_pinned(const std::string& path);

  // prog_fd: an XDP program (expected_attach_type BPF_XDP_DEVMAP) run on the
  // egress device; only for maps whose value is struct bpf_devmap_val.
  [[nodiscard]] Result<void> set(std::uint32_t key, std::uint32_t ifindex, std::optional<int> prog_fd = std::nullopt,
                   UpdateFlag flag = UpdateFlag::Any);
  [[nodiscard]] Result<std::optional<DevMapEntry>> lookup(std::uint32_t key) const;
  [[nodiscard]] Result<bool> erase(std::uint32_t key);
  [[nodiscard]] Result<std::vector<std::uint32_t>> keys() const;

  const MapFd& map() const noexcept { return map_; }

 private:
  explicit DevMap(MapFd map) : map_(std::move(map)) {}
  MapFd map_;
};

// BPF_MAP_TYPE_CPUMAP (key = CPU number) with value struct bpf_cpumap_val or a bare u32 qsize.
class CpuMap {
 public:
  [[nodiscard]] static Result<CpuMap> from(MapFd map);
  [[nodiscard]] static Result<CpuMap> open_pinned(const std::string& path);

  // qsize: frames queued to the CPU's kthread; prog_fd: XDP program
  // (expected_attach_type BPF_XDP_CPUMAP) run on that CPU.
  [[nodiscard]] Result<void> set(std::uint32_t cpu, std::uint32_t qsize, std::optional<int> prog_fd = std::nullopt);
  [[nodiscard]] Result<std::optional<CpuMapEntry>> lookup(std::uint32_t cpu) const;
  [[nodiscard]] Result<bool> erase(std::uint32_t cpu);

  const MapFd& map() const noexcept { return map_; }

 private:
  explicit CpuMap(MapFd map) : map_(std::move(map)) {}
  MapFd map_;
};

}  // namespace sluice::maps
