// sluiced: the sluice daemon. Everything but the command line is in the
// sluice_daemon library (daemon.cpp), so tests drive the same code.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <functional>
#include <iterator>
#include <map>
#include <string>

#include "daemon.hpp"

int main(int argc, char** argv) {
  sluice::daemon::DaemonOptions options;
  CLI::App app{"sluiced: XDP packet filter and L4 load balancer daemon"};
  app.set_version_flag("--version", std::string(sluice::daemon::version()));
  std::string config_file, admin_group, socket_group, blocklist_tbl8_groups;
  app.add_option("--config", config_file, "YAML desired state applied at cold start");
  app.add_option("--socket", options.socket_path, "control socket path")->capture_default_str();
  app.add_option("--bpffs", options.pin_dir, "bpffs directory of the pinned maps and programs")->capture_default_str();
  app.add_option("--metrics", options.metrics_address, "Prometheus endpoint ADDR:PORT, or off")->capture_default_str();
  app.add_option("--status-page", options.status_page,
                 "status page (/ and /status.json) on the metrics endpoint: on, off, or auto (only on loopback)")
      ->capture_default_str();
  app.add_option("--state-dir", options.state_dir, "directory of the persisted state")->capture_default_str();
  app.add_option("--admin-group", admin_group, "group whose members may change state (besides root)");
  app.add_option("--socket-group", socket_group, "group owning the socket (may connect; default: admin group)");
  app.add_option("--log-level", options.log_level, "trace, debug, info, warn, error, critical, off")->capture_default_str();
  app.add_option("--blocklist-tbl8-groups", blocklist_tbl8_groups,
                 "most tbl8 groups of an IPv4 prefix list's DIR-24-8 copy (1 KiB each, sized to the list; default " +
                     std::to_string(options.blocklist_tbl8_groups) + "; 1048576 holds any million-prefix list)");
  // Counts: decimal integers, checked after parsing (CLI11 would take "0x10" or "010").
  struct Count {
    const char* option;
    std::uint64_t least, most;
    const char* unit;
    std::function<void(std::uint64_t)> set;
    std::string text{};
  };
  Count counts[] = {
      {"--blocklist-dir-prefixes", 0, SLUICE_FILTER_MAX_V4_PREFIXES + 1u,
       "IPv4 prefixes from which a list is read through DIR-24-8, 0: never",
       [&](std::uint64_t n) { options.blocklist_dir_prefixes = n; }},
      {"--conntrack-entries", 1, sluice::dataplane::kStateEntriesMax, "entries of each filter conntrack table",
       [&](std::uint64_t n) { options.conntrack_entries = static_cast<std::uint32_t>(n); }},
      {"--rate-bucket-entries", 1, sluice::dataplane::kStateEntriesMax, "rate-limit source buckets",
       [&](std::uint64_t n) { options.rate_bucket_entries = static_cast<std::uint32_t>(n); }},
      {"--lb-conn-entries", 1, sluice::dataplane::kLbConnEntriesMax, "entries of each lb connection table",
       [&](std::uint64_t n) { options.lb_conn_entries = static_cast<std::uint32_t>(n); }},
  };
  const sluice::daemon::DaemonOptions defaults;
  const std::uint64_t default_of[] = {defaults.blocklist_dir_prefixes, defaults.conntrack_entries,
                                      defaults.rate_bucket_entries, defaults.lb_conn_entries};
  for (std::size_t i = 0; i < std::size(counts); ++i)
    app.add_option(counts[i].option, counts[i].text,
                   std::string(counts[i].unit) + " (default " + std::to_string(default_of[i]) + ")");
  std::string fault_kill_before;
  // Hidden (empty group): crash tests only, see DaemonOptions::fault_kill_before.
  app.add_option("--fault-kill-before", fault_kill_before, "test only: SIGKILL self before this step of a change")
      ->group("");
  // Control-socket limits (server.hpp): decimal integers, checked together after parsing.
  std::map<std::string, std::string> connection_limits;
  for (auto option : sluice::daemon::connection_limit_options) {
    const std::string name(option);
    app.add_option_function<std::string>(
        name, [&connection_limits, name](const std::string& text) { connection_limits[name] = text; },
        sluice::daemon::connection_limit_help(option));
  }
  CLI11_PARSE(app, argc, argv);
  if (!fault_kill_before.empty()) options.fault_kill_before = fault_kill_before;
  for (const auto& [option, text] : connection_limits) {
    if (auto set = sluice::daemon::set_connection_limit(options.control_limits, option, text); !set) {
      std::fprintf(stderr, "sluiced: %s\n", set.error().message.c_str());
      return 2;
    }
  }
  if (auto valid = sluice::daemon::validate(options.control_limits); !valid) {
    std::fprintf(stderr, "sluiced: %s\n", valid.error().message.c_str());
    return 2;
  }
  for (const Count& count : counts) {
    if (count.text.empty()) continue;
    auto parsed = sluice::daemon::parse_count_option(count.option, count.text, count.least, count.most, count.unit);
    if (!parsed) {
      std::fprintf(stderr, "sluiced: %s\n", parsed.error().message.c_str());
      return 2;
    }
    count.set(*parsed);
  }
  if (!blocklist_tbl8_groups.empty()) {
    auto groups = sluice::daemon::parse_blocklist_tbl8_groups(blocklist_tbl8_groups);
    if (!groups) {
      std::fprintf(stderr, "sluiced: %s\n", groups.error().message.c_str());
      return 2;  // usage, as CLI11's own errors
    }
    options.blocklist_tbl8_groups = *groups;
  }
  if (!config_file.empty()) options.config_file = config_file;
  if (!admin_group.empty()) options.admin_group = admin_group;
  if (!socket_group.empty()) options.socket_group = socket_group;
  return sluice::daemon::run(options);
}
