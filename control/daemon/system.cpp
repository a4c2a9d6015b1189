#include "system.hpp"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cerrno>
#include <cstdio>
#include <filesystem>

namespace sluice::daemon {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr const char* default_bpffs = "/sys/fs/bpf";
constexpr mode_t pin_dir_mode = 0700;
// Parents sluiced creates on the way to one of its directories: traversable, writable by the owner only.
constexpr mode_t parent_dir_mode = 0755;
constexpr mode_t foreign_write_bits = S_IWGRP | S_IWOTH;
constexpr const char* state_lock_file = "sluiced.lock";
constexpr mode_t lock_file_mode = 0600;
// mkstemp's template: ".<name>." and six characters.
constexpr std::size_t temp_suffix_length = 6;
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

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// What makes a directory unfit to hold what only sluiced may change; nullopt when fit.
std::optional<std::string> private_dir_problem(const struct stat& info) {
  if (S_ISLNK(info.st_mode)) return "it is a symlink (whoever can re-point it chooses the directory); give the real path";
  if (!S_ISDIR(info.st_mode)) return "it is not a directory";
  if (info.st_uid != ::geteuid())
    return "it is owned by uid " + std::to_string(info.st_uid) + ", not by uid " + std::to_string(::geteuid()) +
           " that sluiced runs as";
  if (info.st_mode & foreign_write_bits)
    return "its mode " + octal_mode(info.st_mode) + " lets group or others write into it (chmod go-w)";
  return std::nullopt;
}

// An ancestor may be root's or ours, and writable by others only when sticky.
std::optional<std::string> ancestor_problem(const struct stat& info) {
  if (info.st_uid != 0 && info.st_uid != ::geteuid())
    return "it is owned by uid " + std::to_string(info.st_uid) + " (neither root nor sluiced's uid " +
           std::to_string(::geteuid()) + ")";
  if ((info.st_mode & foreign_write_bits) && !(info.st_mode & S_ISVTX))
    return "its mode " + octal_mode(info.st_mode) + " lets group or others rename entries in it (not sticky)";
  return std::nullopt;
}

Error refuse_dir(std::string_view what, const std::string& path, const std::string& why) {
  return maps::make_error_because("use " + std::string(what) + " directory", path, why, EPERM);
}

// `existing` and every directory above it, after symlinks, pass ancestor_problem.
Result<void> check_ancestors(std::string_view what, const std::string& path, const fs::path& existing) {
  char resolved[PATH_MAX];
  if (!::realpath(existing.c_str(), resolved))
    return maps::make_error("resolve " + std::string(what) + " directory", existing.string(), errno, maps::ErrnoSubject::Path);
  for (fs::path dir = resolved;; dir = dir.parent_path()) {
    struct stat info {};
    if (::stat(dir.c_str(), &info) != 0)
      return maps::make_error("stat " + std::string(what) + " ancestor", dir.string(), errno, maps::ErrnoSubject::Path);
    if (auto problem = ancestor_problem(info)) return refuse_dir(what, path, "its ancestor " + dir.string() + ": " + *problem);
    if (dir == dir.parent_path()) return {};
  }
}

// The path as a directory name: absolute, normal, no trailing slash.
fs::path directory_path(const std::string& path) {
  std::error_code ec;
  fs::path normal = fs::absolute(fs::path(path), ec).lexically_normal();
  if (!normal.has_filename() && normal.has_parent_path() && normal != normal.root_path()) normal = normal.parent_path();
  return normal;
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

Result<void> check_private_dir(const std::string& path, std::string_view what) {
  if (path.empty()) return maps::make_error_because("use " + std::string(what) + " directory", "''", "empty path", EINVAL);
  const fs::path dir = directory_path(path);
  struct stat info {};
  if (::lstat(dir.c_str(), &info) == 0) {
    if (auto problem = private_dir_problem(info)) return refuse_dir(what, path, *problem);
    return dir == dir.parent_path() ? Result<void>{} : check_ancestors(what, path, dir.parent_path());
  }
  if (errno != ENOENT) return maps::make_error("stat " + std::string(what) + " directory", path, errno, maps::ErrnoSubject::Path);
  // To be created: under a directory nobody else controls.
  return check_ancestors(what, path, existing_ancestor(dir));
}

Result<void> make_private_dir(const std::string& path, mode_t mode, std::string_view what) {
  if (auto checked = check_private_dir(path, what); !checked) return checked;
  const fs::path dir = directory_path(path);
  std::vector<fs::path> missing;
  for (fs::path at = dir; !at.empty() && at != at.parent_path(); at = at.parent_path()) {
    struct stat info {};
    if (::lstat(at.c_str(), &info) == 0) break;
    missing.push_back(at);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    const mode_t wanted = *it == dir ? mode : parent_dir_mode;
    if (::mkdir(it->c_str(), wanted) != 0 && errno != EEXIST)
      return maps::make_error("create " + std::string(what) + " directory", it->string(), errno, maps::ErrnoSubject::Path);
  }
  // Again on what is there now: a directory someone else created meanwhile is judged, not adopted.
  return check_private_dir(path, what);
}

Result<void> ensure_bpffs(const std::string& pin_dir) {
  if (auto checked = check_private_dir(pin_dir, "--bpffs pin"); !checked) return checked;
  if (!is_on_bpffs(pin_dir)) {
    const std::string where = under(pin_dir, default_bpffs) || fs::path(pin_dir) == default_bpffs ? default_bpffs : pin_dir;
    if (auto mounted = mount_bpffs(where); !mounted) return mounted;
  }
  if (auto made = make_private_dir(pin_dir, pin_dir_mode, "--bpffs pin"); !made) return made;
  if (!is_on_bpffs(pin_dir))
    return maps::make_error_because("use pin directory", pin_dir, "it is not on a bpffs", EINVAL);
  return {};
}

InstanceLock& InstanceLock::operator=(InstanceLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

InstanceLock::~InstanceLock() {
  if (fd_ >= 0) ::close(fd_);
}

Result<InstanceLock> InstanceLock::lock_state_dir(const std::string& state_dir) {
  const int dir = ::open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir < 0) return maps::make_error("open state directory", state_dir, errno, maps::ErrnoSubject::Path);
  struct stat info {};
  if (::fstat(dir, &info) != 0) {
    const int err = errno;
    ::close(dir);
    return maps::make_error("stat state directory", state_dir, err, maps::ErrnoSubject::Path);
  }
  // The inode just opened, not the name checked before: nothing swapped in between.
  if (auto problem = private_dir_problem(info)) {
    ::close(dir);
    return refuse_dir("--state-dir", state_dir, *problem);
  }
  const int fd = ::openat(dir, state_lock_file, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, lock_file_mode);
  const int open_err = errno;
  ::close(dir);
  const std::string path = state_dir + "/" + state_lock_file;
  if (fd < 0) return maps::make_error("open lock file", path, open_err, maps::ErrnoSubject::Path);
  InstanceLock lock(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) return maps::make_error("lock (flock)", path, err, maps::ErrnoSubject::Path);
    char holder[32] = {};
    const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
    std::string pid = n > 0 ? std::string(holder, static_cast<std::size_t>(n)) : std::string("?");
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return maps::make_error_because("lock state directory", state_dir,
                                    "another sluiced (pid " + pid + ") holds " + path +
                                        "; one daemon per state dir: stop it first or give another --state-dir",
                                    EBUSY);
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0) return maps::make_error("truncate lock file", path, errno, maps::ErrnoSubject::Path);
  if (::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    return maps::make_error("write pid into lock file", path, errno, maps::ErrnoSubject::Path);
  return lock;
}

Result<InstanceLock> InstanceLock::lock_pin_dir(const std::string& pin_dir) {
  const int fd = ::open(pin_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return maps::make_error("open pin directory", pin_dir, errno, maps::ErrnoSubject::Path);
  InstanceLock lock(fd);
  struct stat info {};
  if (::fstat(fd, &info) != 0) return maps::make_error("stat pin directory", pin_dir, errno, maps::ErrnoSubject::Path);
  if (auto problem = private_dir_problem(info)) return refuse_dir("--bpffs pin", pin_dir, *problem);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) return maps::make_error("lock (flock)", pin_dir, err, maps::ErrnoSubject::Path);
    return maps::make_error_because("lock pin directory", pin_dir,
                                    "another sluiced holds it (a flock on the directory, see /proc/locks); one daemon "
                                    "per pin dir: stop it first or give another --bpffs",
                                    EBUSY);
  }
  return lock;
}

Result<std::vector<std::string>> sweep_temp_files(const std::string& dir, std::string_view name) {
  const std::string prefix = "." + std::string(name) + ".";
  std::vector<std::string> removed;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    if (file.size() != prefix.size() + temp_suffix_length || !file.starts_with(prefix)) continue;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec) || it->is_symlink(type_ec)) continue;
    if (::unlink(it->path().c_str()) != 0 && errno != ENOENT)
      return maps::make_error("remove stale temp file", it->path().string(), errno, maps::ErrnoSubject::Path);
    removed.push_back(file);
  }
  if (ec) return maps::make_error("list directory", dir, ec.value(), maps::ErrnoSubject::Path);
  return removed;
}

Result<void> write_file_atomically(const std::string& path, const std::string& content, mode_t mode,
                                   const std::function<void()>& before_rename) {
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
  if (before_rename) before_rename();
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
