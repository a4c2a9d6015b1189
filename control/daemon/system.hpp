#pragma once
// The daemon's contact with the host outside BPF: bpffs, the state
// directory (written atomically) and the peer credentials of socket clients.
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "maps.hpp"
#include "ops.hpp"

namespace sluice::daemon {

using maps::Error;
using maps::Result;

// Makes sure pin_dir can hold BPF pins: if the filesystem under it is not
// bpffs, mounts bpffs at /sys/fs/bpf (pin dirs below it) or at pin_dir itself
// (pin dirs elsewhere). Creates pin_dir (mode 0700: pins are capabilities).
Result<void> ensure_bpffs(const std::string& pin_dir);
bool is_on_bpffs(const std::string& path);

// Writes content to path through a temp file in the same directory, fsync
// and rename: a crash leaves either the old or the new file, never half.
Result<void> write_file_atomically(const std::string& path, const std::string& content, mode_t mode);
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
