#pragma once
// Attaching the entry program to interfaces through libxdp, so sluice
// coexists with other XDP programs (libxdp's dispatcher) where the kernel
// allows it and shows up in `xdp-loader status`. Where the dispatcher cannot
// load (kernels refusing freplace), libxdp attaches the program alone;
// AttachedProgram::dispatcher says which happened.
//
// Attachments outlive the process on purpose: a daemon restart must not
// interrupt traffic. Detaching is always explicit.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "maps.hpp"

namespace sluice::dataplane {

enum class AttachMode { Native, Skb };

std::string_view to_string(AttachMode mode);
// "native" / "skb"; error names the text otherwise.
maps::Result<AttachMode> parse_attach_mode(std::string_view text);

struct AttachedProgram {
  std::string ifname;
  int ifindex = 0;
  AttachMode mode = AttachMode::Native;
  bool dispatcher = false;      // true: inside libxdp's dispatcher; false: attached alone
  std::uint32_t prog_id = 0;    // the sluice entry program (not the dispatcher)
  std::string prog_name;
};

// What attach_xdp needs to know about the running kernel. A parameter, not
// read inside, so a test can hand it a PREEMPT_RT kernel.
struct KernelFacts {
  std::string realtime;       // /sys/kernel/realtime ("1" on PREEMPT_RT kernels), empty when absent
  std::string uname_version;  // uname(2) version, e.g. "#1 SMP PREEMPT_RT Debian 6.1.0-rt"
};
KernelFacts running_kernel();

// Empty when the data plane may run on this kernel; otherwise why not. The
// stages hand each packet over in one per-CPU slot (xdp/pipeline.h), which
// is only safe while XDP cannot be preempted on its CPU: not on PREEMPT_RT,
// where softirqs run in preemptible threads.
std::string unsupported_kernel(const KernelFacts& kernel);

// Attaches prog_fd to ifname. Errors name the interface and the mode, and
// say when the driver cannot run native XDP. Refused, with nothing attached,
// on a kernel unsupported_kernel() names.
maps::Result<AttachedProgram> attach_xdp(int prog_fd, const std::string& ifname, AttachMode mode,
                                         const KernelFacts& kernel = running_kernel());

// What libxdp finds on ifname: the XDP program named prog_name, if attached.
maps::Result<std::optional<AttachedProgram>> find_attached(const std::string& ifname, std::string_view prog_name);

// Swaps the program of a legacy (non-dispatcher) attachment in one netlink
// call: XDP_FLAGS_REPLACE makes the kernel check that `attached` is still the
// program there and switch atomically, so no packet meets the interface
// without one; on failure the old program stays.
maps::Result<void> replace_legacy_attachment(const AttachedProgram& attached, int new_prog_fd);

// Detaches the one program `attached` names (inside libxdp's dispatcher the
// other programs stay attached).
maps::Result<void> detach_program(const AttachedProgram& attached);

// Detaches whatever libxdp attached on ifname (dispatcher or single program).
// false: nothing was attached.
maps::Result<bool> detach_xdp(const std::string& ifname);

}  // namespace sluice::dataplane
