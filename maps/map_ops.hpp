#pragma once
// Untyped element operations on a MapFd, shared by every typed handle. The
// typed templates only turn keys and values into bytes; the syscalls, the
// errno handling, the walk and the batch fallbacks live here, once.
#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "map_fd.hpp"

namespace sluice::maps {

enum class UpdateFlag : std::uint64_t { Any = BPF_ANY, NoExist = BPF_NOEXIST, Exist = BPF_EXIST };

namespace detail {

// Per-CPU maps hold one value per possible CPU, each rounded up to 8 bytes
// (the kernel copies per-CPU values in u64 units).
inline constexpr std::size_t kPerCpuValueAlign = 8;
constexpr std::size_t per_cpu_stride(std::size_t value_size) {
  return (value_size + kPerCpuValueAlign - 1) / kPerCpuValueAlign * kPerCpuValueAlign;
}
// libbpf_num_possible_cpus(), as a Result.
[[nodiscard]] Result<std::size_t> possible_cpus();

// Checks that `map` is one of `types` with the given key and value sizes.
// handle_name ("HashMap") appears in the error so the caller sees which view failed.
[[nodiscard]] Result<void> check_shape(const MapFd& map, std::string_view handle_name, std::span<const bpf_map_type> types,
                         std::size_t key_size, std::size_t value_size);

// false when the key is absent.
[[nodiscard]] Result<bool> lookup_bytes(const MapFd& map, const void* key, void* value);
[[nodiscard]] Result<void> update_bytes(const MapFd& map, const void* key, const void* value, UpdateFlag flag);
// false when the key is absent; an error on maps whose elements cannot be deleted (arrays).
[[nodiscard]] Result<bool> erase_bytes(const MapFd& map, const void* key, bool deletable);

// Walks every key with bpf_map_get_next_key, calling visit(key bytes) once
// per key. The successor is fetched before visit runs, so visit may delete
// the current key at no cost. If a key the walk stands on disappears anyway
// (visit deleted the prefetched successor, or the data plane evicted it),
// the kernel restarts from the first key (hash maps, LPM trie); the walk
// remembers the bytes of every key it visited and skips them, so no key is
// visited twice and the walk ends. A key deleted after it was prefetched may
// still be visited once. A map churning faster than we walk ends the walk
// with EAGAIN after a bounded number of steps. Returns the keys visited.
[[nodiscard]] Result<std::size_t> walk_keys(const MapFd& map, const std::function<void(const std::byte* key)>& visit);

// Dumps the whole map into keys/values (key_size and value_wire_size bytes
// per element) with BPF_MAP_LOOKUP_BATCH, or a walk plus lookups where the
// map type has no batch support.
[[nodiscard]] Result<void> lookup_all_bytes(const MapFd& map, std::size_t value_wire_size, std::vector<std::byte>& keys,
                              std::vector<std::byte>& values);
// Error.done says how many elements were written/deleted before a failure.
// BPF_MAP_UPDATE_BATCH takes only BPF_ANY, so NoExist/Exist updates and map
// types without batch support (EINVAL/EOPNOTSUPP/ENOTSUPP before the first
// element) go element by element, stopping at the first failure.
[[nodiscard]] Result<std::size_t> update_batch_bytes(const MapFd& map, const std::byte* keys, const std::byte* values,
                                       std::size_t count, std::size_t value_wire_size, UpdateFlag flag);
[[nodiscard]] Result<std::size_t> erase_batch_bytes(const MapFd& map, const std::byte* keys, std::size_t count, bool deletable);

}  // namespace detail
}  // namespace sluice::maps
