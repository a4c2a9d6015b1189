#include "tc_attachment.hpp"

#include <bpf/libbpf.h>
#include <net/if.h>

#include <cerrno>

namespace sluice::dataplane {
namespace {

maps::Result<int> ifindex_of(const std::string& ifname) {
  const unsigned index = if_nametoindex(ifname.c_str());
  if (index == 0) return maps::make_error("find interface", ifname, errno, maps::ErrnoSubject::Path);
  return static_cast<int>(index);
}

}  // namespace

maps::Result<void> attach_egress_observer(int prog_fd, const std::string& ifname) {
  if (prog_fd < 0) return maps::make_error_because("attach egress observer to", ifname, "no observer program loaded", EINVAL);
  auto ifindex = ifindex_of(ifname);
  if (!ifindex) return ifindex.error();
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = *ifindex, .attach_point = BPF_TC_EGRESS);
  // EEXIST: a clsact qdisc is there already (ours from before, or someone else's); it is shared.
  if (int err = bpf_tc_hook_create(&hook); err != 0 && err != -EEXIST)
    return maps::make_error("create clsact qdisc on", ifname, -err);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE,
              .handle = egress_observer_tc_handle, .priority = egress_observer_tc_priority);
  if (int err = bpf_tc_attach(&hook, &opts); err != 0)
    return maps::make_error("attach egress observer (tc egress) to", ifname, -err);
  return {};
}

maps::Result<std::uint32_t> egress_observer_id(const std::string& ifname) {
  auto ifindex = ifindex_of(ifname);
  if (!ifindex) return ifindex.error();
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = *ifindex, .attach_point = BPF_TC_EGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = egress_observer_tc_handle, .priority = egress_observer_tc_priority);
  const int err = bpf_tc_query(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL) return 0u;  // no filter, or no clsact qdisc at all
  if (err != 0) return maps::make_error("query egress observer on", ifname, -err);
  return opts.prog_id;
}

maps::Result<bool> detach_egress_observer(const std::string& ifname) {
  auto present = egress_observer_id(ifname);
  if (!present) return present.error();
  if (*present == 0) return false;
  auto ifindex = ifindex_of(ifname);
  if (!ifindex) return ifindex.error();
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = *ifindex, .attach_point = BPF_TC_EGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = egress_observer_tc_handle, .priority = egress_observer_tc_priority);
  if (int err = bpf_tc_detach(&hook, &opts); err != 0 && err != -ENOENT)
    return maps::make_error("detach egress observer from", ifname, -err);
  return true;
}

}  // namespace sluice::dataplane
