#include "daemon_metrics.hpp"

#include <bpf/bpf.h>

#include <array>
#include <cerrno>
#include <map>
#include <stdexcept>

#include "names.hpp"
#include "sluice.skel.h"
#include "prometheus.hpp"

namespace sluice::daemon {

using metrics::MetricType;
using metrics::sample;
using metrics::Sample;

namespace {

// A chunk whose one hash bucket holds more than the chunk is retried bigger, up to this.
constexpr std::uint32_t max_chunk_entries = 1u << 16;

// Reads one connection table chunk by chunk; visit(key, entry) returns false
// to stop. Entries added or evicted meanwhile may or may not be seen (an
// LRU table under traffic has no snapshot).
template <class Key, class Visit>
maps::Result<void> walk_table(const bpf_map* map, Visit visit) {
  const int fd = bpf_map__fd(map);
  std::uint32_t chunk = ConntrackView::chunk_entries;
  std::vector<Key> keys(chunk);
  std::vector<sluice_ct_entry> entries(chunk);
  // The batch cursor is opaque (a bucket index for hash maps); room for any key.
  std::array<std::uint64_t, 8> in_cursor{}, out_cursor{};
  bool first_call = true;
  LIBBPF_OPTS(bpf_map_batch_opts, options);
  for (;;) {
    std::uint32_t count = chunk;
    const int ret = bpf_map_lookup_batch(fd, first_call ? nullptr : in_cursor.data(), out_cursor.data(), keys.data(),
                                         entries.data(), &count, &options);
    const int errnum = ret < 0 ? -ret : 0;
    if (errnum == ENOSPC && count == 0 && chunk < max_chunk_entries) {
      chunk *= 2;
      keys.resize(chunk);
      entries.resize(chunk);
      continue;
    }
    if (errnum != 0 && errnum != ENOENT) return maps::make_error("read conntrack table", bpf_map__name(map), errnum);
    for (std::uint32_t i = 0; i < count; ++i)
      if (!visit(keys[i], entries[i])) return {};
    if (errnum == ENOENT) return {};  // the kernel's "no more elements"
    in_cursor = out_cursor;
    first_call = false;
  }
}

// An IPv4 flow in the one reported form: addresses in word 0, ip_version 4.
filter::TrackedFlow widen(const sluice_ct_v4_key& k, const sluice_ct_entry& entry) {
  sluice_ct_key key{};
  key.addr_a[0] = k.addr_a;
  key.addr_b[0] = k.addr_b;
  key.port_a = k.port_a;
  key.port_b = k.port_b;
  key.proto = k.proto;
  key.ip_version = 4;
  return {key, entry};
}

}  // namespace

ConntrackView::ConntrackView(const dataplane::Dataplane& plane, std::chrono::steady_clock::duration count_interval)
    : plane_(plane), count_interval_(count_interval) {}

maps::Result<ConntrackView::Count> ConntrackView::count() {
  const auto now = std::chrono::steady_clock::now();
  if (last_ && now - last_->counted_at < count_interval_) return *last_;
  std::uint64_t flows = 0, unreplied = 0;
  const auto& m = plane_.skeleton()->maps;
  auto tally = [&](const auto&, const sluice_ct_entry&) { return ++flows, true; };
  auto tally_unreplied = [&](const auto&, const sluice_ct_entry&) { return ++flows, ++unreplied, true; };
  if (auto v4 = walk_table<sluice_ct_v4_key>(m.filter_conntrack_v4, tally); !v4) return v4.error();
  if (auto v6 = walk_table<sluice_ct_key>(m.filter_conntrack, tally); !v6) return v6.error();
  if (auto v4 = walk_table<sluice_ct_v4_key>(m.filter_ct_unreplied_v4, tally_unreplied); !v4) return v4.error();
  if (auto v6 = walk_table<sluice_ct_key>(m.filter_ct_unreplied, tally_unreplied); !v6) return v6.error();
  last_ = Count{flows, now, unreplied};
  return *last_;
}

maps::Result<std::vector<filter::TrackedFlow>> ConntrackView::first_flows(std::size_t most) const {
  std::vector<filter::TrackedFlow> out;
  const auto& m = plane_.skeleton()->maps;
  if (most == 0) return out;
  // Replied flows first, then unreplied ones, IPv4 before IPv6 in each.
  for (const bpf_map* table : {m.filter_conntrack_v4, m.filter_ct_unreplied_v4}) {
    auto v4 = walk_table<sluice_ct_v4_key>(table, [&](const sluice_ct_v4_key& key, const sluice_ct_entry& e) {
      out.push_back(widen(key, e));
      return out.size() < most;
    });
    if (!v4) return v4.error();
    if (out.size() >= most) return out;
    const bpf_map* v6_table = table == m.filter_conntrack_v4 ? m.filter_conntrack : m.filter_ct_unreplied;
    auto v6 = walk_table<sluice_ct_key>(v6_table, [&](const sluice_ct_key& key, const sluice_ct_entry& e) {
      out.push_back({key, e});
      return out.size() < most;
    });
    if (!v6) return v6.error();
    if (out.size() >= most) return out;
  }
  return out;
}

void add_filter_metrics(metrics::Exposition& out, const filter::FilterTable& table, ConntrackView& conntrack) {
  auto rules = table.rule_counters();
  if (!rules) throw std::runtime_error(rules.error().message);
  std::vector<Sample> rule_packets, rule_bytes;
  for (const auto& rule : *rules) {
    std::vector<metrics::Label> labels{{"priority", std::to_string(rule.priority)}};
    rule_packets.push_back(sample(labels, rule.total.packets));
    rule_bytes.push_back(sample(labels, rule.total.bytes));
  }
  // Counters restart at 0 when a new rule set goes live; Prometheus treats that as a counter reset.
  out.add("sluice_filter_rule_packets_total", "Packets matched by each filter rule of the live set, by priority.",
          MetricType::Counter, rule_packets);
  out.add("sluice_filter_rule_bytes_total", "Bytes of the packets matched by each filter rule of the live set, by priority.",
          MetricType::Counter, rule_bytes);
  out.add("sluice_filter_rules", "Rules in the live filter rule set.", MetricType::Gauge,
          {sample({}, rules->size())});

  // Every (family, action) pair, zeros included: a series that vanishes is harder to alert on than a 0.
  std::map<std::pair<std::string, std::string>, std::uint64_t> prefixes;
  for (const char* family : {"ipv4", "ipv6"})
    for (auto action : {filter::Action::Drop, filter::Action::Pass, filter::Action::RateLimit})
      prefixes[{family, std::string(filter::to_string(action))}] = 0;
  for (const auto& entry : table.prefixes())
    ++prefixes[{filter::family_of(entry.prefix) == 4 ? "ipv4" : "ipv6", std::string(filter::to_string(entry.action))}];
  std::vector<Sample> prefix_samples;
  for (const auto& [key, count] : prefixes)
    prefix_samples.push_back(sample({{"family", key.first}, {"action", key.second}}, count));
  out.add("sluice_filter_prefixes", "Prefixes in the filter's prefix lists, by address family and action.",
          MetricType::Gauge, prefix_samples);
  out.add("sluice_filter_rate_classes", "Rate-limit classes defined.", MetricType::Gauge,
          {sample({}, table.rule_set().rate_classes.size())});
  // Kernel side of event loss (the ring itself full), apart from sluice_drop_events_lost_total (a
  // subscriber's queue full): the two have different fixes (a faster reader vs. a faster client).
  auto ring_full = table.drop_events_lost();
  if (!ring_full) throw std::runtime_error(ring_full.error().message);
  out.add("sluice_drop_events_ring_full_total",
          "Sampled filter drops whose event was lost because the drop_events ring buffer was full "
          "(the drop itself is still counted in sluice_packets_total).",
          MetricType::Counter, {sample({}, *ring_full)});

  auto flows = conntrack.count();
  if (!flows) throw std::runtime_error(flows.error().message);
  out.add("sluice_conntrack_entries",
          "Flows in the filter's connection tables (expired ones until evicted); counted at most every " +
              std::to_string(ConntrackView::default_count_interval.count()) + " s.",
          MetricType::Gauge, {sample({}, flows->flows)});
  out.add("sluice_conntrack_unreplied_entries",
          "Of sluice_conntrack_entries, the flows no reply was seen for yet (their own table: a flood of them "
          "cannot evict a replied flow).",
          MetricType::Gauge, {sample({}, flows->unreplied)});
}

maps::Result<std::vector<dataplane::TableInfo>> all_tables(const dataplane::Dataplane& plane,
                                                           const filter::FilterTable& table) {
  auto tables = plane.tables();
  if (!tables) return tables.error();
  for (std::uint32_t gen = 0; gen < SLUICE_FILTER_GENERATIONS; ++gen) {
    auto dir = table.prefix_dir(gen);
    if (!dir) return dir.error();
    if (!dir->plugged) continue;
    const std::string name = "fsrc4_g" + std::to_string(gen);
    tables->push_back({.name = name + "_t24", .type = "array", .max_entries = SLUICE_DIR24_8_TBL24_ROWS,
                       .memory_bytes = dir->tbl24_bytes});
    tables->push_back({.name = name + "_t8", .type = "array", .max_entries = dir->tbl8_groups,
                       .memory_bytes = dir->tbl8_bytes});
  }
  return tables;
}

std::string render_metrics(const dataplane::Dataplane& plane, const filter::FilterTable& table,
                           ConntrackView& conntrack, const RequestMetrics& requests, const EventStats& events) {
  metrics::Exposition out;
  auto tables = all_tables(plane, table);
  if (!tables) throw std::runtime_error(tables.error().message);
  std::vector<Sample> capacity, memory;
  for (const auto& t : *tables) {
    std::vector<metrics::Label> labels{{"table", t.name}, {"sized_by", t.sized_by.value_or("fixed")}};
    capacity.push_back(sample(labels, t.max_entries));
    memory.push_back(sample(labels, t.memory_bytes));
  }
  out.add("sluice_table_capacity",
          "Capacity (max_entries) of each BPF table; sized_by names the option that sizes it, else fixed.",
          MetricType::Gauge, capacity);
  out.add("sluice_table_memory_bytes", "Kernel memory of each BPF table (bpftool's bytes_memlock).",
          MetricType::Gauge, memory);
  auto counts = plane.verdict_counts();
  if (!counts) throw std::runtime_error(counts.error().message);  // the HTTP server answers 500 with it
  std::vector<Sample> packets, bytes;
  for (const auto& count : *counts) {
    std::vector<metrics::Label> labels{{"verdict", std::string(dataplane::verdict_name(count.verdict))},
                                       {"reason", dataplane::reason_name(count.reason)}};
    packets.push_back(sample(labels, count.total.packets));
    bytes.push_back(sample(labels, count.total.bytes));
  }
  out.add("sluice_packets_total", "Packets judged by the XDP pipeline, by verdict and reason.", MetricType::Counter,
          packets);
  out.add("sluice_bytes_total", "Bytes of the packets judged by the XDP pipeline, by verdict and reason.",
          MetricType::Counter, bytes);

  add_filter_metrics(out, table, conntrack);

  std::vector<Sample> request_samples;
  for (const auto& [key, value] : requests.requests)
    request_samples.push_back(sample({{"op", key.first}, {"result", key.second}}, value));
  out.add("sluice_control_requests_total", "Control-socket requests by op and result (ok or error code).",
          MetricType::Counter, request_samples);
  out.add("sluice_control_connections_total", "Control-socket connections accepted.", MetricType::Counter,
          {sample({}, requests.connections_total)});
  out.add("sluice_control_connections", "Control-socket connections open now.", MetricType::Gauge,
          {sample({}, requests.connections_open)});
  out.add("sluice_control_connections_refused_total",
          "Control-socket connections refused: over the connection limit, the admin reserve or the per-uid cap.",
          MetricType::Counter, {sample({}, requests.connections_refused)});
  out.add("sluice_control_connections_refused_reserved_total",
          "Connections of non-admin peers refused because only the admin reserve was left.", MetricType::Counter,
          {sample({}, requests.connections_refused_reserved)});
  out.add("sluice_control_connections_refused_per_uid_total",
          "Connections refused because their uid held its maximum of connections.", MetricType::Counter,
          {sample({}, requests.connections_refused_per_uid)});
  out.add("sluice_control_idle_timeouts_total", "Connections closed after the idle timeout without a request.",
          MetricType::Counter, {sample({}, requests.idle_timeouts)});
  out.add("sluice_control_partial_line_timeouts_total",
          "Connections closed because a request line was not finished within the partial-line timeout.",
          MetricType::Counter, {sample({}, requests.partial_line_timeouts)});
  out.add("sluice_control_write_timeouts_total", "Clients cut off for not reading their replies in time.",
          MetricType::Counter, {sample({}, requests.write_timeouts)});
  out.add("sluice_control_stream_input_overflows_total",
          "Clients cut off for sending more than a request's worth of bytes during an events stream.",
          MetricType::Counter, {sample({}, requests.stream_input_overflows)});

  out.add("sluice_drop_events_total", "Drop events read from the drop_events ring buffer.", MetricType::Counter,
          {sample({}, events.received)});
  out.add("sluice_drop_events_malformed_total", "Ring buffer records of an unexpected size (ignored).",
          MetricType::Counter, {sample({}, events.malformed)});
  out.add("sluice_drop_events_lost_total",
          "Drop events not delivered to an events subscriber because its queue was full.", MetricType::Counter,
          {sample({}, events.subscriber_dropped)});
  out.add("sluice_drop_events_read_errors_total", "Failed reads of the drop_events ring buffer.", MetricType::Counter,
          {sample({}, events.read_errors)});
  return out.text();
}

}  // namespace sluice::daemon
