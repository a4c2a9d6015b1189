#include "redirect_errors.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>

#include <cerrno>
#include <optional>

#include "kv_map.hpp"
#include "map_fd.hpp"
#include "redirect_errors.skel.h"

namespace sluice::dataplane {
namespace {

// A tracepoint the watch attaches to, and the shape its program reads.
struct Tracepoint {
  const char* name;
  std::uint32_t params;                       // including the leading void *
  std::vector<std::uint32_t> net_device_params;  // positions that must be struct net_device *
};

const Tracepoint kRedirectErr{"xdp_redirect_err", 8, {1}};
const Tracepoint kDevmapXmit{"xdp_devmap_xmit", 6, {1, 2}};
const Tracepoint kCpumapEnqueue{"xdp_cpumap_enqueue", 5, {}};

bool points_to_net_device(const btf* types, std::uint32_t type_id) {
  const btf_type* type = btf__type_by_id(types, type_id);
  if (!type || !btf_is_ptr(type)) return false;
  const int target = btf__resolve_type(types, type->type);
  const btf_type* pointee = target < 0 ? nullptr : btf__type_by_id(types, static_cast<std::uint32_t>(target));
  if (!pointee || !btf_is_struct(pointee)) return false;
  const char* name = btf__name_by_offset(types, pointee->name_off);
  return name && std::string_view(name) == "net_device";
}

// Empty when the running kernel's tracepoint takes what the program reads, else why not.
std::optional<std::string> shape_mismatch(const btf* types, const Tracepoint& tracepoint) {
  const std::string typedef_name = std::string("btf_trace_") + tracepoint.name;
  const int id = btf__find_by_name_kind(types, typedef_name.c_str(), BTF_KIND_TYPEDEF);
  if (id < 0) return "the kernel has no such tracepoint";
  const btf_type* pointer = btf__type_by_id(types, btf__type_by_id(types, static_cast<std::uint32_t>(id))->type);
  const btf_type* proto = pointer && btf_is_ptr(pointer) ? btf__type_by_id(types, pointer->type) : nullptr;
  if (!proto || !btf_is_func_proto(proto)) return "its BTF type is not a function prototype";
  if (btf_vlen(proto) != tracepoint.params)
    return "it takes " + std::to_string(btf_vlen(proto) - 1) + " arguments, not " +
           std::to_string(tracepoint.params - 1);
  const btf_param* params = btf_params(proto);
  for (std::uint32_t position : tracepoint.net_device_params)
    if (!points_to_net_device(types, params[position].type))
      return "argument " + std::to_string(position) + " is not a struct net_device *";
  return std::nullopt;
}

}  // namespace

struct RedirectErrorWatch::Links {
  std::vector<bpf_link*> links;
  ~Links() {
    for (bpf_link* link : links) bpf_link__destroy(link);
  }
};

void RedirectErrorWatch::SkeletonDeleter::operator()(redirect_errors_bpf* skeleton) const {
  redirect_errors_bpf__destroy(skeleton);
}

RedirectErrorWatch::RedirectErrorWatch(RedirectErrorWatch&&) noexcept = default;
RedirectErrorWatch& RedirectErrorWatch::operator=(RedirectErrorWatch&&) noexcept = default;
RedirectErrorWatch::~RedirectErrorWatch() = default;

Result<RedirectErrorWatch> RedirectErrorWatch::open(std::span<const int> redirect_map_fds, int cpumap_fd) {
  auto map_id = [](int fd) -> Result<std::uint32_t> {
    bpf_map_info info{};
    std::uint32_t length = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) return maps::make_error("read the id of", "a redirect map", errno);
    return info.id;
  };
  if (redirect_map_fds.size() > SLUICE_REDIRECT_ERR_MAX_MAPS)
    return maps::make_error_because("open", "redirect errors BPF object",
                                    std::to_string(redirect_map_fds.size()) + " redirect maps, at most " +
                                        std::to_string(SLUICE_REDIRECT_ERR_MAX_MAPS),
                                    EINVAL);
  std::uint32_t cpumap_id = 0;
  if (cpumap_fd >= 0) {
    auto id = map_id(cpumap_fd);
    if (!id) return id.error();
    cpumap_id = *id;
  }
  std::vector<std::uint32_t> redirect_ids;
  for (int fd : redirect_map_fds) {
    auto id = map_id(fd);
    if (!id) return id.error();
    redirect_ids.push_back(*id);
  }
  struct stat netns {};
  if (::stat("/proc/self/ns/net", &netns) != 0) return maps::make_error("stat", "/proc/self/ns/net", errno);
  btf* kernel_types = btf__load_vmlinux_btf();
  if (!kernel_types) return maps::make_error("load", "the kernel's BTF (/sys/kernel/btf/vmlinux)", errno);
  std::unique_ptr<btf, void (*)(btf*)> kernel_types_owner(kernel_types, btf__free);

  RedirectErrorWatch watch;
  watch.skeleton_.reset(redirect_errors_bpf__open());
  if (!watch.skeleton_) return maps::make_error("open", "redirect errors BPF object", errno);
  redirect_errors_bpf* skel = watch.skeleton_.get();
  skel->rodata->sluice_netns_inum = static_cast<std::uint32_t>(netns.st_ino);
  skel->rodata->sluice_cpumap_id = cpumap_id;
  for (std::size_t i = 0; i < redirect_ids.size(); ++i) skel->rodata->sluice_redirect_map_ids[i] = redirect_ids[i];

  const std::pair<const Tracepoint*, bpf_program*> programs[] = {
      {&kRedirectErr, skel->progs.sluice_redirect_err},
      {&kDevmapXmit, skel->progs.sluice_devmap_xmit},
      {&kCpumapEnqueue, skel->progs.sluice_cpumap_enqueue},
  };
  std::vector<std::pair<const Tracepoint*, bpf_program*>> wanted;
  for (const auto& [tracepoint, program] : programs) {
    std::optional<std::string> mismatch = shape_mismatch(kernel_types, *tracepoint);
    if (!mismatch && tracepoint == &kCpumapEnqueue && cpumap_id == 0) mismatch = "no cpumap";
    if (mismatch) {
      watch.unavailable_.push_back(std::string(tracepoint->name) + ": " + *mismatch);
      bpf_program__set_autoload(program, false);
    } else {
      wanted.emplace_back(tracepoint, program);
    }
  }
  if (int err = redirect_errors_bpf__load(skel); err != 0)
    return maps::make_error("load", "redirect errors BPF object", -err);
  watch.links_ = std::make_unique<Links>();
  for (const auto& [tracepoint, program] : wanted) {
    bpf_link* link = bpf_program__attach_raw_tracepoint(program, tracepoint->name);
    if (!link) {
      watch.unavailable_.push_back(std::string(tracepoint->name) + ": " + maps::describe_errno(errno));
      continue;
    }
    watch.links_->links.push_back(link);
    watch.attached_.push_back(tracepoint->name);
  }
  return watch;
}

Result<std::vector<RedirectErrorCount>> RedirectErrorWatch::counts() const {
  auto fd = maps::MapFd::from_skeleton(skeleton_->maps.redirect_errors);
  if (!fd) return fd.error();
  auto table = maps::PerCpuHashMap<sluice_redirect_error_key, std::uint64_t>::from(std::move(*fd));
  if (!table) return table.error();
  std::vector<RedirectErrorCount> out;
  auto walked = table->for_each([&](const sluice_redirect_error_key& key, const std::vector<std::uint64_t>& per_cpu) {
    std::uint64_t frames = 0;
    for (std::uint64_t n : per_cpu) frames += n;
    // A kind this build does not know cannot come from its own programs: left out rather than mislabelled.
    if (key.kind < SLUICE_REDIRECT_ERR_REDIRECT || key.kind > SLUICE_REDIRECT_ERR_CPUMAP) return;
    out.push_back({static_cast<sluice_redirect_error_kind>(key.kind), key.ifindex, key.to, key.err, frames});
  });
  if (!walked) return walked.error();
  return out;
}

Result<std::uint64_t> RedirectErrorWatch::unkeyed() const {
  auto fd = maps::MapFd::from_skeleton(skeleton_->maps.redirect_errors_unkeyed);
  if (!fd) return fd.error();
  auto table = maps::PerCpuArrayMap<std::uint64_t>::from(std::move(*fd));
  if (!table) return table.error();
  auto value = table->lookup(0);
  if (!value) return value.error();
  std::uint64_t frames = 0;
  if (*value)
    for (std::uint64_t n : **value) frames += n;
  return frames;
}

std::string_view redirect_error_kind_name(sluice_redirect_error_kind kind) {
  switch (kind) {
    case SLUICE_REDIRECT_ERR_REDIRECT: return "redirect";
    case SLUICE_REDIRECT_ERR_XMIT: return "xmit";
    case SLUICE_REDIRECT_ERR_CPUMAP: return "cpumap";
  }
  return "unknown";
}

}  // namespace sluice::dataplane
