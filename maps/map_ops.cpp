#include "map_ops.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <unordered_set>

namespace sluice::maps::detail {
namespace {

// The kernel's internal "not supported" errno (include/linux/errno.h), which
// BPF_MAP_*_BATCH returns for map types without batch support.
constexpr int kKernelENOTSUPP = 524;

// A walk may restart this many times (each restart is a deletion racing the
// walk) before we give up instead of spinning on a churning map.
constexpr std::size_t kMaxWalkPasses = 8;

// First chunk of a batched dump; doubled while a hash bucket does not fit.
constexpr std::uint32_t kInitialBatchElements = 1024;

// Room for the batch cursor: a key for array-like maps, a u32 bucket index for hash maps.
constexpr std::size_t kMinBatchCursorBytes = sizeof(std::uint64_t);

bool batch_unsupported(int errnum) {
  return errnum == EINVAL || errnum == EOPNOTSUPP || errnum == kKernelENOTSUPP;
}

Error batch_error(std::string_view operation, const MapFd& map, int errnum, std::size_t done, std::size_t count) {
  Error error = make_error(operation, map.name(), errnum, ErrnoSubject::Element);
  error.message += " after " + std::to_string(done) + " of " + std::to_string(count) + " elements";
  error.done = done;
  return error;
}

Error array_delete_error(std::string_view operation, const MapFd& map) {
  return make_error_because(operation, map.name(), "not supported on array maps", EINVAL);
}

}  // namespace

Result<std::size_t> possible_cpus() {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return make_error("count", "possible CPUs", cpus < 0 ? -cpus : EINVAL);
  return static_cast<std::size_t>(cpus);
}

Result<void> check_shape(const MapFd& map, std::string_view handle_name, std::span<const bpf_map_type> types,
                         std::size_t key_size, std::size_t value_size) {
  const std::string operation = "open " + std::string(handle_name) + " on";
  if (std::find(types.begin(), types.end(), map.type()) == types.end()) {
    std::string expected;
    for (const bpf_map_type type : types) expected += (expected.empty() ? "" : " or ") + std::string(map_type_name(type));
    return make_error_because(operation, map.name(),
                              "map type " + std::string(map_type_name(map.type())) + ", expected " + expected, EINVAL);
  }
  if (map.key_size() != key_size)
    return make_error_because(operation, map.name(),
                              "key_size " + std::to_string(map.key_size()) + ", expected " + std::to_string(key_size),
                              EINVAL);
  if (map.value_size() != value_size)
    return make_error_because(
        operation, map.name(),
        "value_size " + std::to_string(map.value_size()) + ", expected " + std::to_string(value_size), EINVAL);
  return {};
}

Result<bool> lookup_bytes(const MapFd& map, const void* key, void* value) {
  const int ret = bpf_map_lookup_elem(map.fd(), key, value);
  if (ret == -ENOENT) return false;
  if (ret < 0) return make_error("lookup", map.name(), -ret, ErrnoSubject::Element);
  return true;
}

Result<void> update_bytes(const MapFd& map, const void* key, const void* value, UpdateFlag flag) {
  const int ret = bpf_map_update_elem(map.fd(), key, value, static_cast<std::uint64_t>(flag));
  if (ret < 0) return make_error("update", map.name(), -ret, ErrnoSubject::Element);
  return {};
}

Result<bool> erase_bytes(const MapFd& map, const void* key, bool deletable) {
  if (!deletable) return array_delete_error("delete", map);
  const int ret = bpf_map_delete_elem(map.fd(), key);
  if (ret == -ENOENT) return false;
  if (ret < 0) return make_error("delete", map.name(), -ret, ErrnoSubject::Element);
  return true;
}

Result<std::size_t> walk_keys(const MapFd& map, const std::function<void(const std::byte* key)>& visit) {
  const std::size_t key_size = map.key_size();
  std::vector<std::byte> current(key_size);
  std::vector<std::byte> next(key_size);
  std::unordered_set<std::string> visited;
  const std::size_t max_steps = (static_cast<std::size_t>(map.max_entries()) + 1) * kMaxWalkPasses;

  int ret = bpf_map_get_next_key(map.fd(), nullptr, current.data());
  if (ret == -ENOENT) return std::size_t{0};  // empty map
  if (ret < 0) return make_error("iterate", map.name(), -ret, ErrnoSubject::Element);
  for (std::size_t steps = 0;; ++steps) {
    if (steps >= max_steps)
      return make_error_because("iterate", map.name(), "map keeps changing under the walk", EAGAIN);
    // Fetch the successor before visiting: visit may delete `current`, and
    // get_next_key of a deleted key answers the first key (a restart).
    ret = bpf_map_get_next_key(map.fd(), current.data(), next.data());
    if (ret < 0 && ret != -ENOENT) return make_error("iterate", map.name(), -ret, ErrnoSubject::Element);
    std::string key_bytes(reinterpret_cast<const char*>(current.data()), key_size);
    if (visited.insert(std::move(key_bytes)).second) visit(current.data());
    if (ret == -ENOENT) break;  // `current` was the last key
    current.swap(next);
  }
  return visited.size();
}

Result<void> lookup_all_bytes(const MapFd& map, std::size_t value_wire_size, std::vector<std::byte>& keys,
                              std::vector<std::byte>& values) {
  const std::size_t key_size = map.key_size();
  const std::size_t cursor_size = std::max<std::size_t>(key_size, kMinBatchCursorBytes);
  std::vector<std::byte> in_cursor(cursor_size);
  std::vector<std::byte> out_cursor(cursor_size);
  std::uint32_t chunk = std::max<std::uint32_t>(1, std::min(map.max_entries(), kInitialBatchElements));
  std::size_t done = 0;
  bool first_call = true;
  LIBBPF_OPTS(bpf_map_batch_opts, options);
  for (;;) {
    keys.resize((done + chunk) * key_size);
    values.resize((done + chunk) * value_wire_size);
    std::uint32_t count = chunk;
    const int ret = bpf_map_lookup_batch(map.fd(), first_call ? nullptr : in_cursor.data(), out_cursor.data(),
                                         keys.data() + done * key_size, values.data() + done * value_wire_size,
                                         &count, &options);
    const int errnum = ret < 0 ? -ret : 0;
    if (errnum == ENOSPC && count == 0) {  // a hash bucket holds more than `chunk` elements
      chunk *= 2;
      continue;
    }
    // Unsupported: refused before any element (count left as passed in).
    if (first_call && batch_unsupported(errnum)) {
      keys.clear();
      values.clear();
      std::vector<std::byte> value(value_wire_size);
      Result<void> failure;
      auto walked = walk_keys(map, [&](const std::byte* key) {
        if (!failure) return;
        auto found = lookup_bytes(map, key, value.data());
        if (!found) {
          failure = found.error();
        } else if (*found) {  // a key deleted since the walk saw it is simply gone
          keys.insert(keys.end(), key, key + key_size);
          values.insert(values.end(), value.begin(), value.end());
        }
      });
      if (!walked) return walked.error();
      return failure;
    }
    if (errnum != 0 && errnum != ENOENT) return batch_error("lookup_batch", map, errnum, done, done);
    done += count;
    if (errnum == ENOENT) break;  // the kernel's "no more elements"
    in_cursor = out_cursor;
    first_call = false;
  }
  keys.resize(done * key_size);
  values.resize(done * value_wire_size);
  return {};
}

Result<std::size_t> update_batch_bytes(const MapFd& map, const std::byte* keys, const std::byte* values,
                                       std::size_t count, std::size_t value_wire_size, UpdateFlag flag) {
  if (count == 0) return std::size_t{0};
  if (count > UINT32_MAX) return batch_error("update_batch", map, E2BIG, 0, count);
  // The kernel's batch update takes no BPF_NOEXIST/BPF_EXIST (elem_flags
  // may only be BPF_F_LOCK): those go element by element.
  if (flag == UpdateFlag::Any) {
    LIBBPF_OPTS(bpf_map_batch_opts, options);
    auto done = static_cast<std::uint32_t>(count);
    const int ret = bpf_map_update_batch(map.fd(), keys, values, &done, &options);
    if (ret == 0) return count;
    // A refusal before the first element leaves `done` as we passed it (count)
    // or 0; anything else is a real failure part way through.
    const bool nothing_done = done == 0 || done == count;
    if (!(nothing_done && batch_unsupported(-ret))) return batch_error("update_batch", map, -ret, done, count);
  }
  // One element at a time: either the map type has no batch op, or the first
  // element is bad and the single update names the real reason.
  for (std::size_t i = 0; i < count; ++i) {
    auto updated = update_bytes(map, keys + i * map.key_size(), values + i * value_wire_size, flag);
    if (!updated) return batch_error("update_batch", map, updated.error().errnum, i, count);
  }
  return count;
}

Result<std::size_t> erase_batch_bytes(const MapFd& map, const std::byte* keys, std::size_t count, bool deletable) {
  if (!deletable) return array_delete_error("delete_batch", map);
  if (count == 0) return std::size_t{0};
  if (count > UINT32_MAX) return batch_error("delete_batch", map, E2BIG, 0, count);
  LIBBPF_OPTS(bpf_map_batch_opts, options);
  auto done = static_cast<std::uint32_t>(count);
  const int ret = bpf_map_delete_batch(map.fd(), keys, &done, &options);
  if (ret == 0) return count;
  const bool nothing_done = done == 0 || done == count;  // see update_batch_bytes
  if (!(nothing_done && batch_unsupported(-ret))) return batch_error("delete_batch", map, -ret, done, count);
  for (std::size_t i = 0; i < count; ++i) {
    // Same contract as the kernel's batch delete: an absent key is ENOENT.
    const int one = bpf_map_delete_elem(map.fd(), keys + i * map.key_size());
    if (one < 0) return batch_error("delete_batch", map, -one, i, count);
  }
  return count;
}

}  // namespace sluice::maps::detail
