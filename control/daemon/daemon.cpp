#include "daemon.hpp"

#include "decimal.hpp"

#include <signal.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <bpf/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <tuple>

#include "block_load.hpp"
#include "daemon_metrics.hpp"
#include "dataplane.hpp"
#include "event_hub.hpp"
#include "filter_ops.hpp"
#include "health_checker.hpp"
#include "lb_metrics.hpp"
#include "lb_ops.hpp"
#include "redirect_errors.hpp"
#include "redirect_metrics.hpp"
#include "route_metrics.hpp"
#include "route_ops.hpp"
#include "http_server.hpp"
#include "status_pages.hpp"
#include "server.hpp"
#include "service.hpp"
#include "sluice.skel.h"
#include "state_ops.hpp"
#include "state_store.hpp"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "system.hpp"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0-dev"
#endif

namespace sluice::daemon {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

constexpr int exit_ok = 0;
constexpr int exit_startup_failed = 1;
constexpr int exit_usage = 2;
constexpr mode_t state_dir_mode = 0750;
// Clients must reach the socket (its own mode and group decide who may connect).
constexpr mode_t socket_dir_mode = 0755;

// Adapts a typed op (args parser + service method) to a registry handler.
template <class Parse, class Run>
OpRegistry::Handler op(Parse parse, Run run) {
  return {[parse, run](const json::object& args) -> OpResult {
            auto parsed = parse(args);
            if (!parsed) return parsed.error();
            return run(*parsed);
          },
          nullptr};
}

template <class Run>
OpRegistry::Handler no_args_op(std::string name, Run run) {
  return {[name, run](const json::object& args) -> OpResult {
            if (auto none = protocol::parse_no_args(name, args); !none) return none.error();
            return run();
          },
          nullptr};
}

}  // namespace

std::string_view version() { return SLUICE_VERSION; }

maps::Result<std::uint64_t> parse_count_option(std::string_view option, std::string_view text, std::uint64_t least,
                                               std::uint64_t most, std::string_view unit) {
  // Decimal only, as every integer sluice takes (maps/decimal.hpp): "010" is refused, not read as 10.
  const auto parsed = maps::parse_decimal(text, least, most);
  if (!parsed.value)
    return maps::make_error_because(option, "'" + std::string(text.substr(0, 64)) + "'",
                                    parsed.reason + " (" + std::string(unit) + ")", EINVAL);
  return *parsed.value;
}

maps::Result<std::uint32_t> parse_blocklist_tbl8_groups(std::string_view text) {
  auto parsed = parse_count_option("--blocklist-tbl8-groups", text, 1, SLUICE_DIR24_8_TBL8_GROUPS_MAX,
                                   "most tbl8 groups of 1 KiB per IPv4 prefix-list copy");
  if (!parsed) return parsed.error();
  return static_cast<std::uint32_t>(*parsed);
}

maps::Result<void> check_pinned_size(const std::string& pin_dir, std::string_view map_name, std::string_view option,
                                     std::uint32_t entries) {
  const std::string path = pin_dir + "/" + std::string(map_name);
  const int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    if (errno == ENOENT) return {};  // a first start: the map is created with `entries`
    return maps::make_error("open pinned map", path, errno, maps::ErrnoSubject::Path);
  }
  bpf_map_info info{};
  std::uint32_t length = sizeof info;
  const int err = bpf_obj_get_info_by_fd(fd, &info, &length);
  ::close(fd);
  if (err != 0) return maps::make_error("read info of pinned map", path, -err);
  if (info.max_entries == entries) return {};
  return maps::make_error_because(
      std::string(option) + " " + std::to_string(entries), path,
      "the pinned map was created with " + std::to_string(info.max_entries) +
          " entries and a map keeps its size; restart with " + std::string(option) + " " +
          std::to_string(info.max_entries) + ", or resize by `sluicectl shutdown --detach` (detaches and removes "
          "the pins; traffic is not filtered until the next start attaches again) and start with the new value",
      EEXIST);
}

int run(const DaemonOptions& options) {
  // stdout is for nothing: logs go to stderr (journald picks them up from there).
  spdlog::set_default_logger(spdlog::stderr_color_mt("sluiced"));
  const auto level = spdlog::level::from_str(options.log_level);
  if (level == spdlog::level::off && options.log_level != "off") {
    spdlog::error("--log-level '{}': expected trace, debug, info, warn, error, critical or off", options.log_level);
    return exit_usage;
  }
  spdlog::set_level(level);
  ::signal(SIGPIPE, SIG_IGN);  // a client gone mid-reply is an error code, not a dead daemon

  std::optional<gid_t> admin_gid, socket_gid;
  if (options.admin_group) {
    auto gid = lookup_group(*options.admin_group);
    if (!gid) return spdlog::error("--admin-group: {}", gid.error().message), exit_usage;
    admin_gid = *gid;
  }
  if (options.socket_group) {
    auto gid = lookup_group(*options.socket_group);
    if (!gid) return spdlog::error("--socket-group: {}", gid.error().message), exit_usage;
    socket_gid = *gid;
  } else {
    socket_gid = admin_gid;
  }
  std::optional<asio::ip::tcp::endpoint> metrics_endpoint;
  if (options.metrics_address != "off") {
    auto parsed = metrics::parse_listen_address(options.metrics_address);
    if (auto* error = std::get_if<std::string>(&parsed)) return spdlog::error("--metrics: {}", *error), exit_usage;
    metrics_endpoint = std::get<asio::ip::tcp::endpoint>(parsed);
  }
  bool status_page = false;
  {
    // Checked even with --metrics off, so a mistyped value is never silently ignored.
    auto enabled = status_page_enabled(options.status_page, metrics_endpoint.value_or(asio::ip::tcp::endpoint{}));
    if (auto* error = std::get_if<std::string>(&enabled)) return spdlog::error("{}", *error), exit_usage;
    status_page = metrics_endpoint && std::get<bool>(enabled);
  }

  std::optional<std::string_view> kill_before;
  if (options.fault_kill_before) {
    for (std::string_view step : fault_kill_steps)
      if (step == *options.fault_kill_before) kill_before = step;
    for (std::string_view step : fault_kill_journal_steps)
      if (step == *options.fault_kill_before) kill_before = step;
    for (std::string_view step : fault_kill_part_steps)
      if (step == *options.fault_kill_before) kill_before = step;
    if (!kill_before)
      return spdlog::error("--fault-kill-before '{}': expected filter-set, filter-settings, lb, forward, config, "
                           "interfaces, persist, rename, journal or journal-synced",
                           *options.fault_kill_before),
             exit_usage;
  }

  // Where sluiced keeps what only it may change: checked before anything is
  // created, mounted, locked or loaded, so a refused path changes nothing.
  const std::filesystem::path socket_parent = std::filesystem::path(options.socket_path).parent_path();
  const std::string socket_dir = socket_parent.empty() ? std::string(".") : socket_parent.string();
  for (const auto& [path, what] : {std::pair{&options.state_dir, "--state-dir"}, std::pair{&options.pin_dir, "--bpffs pin"},
                                   std::pair{&socket_dir, "--socket"}})
    if (auto fit = check_private_dir(*path, what); !fit) return spdlog::error("{}", fit.error().message), exit_startup_failed;

  // One daemon per state dir and per pin dir: both locked before anything in
  // them is read or written (a second daemon would flip the filter
  // generation and rewrite state.yaml under the first). The kernel drops the
  // locks with the process, kill -9 included.
  if (auto made = make_private_dir(options.state_dir, state_dir_mode, "--state-dir"); !made)
    return spdlog::error("{}", made.error().message), exit_startup_failed;
  auto state_lock = InstanceLock::lock_state_dir(options.state_dir);
  if (!state_lock) return spdlog::error("{}", state_lock.error().message), exit_startup_failed;
  if (auto ready = ensure_bpffs(options.pin_dir); !ready) return spdlog::error("{}", ready.error().message), exit_startup_failed;
  auto pin_lock = InstanceLock::lock_pin_dir(options.pin_dir);
  if (!pin_lock) return spdlog::error("{}", pin_lock.error().message), exit_startup_failed;
  if (auto made = make_private_dir(socket_dir, socket_dir_mode, "--socket"); !made)
    return spdlog::error("{}", made.error().message), exit_startup_failed;

  // The desired state: state.yaml (the last change) wins; --config seeds a first start.
  StateStore store(options.state_dir);
  // A commit killed before its rename left its temp file: state.yaml is the old state, whole.
  auto swept = store.sweep_temp_files();
  if (!swept) return spdlog::error("{}", swept.error().message), exit_startup_failed;
  for (const auto& name : *swept) spdlog::warn("removed {}/{}: the temp file of a change that never finished", options.state_dir, name);
  auto state_file_content = store.read();
  if (!state_file_content)
    // Refuse rather than start empty: the data plane keeps running its last state meanwhile.
    return spdlog::error("{}; fix or remove the file", state_file_content.error().message), exit_startup_failed;
  std::optional<config::DesiredState> wanted = std::move(*state_file_content);
  if (wanted && options.config_file) {
    spdlog::info("--config {} ignored: {} holds the state of the last change", *options.config_file, store.path());
  } else if (options.config_file) {
    auto text = read_file(*options.config_file, config::kMaxDocumentBytes);
    if (!text) return spdlog::error("--config: {}", text.error().message), exit_usage;
    if (!*text) return spdlog::error("--config {}: no such file", *options.config_file), exit_usage;
    auto parsed = config::parse_desired_state(**text);
    if (!parsed) return spdlog::error("--config {}: {}", *options.config_file, parsed.error().to_string()), exit_usage;
    wanted = std::move(*parsed);
  }

  // Checked before the load: its reuse of the pins would fail with a bare max_entries mismatch.
  const std::tuple<std::string_view, std::string_view, std::uint32_t> sized[] = {
      {"filter_conntrack", "--conntrack-entries", options.conntrack_entries},
      {"filter_rate_buckets", "--rate-bucket-entries", options.rate_bucket_entries},
      {"lb_conns", "--lb-conn-entries", options.lb_conn_entries},
  };
  for (const auto& [map_name, option, entries] : sized)
    if (auto same = check_pinned_size(options.pin_dir, map_name, option, entries); !same)
      return spdlog::error("{}", same.error().message), exit_startup_failed;
  dataplane::LoadOptions load_options;
  load_options.pin_dir = options.pin_dir;
  load_options.conntrack_entries = options.conntrack_entries;
  load_options.rate_bucket_entries = options.rate_bucket_entries;
  load_options.lb_conn_entries = options.lb_conn_entries;
  auto loaded = dataplane::Dataplane::load(load_options);
  if (!loaded) return spdlog::error("load data plane: {}", loaded.error().message), exit_startup_failed;
  dataplane::Dataplane& plane = *loaded;
  if (!plane.reused_maps().empty())
    spdlog::info("reused {} pinned maps under {}: counters, config and state survive", plane.reused_maps().size(),
                 options.pin_dir);
  // Stage upgrades happen here: each slot switches to this build's program
  // at the next tail call, while the attached entry program keeps running.
  if (auto installed = plane.install_stages(); !installed)
    return spdlog::error("install stages: {}", installed.error().message), exit_startup_failed;

  auto filter_table = filter::FilterTable::open(
      plane, {.dir_prefixes = options.blocklist_dir_prefixes, .tbl8_groups_max = options.blocklist_tbl8_groups});
  if (!filter_table) return spdlog::error("filter maps: {}", filter_table.error().message), exit_startup_failed;

  Service service(plane, *filter_table, store, {options.pin_dir, options.state_dir}, std::string(version()));
  StateOps state_ops(plane, *filter_table, store, service);
  // The balancer's maps read back (a restart keeps VIP and backend ids and the connection table).
  auto lb_table = lb::LbTable::open(plane);
  if (!lb_table) return spdlog::error("lb maps: {}", lb_table.error().message), exit_startup_failed;
  LbOps lb_ops(*lb_table, state_ops);
  // The forward stage's maps start empty: its routes come back from state.yaml in the restore below.
  auto route_table = route::RouteTable::open(plane);
  if (!route_table) return spdlog::error("forward maps: {}", route_table.error().message), exit_startup_failed;
  // Failed redirects are seen only on the kernel's tracepoints; a kernel that refuses them leaves the box without
  // that view (the metrics say which are watched), not without a data plane.
  std::optional<dataplane::RedirectErrorWatch> redirect_errors;
  const int cpumap_fd = bpf_map__fd(plane.skeleton()->maps.fwd_cpus);
  const int redirect_maps[] = {bpf_map__fd(plane.skeleton()->maps.fwd_ports),
                               bpf_map__fd(plane.skeleton()->maps.lb_egress_ports), cpumap_fd};
  if (auto watch = dataplane::RedirectErrorWatch::open(redirect_maps, cpumap_fd); watch) {
    redirect_errors = std::move(*watch);
    for (const auto& missing : redirect_errors->unavailable()) spdlog::warn("redirect errors: not watched: {}", missing);
  } else {
    spdlog::warn("redirect errors: not watched: {}", watch.error().message);
  }
  // Made before the restore: route sync and the neighbour table watch their netlink sockets on it.
  asio::io_context io;
  RouteOps route_ops(*route_table, state_ops, io);
  StateParts state_parts({{fault_kill_part_steps[0], &lb_ops}, {fault_kill_part_steps[1], &route_ops}});
  state_ops.set_part(state_parts);
  {
    auto legacy = store.read_legacy_interfaces();
    if (!legacy) spdlog::error("{} (ignoring the file; attach interfaces again)", legacy.error().message);
    const auto legacy_interfaces = legacy ? *legacy : std::nullopt;
    // What the data plane holds, overlaid by the file: sections the file leaves out stay as they run.
    const bool persisted = state_ops.restore(state_ops.baseline(legacy_interfaces), wanted.value_or(config::DesiredState{}));
    if (persisted && legacy_interfaces) store.remove_legacy_interfaces();  // folded into state.yaml
  }
  if (kill_before) {
    // After the restore, whose own commit must not trip it.
    spdlog::warn("--fault-kill-before {}: the next state change kills this daemon (SIGKILL), a test of crash recovery",
                 *kill_before);
    if (*kill_before == "rename") {
      store.set_before_rename([] { ::raise(SIGKILL); });
    } else if (std::ranges::find(fault_kill_part_steps, *kill_before) != std::end(fault_kill_part_steps)) {
      state_parts.set_part_hook([at = *kill_before](std::string_view part) {
        if (part == at) ::raise(SIGKILL);
      });
    } else if (*kill_before == "journal" || *kill_before == "journal-synced") {
      store.set_journal_hook([at = *kill_before](std::string_view point) {
        if (point == at) ::raise(SIGKILL);
      });
    } else {
      using enum ChangeStep;
      const ChangeStep at = *kill_before == "filter-set"        ? FilterSet
                            : *kill_before == "filter-settings" ? FilterSettings
                            : *kill_before == "config"          ? Config
                            : *kill_before == "interfaces"      ? Interfaces
                                                                : Persist;
      state_ops.set_step_hook([at](ChangeStep step) -> Result<void> {
        if (step == at) ::raise(SIGKILL);
        return {};
      });
    }
  }

  EventHub events(io);
  auto ring = maps::MapFd::from_skeleton(plane.skeleton()->maps.drop_events);
  if (!ring) return spdlog::error("{}", ring.error().message), exit_startup_failed;
  if (auto started = events.start(std::move(*ring)); !started)
    return spdlog::error("drop events: {}", started.error().message), exit_startup_failed;

  lb_ops.set_events(events);
  lb::HealthChecker health(io, [&](const lb::VipKey& vip, const lb::Address& backend, lb::Health state) {
    lb_ops.report_health(vip, backend, state);
  });
  lb_ops.set_on_change([&](const lb::LbConfig& config) { health.reconcile(config); });

  OpRegistry ops;
  register_filter_ops(ops, *filter_table, state_ops);
  lb_ops.register_ops(ops);
  route_ops.register_ops(ops);
  state_ops.register_ops(ops);
  BlockLoads block_loads(*filter_table, state_ops);
  block_loads.register_ops(ops);
  ControlServer server(io, {options.socket_path, socket_gid, Authorizer(admin_gid), options.control_limits}, ops, events);
  std::unique_ptr<metrics::HttpServer> metrics_server;
  asio::signal_set signals(io, SIGTERM, SIGINT);
  auto stop = [&] {
    server.stop();
    if (metrics_server) metrics_server->stop();
    events.stop();
    health.stop();
    signals.cancel();
    io.stop();
  };

  ops.add("status", no_args_op("status", [&]() -> OpResult {
            auto status = service.status();
            if (status && status->is_object()) state_ops.add_restore_state(status->as_object());
            if (status && status->is_object()) block_loads.add_status(status->as_object());
            if (status && status->is_object()) {
              auto tables = all_tables(plane, *filter_table);
              if (!tables) return protocol::ProtocolError{protocol::ErrorCode::Failed, tables.error().message};
              json::array shown;
              std::uint64_t fixed_bytes = 0, sized_bytes = 0;
              for (const auto& t : *tables) {
                json::object row{{"name", t.name}, {"type", t.type}, {"max_entries", t.max_entries},
                                 {"memory_bytes", t.memory_bytes}};
                if (t.sized_by) row["sized_by"] = *t.sized_by;
                (t.sized_by ? sized_bytes : fixed_bytes) += t.memory_bytes;
                shown.push_back(std::move(row));
              }
              status->as_object()["tables"] = std::move(shown);
              status->as_object()["table_memory_bytes"] = {{"operator_sized", sized_bytes}, {"other", fixed_bytes}};
              if (!filter_table->prefix_dir_error().empty())
                status->as_object()["prefix_dir_error"] = filter_table->prefix_dir_error();
            }
            return status;
          }));
  ops.add("config.get", no_args_op("config.get", [&] { return service.config_get(); }));
  ops.add("stats", no_args_op("stats", [&] { return service.stats(); }));
  ops.add("attach", op(protocol::parse_attach_args, [&](const protocol::AttachArgs& a) { return service.attach(a); }));
  ops.add("detach", op(protocol::parse_detach_args, [&](const protocol::DetachArgs& a) { return service.detach(a); }));
  OpRegistry::Handler shutdown = op(protocol::parse_shutdown_args, [&](const protocol::ShutdownArgs& a) -> OpResult {
    spdlog::info("shutdown requested{}", a.detach ? " with detach: detaching every interface, removing pins" : "");
    json::object result{{"stopping", true}};
    if (a.detach) {
      auto detached = service.detach_everything();
      if (!detached) return detached.error();
      result["detach"] = *detached;
    }
    return json::value(std::move(result));
  });
  shutdown.after_reply = [&] { stop(); };
  ops.add("shutdown", std::move(shutdown));

  if (auto listening = server.listen(); !listening)
    return spdlog::error("control socket: {}", listening.error().message), exit_startup_failed;
  server.start();
  if (metrics_endpoint) {
    try {
      metrics_server = std::make_unique<metrics::HttpServer>(
          io, *metrics_endpoint, http_pages(ops, [&] {
            return render_metrics(plane, *filter_table, state_ops.conntrack(), server.metrics(), events.stats()) +
                   render_lb_metrics(lb_ops) + render_route_metrics(plane, route_ops) +
                   render_redirect_error_metrics(redirect_errors ? &*redirect_errors : nullptr);
          }, status_page));
    } catch (const std::exception& e) {
      return spdlog::error("--metrics {}: {}", options.metrics_address, e.what()), exit_startup_failed;
    }
    metrics_server->start();
  }
  signals.async_wait([&](const boost::system::error_code& error, int signal_number) {
    if (error) return;
    // The data plane stays attached and pinned: traffic goes on without us.
    spdlog::info("signal {}: stopping; XDP programs stay attached and pins stay in {}", signal_number, options.pin_dir);
    stop();
  });

  spdlog::info("sluiced {} serving {} (pins {}, state {}, metrics {}{}, blocklist tbl8 groups at most {}, "
               "DIR-24-8 from {} IPv4 prefixes, conntrack {}, rate buckets {}, lb connections {})",
               version(), options.socket_path, options.pin_dir, options.state_dir,
               metrics_server ? options.metrics_address : std::string("off"),
               metrics_server ? (status_page ? " with the status page" : " without the status page") : "",
               options.blocklist_tbl8_groups,
               options.blocklist_dir_prefixes, options.conntrack_entries, options.rate_bucket_entries,
               options.lb_conn_entries);
  // The prefix-list index of the desired state, built once the socket serves (O(lists), ~1 s at a million).
  asio::post(io, [&store] { store.warm_index(); });
  io.run();
  spdlog::info("sluiced stopped");
  return exit_ok;
}

}  // namespace sluice::daemon
