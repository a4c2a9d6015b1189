#include "map_fd.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <charconv>
#include <fstream>
#include <string>
#include <type_traits>
#include <limits.h>
#include <memory>
#include <optional>

namespace sluice::maps {
namespace {

// A path under bpffs may hold a program or a link as well as a map; the fd's
// anonymous inode says which. Without this check, a program pinned where a
// map was expected would be "opened" and fail later, far from the cause.
bool fd_is_bpf_map(int fd) {
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  std::array<char, PATH_MAX> target{};
  const ssize_t length = ::readlink(link.c_str(), target.data(), target.size() - 1);
  if (length < 0) return true;  // no /proc: cannot tell, let the info query decide
  return std::string_view(target.data(), static_cast<std::size_t>(length)) == "anon_inode:bpf-map";
}

Result<MapInfo> query_info(int fd, std::string_view what) {
  bpf_map_info raw{};
  __u32 raw_length = sizeof(raw);
  if (const int ret = bpf_obj_get_info_by_fd(fd, &raw, &raw_length); ret < 0)
    return make_error("query info of", what, -ret);
  MapInfo info;
  info.name = raw.name;
  info.type = static_cast<bpf_map_type>(raw.type);
  info.id = raw.id;
  info.key_size = raw.key_size;
  info.value_size = raw.value_size;
  info.max_entries = raw.max_entries;
  info.map_flags = raw.map_flags;
  info.btf_id = raw.btf_id;
  info.btf_key_type_id = raw.btf_key_type_id;
  info.btf_value_type_id = raw.btf_value_type_id;
  return info;
}

// ---- layout identity of BTF types ----

struct BtfFree {
  void operator()(btf* types) const { btf__free(types); }
};
using BtfHandle = std::unique_ptr<btf, BtfFree>;

// Deeper than any map value of the contract (a struct of arrays of structs);
// a type that nests further is reported as a difference, never assumed equal.
constexpr int kMaxLayoutDepth = 16;

std::string_view btf_kind_name(std::uint32_t kind) {
  switch (kind) {
    case BTF_KIND_UNKN: return "void";
    case BTF_KIND_INT: return "int";
    case BTF_KIND_PTR: return "pointer";
    case BTF_KIND_ARRAY: return "array";
    case BTF_KIND_STRUCT: return "struct";
    case BTF_KIND_UNION: return "union";
    case BTF_KIND_ENUM: return "enum";
    case BTF_KIND_FWD: return "forward declaration";
    case BTF_KIND_TYPEDEF: return "typedef";
    case BTF_KIND_VOLATILE: return "volatile";
    case BTF_KIND_CONST: return "const";
    case BTF_KIND_RESTRICT: return "restrict";
    case BTF_KIND_FLOAT: return "float";
    case BTF_KIND_TYPE_TAG: return "type tag";
    case BTF_KIND_ENUM64: return "enum64";
    default: return "other";
  }
}

std::string btf_name(const btf* types, const btf_type* type) {
  const char* name = btf__name_by_offset(types, type->name_off);
  return name ? name : "";
}

std::string type_label(const btf* types, const btf_type* type) {
  const std::string name = btf_name(types, type);
  return std::string(btf_kind_name(btf_kind(type))) + (name.empty() ? "" : " " + name);
}

template <typename Value>
std::string differs(std::string_view what, const Value& pinned, const Value& wanted) {
  if constexpr (std::is_same_v<Value, std::string>)
    return std::string(what) + " '" + pinned + "' pinned, '" + wanted + "' expected";
  else
    return std::string(what) + " " + std::to_string(pinned) + " pinned, " + std::to_string(wanted) + " expected";
}

// Empty when the two types lay out memory alike; otherwise what differs,
// with the path to it ("struct s member 2 (bytes): int: size 4 pinned, 8 expected").
std::optional<std::string> layout_difference(const btf* pinned_types, std::uint32_t pinned_id, const btf* wanted_types,
                                             std::uint32_t wanted_id, int depth) {
  const btf_type* pinned = btf__type_by_id(pinned_types, pinned_id);
  const btf_type* wanted = btf__type_by_id(wanted_types, wanted_id);
  if (!pinned || !wanted) return "type id " + std::to_string(pinned ? wanted_id : pinned_id) + " not found";
  if (depth > kMaxLayoutDepth) return "types nest deeper than " + std::to_string(kMaxLayoutDepth) + " levels";
  const std::uint32_t kind = btf_kind(pinned);
  if (kind != btf_kind(wanted))
    return "kind " + type_label(pinned_types, pinned) + " pinned, " + type_label(wanted_types, wanted) + " expected";
  const std::string label = type_label(wanted_types, wanted);
  const auto inside = [&](const std::string& where, std::optional<std::string> inner) -> std::optional<std::string> {
    if (!inner) return std::nullopt;
    return where + ": " + *inner;
  };
  if (const std::string pinned_name = btf_name(pinned_types, pinned), wanted_name = btf_name(wanted_types, wanted);
      pinned_name != wanted_name)
    return std::string(btf_kind_name(kind)) + ": " + differs("name", pinned_name, wanted_name);
  if (btf_vlen(pinned) != btf_vlen(wanted))
    return label + ": " + differs(kind == BTF_KIND_STRUCT || kind == BTF_KIND_UNION ? "members" : "entries",
                                  btf_vlen(pinned), btf_vlen(wanted));
  if (btf_kflag(pinned) != btf_kflag(wanted)) return label + ": " + differs("kind flag", btf_kflag(pinned), btf_kflag(wanted));
  switch (kind) {
    case BTF_KIND_INT: {
      const std::uint32_t pinned_bits = *reinterpret_cast<const std::uint32_t*>(pinned + 1);
      const std::uint32_t wanted_bits = *reinterpret_cast<const std::uint32_t*>(wanted + 1);
      if (pinned->size != wanted->size) return label + ": " + differs("size", pinned->size, wanted->size);
      if (pinned_bits != wanted_bits) return label + ": " + differs("encoding", pinned_bits, wanted_bits);
      return std::nullopt;
    }
    case BTF_KIND_FLOAT:
      if (pinned->size != wanted->size) return label + ": " + differs("size", pinned->size, wanted->size);
      return std::nullopt;
    case BTF_KIND_PTR:
      // Only the name of what it points to: the pointee may point back (lists).
      if (const btf_type *pinned_to = btf__type_by_id(pinned_types, pinned->type),
          *wanted_to = btf__type_by_id(wanted_types, wanted->type);
          !pinned_to || !wanted_to || type_label(pinned_types, pinned_to) != type_label(wanted_types, wanted_to))
        return std::string("pointer: target differs");
      return std::nullopt;
    case BTF_KIND_ARRAY: {
      const struct btf_array* pinned_array = btf_array(pinned);
      const struct btf_array* wanted_array = btf_array(wanted);
      if (pinned_array->nelems != wanted_array->nelems)
        return label + ": " + differs("elements", pinned_array->nelems, wanted_array->nelems);
      return inside("array element",
                    layout_difference(pinned_types, pinned_array->type, wanted_types, wanted_array->type, depth + 1));
    }
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION: {
      if (pinned->size != wanted->size) return label + ": " + differs("size", pinned->size, wanted->size);
      const btf_member* pinned_members = btf_members(pinned);
      const btf_member* wanted_members = btf_members(wanted);
      for (std::uint16_t i = 0; i < btf_vlen(wanted); ++i) {
        const std::string pinned_name = btf__name_by_offset(pinned_types, pinned_members[i].name_off);
        const std::string wanted_name = btf__name_by_offset(wanted_types, wanted_members[i].name_off);
        const std::string where = label + " member " + std::to_string(i) + " (" + wanted_name + ")";
        if (pinned_name != wanted_name) return where + ": " + differs("name", pinned_name, wanted_name);
        if (btf_member_bit_offset(pinned, i) != btf_member_bit_offset(wanted, i))
          return where + ": " + differs("bit offset", btf_member_bit_offset(pinned, i), btf_member_bit_offset(wanted, i));
        if (btf_member_bitfield_size(pinned, i) != btf_member_bitfield_size(wanted, i))
          return where + ": " +
                 differs("bitfield size", btf_member_bitfield_size(pinned, i), btf_member_bitfield_size(wanted, i));
        if (auto inner = layout_difference(pinned_types, pinned_members[i].type, wanted_types, wanted_members[i].type,
                                           depth + 1))
          return where + ": " + *inner;
      }
      return std::nullopt;
    }
    case BTF_KIND_ENUM: {
      if (pinned->size != wanted->size) return label + ": " + differs("size", pinned->size, wanted->size);
      const struct btf_enum* pinned_values = btf_enum(pinned);
      const struct btf_enum* wanted_values = btf_enum(wanted);
      for (std::uint16_t i = 0; i < btf_vlen(wanted); ++i) {
        const std::string pinned_name = btf__name_by_offset(pinned_types, pinned_values[i].name_off);
        const std::string wanted_name = btf__name_by_offset(wanted_types, wanted_values[i].name_off);
        if (pinned_name != wanted_name || pinned_values[i].val != wanted_values[i].val)
          return label + ": " +
                 differs("enumerator " + std::to_string(i), pinned_name + " = " + std::to_string(pinned_values[i].val),
                         wanted_name + " = " + std::to_string(wanted_values[i].val));
      }
      return std::nullopt;
    }
    case BTF_KIND_ENUM64: {
      if (pinned->size != wanted->size) return label + ": " + differs("size", pinned->size, wanted->size);
      const struct btf_enum64* pinned_values = btf_enum64(pinned);
      const struct btf_enum64* wanted_values = btf_enum64(wanted);
      for (std::uint16_t i = 0; i < btf_vlen(wanted); ++i) {
        const std::string pinned_name = btf__name_by_offset(pinned_types, pinned_values[i].name_off);
        const std::string wanted_name = btf__name_by_offset(wanted_types, wanted_values[i].name_off);
        if (pinned_name != wanted_name || btf_enum64_value(&pinned_values[i]) != btf_enum64_value(&wanted_values[i]))
          return label + ": " + differs("enumerator " + std::to_string(i), pinned_name, wanted_name);
      }
      return std::nullopt;
    }
    case BTF_KIND_FWD:
      return std::nullopt;  // name and kind flag (struct or union) compared above
    case BTF_KIND_TYPEDEF:
    case BTF_KIND_VOLATILE:
    case BTF_KIND_CONST:
    case BTF_KIND_RESTRICT:
    case BTF_KIND_TYPE_TAG:
      return inside(label, layout_difference(pinned_types, pinned->type, wanted_types, wanted->type, depth + 1));
    default:
      // Functions, variables, sections, declaration tags: never part of a map's key or value.
      return label + ": not a data type";
  }
}

// Types whose values are bytes the programs interpret; the others hold
// kernel objects (programs, devices, CPUs, sockets) or are ring buffers.
bool holds_data(bpf_map_type type) {
  switch (type) {
    case BPF_MAP_TYPE_HASH:
    case BPF_MAP_TYPE_ARRAY:
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_HASH:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_LPM_TRIE:
      return true;
    default:
      return false;
  }
}

// Empty when the pinned map's key and value types are laid out as the
// object's; otherwise which one differs and how.
Result<std::optional<std::string>> btf_layout_difference(const MapFd& pinned, const struct bpf_object* object,
                                                         const struct bpf_map* map) {
  if (!holds_data(pinned.type())) return std::optional<std::string>{};
  const btf* wanted_types = bpf_object__btf(object);
  if (!wanted_types) return std::optional<std::string>{"the object carries no BTF to compare layouts with"};
  if (pinned.info().btf_id == 0)
    return std::optional<std::string>{"the pinned map carries no BTF: its key and value layout cannot be checked"};
  BtfHandle pinned_types(btf__load_from_kernel_by_id(pinned.info().btf_id));
  if (!pinned_types) return make_error("load BTF id " + std::to_string(pinned.info().btf_id) + " of", pinned.name(), errno);
  if (auto key = layout_difference(pinned_types.get(), pinned.info().btf_key_type_id, wanted_types,
                                   bpf_map__btf_key_type_id(map), 0))
    return std::optional<std::string>{"key type: " + *key};
  if (auto value = layout_difference(pinned_types.get(), pinned.info().btf_value_type_id, wanted_types,
                                     bpf_map__btf_value_type_id(map), 0))
    return std::optional<std::string>{"value type: " + *value};
  return std::optional<std::string>{};
}

std::string hex(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%x", value);
  return text;
}

}  // namespace

std::string_view map_type_name(bpf_map_type type) {
  // libbpf 1.1 knows no names for map types newer than itself.
  const char* name = libbpf_bpf_map_type_str(type);
  return name ? std::string_view(name) : std::string_view("unknown");
}

Result<std::uint64_t> map_memory_bytes(int fd, std::string_view name) {
  const std::string path = "/proc/self/fdinfo/" + std::to_string(fd);
  std::ifstream fdinfo(path);
  if (!fdinfo) return make_error("read memory of map", std::string(name) + " (" + path + ")", errno ? errno : EIO);
  constexpr std::string_view kField = "memlock:";
  for (std::string line; std::getline(fdinfo, line);) {
    if (line.compare(0, kField.size(), kField) != 0) continue;
    const auto digits = line.find_first_of("0123456789", kField.size());
    std::uint64_t bytes = 0;
    if (digits == std::string::npos ||
        std::from_chars(line.data() + digits, line.data() + line.size(), bytes).ec != std::errc())
      break;
    return bytes;
  }
  return make_error_because("read memory of map", std::string(name), path + " has no memlock line", EIO);
}

Result<std::uint64_t> map_memory_bytes(const MapFd& map) { return map_memory_bytes(map.fd(), map.name()); }

Result<MapFd> MapFd::adopt(int fd, std::string_view what) {
  auto info = query_info(fd, what);
  if (!info) {
    ::close(fd);
    return info.error();
  }
  return MapFd(fd, std::move(*info));
}

Result<MapFd> MapFd::from_skeleton(const struct bpf_map* map) {
  const std::string what = std::string("map ") + bpf_map__name(map);
  const int skeleton_fd = bpf_map__fd(map);
  if (skeleton_fd < 0) return make_error_because("open", what, "map is not created yet (load the object first)", EBADF);
  const int own_fd = ::fcntl(skeleton_fd, F_DUPFD_CLOEXEC, 0);
  if (own_fd < 0) return make_error("dup fd of", what, errno);
  return adopt(own_fd, what);
}

Result<MapFd> MapFd::open_pinned(const std::string& path) {
  const int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return make_error("open pinned", path, -fd, ErrnoSubject::Path);
  if (!fd_is_bpf_map(fd)) {
    ::close(fd);
    return make_error_because("open pinned", path, "pinned object is not a map", EINVAL);
  }
  return adopt(fd, path);
}

Result<MapFd> MapFd::create(bpf_map_type type, const std::string& name, std::uint32_t key_size,
                            std::uint32_t value_size, std::uint32_t max_entries, std::uint32_t flags) {
  LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = flags);
  const int fd = bpf_map_create(type, name.c_str(), key_size, value_size, max_entries, &options);
  if (fd < 0) return make_error(std::string("create ") + std::string(map_type_name(type)), name, -fd);
  return adopt(fd, name);
}

MapFd::MapFd(MapFd&& other) noexcept : fd_(other.fd_), info_(std::move(other.info_)) { other.fd_ = -1; }

MapFd& MapFd::operator=(MapFd&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.fd_;
    info_ = std::move(other.info_);
    other.fd_ = -1;
  }
  return *this;
}

MapFd::~MapFd() { reset(); }

void MapFd::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<void> MapFd::pin(const std::string& path) const {
  if (const int ret = bpf_obj_pin(fd_, path.c_str()); ret < 0)
    return make_error("pin " + name() + " at", path, -ret, ErrnoSubject::Path);
  return {};
}

Result<void> MapFd::unpin(const std::string& path) const {
  if (::unlink(path.c_str()) < 0) return make_error("unpin " + name() + " at", path, errno, ErrnoSubject::Path);
  return {};
}

// Flags the kernel adds to a map it creates, whatever was asked: a devmap is
// always BPF_F_RDONLY_PROG (programs read its entries by pointer). They are
// no difference between a pin and the declaration (which may not ask for them).
static std::uint32_t kernel_added_flags(bpf_map_type type) {
  if (type == BPF_MAP_TYPE_DEVMAP || type == BPF_MAP_TYPE_DEVMAP_HASH) return BPF_F_RDONLY_PROG;
  return 0;
}

Result<bool> reuse_pinned(const struct bpf_object* object, struct bpf_map* map, const std::string& path) {
  const std::string operation = std::string("reuse pin for ") + bpf_map__name(map) + " at";
  auto pinned = MapFd::open_pinned(path);
  if (!pinned) {
    if (pinned.error().errnum == ENOENT) return false;
    return pinned.error();
  }
  const auto mismatch = [&](std::string_view field, std::uint64_t pinned_value, std::uint64_t wanted) {
    return make_error_because(operation, path,
                              std::string(field) + " " + std::to_string(pinned_value) + " pinned, " +
                                  std::to_string(wanted) + " expected",
                              EINVAL);
  };
  if (pinned->type() != bpf_map__type(map))
    return make_error_because(operation, path,
                              "type " + std::string(map_type_name(pinned->type())) + " pinned, " +
                                  std::string(map_type_name(bpf_map__type(map))) + " expected",
                              EINVAL);
  if (pinned->key_size() != bpf_map__key_size(map))
    return mismatch("key_size", pinned->key_size(), bpf_map__key_size(map));
  if (pinned->value_size() != bpf_map__value_size(map))
    return mismatch("value_size", pinned->value_size(), bpf_map__value_size(map));
  if (pinned->max_entries() != bpf_map__max_entries(map))
    return mismatch("max_entries", pinned->max_entries(), bpf_map__max_entries(map));
  if ((pinned->map_flags() & ~kernel_added_flags(pinned->type())) !=
      (bpf_map__map_flags(map) & ~kernel_added_flags(pinned->type())))
    return make_error_because(
        operation, path, "map_flags " + hex(pinned->map_flags()) + " pinned, " + hex(bpf_map__map_flags(map)) + " expected",
        EINVAL);
  auto layout = btf_layout_difference(*pinned, object, map);
  if (!layout) return layout.error();
  if (*layout) return make_error_because(operation, path, **layout, EINVAL);
  // bpf_map__reuse_fd dups the fd, so our MapFd may close its copy.
  if (const int ret = bpf_map__reuse_fd(map, pinned->fd()); ret < 0) return make_error(operation, path, -ret);
  return true;
}

}  // namespace sluice::maps
