#pragma once
// sluiced as a library: options, and run() composing the data plane, the
// control socket, drop events and metrics on one io_context.
#include <optional>
#include <string>

#include "maps.hpp"

namespace sluice::daemon {

struct DaemonOptions {
  std::optional<std::string> config_file;  // YAML desired state for a first start (no state.yaml yet)
  std::string socket_path = "/run/sluice/sluice.sock";
  std::string pin_dir = "/sys/fs/bpf/sluice";
  std::string metrics_address = "127.0.0.1:9630";  // "off" disables the endpoint
  std::string state_dir = "/var/lib/sluice";
  std::optional<std::string> admin_group;   // may change state besides root
  std::optional<std::string> socket_group;  // may connect (read-only ops); defaults to admin_group
  std::string log_level = "info";
};

// The version sluiced reports in status.
std::string_view version();

// Runs until SIGTERM/SIGINT (data plane stays attached, pins stay) or the
// shutdown op. Returns the process exit code; startup errors are logged.
int run(const DaemonOptions& options);

}  // namespace sluice::daemon
