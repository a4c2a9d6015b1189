#include "map_fd.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <limits.h>

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
  return info;
}

}  // namespace

std::string_view map_type_name(bpf_map_type type) {
  // libbpf 1.1 knows no names for map types newer than itself.
  const char* name = libbpf_bpf_map_type_str(type);
  return name ? std::string_view(name) : std::string_view("unknown");
}

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

Result<bool> reuse_pinned(struct bpf_map* map, const std::string& path) {
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
  // bpf_map__reuse_fd dups the fd, so our MapFd may close its copy.
  if (const int ret = bpf_map__reuse_fd(map, pinned->fd()); ret < 0) return make_error(operation, path, -ret);
  return true;
}

}  // namespace sluice::maps
