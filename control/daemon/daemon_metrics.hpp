#pragma once
// What /metrics shows: the data plane's verdict counters, the filter's
// per-rule hits, prefix counts and conntrack fill, the control socket's
// requests and the drop-event stream.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dataplane.hpp"
#include "event_hub.hpp"
#include "filter_table.hpp"
#include "prometheus.hpp"
#include "server.hpp"

namespace sluice::daemon {

// The filter's connection tables (LRU hashes per family: replied flows, up
// to SLUICE_FILTER_CONNTRACK_ENTRIES each, and unreplied ones, up to
// SLUICE_FILTER_CT_UNREPLIED_ENTRIES each), read for conn.list and
// /metrics on the daemon's one io_context thread, so every read is bounded:
//  - tables are read with BPF_MAP_LOOKUP_BATCH in chunks of `chunk_entries`
//    (one syscall per chunk instead of two per flow);
//  - a listing stops at the flows it returns;
//  - the total is counted by a whole walk at most once per `count_interval`
//    and served from the last count in between, so a scrape storm or a
//    conn.list loop costs one walk per interval.
class ConntrackView {
 public:
  static constexpr std::chrono::seconds default_count_interval{5};
  static constexpr std::uint32_t chunk_entries = 4096;

  struct Count {
    std::uint64_t flows = 0;  // replied and unreplied
    std::chrono::steady_clock::time_point counted_at;
    std::uint64_t unreplied = 0;
  };

  explicit ConntrackView(const dataplane::Dataplane& plane,
                         std::chrono::steady_clock::duration count_interval = default_count_interval);

  // Flows in both tables (expired ones until evicted); at most count_interval old.
  maps::Result<Count> count();
  // Up to `most` flows, IPv4 first, in the kernel's table order; stops reading there.
  maps::Result<std::vector<filter::TrackedFlow>> first_flows(std::size_t most) const;

 private:
  const dataplane::Dataplane& plane_;
  std::chrono::steady_clock::duration count_interval_;
  std::optional<Count> last_;
};

// Every table of the loaded object, then the filter's on-demand DIR-24-8
// copies of the IPv4 prefix lists (fsrc4_g<gen>_t24 / _t8, only while
// plugged): what status and /metrics show of sizes and kernel memory.
maps::Result<std::vector<dataplane::TableInfo>> all_tables(const dataplane::Dataplane& plane,
                                                           const filter::FilterTable& table);

std::string render_metrics(const dataplane::Dataplane& plane, const filter::FilterTable& table,
                           ConntrackView& conntrack, const RequestMetrics& requests, const EventStats& events);
// The filter's families alone (also used by tests without a daemon).
void add_filter_metrics(metrics::Exposition& out, const filter::FilterTable& table, ConntrackView& conntrack);

}  // namespace sluice::daemon
