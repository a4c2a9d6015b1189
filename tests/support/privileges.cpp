#include "privileges.hpp"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace sluice::test {

bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

std::string missing_bpf_privileges() {
  if (geteuid() != 0) return "needs root (CAP_BPF + CAP_NET_ADMIN) to load BPF programs";
  return {};
}

std::string missing_bpffs() {
  struct statfs st {};
  if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type == BPF_FS_MAGIC) return {};
  if (mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) != 0)
    return std::string("bpffs not mounted at /sys/fs/bpf and mount failed: ") + std::strerror(errno);
  return {};
}

}  // namespace sluice::test
