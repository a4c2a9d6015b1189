#include "program_maps.hpp"

#include <linux/bpf.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace sluice::maps {
namespace {

using detail::check_shape;

// Device and CPU map values share one layout: a u32 (ifindex / qsize), then
// a program fd on write and a program id on read. Older maps use the u32 alone.
struct ObjectSlotValue {
  std::uint32_t first = 0;
  std::uint32_t prog = 0;  // fd when writing, id when reading
};
static_assert(sizeof(ObjectSlotValue) == sizeof(bpf_devmap_val));
static_assert(sizeof(ObjectSlotValue) == sizeof(bpf_cpumap_val));
constexpr std::size_t kBareValueSize = sizeof(std::uint32_t);

Result<void> check_object_slot_shape(const MapFd& map, const char* handle, std::span<const bpf_map_type> types) {
  const std::size_t value_size = map.value_size() == kBareValueSize ? kBareValueSize : sizeof(ObjectSlotValue);
  return check_shape(map, handle, types, sizeof(std::uint32_t), value_size);
}

Result<void> set_object_slot(const MapFd& map, std::uint32_t key, std::uint32_t first, std::optional<int> prog_fd,
                             UpdateFlag flag) {
  if (prog_fd && map.value_size() == kBareValueSize)
    return make_error_because("update", map.name(), "value has no program field (value_size 4)", EINVAL);
  ObjectSlotValue value{first, prog_fd ? static_cast<std::uint32_t>(*prog_fd) : 0};
  // A negative fd in the program field tells the kernel "no program"; 0 would be fd 0.
  if (!prog_fd) value.prog = static_cast<std::uint32_t>(-1);
  return detail::update_bytes(map, &key, &value, flag);
}

Result<std::optional<ObjectSlotValue>> lookup_object_slot(const MapFd& map, std::uint32_t key) {
  ObjectSlotValue value{};
  auto found = detail::lookup_bytes(map, &key, &value);
  if (!found) return found.error();
  if (!*found) return std::optional<ObjectSlotValue>{};
  return std::optional<ObjectSlotValue>{value};
}

}  // namespace

// ---- ProgArray ----
Result<ProgArray> ProgArray::from(MapFd map) {
  static constexpr std::array types{BPF_MAP_TYPE_PROG_ARRAY};
  if (auto shape = check_shape(map, "ProgArray", types, sizeof(std::uint32_t), sizeof(std::uint32_t)); !shape)
    return shape.error();
  return ProgArray(std::move(map));
}
Result<ProgArray> ProgArray::open_pinned(const std::string& path) {
  auto map = MapFd::open_pinned(path);
  if (!map) return map.error();
  return from(std::move(*map));
}
Result<void> ProgArray::set(std::uint32_t slot, int prog_fd) {
  const auto value = static_cast<std::uint32_t>(prog_fd);
  return detail::update_bytes(map_, &slot, &value, UpdateFlag::Any);
}
Result<bool> ProgArray::clear(std::uint32_t slot) { return detail::erase_bytes(map_, &slot, true); }
Result<std::optional<std::uint32_t>> ProgArray::lookup(std::uint32_t slot) const {
  std::uint32_t prog_id = 0;
  auto found = detail::lookup_bytes(map_, &slot, &prog_id);
  if (!found) return found.error();
  if (!*found) return std::optional<std::uint32_t>{};
  return std::optional<std::uint32_t>{prog_id};
}

// ---- StageBanks ----
namespace {
constexpr std::uint32_t kSelectorSlot = 0;
}  // namespace

Result<StageBanks> StageBanks::from(std::array<ProgArray, kBanks> banks, ArrayMap<std::uint32_t> selector) {
  for (std::uint32_t i = 1; i < kBanks; ++i) {
    if (banks[i].map().max_entries() != banks[0].map().max_entries())
      return make_error_because("open StageBanks on", banks[i].map().name(),
                                "max_entries " + std::to_string(banks[i].map().max_entries()) + ", bank 0 (" +
                                    banks[0].map().name() + ") has " + std::to_string(banks[0].map().max_entries()),
                                EINVAL);
  }
  return StageBanks(std::move(banks), std::move(selector));
}

Result<std::uint32_t> StageBanks::live_bank() const {
  auto value = selector_.lookup(kSelectorSlot);
  if (!value) return value.error();
  // An array slot always exists; never written reads as 0.
  const std::uint32_t bank = value->value_or(0);
  if (bank >= kBanks)
    return make_error_because("read live bank of", selector_.map().name(),
                              "value " + std::to_string(bank) + ": must be below " + std::to_string(kBanks), ERANGE);
  return bank;
}

Result<std::uint32_t> StageBanks::stage(std::span<const int> prog_fds) {
  auto live = live_bank();
  if (!live) return live.error();
  const std::uint32_t idle = (*live + 1) % kBanks;
  ProgArray& target = banks_[idle];
  const std::uint32_t slots = target.map().max_entries();
  if (prog_fds.size() > slots)
    return make_error_because("stage programs into", target.map().name(),
                              std::to_string(prog_fds.size()) + " programs for " + std::to_string(slots) + " slots",
                              E2BIG);
  // The idle bank was live until the last flip (by this process or an
  // earlier one): packets that read the bank then may still be running its
  // programs. XDP runs inside RCU read-side sections; MEMBARRIER_CMD_GLOBAL
  // returns after synchronize_rcu(), when none of them is left.
  if (::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0)
    return make_error("wait for packets in flight (membarrier) before writing", target.map().name(), errno);
  for (std::uint32_t slot = 0; slot < slots; ++slot) {
    if (slot < prog_fds.size()) {
      if (auto set = target.set(slot, prog_fds[slot]); !set) return set.error();
    } else if (auto cleared = target.clear(slot); !cleared) {
      return cleared.error();
    }
  }
  return idle;
}

Result<void> StageBanks::flip(std::uint32_t bank) {
  if (bank >= kBanks)
    return make_error_because("flip", selector_.map().name(),
                              "bank " + std::to_string(bank) + ": must be below " + std::to_string(kBanks), EINVAL);
  return selector_.update(kSelectorSlot, bank);
}

Result<void> StageBanks::install(std::span<const int> prog_fds) {
  auto staged = stage(prog_fds);
  if (!staged) return staged.error();
  return flip(*staged);
}

Result<bool> StageBanks::clear(std::uint32_t slot) {
  bool any = false;
  for (ProgArray& bank : banks_) {
    auto cleared = bank.clear(slot);
    if (!cleared) return cleared.error();
    any = any || *cleared;
  }
  return any;
}

Result<std::optional<std::uint32_t>> StageBanks::lookup(std::uint32_t slot) const {
  auto live = live_bank();
  if (!live) return live.error();
  return banks_[*live].lookup(slot);
}

// ---- DevMap ----
Result<DevMap> DevMap::from(MapFd map) {
  static constexpr std::array types{BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH};
  if (auto shape = check_object_slot_shape(map, "DevMap", types); !shape) return shape.error();
  return DevMap(std::move(map));
}
Result<DevMap> DevMap::open_pinned(const std::string& path) {
  auto map = MapFd::open_pinned(path);
  if (!map) return map.error();
  return from(std::move(*map));
}
Result<void> DevMap::set(std::uint32_t key, std::uint32_t ifindex, std::optional<int> prog_fd, UpdateFlag flag) {
  return set_object_slot(map_, key, ifindex, prog_fd, flag);
}
Result<std::optional<DevMapEntry>> DevMap::lookup(std::uint32_t key) const {
  auto slot = lookup_object_slot(map_, key);
  if (!slot) return slot.error();
  if (!*slot) return std::optional<DevMapEntry>{};
  const bool has_prog_field = map_.value_size() != kBareValueSize;
  return std::optional<DevMapEntry>{DevMapEntry{(*slot)->first, has_prog_field ? (*slot)->prog : 0}};
}
Result<bool> DevMap::erase(std::uint32_t key) { return detail::erase_bytes(map_, &key, true); }
Result<std::vector<std::uint32_t>> DevMap::keys() const {
  std::vector<std::uint32_t> collected;
  auto walked = detail::walk_keys(map_, [&](const std::byte* bytes) {
    std::uint32_t key = 0;
    std::memcpy(&key, bytes, sizeof(key));
    collected.push_back(key);
  });
  if (!walked) return walked.error();
  return collected;
}

// ---- CpuMap ----
Result<CpuMap> CpuMap::from(MapFd map) {
  static constexpr std::array types{BPF_MAP_TYPE_CPUMAP};
  if (auto shape = check_object_slot_shape(map, "CpuMap", types); !shape) return shape.error();
  return CpuMap(std::move(map));
}
Result<CpuMap> CpuMap::open_pinned(const std::string& path) {
  auto map = MapFd::open_pinned(path);
  if (!map) return map.error();
  return from(std::move(*map));
}
Result<void> CpuMap::set(std::uint32_t cpu, std::uint32_t qsize, std::optional<int> prog_fd) {
  return set_object_slot(map_, cpu, qsize, prog_fd, UpdateFlag::Any);
}
Result<std::optional<CpuMapEntry>> CpuMap::lookup(std::uint32_t cpu) const {
  auto slot = lookup_object_slot(map_, cpu);
  if (!slot) return slot.error();
  if (!*slot) return std::optional<CpuMapEntry>{};
  const bool has_prog_field = map_.value_size() != kBareValueSize;
  return std::optional<CpuMapEntry>{CpuMapEntry{(*slot)->first, has_prog_field ? (*slot)->prog : 0}};
}
Result<bool> CpuMap::erase(std::uint32_t cpu) { return detail::erase_bytes(map_, &cpu, true); }

}  // namespace sluice::maps
