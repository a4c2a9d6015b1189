#include "xdp_attachment.hpp"

#include <linux/if_link.h>
#include <net/if.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <memory>

namespace sluice::dataplane {
namespace {

struct ProgramCloser {
  void operator()(xdp_program* prog) const { xdp_program__close(prog); }
};
struct MultiprogCloser {
  void operator()(xdp_multiprog* mp) const { xdp_multiprog__close(mp); }
};
using ProgramHandle = std::unique_ptr<xdp_program, ProgramCloser>;
using MultiprogHandle = std::unique_ptr<xdp_multiprog, MultiprogCloser>;

// libxdp explains its dispatcher fallback at info level on every attach; that
// is expected here and reported through AttachedProgram::dispatcher instead.
int print_libxdp_message(libxdp_print_level level, const char* format, va_list args) {
  if (level != LIBXDP_WARN) return 0;
  return std::vfprintf(stderr, format, args);
}

// While libxdp tries (and on some kernels fails) to load its dispatcher, the
// libbpf warnings of that attempt are noise: the outcome is reported by
// attach_xdp's result and AttachedProgram::dispatcher.
int drop_libbpf_message(libbpf_print_level, const char*, va_list) { return 0; }

class QuietLibbpf {
 public:
  QuietLibbpf() : previous_(libbpf_set_print(drop_libbpf_message)) {}
  QuietLibbpf(const QuietLibbpf&) = delete;
  QuietLibbpf& operator=(const QuietLibbpf&) = delete;
  ~QuietLibbpf() { libbpf_set_print(previous_); }

 private:
  libbpf_print_fn_t previous_;
};

maps::Result<int> interface_index(const std::string& ifname, std::string_view operation) {
  const unsigned index = if_nametoindex(ifname.c_str());
  if (index == 0) return maps::make_error(operation, "interface " + ifname, errno == 0 ? ENODEV : errno);
  return static_cast<int>(index);
}

std::string libxdp_message(int err) {
  char buf[256] = {};
  libxdp_strerror(err, buf, sizeof(buf));
  return buf;
}

AttachMode mode_of(xdp_attach_mode mode) { return mode == XDP_MODE_SKB ? AttachMode::Skb : AttachMode::Native; }

constexpr const char* realtime_flag_path = "/sys/kernel/realtime";
constexpr std::string_view preempt_rt_marker = "PREEMPT_RT";

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

KernelFacts running_kernel() {
  KernelFacts kernel;
  if (std::ifstream flag(realtime_flag_path); flag) std::getline(flag, kernel.realtime);
  kernel.realtime = trimmed(kernel.realtime);
  if (utsname names{}; uname(&names) == 0) kernel.uname_version = names.version;
  return kernel;
}

std::string unsupported_kernel(const KernelFacts& kernel) {
  std::string evidence;
  if (kernel.realtime == "1") evidence = std::string(realtime_flag_path) + " is 1";
  else if (kernel.uname_version.find(preempt_rt_marker) != std::string::npos)
    evidence = "uname -v is '" + kernel.uname_version + "'";
  if (evidence.empty()) return {};
  return "the kernel is PREEMPT_RT (" + evidence +
         "): sluice hands each packet between its stages in one per-CPU slot, which a preempted packet's "
         "successor on the same CPU could overwrite; sluice does not run on PREEMPT_RT kernels";
}

std::string_view to_string(AttachMode mode) { return mode == AttachMode::Skb ? "skb" : "native"; }

maps::Result<AttachMode> parse_attach_mode(std::string_view text) {
  if (text == "native") return AttachMode::Native;
  if (text == "skb") return AttachMode::Skb;
  return maps::make_error_because("parse", "attach mode", "mode '" + std::string(text) + "': expected native or skb",
                                  EINVAL);
}

maps::Result<AttachedProgram> attach_xdp(int prog_fd, const std::string& ifname, AttachMode mode,
                                         const KernelFacts& kernel) {
  if (std::string why = unsupported_kernel(kernel); !why.empty())
    return maps::make_error_because("attach " + std::string(to_string(mode)) + " XDP to", ifname, why, EOPNOTSUPP);
  libxdp_set_print(print_libxdp_message);
  auto ifindex = interface_index(ifname, "attach to");
  if (!ifindex) return ifindex.error();
  ProgramHandle prog(xdp_program__from_fd(prog_fd));
  if (long err = libxdp_get_error(prog.get()); err != 0) {
    prog.release();
    return maps::make_error("attach: read program", ifname, static_cast<int>(-err));
  }
  const xdp_attach_mode xdp_mode = mode == AttachMode::Skb ? XDP_MODE_SKB : XDP_MODE_NATIVE;
  int err = 0;
  {
    QuietLibbpf quiet;
    err = xdp_program__attach(prog.get(), *ifindex, xdp_mode, 0);
  }
  if (err != 0) {
    const std::string operation = "attach " + std::string(to_string(mode)) + " XDP to";
    if (mode == AttachMode::Native && (err == -EOPNOTSUPP || err == -EINVAL))
      return maps::make_error_because(operation, ifname,
                                      "the driver cannot run native XDP (use --mode skb): " + libxdp_message(err), -err);
    return maps::make_error_because(operation, ifname, libxdp_message(err), -err);
  }
  auto found = find_attached(ifname, xdp_program__name(prog.get()));
  if (!found) return found.error();
  if (!*found) return maps::make_error_because("attach", ifname, "program not found after attaching", ENOENT);
  return **found;
}

maps::Result<std::optional<AttachedProgram>> find_attached(const std::string& ifname, std::string_view prog_name) {
  libxdp_set_print(print_libxdp_message);
  auto ifindex = interface_index(ifname, "inspect");
  if (!ifindex) return ifindex.error();
  MultiprogHandle mp(xdp_multiprog__get_from_ifindex(*ifindex));
  if (long err = libxdp_get_error(mp.get()); err != 0) {
    mp.release();
    if (err == -ENOENT) return std::optional<AttachedProgram>{};
    return maps::make_error("inspect XDP on", ifname, static_cast<int>(-err));
  }
  AttachedProgram attached;
  attached.ifname = ifname;
  attached.ifindex = *ifindex;
  attached.mode = mode_of(xdp_multiprog__attach_mode(mp.get()));
  attached.dispatcher = !xdp_multiprog__is_legacy(mp.get());
  if (attached.dispatcher) {
    for (xdp_program* prog = xdp_multiprog__next_prog(nullptr, mp.get()); prog;
         prog = xdp_multiprog__next_prog(prog, mp.get())) {
      if (prog_name == xdp_program__name(prog)) {
        attached.prog_id = xdp_program__id(prog);
        attached.prog_name = xdp_program__name(prog);
        return std::optional<AttachedProgram>{attached};
      }
    }
    return std::optional<AttachedProgram>{};
  }
  const xdp_program* main = xdp_multiprog__main_prog(mp.get());
  if (!main || prog_name != xdp_program__name(main)) return std::optional<AttachedProgram>{};
  attached.prog_id = xdp_program__id(main);
  attached.prog_name = xdp_program__name(main);
  return std::optional<AttachedProgram>{attached};
}

maps::Result<void> replace_legacy_attachment(const AttachedProgram& attached, int new_prog_fd) {
  const int old_fd = bpf_prog_get_fd_by_id(attached.prog_id);
  if (old_fd < 0) return maps::make_error("open attached program on", attached.ifname, -old_fd);
  LIBBPF_OPTS(bpf_xdp_attach_opts, options, .old_prog_fd = old_fd);
  const std::uint32_t mode_flag = attached.mode == AttachMode::Skb ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
  const int err = bpf_xdp_attach(attached.ifindex, new_prog_fd, XDP_FLAGS_REPLACE | mode_flag, &options);
  ::close(old_fd);
  if (err != 0) return maps::make_error("replace the XDP program on", attached.ifname, -err);
  return {};
}

maps::Result<void> detach_program(const AttachedProgram& attached) {
  libxdp_set_print(print_libxdp_message);
  ProgramHandle prog(xdp_program__from_id(attached.prog_id));
  if (long err = libxdp_get_error(prog.get()); err != 0) {
    prog.release();
    return maps::make_error("detach: open program id " + std::to_string(attached.prog_id) + " on", attached.ifname,
                            static_cast<int>(-err));
  }
  const xdp_attach_mode xdp_mode = attached.mode == AttachMode::Skb ? XDP_MODE_SKB : XDP_MODE_NATIVE;
  if (int err = xdp_program__detach(prog.get(), attached.ifindex, xdp_mode, 0); err != 0)
    return maps::make_error_because("detach program id " + std::to_string(attached.prog_id) + " from", attached.ifname,
                                    libxdp_message(err), -err);
  return {};
}

maps::Result<bool> detach_xdp(const std::string& ifname) {
  libxdp_set_print(print_libxdp_message);
  auto ifindex = interface_index(ifname, "detach from");
  if (!ifindex) return ifindex.error();
  MultiprogHandle mp(xdp_multiprog__get_from_ifindex(*ifindex));
  if (long err = libxdp_get_error(mp.get()); err != 0) {
    mp.release();
    if (err == -ENOENT) return false;
    return maps::make_error("inspect XDP on", ifname, static_cast<int>(-err));
  }
  if (int err = xdp_multiprog__detach(mp.get()); err != 0) return maps::make_error("detach XDP from", ifname, -err);
  return true;
}

}  // namespace sluice::dataplane
