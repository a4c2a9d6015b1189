#include "dir24_8.hpp"

#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include <bpf/bpf.h>

#include "prefix.hpp"

namespace sluice::maps {
namespace {

constexpr unsigned kTbl24Bits = SLUICE_DIR24_8_TBL24_BITS;
constexpr unsigned kTbl8Bits = SLUICE_DIR24_8_TBL8_BITS;
constexpr unsigned kMaxLen = 32;
constexpr std::uint32_t kGroupEntries = SLUICE_DIR24_8_GROUP_ENTRIES;
constexpr std::uint32_t kLowMask = kGroupEntries - 1;
constexpr std::uint32_t kFlag = SLUICE_DIR24_8_GROUP_FLAG;
constexpr std::uint64_t kAddressSpace = std::uint64_t{1} << kMaxLen;

bool is_group(std::uint32_t entry) { return (entry & kFlag) != 0; }
std::uint32_t group_of(std::uint32_t entry) { return entry & ~kFlag; }

// Host-order mask of a prefix length (0..32); shifting a u32 by 32 is undefined.
std::uint32_t mask_of(unsigned len) { return len == 0 ? 0 : ~std::uint32_t{0} << (kMaxLen - len); }
// Addresses covered by a prefix of this length, as u64 (a /0 covers 2^32).
std::uint64_t span_of(unsigned len) { return std::uint64_t{1} << (kMaxLen - len); }

std::uint32_t host_address(const sluice_lpm_v4_key& key) {
  return std::uint32_t{key.addr[0]} << 24 | std::uint32_t{key.addr[1]} << 16 | std::uint32_t{key.addr[2]} << 8 |
         key.addr[3];
}

// Text of a key that may be invalid (to_string assumes a length <= 32).
std::string prefix_text(const sluice_lpm_v4_key& key) {
  if (key.prefixlen <= kMaxLen) return to_string(key);
  return std::to_string(key.addr[0]) + "." + std::to_string(key.addr[1]) + "." + std::to_string(key.addr[2]) + "." +
         std::to_string(key.addr[3]) + "/" + std::to_string(key.prefixlen);
}

Result<std::uint32_t> checked_address(const sluice_lpm_v4_key& key, std::string_view operation,
                                      std::string_view subject) {
  if (key.prefixlen > kMaxLen)
    return make_error_because(operation, subject,
                              "prefix " + prefix_text(key) + ": prefixlen " + std::to_string(key.prefixlen) +
                                  " exceeds 32",
                              EINVAL);
  const std::uint32_t addr = host_address(key);
  if ((addr & ~mask_of(key.prefixlen)) != 0)
    return make_error_because(operation, subject, "prefix " + prefix_text(key) + " has host bits set", EINVAL);
  return addr;
}

Result<void> checked_value(const sluice_lpm_v4_key& key, std::uint32_t value, std::string_view operation,
                           std::string_view subject) {
  if (value == SLUICE_DIR24_8_NO_MATCH || value > SLUICE_DIR24_8_VALUE_MAX)
    return make_error_because(operation, subject,
                              "prefix " + prefix_text(key) + ": value " + std::to_string(value) +
                                  " outside 1.." + std::to_string(SLUICE_DIR24_8_VALUE_MAX) +
                                  " (0 means no match, the top bit marks tbl8 groups)",
                              EINVAL);
  return {};
}

// Both tables are arrays of struct sluice_dir24_8_row, u32 keys, mmapable.
Result<void> check_rows(const MapFd& map, std::string_view role) {
  const std::string what = std::string(role) + " map " + map.name();
  if (map.type() != BPF_MAP_TYPE_ARRAY)
    return make_error_because("open DIR-24-8", what,
                              "type is " + std::string(map_type_name(map.type())) + ", expected array", EINVAL);
  if (map.key_size() != sizeof(std::uint32_t) || map.value_size() != sizeof(sluice_dir24_8_row))
    return make_error_because("open DIR-24-8", what,
                              "key_size " + std::to_string(map.key_size()) + " / value_size " +
                                  std::to_string(map.value_size()) + ", expected 4 / " +
                                  std::to_string(sizeof(sluice_dir24_8_row)) + " (struct sluice_dir24_8_row)",
                              EINVAL);
  if ((map.map_flags() & BPF_F_MMAPABLE) == 0)
    return make_error_because("open DIR-24-8", what, "map_flags lack BPF_F_MMAPABLE", EINVAL);
  return {};
}

Result<void*> map_shared(const MapFd& map, std::size_t length) {
  void* address = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, map.fd(), 0);
  if (address == MAP_FAILED) return make_error("mmap", "map " + map.name(), errno);
  return address;
}

}  // namespace

Result<Dir24_8> Dir24_8::from(MapFd tbl24, MapFd tbl8) {
  if (auto checked = check_rows(tbl24, "tbl24"); !checked) return checked.error();
  if (auto checked = check_rows(tbl8, "tbl8"); !checked) return checked.error();
  if (tbl24.max_entries() != SLUICE_DIR24_8_TBL24_ROWS)
    return make_error_because("open DIR-24-8", "tbl24 map " + tbl24.name(),
                              "max_entries " + std::to_string(tbl24.max_entries()) + ", expected " +
                                  std::to_string(SLUICE_DIR24_8_TBL24_ROWS) + " rows",
                              EINVAL);
  const std::uint32_t groups = tbl8.max_entries();
  if (groups == 0 || groups > SLUICE_DIR24_8_TBL8_GROUPS_MAX)
    return make_error_because("open DIR-24-8", "tbl8 map " + tbl8.name(),
                              "max_entries " + std::to_string(groups) + " is not 1.." +
                                  std::to_string(SLUICE_DIR24_8_TBL8_GROUPS_MAX) + " groups",
                              EINVAL);

  // Rows are 1 KiB, a multiple of the kernel's 8-byte element stride: the
  // mapping is exactly rows * 256 u32, i.e. the flat tables.
  Mapping map24{nullptr, std::size_t{tbl24.max_entries()} * sizeof(sluice_dir24_8_row)};
  Mapping map8{nullptr, std::size_t{groups} * sizeof(sluice_dir24_8_row)};
  auto address24 = map_shared(tbl24, map24.length);
  if (!address24) return address24.error();
  map24.address = *address24;
  auto address8 = map_shared(tbl8, map8.length);
  if (!address8) {
    ::munmap(map24.address, map24.length);
    return address8.error();
  }
  map8.address = *address8;

  Dir24_8 table(std::move(tbl24), std::move(tbl8), map24, map8, groups);
  // Which groups the live tables link: a restart must not hand them out again.
  std::vector<bool> linked(groups, false);
  for (std::uint32_t block = 0; block < SLUICE_DIR24_8_TBL24_ENTRIES; ++block) {
    const std::uint32_t entry = table.t24_[block];
    if (!is_group(entry)) continue;
    if (group_of(entry) >= groups || linked[group_of(entry)])
      return make_error_because("open DIR-24-8", table.describe(),
                                "tbl24[" + std::to_string(block) + "] = " + std::to_string(entry) +
                                    " links a group that is out of range or already linked",
                                EUCLEAN);
    linked[group_of(entry)] = true;
  }
  // Unlinked groups may have been unlinked a moment ago by a previous owner,
  // with packets still reading them: treat them as retired (the first
  // allocation waits for one grace period). Highest first so that the lowest
  // group is handed out first.
  for (std::uint32_t group = groups; group-- > 0;)
    if (!linked[group]) table.retired_.push_back(group);
  return table;
}

Result<Dir24_8> Dir24_8::from_skeleton(const struct bpf_map* tbl24, const struct bpf_map* tbl8) {
  auto fd24 = MapFd::from_skeleton(tbl24);
  if (!fd24) return fd24.error();
  auto fd8 = MapFd::from_skeleton(tbl8);
  if (!fd8) return fd8.error();
  return from(std::move(*fd24), std::move(*fd8));
}

Result<Dir24_8> Dir24_8::open_pinned(const std::string& tbl24_path, const std::string& tbl8_path) {
  auto fd24 = MapFd::open_pinned(tbl24_path);
  if (!fd24) return fd24.error();
  auto fd8 = MapFd::open_pinned(tbl8_path);
  if (!fd8) return fd8.error();
  return from(std::move(*fd24), std::move(*fd8));
}

Dir24_8::Dir24_8(MapFd tbl24, MapFd tbl8, Mapping map24, Mapping map8, std::uint32_t groups)
    : tbl24_(std::move(tbl24)),
      tbl8_(std::move(tbl8)),
      map24_(map24),
      map8_(map8),
      t24_(static_cast<std::uint32_t*>(map24.address)),
      t8_(static_cast<std::uint32_t*>(map8.address)),
      groups_(groups) {}

Dir24_8::Dir24_8(Dir24_8&& other) noexcept
    : tbl24_(std::move(other.tbl24_)),
      tbl8_(std::move(other.tbl8_)),
      map24_(std::exchange(other.map24_, {})),
      map8_(std::exchange(other.map8_, {})),
      t24_(std::exchange(other.t24_, nullptr)),
      t8_(std::exchange(other.t8_, nullptr)),
      groups_(std::exchange(other.groups_, 0)),
      rules_(std::move(other.rules_)),
      prefix_count_(std::exchange(other.prefix_count_, 0)),
      free_(std::move(other.free_)),
      retired_(std::move(other.retired_)) {}

Dir24_8& Dir24_8::operator=(Dir24_8&& other) noexcept {
  if (this != &other) {
    release();
    tbl24_ = std::move(other.tbl24_);
    tbl8_ = std::move(other.tbl8_);
    map24_ = std::exchange(other.map24_, {});
    map8_ = std::exchange(other.map8_, {});
    t24_ = std::exchange(other.t24_, nullptr);
    t8_ = std::exchange(other.t8_, nullptr);
    groups_ = std::exchange(other.groups_, 0);
    rules_ = std::move(other.rules_);
    prefix_count_ = std::exchange(other.prefix_count_, 0);
    free_ = std::move(other.free_);
    retired_ = std::move(other.retired_);
  }
  return *this;
}

Dir24_8::~Dir24_8() { release(); }

void Dir24_8::release() noexcept {
  if (map24_.address) ::munmap(map24_.address, map24_.length);
  if (map8_.address) ::munmap(map8_.address, map8_.length);
  map24_ = {};
  map8_ = {};
  t24_ = t8_ = nullptr;
}

std::string Dir24_8::describe() const { return "DIR-24-8 " + tbl24_.name() + "/" + tbl8_.name(); }

std::uint32_t Dir24_8::lookup(std::uint32_t addr_host) const noexcept {
  const std::uint32_t entry = std::atomic_ref<std::uint32_t>(t24_[addr_host >> kTbl8Bits]).load(std::memory_order_acquire);
  if (!is_group(entry)) return entry;
  if (group_of(entry) >= groups_) return SLUICE_DIR24_8_NO_MATCH;  // as the BPF lookup does
  return std::atomic_ref<std::uint32_t>(t8_[(group_of(entry) << kTbl8Bits) | (addr_host & kLowMask)])
      .load(std::memory_order_relaxed);
}

std::optional<std::uint32_t> Dir24_8::find(const sluice_lpm_v4_key& prefix) const {
  if (prefix.prefixlen > kMaxLen) return std::nullopt;
  const auto& by_address = rules_[prefix.prefixlen];
  const auto found = by_address.find(host_address(prefix));
  if (found == by_address.end()) return std::nullopt;
  return found->second;
}

std::uint32_t Dir24_8::covering_value(std::uint32_t addr, unsigned max_len) const {
  for (unsigned len = max_len + 1; len-- > 0;) {
    const auto found = rules_[len].find(addr & mask_of(len));
    if (found != rules_[len].end()) return found->second;
  }
  return SLUICE_DIR24_8_NO_MATCH;
}

bool Dir24_8::build_group(std::uint32_t base, std::span<const LongPrefix> prefixes,
                          std::array<std::uint32_t, SLUICE_DIR24_8_GROUP_ENTRIES>& out) {
  out.fill(base);
  // Sorted shorter first, so a longer prefix paints over the ones containing it.
  for (const LongPrefix& prefix : prefixes)
    std::fill_n(out.begin() + (prefix.addr & kLowMask), static_cast<std::uint32_t>(span_of(prefix.len)), prefix.value);
  return std::all_of(out.begin(), out.end(), [&](std::uint32_t value) { return value == out[0]; });
}

void Dir24_8::store_tbl24(std::uint32_t block, std::uint32_t entry) noexcept {
  // Release: a group's contents are visible before the entry that links it.
  std::atomic_ref<std::uint32_t>(t24_[block]).store(entry, std::memory_order_release);
}

Result<void> Dir24_8::recycle_retired_groups() {
  // MEMBARRIER_CMD_GLOBAL is synchronize_rcu(): every XDP program running now
  // (they run in RCU read-side sections) has finished when it returns, so no
  // packet still holds a tbl24 entry that linked a retired group.
  if (::syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0)
    return make_error("wait for an RCU grace period (membarrier) before reusing tbl8 groups of", describe(), errno);
  free_.insert(free_.end(), retired_.begin(), retired_.end());
  retired_.clear();
  return {};
}

Result<void> Dir24_8::rebuild(std::uint32_t first_block, unsigned range_len, std::string_view operation,
                              std::string_view subject) {
  const std::uint32_t block_count = std::uint32_t{1} << (kTbl24Bits - range_len);
  const std::uint32_t first_addr = first_block << kTbl8Bits;
  const std::uint64_t end_addr = std::uint64_t{first_addr} + span_of(range_len);  // exclusive

  // 1. The value of every block from prefixes of /24 and shorter, painted
  //    shortest first over the value of the prefix covering the whole range.
  std::vector<std::uint32_t> values(block_count, covering_value(first_addr, range_len));
  for (unsigned len = range_len + 1; len <= kTbl24Bits; ++len) {
    const std::uint32_t blocks = static_cast<std::uint32_t>(span_of(len) >> kTbl8Bits);
    for (auto it = rules_[len].lower_bound(first_addr); it != rules_[len].end() && it->first < end_addr; ++it)
      std::fill_n(values.begin() + ((it->first >> kTbl8Bits) - first_block), blocks, it->second);
  }
  // 2. Prefixes longer than /24, by block then length: each block's slice
  //    paints its group in one pass (no per-block tree searches).
  std::vector<LongPrefix> longs;
  for (unsigned len = kTbl24Bits + 1; len <= kMaxLen; ++len)
    for (auto it = rules_[len].lower_bound(first_addr); it != rules_[len].end() && it->first < end_addr; ++it)
      longs.push_back({it->first, len, it->second});
  std::sort(longs.begin(), longs.end(), [](const LongPrefix& a, const LongPrefix& b) {
    const std::uint32_t block_a = a.addr >> kTbl8Bits, block_b = b.addr >> kTbl8Bits;
    return block_a != block_b ? block_a < block_b : a.len < b.len;
  });
  // The slice of `longs` in the block starting at `from`.
  auto block_slice = [&](std::size_t from) {
    std::size_t to = from;
    while (to < longs.size() && (longs[to].addr >> kTbl8Bits) == (longs[from].addr >> kTbl8Bits)) ++to;
    return std::span<const LongPrefix>(longs.data() + from, to - from);
  };

  // 3. Capacity, before any write: groups this change links that are not linked now.
  std::array<std::uint32_t, SLUICE_DIR24_8_GROUP_ENTRIES> group{};
  std::size_t needed = 0;
  for (std::size_t from = 0; from < longs.size();) {
    const auto slice = block_slice(from);
    const std::uint32_t block = slice.front().addr >> kTbl8Bits;
    if (!build_group(values[block - first_block], slice, group) && !is_group(t24_[block])) ++needed;
    from += slice.size();
  }
  if (needed > free_.size()) {
    if (needed > free_.size() + retired_.size())
      return make_error_because(operation, describe(),
                                std::string(subject) + " needs " + std::to_string(needed) + " new tbl8 groups, " +
                                    std::to_string(free_.size() + retired_.size()) + " of " +
                                    std::to_string(groups_) + " free (groups this change frees are not counted)",
                                ENOSPC);
    if (auto recycled = recycle_retired_groups(); !recycled) return recycled.error();
  }

  // 4. Write. Entries are compared first so that an unchanged answer is never
  //    rewritten (and untouched pages of the mapping stay clean).
  auto set_value = [&](std::uint32_t block, std::uint32_t value) {
    const std::uint32_t old = t24_[block];
    if (old == value) return;
    store_tbl24(block, value);
    if (is_group(old)) retired_.push_back(group_of(old));  // unlinked; reused after a grace period
  };
  std::size_t next_long = 0;
  for (std::uint32_t i = 0; i < block_count; ++i) {
    const std::uint32_t block = first_block + i;
    if (next_long == longs.size() || (longs[next_long].addr >> kTbl8Bits) != block) {
      set_value(block, values[i]);
      continue;
    }
    const auto slice = block_slice(next_long);
    next_long += slice.size();
    if (build_group(values[i], slice, group)) {  // uniform: collapse into tbl24
      set_value(block, group[0]);
      continue;
    }
    const std::uint32_t old = t24_[block];
    if (is_group(old)) {
      // Linked group: each changed address flips with one 32-bit store.
      std::uint32_t* entries = t8_ + (std::size_t{group_of(old)} << kTbl8Bits);
      for (std::uint32_t j = 0; j < kGroupEntries; ++j)
        if (entries[j] != group[j])
          std::atomic_ref<std::uint32_t>(entries[j]).store(group[j], std::memory_order_relaxed);
      continue;
    }
    // Fill a free (unreachable) group completely, then link it.
    const std::uint32_t fresh = free_.back();
    free_.pop_back();
    std::copy(group.begin(), group.end(), t8_ + (std::size_t{fresh} << kTbl8Bits));
    store_tbl24(block, kFlag | fresh);
  }
  return {};
}

Result<void> Dir24_8::insert(const sluice_lpm_v4_key& prefix, std::uint32_t value) {
  constexpr std::string_view operation = "insert into";
  const std::string subject = "prefix " + prefix_text(prefix);
  auto addr = checked_address(prefix, operation, describe());
  if (!addr) return addr.error();
  if (auto checked = checked_value(prefix, value, operation, describe()); !checked) return checked;

  auto& by_address = rules_[prefix.prefixlen];
  const auto [slot, added] = by_address.try_emplace(*addr, value);
  const std::uint32_t previous = slot->second;
  if (!added) {
    if (previous == value) return {};
    slot->second = value;
  }
  const unsigned range_len = std::min<unsigned>(prefix.prefixlen, kTbl24Bits);
  auto rebuilt = rebuild(*addr >> kTbl8Bits, range_len, operation, subject);
  if (!rebuilt) {  // nothing was written: restore the record
    if (added)
      by_address.erase(slot);
    else
      slot->second = previous;
    return rebuilt.error();
  }
  if (added) ++prefix_count_;
  return {};
}

Result<bool> Dir24_8::erase(const sluice_lpm_v4_key& prefix) {
  constexpr std::string_view operation = "erase from";
  const std::string subject = "erasing prefix " + prefix_text(prefix);
  auto addr = checked_address(prefix, operation, describe());
  if (!addr) return addr.error();
  auto& by_address = rules_[prefix.prefixlen];
  const auto found = by_address.find(*addr);
  if (found == by_address.end()) return false;
  const std::uint32_t previous = found->second;
  by_address.erase(found);
  const unsigned range_len = std::min<unsigned>(prefix.prefixlen, kTbl24Bits);
  // Erasing can need a group: a /24 erased under /25s that now differ from what covers the rest.
  if (auto rebuilt = rebuild(*addr >> kTbl8Bits, range_len, operation, subject); !rebuilt) {
    by_address.emplace(*addr, previous);
    return rebuilt.error();
  }
  --prefix_count_;
  return true;
}

Result<void> Dir24_8::assign(std::span<const Dir24_8Entry> entries) {
  constexpr std::string_view operation = "assign";
  Rules rules;
  for (const Dir24_8Entry& entry : entries) {
    auto addr = checked_address(entry.prefix, operation, describe());
    if (!addr) return addr.error();
    if (auto checked = checked_value(entry.prefix, entry.value, operation, describe()); !checked) return checked;
    if (!rules[entry.prefix.prefixlen].emplace(*addr, entry.value).second)
      return make_error_because(operation, describe(), "prefix " + prefix_text(entry.prefix) + " given twice",
                                EINVAL);
  }
  std::swap(rules_, rules);
  if (auto rebuilt = rebuild(0, 0, operation, std::to_string(entries.size()) + " prefixes"); !rebuilt) {
    std::swap(rules_, rules);
    return rebuilt.error();
  }
  prefix_count_ = entries.size();
  return {};
}

std::uint32_t dir24_8_groups_wanted(std::span<const Dir24_8Entry> entries, std::uint32_t cap) {
  std::set<std::uint32_t> blocks;
  for (const Dir24_8Entry& entry : entries)
    if (entry.prefix.prefixlen > kTbl24Bits) blocks.insert(host_address(entry.prefix) >> kTbl8Bits);
  constexpr std::uint32_t kHeadroomMin = 256;
  const auto used = static_cast<std::uint64_t>(blocks.size());
  const std::uint64_t wanted = used + std::max<std::uint64_t>(kHeadroomMin, used / 2);
  return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(wanted, 1, std::max<std::uint32_t>(cap, 1)));
}

Dir24_8Slot::Dir24_8Slot(MapFd outer24, MapFd outer8, std::uint32_t slot, std::string inner_name)
    : outer24_(std::move(outer24)), outer8_(std::move(outer8)), slot_(slot), inner_name_(std::move(inner_name)) {}

Result<Dir24_8Slot> Dir24_8Slot::open(MapFd outer24, MapFd outer8, std::uint32_t slot, std::string inner_name) {
  for (const MapFd* outer : {&outer24, &outer8}) {
    if (outer->type() != BPF_MAP_TYPE_ARRAY_OF_MAPS)
      return make_error_because("open DIR-24-8 slot", "map " + outer->name(),
                                "type is " + std::string(map_type_name(outer->type())) + ", expected array_of_maps",
                                EINVAL);
    if (slot >= outer->max_entries())
      return make_error_because("open DIR-24-8 slot", "map " + outer->name(),
                                "slot " + std::to_string(slot) + " past its " + std::to_string(outer->max_entries()) +
                                    " entries",
                                EINVAL);
  }
  Dir24_8Slot opened(std::move(outer24), std::move(outer8), slot, std::move(inner_name));
  // A previous owner's table is unknown to this one: start empty (tbl24 first, see unplug()).
  for (const MapFd* outer : {&opened.outer24_, &opened.outer8_})
    if (bpf_map_delete_elem(outer->fd(), &slot) != 0 && errno != ENOENT)
      return make_error("unplug DIR-24-8 from", outer->name(), errno);
  return opened;
}

Result<Dir24_8> Dir24_8Slot::build(std::span<const Dir24_8Entry> entries, std::uint32_t groups) const {
  auto tbl24 = MapFd::create(BPF_MAP_TYPE_ARRAY, inner_name_ + "_t24", sizeof(std::uint32_t),
                             sizeof(sluice_dir24_8_row), SLUICE_DIR24_8_TBL24_ROWS, BPF_F_MMAPABLE);
  if (!tbl24) return tbl24.error();
  auto tbl8 = MapFd::create(BPF_MAP_TYPE_ARRAY, inner_name_ + "_t8", sizeof(std::uint32_t),
                            sizeof(sluice_dir24_8_row), groups, BPF_F_MMAPABLE | BPF_F_INNER_MAP);
  if (!tbl8) return tbl8.error();
  auto table = Dir24_8::from(std::move(*tbl24), std::move(*tbl8));
  if (!table) return table.error();
  if (auto filled = table->assign(entries); !filled) return filled.error();
  return std::move(*table);
}

Result<void> Dir24_8Slot::plug(Dir24_8 table) {
  const bool replacing = table_.has_value();
  if (auto gone = unplug(); !gone) return gone;
  // A packet may have read the old tbl24 just before the unplug: it must not
  // go on to read the new tbl8 with the old table's group index (a value of
  // another /24). Wait until every such packet is done (synchronize_rcu, as
  // recycle_retired_groups does); packets read the trie meanwhile, which is right.
  if (replacing && ::syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0)
    return make_error("wait for packets in flight (membarrier) before plugging a new copy into", outer8_.name(), errno);
  // tbl8 first, so no packet sees a tbl24 without its groups.
  const std::uint32_t fd8 = static_cast<std::uint32_t>(table.tbl8().fd());
  if (bpf_map_update_elem(outer8_.fd(), &slot_, &fd8, BPF_ANY) != 0)
    return make_error("plug DIR-24-8 tbl8 into", outer8_.name(), errno);
  const std::uint32_t fd24 = static_cast<std::uint32_t>(table.tbl24().fd());
  if (bpf_map_update_elem(outer24_.fd(), &slot_, &fd24, BPF_ANY) != 0) {
    const int err = errno;
    // Nothing reads a lone tbl8; its removal failing too leaves it harmless (and replaced by the next plug).
    if (bpf_map_delete_elem(outer8_.fd(), &slot_) != 0 && errno != ENOENT)
      return make_error_because("plug DIR-24-8 tbl24 into", outer24_.name(),
                                std::string(std::strerror(err)) + "; and removing the lone tbl8 failed: " +
                                    std::strerror(errno),
                                err);
    return make_error("plug DIR-24-8 tbl24 into", outer24_.name(), err);
  }
  table_ = std::move(table);
  return {};
}

Result<void> Dir24_8Slot::replace(std::span<const Dir24_8Entry> entries, std::uint32_t groups) {
  auto table = build(entries, groups);
  if (!table) return table.error();
  return plug(std::move(*table));
}

Result<void> Dir24_8Slot::unplug() {
  if (!table_) return {};
  // tbl24 first: a packet that finds only tbl8 plugged reads the trie.
  if (bpf_map_delete_elem(outer24_.fd(), &slot_) != 0 && errno != ENOENT)
    return make_error("unplug DIR-24-8 tbl24 from", outer24_.name(), errno);
  if (bpf_map_delete_elem(outer8_.fd(), &slot_) != 0 && errno != ENOENT)
    return make_error("unplug DIR-24-8 tbl8 from", outer8_.name(), errno);
  table_.reset();  // the kernel frees the tables once in-flight packets are done (RCU)
  return {};
}

Result<std::uint64_t> Dir24_8Slot::memory_bytes() const {
  if (!table_) return std::uint64_t{0};
  auto bytes24 = map_memory_bytes(table_->tbl24());
  if (!bytes24) return bytes24.error();
  auto bytes8 = map_memory_bytes(table_->tbl8());
  if (!bytes8) return bytes8.error();
  return *bytes24 + *bytes8;
}

}  // namespace sluice::maps
