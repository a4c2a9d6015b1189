#pragma once
// MapFd: the one owner of a BPF map file descriptor in user space. It also
// remembers what the kernel says the map is (type, sizes, flags), so typed
// handles can check that a pinned or skeleton map is the map they expect.
#include <linux/bpf.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "error.hpp"

struct bpf_map;
struct bpf_object;

namespace sluice::maps {

// What the kernel reports about a map (bpf_obj_get_info_by_fd).
struct MapInfo {
  std::string name;  // kernel keeps at most BPF_OBJ_NAME_LEN - 1 characters
  bpf_map_type type = BPF_MAP_TYPE_UNSPEC;
  std::uint32_t id = 0;
  std::uint32_t key_size = 0;
  std::uint32_t value_size = 0;
  std::uint32_t max_entries = 0;
  std::uint32_t map_flags = 0;
  // The BTF object describing key and value (0: created without BTF).
  std::uint32_t btf_id = 0;
  std::uint32_t btf_key_type_id = 0;
  std::uint32_t btf_value_type_id = 0;
};

std::string_view map_type_name(bpf_map_type type);

class MapFd {
 public:
  // Duplicates the skeleton's fd: the MapFd stays valid after the skeleton is destroyed.
  [[nodiscard]] static Result<MapFd> from_skeleton(const struct bpf_map* map);
  // Error names the path: "open pinned /sys/fs/bpf/x: no such file (ENOENT)".
  [[nodiscard]] static Result<MapFd> open_pinned(const std::string& path);
  [[nodiscard]] static Result<MapFd> create(bpf_map_type type, const std::string& name, std::uint32_t key_size,
                              std::uint32_t value_size, std::uint32_t max_entries, std::uint32_t flags = 0);
  // Takes ownership of an fd the caller already owns (closed on failure).
  [[nodiscard]] static Result<MapFd> adopt(int fd, std::string_view what);

  MapFd(const MapFd&) = delete;
  MapFd& operator=(const MapFd&) = delete;
  MapFd(MapFd&& other) noexcept;
  MapFd& operator=(MapFd&& other) noexcept;
  ~MapFd();

  [[nodiscard]] Result<void> pin(const std::string& path) const;
  // Removes the pin at path; the map lives on while this fd (or any other) holds it.
  [[nodiscard]] Result<void> unpin(const std::string& path) const;

  int fd() const noexcept { return fd_; }
  const MapInfo& info() const noexcept { return info_; }
  const std::string& name() const noexcept { return info_.name; }
  bpf_map_type type() const noexcept { return info_.type; }
  std::uint32_t key_size() const noexcept { return info_.key_size; }
  std::uint32_t value_size() const noexcept { return info_.value_size; }
  std::uint32_t max_entries() const noexcept { return info_.max_entries; }
  std::uint32_t map_flags() const noexcept { return info_.map_flags; }

 private:
  MapFd(int fd, MapInfo info) noexcept : fd_(fd), info_(std::move(info)) {}
  void reset() noexcept;

  int fd_ = -1;
  MapInfo info_;
};

// The kernel memory a map holds, as bpftool's bytes_memlock shows it (the
// "memlock" line of /proc/self/fdinfo/<fd>: the map's own accounting).
[[nodiscard]] Result<std::uint64_t> map_memory_bytes(const MapFd& map);
[[nodiscard]] Result<std::uint64_t> map_memory_bytes(int fd, std::string_view name);

// Before bpf_object__load(): make `map` use the map pinned at `path`.
// true: a compatible pin was reused; false: nothing is pinned there (the
// loader creates the map); error: the pin differs in type, key size, value
// size, max_entries, map_flags, or in the layout of its key or value type
// (reusing it would make the new programs reinterpret the old bytes). The
// error names the map, the path and what differs.
//
// Layout identity is the structure of the BTF types, compared recursively:
// kinds, names, sizes, member names, offsets and bitfield sizes, element
// counts, enumerators. The kernel keeps the BTF each map was created with
// (bpf_map_info.btf_id), so no hash has to be kept in step with the contract
// header. Maps whose values hold data (hash, array, LRU, per-CPU, LPM trie)
// must carry BTF: a pin without it cannot prove its layout and is refused.
// Maps of kernel objects and ring buffers have no layout beyond their sizes.
// `object` is the unloaded object `map` belongs to (its BTF describes the map).
[[nodiscard]] Result<bool> reuse_pinned(const struct bpf_object* object, struct bpf_map* map_in_unloaded_object,
                                        const std::string& path);

}  // namespace sluice::maps
