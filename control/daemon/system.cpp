#include "system.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cerrno>
#include <filesystem>

namespace sluice::daemon {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr const char* default_bpffs = "/sys/fs/bpf";
constexpr mode_t pin_dir_mode = 0700;
// SO_PEERGROUPS reports at most this many groups (NGROUPS_MAX is 65536, but
// a process in more than this many groups is not a real admin client).
constexpr std::size_t max_peer_groups = 1024;

// The nearest existing ancestor of path (path itself if it exists).
fs::path existing_ancestor(fs::path path) {
  std::error_code ec;
  path = path.lexically_normal();
  while (!path.empty() && !fs::exists(path, ec)) {
    if (path == path.parent_path()) break;
    path = path.parent_path();
  }
  return path.empty() ? fs::path("/") : path;
}

bool under(const fs::path& path, const fs::path& base) {
  auto rel = path.lexically_normal().lexically_relative(base);
  return !rel.empty() && *rel.begin() != "..";
}

Result<void> mount_bpffs(const std::string& where) {
  std::error_code ec;
  fs::create_directories(where, ec);
  if (ec) return maps::make_error("create bpffs mount point", where, ec.value(), maps::ErrnoSubject::Path);
  if (::mount("bpf", where.c_str(), "bpf", 0, "mode=0700") != 0)
    return maps::make_error("mount bpffs on", where, errno, maps::ErrnoSubject::Path);
  return {};
}

Result<void> fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return maps::make_error("open directory", dir, errno, maps::ErrnoSubject::Path);
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) return maps::make_error("fsync directory", dir, saved, maps::ErrnoSubject::Path);
  return {};
}

}  // namespace

bool is_on_bpffs(const std::string& path) {
  struct statfs info {};
  return ::statfs(existing_ancestor(path).c_str(), &info) == 0 && info.f_type == BPF_FS_MAGIC;
}

Result<void> ensure_bpffs(const std::string& pin_dir) {
  if (!is_on_bpffs(pin_dir)) {
    const std::string where = under(pin_dir, default_bpffs) || fs::path(pin_dir) == default_bpffs ? default_bpffs : pin_dir;
    if (auto mounted = mount_bpffs(where); !mounted) return mounted;
  }
  std::error_code ec;
  fs::create_directories(pin_dir, ec);
  if (ec) return maps::make_error("create pin directory", pin_dir, ec.value(), maps::ErrnoSubject::Path);
  ::chmod(pin_dir.c_str(), pin_dir_mode);
  if (!is_on_bpffs(pin_dir))
    return maps::make_error_because("use pin directory", pin_dir, "it is not on a bpffs", EINVAL);
  return {};
}

Result<void> write_file_atomically(const std::string& path, const std::string& content, mode_t mode) {
  const fs::path target(path);
  const std::string dir = target.parent_path().empty() ? "." : target.parent_path().string();
  std::string temp = dir + "/." + target.filename().string() + ".XXXXXX";
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) return maps::make_error("create temp file in", dir, errno, maps::ErrnoSubject::Path);
  auto fail = [&](std::string_view what, int err) {
    ::close(fd);
    ::unlink(temp.c_str());
    return maps::make_error(what, temp, err, maps::ErrnoSubject::Path);
  };
  if (::fchmod(fd, mode) != 0) return fail("chmod", errno);
  std::size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write", errno);
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("fsync", errno);
  ::close(fd);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return maps::make_error("rename " + temp + " to", path, err, maps::ErrnoSubject::Path);
  }
  return fsync_dir(dir);
}

Result<std::optional<std::string>> read_file(const std::string& path, std::size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>{};
    return maps::make_error("open", path, errno, maps::ErrnoSubject::Path);
  }
  std::string content;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return maps::make_error("read", path, err, maps::ErrnoSubject::Path);
    }
    if (n == 0) break;
    content.append(buf, static_cast<std::size_t>(n));
    if (content.size() > max_bytes) {
      ::close(fd);
      return maps::make_error_because("read", path, "larger than " + std::to_string(max_bytes) + " bytes", EFBIG);
    }
  }
  ::close(fd);
  return std::optional<std::string>{std::move(content)};
}

std::string interfaces_to_json(const std::vector<InterfaceRecord>& interfaces) {
  json::array list;
  for (const auto& record : interfaces)
    list.push_back(json::object{{"name", record.name}, {"mode", protocol::to_string(record.mode)}});
  return json::serialize(json::object{{"interfaces", std::move(list)}}) + "\n";
}

Result<std::vector<InterfaceRecord>> interfaces_from_json(const std::string& text, const std::string& path) {
  auto bad = [&](const std::string& why) { return maps::make_error_because("read interface state", path, why, EINVAL); };
  std::error_code ec;
  const json::value parsed = json::parse(text, ec);
  if (ec) return bad("not valid JSON: " + ec.message());
  const auto* object = parsed.if_object();
  const auto* list = object ? object->if_contains("interfaces") : nullptr;
  if (!list || !list->is_array()) return bad("expected {\"interfaces\": [...]}");
  std::vector<InterfaceRecord> records;
  for (const auto& entry : list->as_array()) {
    // Each entry goes through the same validation as an attach request.
    if (!entry.is_object()) return bad("entry " + protocol::quote_value(entry) + " is not an object");
    json::object args;
    if (const auto* name = entry.as_object().if_contains("name")) args["iface"] = *name;
    if (const auto* mode = entry.as_object().if_contains("mode")) args["mode"] = *mode;
    auto parsed_entry = protocol::parse_attach_args(args);
    if (!parsed_entry) return bad("entry " + protocol::quote_value(entry) + ": " + parsed_entry.error().message);
    InterfaceRecord record{parsed_entry->iface, parsed_entry->mode};
    for (const auto& known : records)
      if (known.name == record.name) return bad("interface " + record.name + " listed twice");
    records.push_back(std::move(record));
  }
  return records;
}

Result<PeerCredentials> read_peer_credentials(int socket_fd) {
  struct ucred cred {};
  socklen_t length = sizeof cred;
  if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0)
    return maps::make_error("read peer credentials (SO_PEERCRED) of", "control socket client", errno);
  PeerCredentials peer{cred.pid, cred.uid, cred.gid, {}};
  std::vector<gid_t> groups(max_peer_groups);
  socklen_t groups_length = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &groups_length) == 0) {
    groups.resize(groups_length / sizeof(gid_t));
    peer.groups = std::move(groups);
  }
  // ERANGE (more than max_peer_groups): the peer is judged on uid and primary gid alone.
  return peer;
}

bool Authorizer::may_change_state(const PeerCredentials& peer) const {
  if (peer.uid == 0) return true;
  if (!admin_gid_) return false;
  if (peer.gid == *admin_gid_) return true;
  for (gid_t group : peer.groups)
    if (group == *admin_gid_) return true;
  return false;
}

Result<gid_t> lookup_group(const std::string& name) {
  struct group entry {};
  struct group* found = nullptr;
  std::vector<char> buf(16 * 1024);
  const int rc = ::getgrnam_r(name.c_str(), &entry, buf.data(), buf.size(), &found);
  if (rc != 0) return maps::make_error("look up group", name, rc);
  if (!found) return maps::make_error_because("look up group", name, "no such group", ENOENT);
  return found->gr_gid;
}

}  // namespace sluice::daemon
