#include "dataplane.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <filesystem>

#include "egress_observer.skel.h"
#include "sluice.skel.h"

namespace sluice::dataplane {
namespace {

constexpr std::uint32_t config_slot = 0;

bool is_pass_or_drop(std::uint32_t verdict) {
  return verdict == SLUICE_VERDICT_PASS || verdict == SLUICE_VERDICT_DROP;
}

Error config_error(std::string_view field, std::uint64_t value, std::string_view expected) {
  return maps::make_error_because("set config", "config",
                                  std::string(field) + " = " + std::to_string(value) + ": " + std::string(expected),
                                  EINVAL);
}

// libbpf names internal maps (.rodata) "<object>.rodata"; they are per load, never pinned.
bool is_internal_map_name(std::string_view name) { return name.find('.') != std::string_view::npos; }
bool is_internal_map(const bpf_map* map) { return is_internal_map_name(bpf_map__name(map)); }

Result<void> ensure_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return maps::make_error("create pin directory", dir, ec.value(), maps::ErrnoSubject::Path);
  return {};
}

const bpf_program* stage_program(const sluice_bpf* skel, sluice_stage stage) {
  switch (stage) {
    case SLUICE_STAGE_FILTER: return skel->progs.sluice_filter;
    case SLUICE_STAGE_LB: return skel->progs.sluice_lb;
    case SLUICE_STAGE_FORWARD: return skel->progs.sluice_forward;
    case SLUICE_STAGE_COUNT: break;
  }
  return nullptr;
}

// libbpf warns about .xdp_run_config, the section libxdp reads for its
// dispatcher; libbpf itself has no use for it. Everything else goes to stderr.
int print_libbpf_message(libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  if (std::string_view(format).find("skipping unrecognized data section") != std::string_view::npos) return 0;
  // libbpf's netlink echo of ENOENT when sluice asks whether its egress observer is there: an answer, not an error.
  if (std::string_view(format).find("Kernel error message") != std::string_view::npos) {
    va_list copy;
    va_copy(copy, args);
    const char* text = va_arg(copy, const char*);
    const bool no_filter = text && std::string_view(text).find("Cannot find specified filter chain") != std::string_view::npos;
    va_end(copy);
    if (no_filter) return 0;
  }
  return std::vfprintf(stderr, format, args);
}

// Closes an fd the kernel handed out by id; the only owner, never copied.
class OwnedFd {
 public:
  explicit OwnedFd(int fd) noexcept : fd_(fd) {}
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

}  // namespace

Result<std::vector<std::uint32_t>> program_state_map_ids(int prog_fd) {
  bpf_prog_info counted{};
  std::uint32_t length = sizeof counted;
  if (int err = bpf_obj_get_info_by_fd(prog_fd, &counted, &length); err != 0)
    return maps::make_error("read map ids of", "program", -err);
  std::vector<std::uint32_t> all(counted.nr_map_ids);
  bpf_prog_info listed{};
  listed.nr_map_ids = static_cast<std::uint32_t>(all.size());
  listed.map_ids = reinterpret_cast<std::uint64_t>(all.data());
  length = sizeof listed;
  if (int err = bpf_obj_get_info_by_fd(prog_fd, &listed, &length); err != 0)
    return maps::make_error("read map ids of", "program", -err);
  // A loaded program's maps never change; the kernel fills at most what we asked for.
  all.resize(std::min<std::size_t>(all.size(), listed.nr_map_ids));

  std::vector<std::uint32_t> state;
  for (const std::uint32_t id : all) {
    const OwnedFd map(bpf_map_get_fd_by_id(id));
    if (map.get() < 0) return maps::make_error("open map id", std::to_string(id), -map.get());
    bpf_map_info info{};
    std::uint32_t info_length = sizeof info;
    if (int err = bpf_obj_get_info_by_fd(map.get(), &info, &info_length); err != 0)
      return maps::make_error("read info of map id", std::to_string(id), -err);
    if (!is_internal_map_name(info.name)) state.push_back(id);
  }
  std::sort(state.begin(), state.end());
  return state;
}

Result<std::vector<std::uint32_t>> program_state_map_ids_by_id(std::uint32_t prog_id) {
  const OwnedFd prog(bpf_prog_get_fd_by_id(prog_id));
  if (prog.get() < 0) return maps::make_error("open program id", std::to_string(prog_id), -prog.get());
  return program_state_map_ids(prog.get());
}

sluice_config default_config() {
  sluice_config config{};
  config.version = SLUICE_CONFIG_VERSION;
  config.stages_enabled = SLUICE_STAGES_ALL;
  config.end_verdict = SLUICE_VERDICT_PASS;
  config.tail_call_fail_verdict = SLUICE_VERDICT_PASS;
  config.malformed_verdict = SLUICE_VERDICT_DROP;
  config.non_ip_verdict = SLUICE_VERDICT_PASS;
  config.drop_fragments = 0;
  return config;
}

Result<void> validate_config(const sluice_config& config) {
  constexpr std::string_view pass_or_drop = "must be pass (2) or drop (1)";
  if (config.version != SLUICE_CONFIG_VERSION)
    return config_error("version", config.version, "must be " + std::to_string(SLUICE_CONFIG_VERSION));
  if (config.stages_enabled & ~std::uint32_t{SLUICE_STAGES_ALL})
    return config_error("stages_enabled", config.stages_enabled, "unknown stage bits");
  if (!is_pass_or_drop(config.end_verdict)) return config_error("end_verdict", config.end_verdict, pass_or_drop);
  if (!is_pass_or_drop(config.tail_call_fail_verdict))
    return config_error("tail_call_fail_verdict", config.tail_call_fail_verdict, pass_or_drop);
  if (!is_pass_or_drop(config.malformed_verdict))
    return config_error("malformed_verdict", config.malformed_verdict, pass_or_drop);
  if (!is_pass_or_drop(config.non_ip_verdict)) return config_error("non_ip_verdict", config.non_ip_verdict, pass_or_drop);
  if (config.drop_fragments > 1) return config_error("drop_fragments", config.drop_fragments, "must be 0 or 1");
  return {};
}

void Dataplane::SkeletonDeleter::operator()(sluice_bpf* skeleton) const { sluice_bpf__destroy(skeleton); }
void Dataplane::ObserverDeleter::operator()(egress_observer_bpf* skeleton) const { egress_observer_bpf__destroy(skeleton); }

Result<void> Dataplane::load_observer() {
  std::unique_ptr<egress_observer_bpf, ObserverDeleter> observer(egress_observer_bpf__open());
  if (!observer) return maps::make_error("open", "egress observer BPF object", errno);
  // Every map of the observer is one of the XDP object's, by name: the very same maps, pinned or not.
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, observer->obj) {
    if (is_internal_map(map)) continue;
    const bpf_map* own = bpf_object__find_map_by_name(skeleton_->obj, bpf_map__name(map));
    if (!own)
      return maps::make_error_because("load", "egress observer BPF object",
                                      std::string("map ") + bpf_map__name(map) + " is not in the sluice object", ENOENT);
    if (int err = bpf_map__reuse_fd(map, bpf_map__fd(own)); err != 0)
      return maps::make_error("reuse map for the egress observer", bpf_map__name(map), -err);
  }
  if (int err = egress_observer_bpf__load(observer.get()); err != 0)
    return maps::make_error("load", "egress observer BPF object", -err);
  observer_ = std::move(observer);
  return {};
}

int Dataplane::egress_observer_prog_fd() const {
  return observer_ ? bpf_program__fd(observer_->progs.sluice_egress_observer) : -1;
}

Dataplane::Dataplane(std::unique_ptr<sluice_bpf, SkeletonDeleter> skeleton, maps::StageBanks stages,
                     maps::ArrayMap<sluice_config> config, maps::PerCpuArrayMap<sluice_counter> counters,
                     std::vector<std::string> reused)
    : skeleton_(std::move(skeleton)),
      stages_(std::move(stages)),
      config_(std::move(config)),
      counters_(std::move(counters)),
      reused_maps_(std::move(reused)) {}

Dataplane::Dataplane(Dataplane&&) noexcept = default;
Dataplane& Dataplane::operator=(Dataplane&&) noexcept = default;
Dataplane::~Dataplane() = default;

Result<Dataplane> Dataplane::load(const LoadOptions& options) {
  libbpf_set_print(print_libbpf_message);
  std::unique_ptr<sluice_bpf, SkeletonDeleter> skel(sluice_bpf__open());
  if (!skel) return maps::make_error("open", "sluice BPF object", errno);

  // The operator-sized tables (LoadOptions): each checked, then sized before load.
  struct Sized {
    const char* option;
    std::uint32_t entries;
    std::uint32_t most;
    std::vector<bpf_map*> maps;
  };
  const Sized sized[] = {
      {"conntrack_entries", options.conntrack_entries, kStateEntriesMax,
       {skel->maps.filter_conntrack, skel->maps.filter_conntrack_v4, skel->maps.filter_ct_unreplied,
        skel->maps.filter_ct_unreplied_v4}},
      {"rate_bucket_entries", options.rate_bucket_entries, kStateEntriesMax, {skel->maps.filter_rate_buckets}},
  };
  for (const Sized& table : sized) {
    if (table.entries == 0 || table.entries > table.most)
      return maps::make_error_because("load", "sluice BPF object",
                                      std::string(table.option) + " = " + std::to_string(table.entries) +
                                          ": must be 1.." + std::to_string(table.most),
                                      EINVAL);
    for (bpf_map* map : table.maps)
      if (int err = bpf_map__set_max_entries(map, table.entries); err != 0)
        return maps::make_error("size", bpf_map__name(map), -err);
  }

  if (options.lb_conn_entries == 0 || options.lb_conn_entries > kLbConnEntriesMax)
    return maps::make_error_because("load", "sluice BPF object",
                                    "lb_conn_entries = " + std::to_string(options.lb_conn_entries) + ": must be 1.." +
                                        std::to_string(kLbConnEntriesMax),
                                    EINVAL);
  for (bpf_map* conns : {skel->maps.lb_conns_v4, skel->maps.lb_conns}) {
    if (int err = bpf_map__set_max_entries(conns, options.lb_conn_entries); err != 0)
      return maps::make_error("size", bpf_map__name(conns), -err);
    if (options.lb_conn_per_cpu_lru) {
      if (int err = bpf_map__set_map_flags(conns, bpf_map__map_flags(conns) | BPF_F_NO_COMMON_LRU); err != 0)
        return maps::make_error("set BPF_F_NO_COMMON_LRU on", bpf_map__name(conns), -err);
    }
  }

  std::vector<std::string> reused;
  const bool pinning = !options.pin_dir.empty();
  if (pinning) {
    if (auto made = ensure_dir(options.pin_dir); !made) return made.error();
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, skel->obj) {
      if (is_internal_map(map)) continue;
      const std::string path = options.pin_dir + "/" + bpf_map__name(map);
      auto found = maps::reuse_pinned(skel->obj, map, path);
      if (!found) return found.error();
      if (*found) reused.emplace_back(bpf_map__name(map));
    }
  }

  if (int err = sluice_bpf__load(skel.get()); err != 0) return maps::make_error("load", "sluice BPF object", -err);

  if (pinning) {
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, skel->obj) {
      if (is_internal_map(map)) continue;
      const std::string name = bpf_map__name(map);
      if (std::find(reused.begin(), reused.end(), name) != reused.end()) continue;
      if (int err = bpf_map__pin(map, (options.pin_dir + "/" + name).c_str()); err != 0)
        return maps::make_error("pin", options.pin_dir + "/" + name, -err, maps::ErrnoSubject::Path);
    }
  }

  auto bank0_fd = maps::MapFd::from_skeleton(skel->maps.stage_progs);
  if (!bank0_fd) return bank0_fd.error();
  auto bank0 = maps::ProgArray::from(std::move(*bank0_fd));
  if (!bank0) return bank0.error();
  auto bank1_fd = maps::MapFd::from_skeleton(skel->maps.stage_progs_b1);
  if (!bank1_fd) return bank1_fd.error();
  auto bank1 = maps::ProgArray::from(std::move(*bank1_fd));
  if (!bank1) return bank1.error();
  auto selector_fd = maps::MapFd::from_skeleton(skel->maps.stage_bank);
  if (!selector_fd) return selector_fd.error();
  auto selector = maps::ArrayMap<std::uint32_t>::from(std::move(*selector_fd));
  if (!selector) return selector.error();
  static_assert(maps::StageBanks::kBanks == SLUICE_STAGE_BANKS);
  auto stages = maps::StageBanks::from({std::move(*bank0), std::move(*bank1)}, std::move(*selector));
  if (!stages) return stages.error();
  auto config_fd = maps::MapFd::from_skeleton(skel->maps.config);
  if (!config_fd) return config_fd.error();
  auto config = maps::ArrayMap<sluice_config>::from(std::move(*config_fd));
  if (!config) return config.error();
  auto counters_fd = maps::MapFd::from_skeleton(skel->maps.verdict_counters);
  if (!counters_fd) return counters_fd.error();
  auto counters = maps::PerCpuArrayMap<sluice_counter>::from(std::move(*counters_fd));
  if (!counters) return counters.error();

  Dataplane plane(std::move(skel), std::move(*stages), std::move(*config), std::move(*counters), std::move(reused));
  if (auto observer = plane.load_observer(); !observer) return observer.error();
  // A fresh config slot reads as version 0; a reused one keeps the operator's settings.
  auto current = plane.config();
  if (!current) return current.error();
  if (current->version != SLUICE_CONFIG_VERSION) {
    if (auto written = plane.set_config(default_config()); !written) return written.error();
  }
  return plane;
}

int Dataplane::entry_prog_fd() const { return bpf_program__fd(skeleton_->progs.sluice_entry); }

int Dataplane::stage_prog_fd(sluice_stage stage) const {
  const bpf_program* prog = stage_program(skeleton_.get(), stage);
  return prog ? bpf_program__fd(prog) : -1;
}

Result<std::vector<TableInfo>> Dataplane::tables() const {
  const std::pair<const bpf_map*, const char*> operator_sized[] = {
      {skeleton_->maps.filter_conntrack, "conntrack_entries"},
      {skeleton_->maps.filter_conntrack_v4, "conntrack_entries"},
      {skeleton_->maps.filter_ct_unreplied, "conntrack_entries"},
      {skeleton_->maps.filter_ct_unreplied_v4, "conntrack_entries"},
      {skeleton_->maps.filter_rate_buckets, "rate_bucket_entries"},
      {skeleton_->maps.lb_conns_v4, "lb_conn_entries"},
      {skeleton_->maps.lb_conns, "lb_conn_entries"},
  };
  std::vector<TableInfo> out;
  const bpf_map* map = nullptr;
  bpf_object__for_each_map(map, skeleton_->obj) {
    if (bpf_map__is_internal(map)) continue;
    TableInfo info{.name = bpf_map__name(map),
                   .type = std::string(maps::map_type_name(bpf_map__type(map))),
                   .max_entries = bpf_map__max_entries(map)};
    auto bytes = maps::map_memory_bytes(bpf_map__fd(map), info.name);
    if (!bytes) return bytes.error();
    info.memory_bytes = *bytes;
    for (const auto& [sized, option] : operator_sized)
      if (sized == map) info.sized_by = option;
    out.push_back(std::move(info));
  }
  return out;
}

Result<void> Dataplane::install_stages() {
  std::array<int, SLUICE_STAGE_COUNT> programs{};
  for (std::uint32_t stage = 0; stage < SLUICE_STAGE_COUNT; ++stage)
    programs[stage] = stage_prog_fd(static_cast<sluice_stage>(stage));
  return stages_.install(programs);
}

Result<void> Dataplane::remove_stage(sluice_stage stage) {
  auto cleared = stages_.clear(stage);
  if (!cleared) return cleared.error();
  return {};
}

Result<std::optional<std::uint32_t>> Dataplane::installed_stage_id(sluice_stage stage) const {
  return stages_.lookup(stage);
}

Result<sluice_config> Dataplane::config() const {
  auto value = config_.lookup(config_slot);
  if (!value) return value.error();
  if (!*value) return maps::make_error("lookup", "config", ENOENT, maps::ErrnoSubject::Element);
  return **value;
}

Result<void> Dataplane::set_config(const sluice_config& config) {
  if (auto valid = validate_config(config); !valid) return valid;
  return config_.update(config_slot, config);
}

Result<sluice_counter> Dataplane::verdict_count(sluice_verdict verdict, sluice_reason reason) const {
  auto per_cpu = counters_.lookup(contract::counter_index(verdict, reason));
  if (!per_cpu) return per_cpu.error();
  if (!*per_cpu) return sluice_counter{};
  return maps::sum(**per_cpu, [](sluice_counter& total, const sluice_counter& cpu) {
    total.packets += cpu.packets;
    total.bytes += cpu.bytes;
  });
}

Result<std::vector<VerdictCount>> Dataplane::verdict_counts() const {
  std::vector<VerdictCount> counts;
  for (unsigned verdict = 0; verdict < SLUICE_VERDICT_COUNT; ++verdict) {
    for (unsigned reason = 0; reason < SLUICE_REASON_MAX; ++reason) {
      auto count = verdict_count(static_cast<sluice_verdict>(verdict), static_cast<sluice_reason>(reason));
      if (!count) return count.error();
      if (count->packets != 0)
        counts.push_back({static_cast<sluice_verdict>(verdict), static_cast<sluice_reason>(reason), *count});
    }
  }
  return counts;
}

}  // namespace sluice::dataplane
