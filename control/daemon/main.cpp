// sluiced: the sluice daemon. Everything but the command line is in the
// sluice_daemon library (daemon.cpp), so tests drive the same code.
#include <CLI/CLI.hpp>

#include "daemon.hpp"

int main(int argc, char** argv) {
  sluice::daemon::DaemonOptions options;
  CLI::App app{"sluiced: XDP packet filter and L4 load balancer daemon"};
  app.set_version_flag("--version", std::string(sluice::daemon::version()));
  std::string config_file, admin_group, socket_group;
  app.add_option("--config", config_file, "YAML desired state applied at cold start");
  app.add_option("--socket", options.socket_path, "control socket path")->capture_default_str();
  app.add_option("--bpffs", options.pin_dir, "bpffs directory of the pinned maps and programs")->capture_default_str();
  app.add_option("--metrics", options.metrics_address, "Prometheus endpoint ADDR:PORT, or off")->capture_default_str();
  app.add_option("--state-dir", options.state_dir, "directory of the persisted state")->capture_default_str();
  app.add_option("--admin-group", admin_group, "group whose members may change state (besides root)");
  app.add_option("--socket-group", socket_group, "group owning the socket (may connect; default: admin group)");
  app.add_option("--log-level", options.log_level, "trace, debug, info, warn, error, critical, off")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!config_file.empty()) options.config_file = config_file;
  if (!admin_group.empty()) options.admin_group = admin_group;
  if (!socket_group.empty()) options.socket_group = socket_group;
  return sluice::daemon::run(options);
}
