#pragma once
// Dir24_8: the user-space side of one DIR-24-8 instance (xdp/dir24_8.h), an
// IPv4 longest-prefix-match table the data plane reads with one or two
// inlined array loads. It owns the two arrays (tbl24, tbl8) through MapFd,
// writes them through a shared mmap, and keeps the record the tables cannot
// hold: which prefixes exist, per length, with their values. Every change
// recomputes the affected /24 blocks from that record, so erasing a prefix
// restores whatever next-longest prefix covers its addresses.
//
// Values are 1..SLUICE_DIR24_8_VALUE_MAX (the top bit of a tbl24 entry marks
// a tbl8 group index); 0 means "no match" and cannot be stored.
//
// Live updates: packets read the tables while this class writes them. Every
// entry changes with one aligned 32-bit store, so a packet sees the old or
// the new answer for its address, never anything else:
//   - a /24 that needs a tbl8 group gets a free group filled completely,
//     then the tbl24 entry is switched to it (store-release);
//   - a group that becomes uniform, or whose /24 no longer holds prefixes
//     longer than /24, is unlinked by storing the value into tbl24 first; the
//     group is then retired and reused only after an RCU grace period
//     (membarrier(MEMBARRIER_CMD_GLOBAL) = synchronize_rcu()), since an XDP
//     program that loaded the old tbl24 entry may still be reading it;
//   - a group that stays gets the changed entries rewritten one by one.
// A change checks the tbl8 capacity it needs before writing anything: on an
// error the tables and the prefix record are as they were.
//
// Not thread-safe: one writer (the control plane) per instance.
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "contract.hpp"
#include "error.hpp"
#include "map_fd.hpp"

struct bpf_map;

namespace sluice::maps {

struct Dir24_8Entry {
  sluice_lpm_v4_key prefix;  // address in network order, host bits zero
  std::uint32_t value;       // 1..SLUICE_DIR24_8_VALUE_MAX
};

class Dir24_8 {
 public:
  // Checks both maps (array, u32 keys and values, BPF_F_MMAPABLE, tbl24 of
  // 2^24 entries, tbl8 a whole number of groups) and maps them. Tables that
  // already hold entries (a restart reusing pinned maps) keep answering as
  // they are; the prefix record starts empty, so call assign() with the
  // source of truth (the LPM trie) before insert()/erase().
  [[nodiscard]] static Result<Dir24_8> from(MapFd tbl24, MapFd tbl8);
  [[nodiscard]] static Result<Dir24_8> from_skeleton(const struct bpf_map* tbl24, const struct bpf_map* tbl8);
  [[nodiscard]] static Result<Dir24_8> open_pinned(const std::string& tbl24_path, const std::string& tbl8_path);

  Dir24_8(const Dir24_8&) = delete;
  Dir24_8& operator=(const Dir24_8&) = delete;
  Dir24_8(Dir24_8&& other) noexcept;
  Dir24_8& operator=(Dir24_8&& other) noexcept;
  ~Dir24_8();

  // Adds the prefix, or changes its value. EINVAL: bad prefix or value;
  // ENOSPC: not enough tbl8 groups (nothing changed).
  [[nodiscard]] Result<void> insert(const sluice_lpm_v4_key& prefix, std::uint32_t value);
  // false when the prefix was not there.
  [[nodiscard]] Result<bool> erase(const sluice_lpm_v4_key& prefix);
  // Replaces every prefix with `entries` (duplicates are an error): the new
  // tables are computed in memory, then only the entries that differ are
  // written. Groups freed by this call are not reused by it, so replacing a
  // full table with a disjoint full one may need up to twice the groups.
  [[nodiscard]] Result<void> assign(std::span<const Dir24_8Entry> entries);

  // What a packet from addr (host byte order) would see now, read from the
  // tables themselves (not from the record): for tests and diagnostics.
  std::uint32_t lookup(std::uint32_t addr_host) const noexcept;
  // The value recorded for exactly this prefix.
  std::optional<std::uint32_t> find(const sluice_lpm_v4_key& prefix) const;

  std::size_t size() const noexcept { return prefix_count_; }
  std::uint32_t groups_capacity() const noexcept { return groups_; }
  // Groups linked from tbl24 (retired groups awaiting a grace period excluded).
  std::uint32_t groups_used() const noexcept {
    return groups_ - static_cast<std::uint32_t>(free_.size() + retired_.size());
  }
  const MapFd& tbl24() const noexcept { return tbl24_; }
  const MapFd& tbl8() const noexcept { return tbl8_; }

 private:
  // Prefix address in host order, per length 0..32.
  using Rules = std::array<std::map<std::uint32_t, std::uint32_t>, 33>;
  struct Mapping {
    void* address = nullptr;
    std::size_t length = 0;
  };

  Dir24_8(MapFd tbl24, MapFd tbl8, Mapping map24, Mapping map8, std::uint32_t groups);
  void release() noexcept;

  // Recomputes /24 blocks [first_block, first_block + 2^(24 - range_len))
  // from rules_ and writes the difference. range_len <= 24.
  [[nodiscard]] Result<void> rebuild(std::uint32_t first_block, unsigned range_len, std::string_view operation,
                                     std::string_view subject);
  std::uint32_t covering_value(std::uint32_t addr, unsigned max_len) const;
  struct LongPrefix {  // a prefix longer than /24
    std::uint32_t addr;
    unsigned len;
    std::uint32_t value;
  };
  // The 256 values of a /24 block from `base` (its prefixes of /24 and
  // shorter) and its longer prefixes, sorted by length; true when all are
  // equal (the block needs no group).
  static bool build_group(std::uint32_t base, std::span<const LongPrefix> prefixes,
                          std::array<std::uint32_t, SLUICE_DIR24_8_GROUP_ENTRIES>& out);
  void store_tbl24(std::uint32_t block, std::uint32_t entry) noexcept;
  [[nodiscard]] Result<void> recycle_retired_groups();
  std::string describe() const;

  MapFd tbl24_;
  MapFd tbl8_;
  Mapping map24_;
  Mapping map8_;
  std::uint32_t* t24_ = nullptr;
  std::uint32_t* t8_ = nullptr;
  std::uint32_t groups_ = 0;
  Rules rules_;
  std::size_t prefix_count_ = 0;
  std::vector<std::uint32_t> free_;     // unreferenced, safe to reuse; back() is next
  std::vector<std::uint32_t> retired_;  // unlinked, may still be read by in-flight packets
};

// tbl8 groups for a table holding `entries`: one per /24 that holds
// prefixes longer than /24, with room to grow (so that single changes rarely
// need a rebuild), at most `cap`. The error of too small a cap comes from
// assign() (ENOSPC), which names the numbers.
std::uint32_t dir24_8_groups_wanted(std::span<const Dir24_8Entry> entries, std::uint32_t cap);

// Dir24_8Slot: a DIR-24-8 made on demand and plugged into slot `slot` of a
// pair of arrays of maps (SLUICE_DIR24_8_SLOT_MAPS in xdp/dir24_8.h), which
// the data plane reads instead of its LPM trie while the slot is filled. An
// empty slot costs no memory; a filled one costs its tbl24 (64 MiB) and its
// tbl8 (1 KiB a group). The trie must hold the same prefixes whenever a
// table is plugged: it is what packets read while a slot is empty or being
// switched.
//
// Plugging writes tbl8 first and tbl24 second, unplugging the reverse, so a
// packet that finds both slots filled finds one table's pair; a table is
// replaced by unplugging the old one and waiting for an RCU grace period
// before the new one goes in (packets read the trie between), so a packet
// that read the old tbl24 never reads the new tbl8.
class Dir24_8Slot {
 public:
  // Empties the slot: whatever a previous owner plugged is unplugged (rebuild with plug()).
  [[nodiscard]] static Result<Dir24_8Slot> open(MapFd outer24, MapFd outer8, std::uint32_t slot,
                                                std::string inner_name);

  // A new unplugged table of `groups` tbl8 groups holding `entries`
  // (ENOSPC: they need more groups; nothing was created).
  [[nodiscard]] Result<Dir24_8> build(std::span<const Dir24_8Entry> entries, std::uint32_t groups) const;
  // Makes `table` what packets read, in place of the plugged one. On error
  // the slot is empty (packets read the trie, which is always right).
  [[nodiscard]] Result<void> plug(Dir24_8 table);
  // build() + plug(); on a build error the plugged table stays as it was.
  [[nodiscard]] Result<void> replace(std::span<const Dir24_8Entry> entries, std::uint32_t groups);
  [[nodiscard]] Result<void> unplug();

  bool plugged() const noexcept { return table_.has_value(); }
  Dir24_8* table() noexcept { return table_ ? &*table_ : nullptr; }
  const Dir24_8* table() const noexcept { return table_ ? &*table_ : nullptr; }
  // Kernel memory of the plugged table (0 when empty): tbl24 + tbl8, as map_memory_bytes() counts.
  [[nodiscard]] Result<std::uint64_t> memory_bytes() const;

 private:
  Dir24_8Slot(MapFd outer24, MapFd outer8, std::uint32_t slot, std::string inner_name);

  MapFd outer24_;
  MapFd outer8_;
  std::uint32_t slot_ = 0;
  std::string inner_name_;  // kernel names of the inner maps: <name>_t24, <name>_t8
  std::optional<Dir24_8> table_;
};

}  // namespace sluice::maps
