#pragma once
// The daemon's contact with the host outside BPF: bpffs, the state
// directory (written atomically) and the peer credentials of socket clients.
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "maps.hpp"
#include "ops.hpp"

namespace sluice::daemon {

using maps::Error;
using maps::Result;

// Makes sure pin_dir can hold BPF pins: if the filesystem under it is not
// bpffs, mounts bpffs (mode 0700) at /sys/fs/bpf (pin dirs below it) or at
// pin_dir itself (pin dirs elsewhere). Creates pin_dir (mode 0700: pins are
// capabilities); an existing one must pass check_private_dir.
Result<void> ensure_bpffs(const std::string& pin_dir);
bool is_on_bpffs(const std::string& path);

// The directories whose contents only sluiced may change (state dir, pin
// dir, socket dir): whoever can write into one can plant a state file, swap
// a pin or the socket. Refused, with an error naming the path and what is
// wrong: a symlink (the last component, checked with lstat), not a
// directory, not owned by the daemon's euid, writable by group or others;
// an ancestor (after symlinks) not owned by root or the euid, or writable by
// group or others without the sticky bit (/tmp, a 1777 bpffs are fine: in a
// sticky directory nobody else may rename or remove our entry). A path that
// does not exist yet: its nearest existing ancestor is checked, so nothing
// is created under a directory an attacker controls. `what` names the role
// ("--state-dir", "--bpffs", "socket directory") in the error.
Result<void> check_private_dir(const std::string& path, std::string_view what);
// check_private_dir, then creates what is missing of path (parents 0755, the
// directory itself with `mode`) and checks the result again.
Result<void> make_private_dir(const std::string& path, mode_t mode, std::string_view what);

// An exclusive flock(2) held for the life of the object (the process: the
// kernel drops it on any exit, kill -9 included), so two sluiced never
// share a state dir or a pin dir. Move-only.
class InstanceLock {
 public:
  // The state dir: a lock file `sluiced.lock` in it (holding the pid of the
  // holder, for the error of the next one). The directory is opened without
  // following a symlink and re-checked on the opened inode.
  static Result<InstanceLock> lock_state_dir(const std::string& state_dir);
  // The pin dir: bpffs holds no regular files, so the lock is on the pin
  // directory itself (flock works on any inode, bpffs included).
  static Result<InstanceLock> lock_pin_dir(const std::string& pin_dir);

  InstanceLock(InstanceLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  InstanceLock& operator=(InstanceLock&& other) noexcept;
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;
  ~InstanceLock();

 private:
  explicit InstanceLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Writes content to path through a temp file in the same directory
// (".<name>.XXXXXX"), fsync and rename: a crash leaves either the old or
// the new file, never half, and at most a stale temp file (see
// sweep_temp_files). `before_rename`, when set, runs between the fsync of
// the temp file and the rename (fault injection of tests).
Result<void> write_file_atomically(const std::string& path, const std::string& content, mode_t mode,
                                   const std::function<void()>& before_rename = {});
// Removes the temp files write_file_atomically leaves for <dir>/<name> when
// killed before its rename (".<name>.XXXXXX"); only with the state dir
// locked, so no live writer's file goes. Returns the names removed.
Result<std::vector<std::string>> sweep_temp_files(const std::string& dir, std::string_view name);
// Empty optional: the file does not exist.
Result<std::optional<std::string>> read_file(const std::string& path, std::size_t max_bytes);

// <state-dir>/interfaces.json: the interfaces the operator attached, so a
// restarted (or cold-started) daemon finds or restores them.
struct InterfaceRecord {
  std::string name;
  protocol::AttachMode mode = protocol::AttachMode::Native;
  bool operator==(const InterfaceRecord&) const = default;
};
std::string interfaces_to_json(const std::vector<InterfaceRecord>& interfaces);
// Errors name the file and the bad entry: a hand-edited file must not crash the daemon.
Result<std::vector<InterfaceRecord>> interfaces_from_json(const std::string& text, const std::string& path);

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups at connect time (SO_PEERGROUPS)
};
Result<PeerCredentials> read_peer_credentials(int socket_fd);

// Who may change state: uid 0, or a process whose primary or supplementary
// groups include the admin group. Everyone who can connect may read.
class Authorizer {
 public:
  Authorizer() = default;
  explicit Authorizer(std::optional<gid_t> admin_gid) : admin_gid_(admin_gid) {}
  bool may_change_state(const PeerCredentials& peer) const;

 private:
  std::optional<gid_t> admin_gid_;
};

// The gid of a group name; the error names the group.
Result<gid_t> lookup_group(const std::string& name);

}  // namespace sluice::daemon
