#pragma once
// Redirects that fail after the XDP program returned, counted by the raw
// tracepoint programs of xdp/redirect_errors.bpf.c: a devmap port that
// refuses frames (down, a veth peer without XDP, a full ring), an
// xdp_do_redirect that fails, a full cpumap queue. The program's own
// redirect counters cannot see these; without this they are silent drops.
//
// Counting covers the network namespace that opens the watch, and the maps it
// is given (the devmap bulk transmit names no map: there, every program's).
// Transmit drops are seen in native mode only: generic XDP has no bulk queue. The programs are not pinned: the counts start with
// the daemon (Prometheus counters tolerate the reset) and nothing is left
// behind when it ends. Needs raw tracepoints and the kernel's BTF; a kernel
// whose tracepoints take other arguments than 5.10+ kernels' is detected
// from its BTF and that tracepoint is left out (listed as unavailable).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "error.hpp"
#include "sluice_maps.h"

struct redirect_errors_bpf;

namespace sluice::dataplane {

using maps::Result;

struct RedirectErrorCount {
  sluice_redirect_error_kind kind;
  std::int32_t ifindex;  // receiving device (0: cpumap)
  std::int32_t to;       // egress ifindex / devmap index / CPU
  std::int32_t err;      // negative errno, 0 when the kernel gives none
  std::uint64_t frames;  // summed over possible CPUs
};

class RedirectErrorWatch {
 public:
  // redirect_map_fds: sluice's devmaps and cpumap (failed redirects into other maps are not counted, at most
  // SLUICE_REDIRECT_ERR_MAX_MAPS); cpumap_fd: sluice's cpumap (-1: count no cpumap drops).
  static Result<RedirectErrorWatch> open(std::span<const int> redirect_map_fds, int cpumap_fd);

  RedirectErrorWatch(RedirectErrorWatch&&) noexcept;
  RedirectErrorWatch& operator=(RedirectErrorWatch&&) noexcept;
  RedirectErrorWatch(const RedirectErrorWatch&) = delete;
  RedirectErrorWatch& operator=(const RedirectErrorWatch&) = delete;
  ~RedirectErrorWatch();

  Result<std::vector<RedirectErrorCount>> counts() const;
  // Frames not counted by key because the key table was full.
  Result<std::uint64_t> unkeyed() const;
  // Tracepoints attached, and "name: reason" for each one that is not.
  const std::vector<std::string>& attached() const noexcept { return attached_; }
  const std::vector<std::string>& unavailable() const noexcept { return unavailable_; }

 private:
  struct Links;
  struct SkeletonDeleter {
    void operator()(redirect_errors_bpf* skeleton) const;
  };
  RedirectErrorWatch() = default;

  std::unique_ptr<redirect_errors_bpf, SkeletonDeleter> skeleton_;
  std::unique_ptr<Links> links_;
  std::vector<std::string> attached_;
  std::vector<std::string> unavailable_;
};

// "redirect", "xmit", "cpumap": the metrics label of a kind.
std::string_view redirect_error_kind_name(sluice_redirect_error_kind kind);

}  // namespace sluice::dataplane
