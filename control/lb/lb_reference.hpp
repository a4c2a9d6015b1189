#pragma once
// Reference model of the lb stage's data plane (xdp/stage_lb.h and the
// lb_*.h beside it), in plain C++ over the raw contents of the lb maps:
// given those and a frame, what the entry program + lb stage + a
// pass-through forward stage decide (verdict, reason, chosen backend) and
// the bytes that leave. Written from the stage's rules, not from its code:
// the randomized differential test (tests/lb/lb_diff_test.cpp) demands that
// both agree on every packet. The filter stage is not part of it (run the
// data plane with the filter's bit cleared); the parser is the filter
// model's (control/filter/filter_model.hpp).
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "contract.hpp"

namespace sluice::lb::reference {

// Orders a contract struct by its bytes (the kernel's hash maps key by bytes too).
template <class T>
struct BytesLess {
  bool operator()(const T& a, const T& b) const { return std::memcmp(&a, &b, sizeof(T)) < 0; }
};

// The lb maps as the data plane reads them.
struct MapState {
  sluice_lb_settings settings{};  // lb_settings[0]; version 0: never written
  std::map<sluice_lb_vip_key, sluice_lb_vip, BytesLess<sluice_lb_vip_key>> vips;
  // lb_maglev: vip_id -> the inner array's entries (entry 0 = size, as written, however wrong)
  std::map<std::uint32_t, std::vector<std::uint32_t>> maglev;
  std::vector<sluice_lb_backend> backends = std::vector<sluice_lb_backend>(SLUICE_LB_MAX_BACKENDS);
  std::map<sluice_lb_flow_v4_key, sluice_lb_conn, BytesLess<sluice_lb_flow_v4_key>> conns_v4;
  std::map<sluice_lb_flow_key, sluice_lb_conn, BytesLess<sluice_lb_flow_key>> conns_v6;
  bool egress_port_present = false;  // lb_egress_ports[0] holds a device
  // lb_icmp_bucket of the one CPU the model is (tests that drain it pin their thread to one CPU).
  sluice_fwd_icmp_bucket icmp_bucket{};
};

// What the stage counted (sums over CPUs).
struct Counters {
  std::map<std::uint32_t, sluice_lb_counter> vips;
  std::map<std::uint32_t, sluice_lb_counter> backends;
  std::array<std::uint64_t, SLUICE_LB_EVENT_SLOTS> events{};
};

struct Outcome {
  sluice_verdict verdict = SLUICE_VERDICT_PASS;
  std::uint32_t reason = SLUICE_REASON_PIPELINE_END;
  std::uint32_t backend_id = SLUICE_LB_NO_BACKEND;  // the backend the packet went to (or was meant for)
  std::vector<std::uint8_t> output;                 // the frame as it leaves (not meaningful for drops)
};

// The flow hash of maps/sluice_flow_hash.h over a parsed packet.
std::uint32_t flow_hash(const sluice_pkt& pkt);

// One frame through entry + lb + forward (pass-through) under `config`,
// whose stages_enabled must not include the filter (std::invalid_argument).
// `state` changes as the data plane's maps do (connection entries added,
// last_seen refreshed); `counters` add up what the stage counts. now_ns is
// the CLOCK_MONOTONIC_COARSE reading the stage would see.
Outcome run(MapState& state, Counters& counters, std::span<const std::uint8_t> frame, const sluice_config& config,
            std::uint64_t now_ns);

// Internet checksum helpers the model builds its frames with (also for tests).
std::uint16_t checksum(std::span<const std::uint8_t> data, std::uint64_t initial = 0);

}  // namespace sluice::lb::reference
