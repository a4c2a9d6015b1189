#include "redirect_metrics.hpp"

#include <net/if.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "error.hpp"
#include "prometheus.hpp"
#include "spdlog/spdlog.h"

namespace sluice::daemon {
namespace {

using metrics::MetricType;
using metrics::sample;
using metrics::Sample;

// A port gone since the error keeps its number: "ifindex 7".
std::string interface_name(std::int32_t ifindex) {
  char name[IF_NAMESIZE] = {};
  if (ifindex > 0 && ::if_indextoname(static_cast<unsigned>(ifindex), name)) return name;
  return "ifindex " + std::to_string(ifindex);
}

// The kernel reports a negative errno (0 when it gives none).
std::string errno_label(std::int32_t err) { return err == 0 ? "none" : maps::errno_symbol(err < 0 ? -err : err); }

constexpr const char* kTracepoints[] = {"xdp_redirect_err", "xdp_devmap_xmit", "xdp_cpumap_enqueue"};

}  // namespace

std::string render_redirect_error_metrics(const dataplane::RedirectErrorWatch* watch) {
  metrics::Exposition out;
  using Key = std::tuple<std::string, std::string, std::string>;
  std::map<Key, std::uint64_t> redirect, xmit;
  std::map<std::string, std::uint64_t> cpumap;
  if (watch) {
    if (auto counts = watch->counts(); counts) {
      for (const auto& count : *counts) {
        switch (count.kind) {
          case SLUICE_REDIRECT_ERR_REDIRECT:
            redirect[{interface_name(count.ifindex), "", errno_label(count.err)}] += count.frames;
            break;
          case SLUICE_REDIRECT_ERR_XMIT:
            xmit[{interface_name(count.ifindex), interface_name(count.to), errno_label(count.err)}] += count.frames;
            break;
          case SLUICE_REDIRECT_ERR_CPUMAP: cpumap[std::to_string(count.to)] += count.frames; break;
        }
      }
    } else {
      spdlog::warn("metrics: redirect errors: {}", counts.error().message);
    }
  }
  std::vector<Sample> samples;
  for (const auto& [key, frames] : redirect)
    samples.push_back(sample({{"dev", std::get<0>(key)}, {"errno", std::get<2>(key)}}, frames));
  out.add("sluice_xdp_redirect_errors_total",
          "Redirects into sluice's devmaps or cpumap the kernel refused after the XDP program returned "
          "(xdp_redirect_err: target down, a port that takes no XDP frames now, ...), by receiving port and errno.",
          MetricType::Counter, samples);
  samples.clear();
  for (const auto& [key, frames] : xmit)
    samples.push_back(
        sample({{"dev", std::get<0>(key)}, {"to", std::get<1>(key)}, {"errno", std::get<2>(key)}}, frames));
  out.add("sluice_xdp_xmit_drops_total",
          "Redirected frames the egress port's driver did not take (xdp_devmap_xmit: a full TX ring, a veth peer gone "
          "from NAPI mode; any XDP program's in sluiced's netns, native mode only), by receiving and egress port and "
          "errno.",
          MetricType::Counter, samples);
  samples.clear();
  for (const auto& [cpu, frames] : cpumap) samples.push_back(sample({{"cpu", cpu}}, frames));
  out.add("sluice_xdp_cpumap_drops_total",
          "Frames dropped on a full queue of sluice's cpumap (xdp_cpumap_enqueue), by CPU.", MetricType::Counter,
          samples);
  samples.clear();
  if (watch) {
    if (auto unkeyed = watch->unkeyed(); unkeyed) samples.push_back(sample({}, *unkeyed));
  }
  out.add("sluice_xdp_redirect_errors_uncounted_total",
          "Failed redirects not broken down by port because the table of (port, errno) keys was full.",
          MetricType::Counter, samples);
  samples.clear();
  for (const char* tracepoint : kTracepoints) {
    const bool watched = watch && std::ranges::find(watch->attached(), std::string(tracepoint)) != watch->attached().end();
    samples.push_back(sample({{"tracepoint", tracepoint}}, static_cast<unsigned>(watched)));
  }
  out.add("sluice_xdp_redirect_error_watch", "1 for each kernel tracepoint whose failed redirects are counted here.",
          MetricType::Gauge, samples);
  return out.text();
}

}  // namespace sluice::daemon
