#pragma once
// sluiced as a library: options, and run() composing the data plane, the
// control socket, drop events and metrics on one io_context.
#include <optional>
#include <string>
#include <string_view>

#include "dataplane.hpp"
#include "filter_table.hpp"
#include "maps.hpp"
#include "server.hpp"

namespace sluice::daemon {

struct DaemonOptions {
  std::optional<std::string> config_file;  // YAML desired state for a first start (no state.yaml yet)
  std::string socket_path = "/run/sluice/sluice.sock";
  std::string pin_dir = "/sys/fs/bpf/sluice";
  std::string metrics_address = "127.0.0.1:9630";  // "off" disables the endpoint
  // The status page (/ and /status.json) on the metrics endpoint: on, off,
  // or auto (on only when metrics_address is loopback; status_pages.hpp).
  std::string status_page = "auto";
  std::string state_dir = "/var/lib/sluice";
  std::optional<std::string> admin_group;   // may change state besides root
  std::optional<std::string> socket_group;  // may connect (read-only ops); defaults to admin_group
  std::string log_level = "info";
  // The IPv4 prefix lists' DIR-24-8 copies (filter::FilterTableOptions):
  // most tbl8 groups per copy (1 KiB each), and the list size from which a
  // generation gets one (64 MiB of tbl24 + its groups; below it packets
  // read the LPM trie).
  std::uint32_t blocklist_tbl8_groups = filter::FilterTableOptions{}.tbl8_groups_max;
  std::size_t blocklist_dir_prefixes = filter::FilterTableOptions{}.dir_prefixes;
  // Operator-sized state tables (dataplane::LoadOptions): fixed at the
  // first load; pins of another size refuse the start with a way out.
  std::uint32_t conntrack_entries = dataplane::LoadOptions{}.conntrack_entries;
  std::uint32_t rate_bucket_entries = dataplane::LoadOptions{}.rate_bucket_entries;
  std::uint32_t lb_conn_entries = dataplane::LoadOptions{}.lb_conn_entries;
  // Fault injection for the crash tests (hidden option --fault-kill-before):
  // the daemon SIGKILLs itself before this step of a state change:
  // filter-set, filter-settings, config, interfaces, persist (the steps of
  // StateOps::change), rename (inside persist, between the synced temp
  // file and its rename), or lb, forward (inside the lb and forward step of
  // a change that has work there: before the lb maps, VIPs, backends and
  // Maglev tables, are written; before the forward maps, routes, next hops,
  // groups and settings, are). Unset in any real run.
  std::optional<std::string> fault_kill_before;
  // Control-socket clients: connection caps, admin reserve, deadlines (server.hpp).
  ConnectionLimits control_limits;
};

// The step names --fault-kill-before takes, in the order a change runs them.
inline constexpr std::string_view fault_kill_steps[] = {"filter-set", "filter-settings", "config",
                                                         "interfaces", "persist",         "rename"};
// The points of a block.add/block.del --fault-kill-before also takes: after
// the maps, before the journal record; after its fsync, before the reply.
inline constexpr std::string_view fault_kill_journal_steps[] = {"journal", "journal-synced"};
// The points inside the lb and forward step of a change (StateParts, between
// filter-settings and config) --fault-kill-before also takes, in their order:
// they fire only for a change with lb or forward work (an lb op, a forward
// op, an apply that changes either), so a filter-only change never reaches them.
inline constexpr std::string_view fault_kill_part_steps[] = {"lb", "forward"};

// --blocklist-tbl8-groups N: a whole number 1..SLUICE_DIR24_8_TBL8_GROUPS_MAX;
// an error naming the option and the value otherwise.
maps::Result<std::uint32_t> parse_blocklist_tbl8_groups(std::string_view text);

// --OPTION N for a count: a whole number most..least; an error naming the option and the value otherwise.
maps::Result<std::uint64_t> parse_count_option(std::string_view option, std::string_view text, std::uint64_t least,
                                               std::uint64_t most, std::string_view unit);

// Before a load that reuses pins: the pinned map `map_name` of another size
// than `entries` cannot be reused (its size is fixed at creation). The
// error says how it was sized and how to go on; nothing pinned: ok.
maps::Result<void> check_pinned_size(const std::string& pin_dir, std::string_view map_name, std::string_view option,
                                     std::uint32_t entries);

// The version sluiced reports in status.
std::string_view version();

// Runs until SIGTERM/SIGINT (data plane stays attached, pins stay) or the
// shutdown op. Returns the process exit code; startup errors are logged.
int run(const DaemonOptions& options);

}  // namespace sluice::daemon
