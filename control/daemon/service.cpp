#include "service.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "names.hpp"
#include "tc_attachment.hpp"
#include "spdlog/spdlog.h"

namespace sluice::daemon {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using protocol::ErrorCode;
using protocol::ProtocolError;

constexpr std::uint32_t prog_tag_bytes = BPF_TAG_SIZE;

ProtocolError failed(const maps::Error& error) { return ProtocolError{ErrorCode::Failed, error.message}; }
ProtocolError bad_args(std::string message) { return ProtocolError{ErrorCode::BadArgs, std::move(message)}; }

dataplane::AttachMode to_dataplane(protocol::AttachMode mode) {
  return mode == protocol::AttachMode::Skb ? dataplane::AttachMode::Skb : dataplane::AttachMode::Native;
}
protocol::AttachMode to_protocol(dataplane::AttachMode mode) {
  return mode == dataplane::AttachMode::Skb ? protocol::AttachMode::Skb : protocol::AttachMode::Native;
}

// An interface is attached as a pair: the XDP entry program, and the TC
// egress observer that sees the replies leaving through it (conntrack marks
// a flow established only when its reply was seen). One without the other
// is undone.
Result<dataplane::AttachedProgram> attach_with_observer(const dataplane::Dataplane& plane, const std::string& ifname,
                                                        dataplane::AttachMode mode) {
  auto attached = dataplane::attach_xdp(plane.entry_prog_fd(), ifname, mode);
  if (!attached) return attached.error();
  if (auto observer = dataplane::attach_egress_observer(plane.egress_observer_prog_fd(), ifname); !observer) {
    if (auto undone = dataplane::detach_xdp(ifname); !undone) spdlog::error("rollback of {}: {}", ifname, undone.error().message);
    return observer.error();
  }
  return attached;
}

Result<bool> detach_with_observer(const std::string& ifname) {
  if (auto observer = dataplane::detach_egress_observer(ifname); !observer) return observer.error();
  return dataplane::detach_xdp(ifname);
}

// At start: every interface running sluice gets this build's egress observer (replacing an older one in place).
void restore_egress_observers(const dataplane::Dataplane& plane, const std::vector<InterfaceRecord>& records,
                              std::string_view entry_prog_name) {
  for (const auto& record : records) {
    if (if_nametoindex(record.name.c_str()) == 0) continue;
    auto found = dataplane::find_attached(record.name, entry_prog_name);
    if (!found || !*found) continue;  // not running sluice: nothing to observe for
    if (auto observer = dataplane::attach_egress_observer(plane.egress_observer_prog_fd(), record.name); !observer)
      spdlog::error("{}: egress observer: {} (replies leaving here are not seen)", record.name, observer.error().message);
  }
}

json::object attached_to_json(const dataplane::AttachedProgram& attached) {
  return json::object{{"name", attached.ifname},
                      {"ifindex", attached.ifindex},
                      {"mode", dataplane::to_string(attached.mode)},
                      {"dispatcher", attached.dispatcher},
                      {"prog_id", attached.prog_id},
                      {"attached", true}};
}

struct ProgIdentity {
  std::uint32_t id = 0;
  std::array<std::uint8_t, prog_tag_bytes> tag{};  // hash of the instructions: equal tags, same build
};

Result<ProgIdentity> identify_prog_fd(int fd) {
  bpf_prog_info info{};
  std::uint32_t length = sizeof info;
  if (int err = bpf_obj_get_info_by_fd(fd, &info, &length); err != 0) return maps::make_error("read info of", "program", -err);
  ProgIdentity identity{info.id, {}};
  std::memcpy(identity.tag.data(), info.tag, prog_tag_bytes);
  return identity;
}

Result<ProgIdentity> identify_prog_id(std::uint32_t id) {
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return maps::make_error("open program id", std::to_string(id), -fd);
  auto identity = identify_prog_fd(fd);
  ::close(fd);
  return identity;
}

bool interface_exists(const std::string& name) { return if_nametoindex(name.c_str()) != 0; }

}  // namespace

json::object config_to_json(const sluice_config& config, std::uint32_t drop_sample_every) {
  auto verdict = [](std::uint32_t value) { return dataplane::verdict_name(static_cast<sluice_verdict>(value)); };
  auto stage_on = [&](sluice_stage stage) { return (config.stages_enabled & SLUICE_STAGE_BIT(stage)) != 0; };
  return json::object{
      {"end_verdict", verdict(config.end_verdict)},
      {"tail_call_fail_verdict", verdict(config.tail_call_fail_verdict)},
      {"malformed_verdict", verdict(config.malformed_verdict)},
      {"non_ip_verdict", verdict(config.non_ip_verdict)},
      {"drop_fragments", config.drop_fragments != 0},
      {"stages",
       json::object{{"filter", stage_on(SLUICE_STAGE_FILTER)},
                    {"lb", stage_on(SLUICE_STAGE_LB)},
                    {"forward", stage_on(SLUICE_STAGE_FORWARD)}}},
      {"drop_sample_every", drop_sample_every},
  };
}

config::Defaults defaults_of(const sluice_config& config, const filter::FilterSettings& settings) {
  // Anything but drop is pass: the config array only ever holds the two.
  auto verdict = [](std::uint32_t value) { return value == SLUICE_VERDICT_DROP ? SLUICE_VERDICT_DROP : SLUICE_VERDICT_PASS; };
  config::Defaults out;
  out.end_verdict = verdict(config.end_verdict);
  out.tail_call_fail_verdict = verdict(config.tail_call_fail_verdict);
  out.malformed_verdict = verdict(config.malformed_verdict);
  out.non_ip_verdict = verdict(config.non_ip_verdict);
  out.drop_fragments = config.drop_fragments != 0;
  out.stages = config.stages_enabled & (SLUICE_STAGES_ALL);
  out.drop_sample_every = settings.drop_sample_every;
  return out;
}

sluice_config apply_defaults(sluice_config config, const config::Defaults& d) {
  if (d.end_verdict) config.end_verdict = *d.end_verdict;
  if (d.tail_call_fail_verdict) config.tail_call_fail_verdict = *d.tail_call_fail_verdict;
  if (d.malformed_verdict) config.malformed_verdict = *d.malformed_verdict;
  if (d.non_ip_verdict) config.non_ip_verdict = *d.non_ip_verdict;
  if (d.drop_fragments) config.drop_fragments = *d.drop_fragments ? 1 : 0;
  if (d.stages) config.stages_enabled = *d.stages;
  return config;
}

sluice_config apply_patch(sluice_config config, const protocol::ConfigPatch& patch) {
  auto verdict = [](protocol::Verdict v) -> std::uint32_t {
    return v == protocol::Verdict::Drop ? SLUICE_VERDICT_DROP : SLUICE_VERDICT_PASS;
  };
  if (patch.end_verdict) config.end_verdict = verdict(*patch.end_verdict);
  if (patch.tail_call_fail_verdict) config.tail_call_fail_verdict = verdict(*patch.tail_call_fail_verdict);
  if (patch.malformed_verdict) config.malformed_verdict = verdict(*patch.malformed_verdict);
  if (patch.non_ip_verdict) config.non_ip_verdict = verdict(*patch.non_ip_verdict);
  if (patch.drop_fragments) config.drop_fragments = *patch.drop_fragments ? 1 : 0;
  auto set_stage = [&](const std::optional<bool>& on, sluice_stage stage) {
    if (!on) return;
    if (*on) config.stages_enabled |= SLUICE_STAGE_BIT(stage);
    else config.stages_enabled &= ~SLUICE_STAGE_BIT(stage);
  };
  set_stage(patch.stages.filter, SLUICE_STAGE_FILTER);
  set_stage(patch.stages.lb, SLUICE_STAGE_LB);
  set_stage(patch.stages.forward, SLUICE_STAGE_FORWARD);
  return config;
}

Service::Service(dataplane::Dataplane& plane, filter::FilterTable& table, StateStore& store, ServicePaths paths,
                 std::string version)
    : plane_(plane),
      table_(table),
      store_(store),
      paths_(std::move(paths)),
      version_(std::move(version)),
      started_(std::chrono::steady_clock::now()) {}

std::vector<InterfaceRecord> Service::interfaces() const {
  std::vector<InterfaceRecord> records;
  for (const auto& spec : store_.live().interfaces.value_or(std::vector<config::InterfaceSpec>{}))
    records.push_back({spec.name, to_protocol(spec.mode)});
  return records;
}

Result<void> Service::save_interfaces(const std::vector<InterfaceRecord>& interfaces) {
  config::DesiredState next = store_.live();
  next.interfaces.emplace();
  for (const auto& record : interfaces) next.interfaces->push_back({record.name, to_dataplane(record.mode)});
  return store_.commit(std::move(next));
}

Result<void> Service::reconcile_interfaces(const std::vector<config::InterfaceSpec>& from,
                                           const std::vector<config::InterfaceSpec>& to) {
  auto find = [](const std::vector<config::InterfaceSpec>& list, const std::string& name) {
    return std::find_if(list.begin(), list.end(), [&](const auto& spec) { return spec.name == name; });
  };
  // Steps done so far, undone in reverse on a failure.
  struct Step {
    config::InterfaceSpec spec;
    bool attached;  // false: detached
  };
  std::vector<Step> done;
  auto undo = [&] {
    for (auto step = done.rbegin(); step != done.rend(); ++step) {
      std::optional<maps::Error> error;
      if (step->attached) {
        if (auto undone = detach_with_observer(step->spec.name); !undone) error = undone.error();
      } else if (auto undone = attach_with_observer(plane_, step->spec.name, step->spec.mode); !undone) {
        error = undone.error();
      }
      if (error) spdlog::error("rollback of interface {}: {}", step->spec.name, error->message);
    }
  };
  auto running_here = [&](const std::string& name) -> Result<std::optional<dataplane::AttachedProgram>> {
    if (!interface_exists(name)) return std::optional<dataplane::AttachedProgram>{};
    return dataplane::find_attached(name, entry_prog_name);
  };
  for (const auto& old : from) {
    auto wanted = find(to, old.name);
    if (wanted != to.end() && wanted->mode == old.mode) continue;
    auto running = running_here(old.name);
    if (!running) return undo(), running.error();
    if (!*running) continue;
    if (auto detached = detach_with_observer(old.name); !detached) return undo(), detached.error();
    done.push_back({old, false});
  }
  for (const auto& spec : to) {
    auto running = running_here(spec.name);
    if (!running) return undo(), running.error();
    if (*running && (*running)->mode == spec.mode) continue;  // already there (idempotent, as attach)
    if (*running) {
      undo();
      return maps::make_error_because("attach", spec.name,
                                      "already attached in " + std::string(dataplane::to_string((*running)->mode)) +
                                          " mode by something else than this state",
                                      EBUSY);
    }
    auto attached = attach_with_observer(plane_, spec.name, spec.mode);
    if (!attached) return undo(), attached.error();
    done.push_back({spec, true});
  }
  if (!done.empty())
    if (auto pinned = pin_entry_program(); !pinned) spdlog::warn("{}", pinned.error().message);
  return {};
}

Result<void> Service::pin_entry_program() {
  if (paths_.pin_dir.empty()) return {};
  const std::string path = paths_.pin_dir + "/" + std::string(entry_prog_pin);
  auto ours = identify_prog_fd(plane_.entry_prog_fd());
  if (!ours) return ours.error();
  if (const int pinned = bpf_obj_get(path.c_str()); pinned >= 0) {
    auto existing = identify_prog_fd(pinned);
    ::close(pinned);
    if (existing && existing->id == ours->id) return {};
    ::unlink(path.c_str());  // an older build's entry program: the pin follows the running one
  }
  if (int err = bpf_obj_pin(plane_.entry_prog_fd(), path.c_str()); err != 0)
    return maps::make_error("pin entry program at", path, -err, maps::ErrnoSubject::Path);
  return {};
}

namespace {

std::string ids_text(const std::vector<std::uint32_t>& ids) {
  std::string text;
  for (const std::uint32_t id : ids) text += (text.empty() ? "" : ",") + std::to_string(id);
  return "[" + text + "]";
}

}  // namespace

std::vector<std::string> Service::restore_interfaces() {
  std::vector<std::string> not_enforcing;
  const std::vector<InterfaceRecord> recorded_now = interfaces();
  auto ours = identify_prog_fd(plane_.entry_prog_fd());
  // The maps this daemon's entry program uses: the pinned ones it reused, or
  // new ones when the pins were gone (pin dir removed, another --bpffs, bpffs
  // remounted). A program attached on other maps would tail-call a stage
  // array that nobody fills and pass every packet while status shows rules.
  auto our_maps = dataplane::program_state_map_ids(plane_.entry_prog_fd());
  if (!our_maps) spdlog::error("{}", our_maps.error().message);
  bool older_entry_kept = false;
  for (const auto& record : recorded_now) {
    if (!interface_exists(record.name)) {
      spdlog::warn("interface {} of {} does not exist (yet); it stays in the state, attach it again when it is back",
                   record.name, store_.path());
      continue;
    }
    auto found = dataplane::find_attached(record.name, entry_prog_name);
    if (!found) {
      spdlog::error("{}", found.error().message);
      continue;
    }
    if (!*found) {
      // Cold start (reboot, or someone detached it): restore the operator's attachment.
      auto attached = attach_with_observer(plane_, record.name, to_dataplane(record.mode));
      if (!attached) spdlog::error("re-attach {}: {}", record.name, attached.error().message);
      else spdlog::info("attached {} ({}) again, prog id {}", record.name, protocol::to_string(record.mode), attached->prog_id);
      continue;
    }
    const auto& running = **found;
    auto identity = identify_prog_id(running.prog_id);
    auto running_maps = dataplane::program_state_map_ids_by_id(running.prog_id);
    if (!running_maps) spdlog::error("{}: {}", record.name, running_maps.error().message);
    // Unknown map ids count as different: replacing is safe, keeping may not be.
    const bool same_maps = our_maps && running_maps && *running_maps == *our_maps;
    const bool same_build = ours && identity && identity->tag == ours->tag;
    if (same_build && same_maps) {
      spdlog::info("{}: entry program id {} is this build's on this daemon's maps; kept attached, the new stages are "
                   "in the program array",
                   record.name, running.prog_id);
      continue;
    }
    if (!same_maps)
      spdlog::warn("{}: entry program id {} runs on maps {}, not this daemon's {} (pins removed, --bpffs changed or "
                   "bpffs remounted): it must be replaced, it would pass packets past rules it cannot see",
                   record.name, running.prog_id, running_maps ? ids_text(*running_maps) : "(unknown)",
                   our_maps ? ids_text(*our_maps) : "(unknown)");
    // An older build's entry program on our maps keeps running and tail-calls
    // into the pinned program array, which now holds this build's stages, so
    // stage upgrades need no re-attach. Only the parser itself is older: swap
    // it atomically where the kernel allows (legacy attachment).
    if (running.dispatcher) {
      if (same_maps) {
        older_entry_kept = true;
        spdlog::warn("{}: entry program id {} is an older build inside libxdp's dispatcher; it keeps running with the "
                     "new stages (detach and attach to upgrade the parser)",
                     record.name, running.prog_id);
        continue;
      }
      // libxdp rebuilds its dispatcher for a detach and an attach: a short
      // gap without sluice on this interface, instead of one without rules.
      auto detached = dataplane::detach_program(running);
      auto attached = detached ? dataplane::attach_xdp(plane_.entry_prog_fd(), record.name, to_dataplane(record.mode))
                               : maps::Result<dataplane::AttachedProgram>(detached.error());
      if (!attached) {
        older_entry_kept = true;
        spdlog::critical("{}: entry program id {} on foreign maps could not be replaced: {}", record.name,
                         running.prog_id, attached.error().message);
        not_enforcing.push_back(record.name + ": an entry program on other maps (id " + std::to_string(running.prog_id) +
                                ") could not be replaced and does not apply these rules: " + attached.error().message);
      } else {
        spdlog::info("{}: replaced entry program id {} inside the dispatcher by id {}", record.name, running.prog_id,
                     attached->prog_id);
      }
      continue;
    }
    if (auto replaced = dataplane::replace_legacy_attachment(running, plane_.entry_prog_fd()); !replaced) {
      older_entry_kept = true;
      if (same_maps)
        spdlog::warn("{} (the older entry program keeps running with the new stages)", replaced.error().message);
      else {
        spdlog::critical("{}: the entry program on foreign maps keeps running and does not apply this daemon's rules",
                         replaced.error().message);
        not_enforcing.push_back(record.name + ": an entry program on other maps (id " + std::to_string(running.prog_id) +
                                ") keeps running and does not apply these rules: " + replaced.error().message);
      }
    } else {
      spdlog::info("{}: replaced entry program id {} atomically", record.name, running.prog_id);
    }
  }
  if (!older_entry_kept) {
    if (auto pinned = pin_entry_program(); !pinned) spdlog::error("{}", pinned.error().message);
  }
  restore_egress_observers(plane_, recorded_now, entry_prog_name);
  return not_enforcing;
}

OpResult Service::status() const {
  json::array interfaces;
  for (const auto& record : this->interfaces()) {
    auto found = interface_exists(record.name) ? dataplane::find_attached(record.name, entry_prog_name)
                                               : maps::Result<std::optional<dataplane::AttachedProgram>>(std::nullopt);
    if (found && *found) {
      interfaces.push_back(attached_to_json(**found));
    } else {
      // Desired but not attached now (interface gone, or detached behind our back).
      interfaces.push_back(json::object{{"name", record.name},
                                        {"ifindex", if_nametoindex(record.name.c_str())},
                                        {"mode", protocol::to_string(record.mode)},
                                        {"dispatcher", false},
                                        {"prog_id", 0},
                                        {"attached", false}});
    }
  }
  json::object stages;
  for (auto [stage, name] : {std::pair{SLUICE_STAGE_FILTER, "filter"}, std::pair{SLUICE_STAGE_LB, "lb"},
                             std::pair{SLUICE_STAGE_FORWARD, "forward"}}) {
    auto installed = plane_.installed_stage_id(stage);
    stages[name] = installed && installed->has_value();
  }
  json::array reused;
  for (const auto& name : plane_.reused_maps()) reused.emplace_back(name);
  // The generation changes with every rule set made live (rule.*, limit.*,
  // apply), so an operator sees whether a change reached the data plane.
  const filter::RuleSet& live_set = table_.rule_set();
  json::object filter{{"generation", table_.rule_set_generation()},
                      {"rules", live_set.rules.size()},
                      {"prefixes", live_set.prefixes.size()},
                      {"rate_classes", live_set.rate_classes.size()}};
  const std::chrono::duration<double> uptime = std::chrono::steady_clock::now() - started_;
  return json::value(json::object{{"version", version_},
                                  {"pid", ::getpid()},
                                  {"uptime_seconds", uptime.count()},
                                  {"pin_dir", paths_.pin_dir},
                                  {"interfaces", std::move(interfaces)},
                                  {"stages", std::move(stages)},
                                  {"filter", std::move(filter)},
                                  {"reused_maps", std::move(reused)}});
}

OpResult Service::attach(const protocol::AttachArgs& args) {
  const std::vector<InterfaceRecord> recorded_now = interfaces();
  if (!interface_exists(args.iface)) return bad_args("attach: iface: no interface named '" + args.iface + "'");
  auto current = dataplane::find_attached(args.iface, entry_prog_name);
  if (!current) return failed(current.error());
  const bool recorded = std::any_of(recorded_now.begin(), recorded_now.end(),
                                    [&](const auto& record) { return record.name == args.iface; });
  std::vector<InterfaceRecord> next = recorded_now;
  if (!recorded) next.push_back({args.iface, args.mode});
  if (*current) {
    if (to_protocol((*current)->mode) != args.mode)
      return bad_args("attach: mode: " + args.iface + " is already attached in " +
                      std::string(dataplane::to_string((*current)->mode)) + " mode; detach it first to use " +
                      std::string(protocol::to_string(args.mode)));
    // Already running sluice: make it part of the state (idempotent attach).
    if (auto saved = save_interfaces(next); !saved) return failed(saved.error());
    return json::value(attached_to_json(**current));
  }
  for (auto& record : next)
    if (record.name == args.iface) record.mode = args.mode;
  auto attached = attach_with_observer(plane_, args.iface, to_dataplane(args.mode));
  if (!attached) return failed(attached.error());
  if (auto saved = save_interfaces(next); !saved) {
    // Roll back: an attachment the state file does not know would not survive a restart as promised.
    if (auto undone = detach_with_observer(args.iface); !undone) spdlog::error("rollback: {}", undone.error().message);
    return failed(saved.error());
  }
  if (auto pinned = pin_entry_program(); !pinned) spdlog::warn("{}", pinned.error().message);
  spdlog::info("attached {} ({}), prog id {}{}", args.iface, protocol::to_string(args.mode), attached->prog_id,
               attached->dispatcher ? " in libxdp's dispatcher" : "");
  return json::value(attached_to_json(*attached));
}

OpResult Service::detach(const protocol::DetachArgs& args) {
  const std::vector<InterfaceRecord> recorded_now = interfaces();
  const bool recorded = std::any_of(recorded_now.begin(), recorded_now.end(),
                                    [&](const auto& record) { return record.name == args.iface; });
  std::vector<InterfaceRecord> next;
  std::copy_if(recorded_now.begin(), recorded_now.end(), std::back_inserter(next),
               [&](const auto& record) { return record.name != args.iface; });
  std::optional<dataplane::AttachedProgram> running;
  if (interface_exists(args.iface)) {
    auto found = dataplane::find_attached(args.iface, entry_prog_name);
    if (!found) return failed(found.error());
    running = *found;
  }
  if (!running && !recorded) return bad_args("detach: iface: sluice is not attached to '" + args.iface + "'");
  // State first: if the detach then fails, the old state is written back.
  if (auto saved = save_interfaces(next); !saved) return failed(saved.error());
  if (running) {
    auto detached = detach_with_observer(args.iface);
    if (!detached) {
      if (auto restored = save_interfaces(recorded_now); !restored) spdlog::error("rollback: {}", restored.error().message);
      return failed(detached.error());
    }
  }
  spdlog::info("detached {}", args.iface);
  return json::value(json::object{{"name", args.iface}, {"detached", running.has_value()}});
}

OpResult Service::config_get() const {
  auto config = plane_.config();
  if (!config) return failed(config.error());
  auto settings = table_.settings();
  if (!settings) return failed(settings.error());
  return json::value(config_to_json(*config, settings->drop_sample_every));
}

OpResult Service::stats() const {
  auto counts = plane_.verdict_counts();
  if (!counts) return failed(counts.error());
  json::array counters;
  for (const auto& count : *counts)
    counters.push_back(json::object{{"verdict", dataplane::verdict_name(count.verdict)},
                                    {"reason", dataplane::reason_name(count.reason)},
                                    {"packets", count.total.packets},
                                    {"bytes", count.total.bytes}});
  return json::value(json::object{{"counters", std::move(counters)}});
}

OpResult Service::detach_everything() {
  json::array detached;
  json::array errors;
  for (const auto& record : interfaces()) {
    if (!interface_exists(record.name)) continue;
    auto found = dataplane::find_attached(record.name, entry_prog_name);
    if (!found || !*found) continue;  // not ours: never detach someone else's program
    auto done = detach_with_observer(record.name);
    if (done) detached.emplace_back(record.name);
    else errors.emplace_back(done.error().message);
  }
  if (auto saved = save_interfaces({}); !saved) errors.emplace_back(saved.error().message);
  if (!paths_.pin_dir.empty()) {
    // Pins are only references: the maps and programs go away once nothing uses them.
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(paths_.pin_dir, ec)) {
      if (::unlink(entry.path().c_str()) != 0) errors.emplace_back("unpin " + entry.path().string() + ": " + std::strerror(errno));
    }
    if (::rmdir(paths_.pin_dir.c_str()) != 0 && errno != ENOENT)
      errors.emplace_back("remove " + paths_.pin_dir + ": " + std::strerror(errno));
  }
  return json::value(json::object{{"detached", std::move(detached)}, {"errors", std::move(errors)}});
}

}  // namespace sluice::daemon
