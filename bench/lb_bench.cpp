// ns/packet of the lb stage's paths through the product's entry program:
// a new TCP flow (Maglev pick + connection insert), an established flow
// (connection-table hit), a packet for no VIP; IPv4 and IPv6; 1 and 1,000
// VIPs; filter stage off and on. Rewriting paths go through a harness
// (bench/lb_harness.bpf.c) that restores the frame before every repeat, so
// each figure comes from interleaved rounds paired with the harness +
// XDP_DROP (harness, path, harness, path, ...) on a pinned CPU. After every
// round the verdict and the per-path counters must show that each repeat
// took the path measured, or the bench fails.
#include <CLI/CLI.hpp>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <iomanip>
#include <map>
#include <sstream>

#include "bench_support.hpp"
#include "dataplane.hpp"
#include "packet_builder.hpp"
// after the contract: the skeletons name its structs
#include "empty.skel.h"
#include "lb_harness.skel.h"
#include "sluice.skel.h"

namespace {

using sluice::test::Bytes;
using sluice::test::PacketBuilder;
using sluice::test::TcpFlags;

constexpr std::uint32_t kVip4 = 1, kVip6 = 2;
constexpr std::uint32_t kBackendsPerVip = 10;
constexpr std::uint32_t kManyVips = 1000;
constexpr std::size_t kHarnessFrameMax = 256;  // LB_HARNESS_FRAME_MAX
constexpr std::uint32_t kV4FlowOff = 14 + 12 + 1;      // low 3 bytes of the IPv4 source
constexpr std::uint32_t kV6FlowOff = 14 + 8 + 16 - 3;  // low 3 bytes of the IPv6 source

struct HarnessFrame {  // struct lb_harness_frame
  std::uint32_t len, vary_flow, flow_off, pad;
  std::uint8_t bytes[kHarnessFrameMax];
};

void check(int err, const std::string& what) {
  if (err < 0) throw std::runtime_error(what + ": " + std::strerror(-err));
}

void put_addr(std::uint32_t (&words)[4], std::string_view text) {
  std::memset(words, 0, sizeof words);
  if (text.find(':') != std::string_view::npos) {
    const auto a = sluice::test::parse_ipv6(text);
    std::memcpy(words, a.data(), 16);
  } else {
    const auto a = sluice::test::parse_ipv4(text);
    std::memcpy(words, a.data(), 4);
  }
}

class LbSetup {
 public:
  explicit LbSetup(const sluice::dataplane::Dataplane& plane) : maps_(plane.skeleton()->maps) {}

  void vip(std::string_view addr, std::uint32_t vip_id) {
    sluice_lb_vip_key key{};
    put_addr(key.addr, addr);
    key.port = 80;
    key.proto = IPPROTO_TCP;
    key.ip_version = addr.find(':') != std::string_view::npos ? 6 : 4;
    const sluice_lb_vip value{vip_id, 0};
    check(bpf_map_update_elem(bpf_map__fd(maps_.lb_vips), &key, &value, BPF_ANY), "write lb_vips");
  }

  // kBackendsPerVip backends of one family and a default-size table cycling over them.
  void pool(std::uint32_t vip_id, std::uint32_t first_id, bool v6) {
    for (std::uint32_t i = 0; i < kBackendsPerVip; ++i) {
      sluice_lb_backend be{};
      put_addr(be.addr, v6 ? "2001:db8:1::" + std::to_string(i + 1) : "198.18.1." + std::to_string(i + 1));
      be.ip_version = v6 ? 6 : 4;
      be.state = SLUICE_LB_BACKEND_UP;
      be.epoch = 1;
      be.vip_id = vip_id;
      const std::uint32_t id = first_id + i;
      check(bpf_map_update_elem(bpf_map__fd(maps_.lb_backends), &id, &be, BPF_ANY), "write lb_backends");
    }
    std::vector<std::uint32_t> table(1 + SLUICE_LB_MAGLEV_SIZE_DEFAULT), keys(table.size());
    table[0] = SLUICE_LB_MAGLEV_SIZE_DEFAULT;
    for (std::uint32_t i = 1; i < table.size(); ++i) table[i] = first_id + i % kBackendsPerVip;
    for (std::uint32_t i = 0; i < keys.size(); ++i) keys[i] = i;
    LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = BPF_F_INNER_MAP);
    const int inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "lb_maglev_bench", 4, 4, static_cast<std::uint32_t>(table.size()),
                                     &options);
    check(inner, "create a Maglev table");
    std::uint32_t count = static_cast<std::uint32_t>(table.size());
    int err = bpf_map_update_batch(inner, keys.data(), table.data(), &count, nullptr);
    if (err == 0) err = bpf_map_update_elem(bpf_map__fd(maps_.lb_maglev), &vip_id, &inner, BPF_ANY);
    ::close(inner);
    check(err, "fill and install a Maglev table");
  }

  void settings() {
    sluice_lb_settings s{};
    s.version = SLUICE_LB_SETTINGS_VERSION;
    std::uint32_t v4[4];
    put_addr(v4, "198.18.0.1");
    s.encap_src_v4 = v4[0];
    put_addr(s.encap_src_v6, "2001:db8::1");
    s.egress = SLUICE_LB_EGRESS_TX;
    s.conn_timeout_s = 300;
    const auto hop = sluice::test::parse_mac("02:00:00:00:00:fe");
    std::memcpy(s.next_hop_mac, hop.data(), 6);
    const std::uint32_t slot = 0;
    check(bpf_map_update_elem(bpf_map__fd(maps_.lb_settings), &slot, &s, BPF_ANY), "write lb_settings");
  }

  std::uint64_t new_conns(std::uint32_t vip_id) const {
    std::vector<sluice_lb_counter> per_cpu(libbpf_num_possible_cpus());
    check(bpf_map_lookup_elem(bpf_map__fd(maps_.lb_vip_counters), &vip_id, per_cpu.data()), "read lb_vip_counters");
    std::uint64_t total = 0;
    for (const auto& c : per_cpu) total += c.new_conns;
    return total;
  }

 private:
  const decltype(sluice_bpf::maps)& maps_;
};

enum class Path { HarnessOnly, HarnessPush, HarnessPushStamp, NewFlow, Established, NonVip };

struct Case {
  std::string group;
  std::string name;
  Bytes frame;
  Path path;
  std::uint32_t vip_id = 0;
  bool v6 = false;
};

// New flows come from their own source port: the harness stamps a count into
// the low source address bytes, and from another port no count can make the
// established flow's 5-tuple (which would be a connection hit, not a new flow).
constexpr std::uint16_t kEstablishedPort = 40000, kNewFlowPort = 40001;

Bytes tcp(bool v6, std::string_view dst, std::uint8_t flags, std::uint16_t sport = kEstablishedPort) {
  auto b = PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02");
  if (v6) b.ipv6("2001:db8:2::2", dst);
  else b.ipv4("198.18.2.2", dst);
  return b.tcp(sport, 80, {.flags = flags}).payload(std::string(18, 'x')).build();
}

}  // namespace

int main(int argc, char** argv) {
  namespace bench = sluice::bench;
  CLI::App app{"sluice lb benchmark: ns/packet of the lb stage's paths, paired with a restoring harness + XDP_DROP"};
  bench::SectionOptions options;
  bool per_cpu_lru = false;
  std::string only;
  std::uint32_t conn_entries = SLUICE_LB_CONN_ENTRIES_DEFAULT;
  bench::add_section_options(app, options);
  app.add_flag("--per-cpu-lru", per_cpu_lru, "connection tables with BPF_F_NO_COMMON_LRU");
  app.add_option("--conn-entries", conn_entries,
                 "connection table size per family (new flows fill it: smaller than the new-flow repeats, it evicts)")
      ->check(CLI::Range(1u, sluice::dataplane::kLbConnEntriesMax));
  app.add_option("--only", only, "time only the cases whose group or name contains this (for profiling)");
  CLI11_PARSE(app, argc, argv);
  // --quick: only the filter-off, one-VIP set (the test suite's smoke run).

  try {
    const int cpu = bench::apply_section_options(app, options);
    const std::uint32_t repeat = options.repeat;
    std::unique_ptr<empty_bpf, decltype(&empty_bpf__destroy)> empty(empty_bpf__open_and_load(), empty_bpf__destroy);
    std::unique_ptr<lb_harness_bpf, decltype(&lb_harness_bpf__destroy)> harness(lb_harness_bpf__open_and_load(),
                                                                              lb_harness_bpf__destroy);
    if (!empty || !harness) throw std::runtime_error("cannot load the bench programs (root needed)");
    auto plane = sluice::dataplane::Dataplane::load({.pin_dir = {}, .lb_conn_entries = conn_entries, .lb_conn_per_cpu_lru = per_cpu_lru});
    if (!plane) throw std::runtime_error(plane.error().message);
    if (auto installed = plane->install_stages(); !installed) throw std::runtime_error(installed.error().message);
    auto config = sluice::dataplane::default_config();
    LbSetup lb(*plane);
    lb.settings();
    lb.vip("198.18.0.10", kVip4);
    lb.vip("2001:db8::10", kVip6);
    lb.pool(kVip4, 1, false);
    lb.pool(kVip6, 1 + kBackendsPerVip, true);

    const int target_map = bpf_map__fd(harness->maps.harness_target);
    const int frame_map = bpf_map__fd(harness->maps.harness_frame);
    const int harness_fd = bpf_program__fd(harness->progs.lb_harness);
    auto aim = [&](int prog_fd) {
      const std::uint32_t slot = 0;
      check(bpf_map_update_elem(target_map, &slot, &prog_fd, BPF_ANY), "aim the harness");
    };
    auto load_frame = [&](const Case& c) {
      HarnessFrame f{};
      if (c.frame.size() > kHarnessFrameMax) throw std::logic_error("bench frame too long for the harness");
      f.len = static_cast<std::uint32_t>(c.frame.size());
      f.vary_flow = c.path == Path::NewFlow || c.path == Path::HarnessPushStamp;
      f.flow_off = c.v6 ? kV6FlowOff : kV4FlowOff;
      std::memcpy(f.bytes, c.frame.data(), c.frame.size());
      const std::uint32_t slot = 0;
      check(bpf_map_update_elem(frame_map, &slot, &f, BPF_ANY), "write the harness frame");
    };

    auto count_of = [&](sluice_verdict v, std::uint32_t reason) {
      auto counted = plane->verdict_count(v, static_cast<sluice_reason>(reason));
      if (!counted) throw std::runtime_error(counted.error().message);
      return counted->packets;
    };
    // One round of a case, with the proof that every repeat took its path:
    // its verdict, and the counters of that path (and of connection inserts).
    auto time_case = [&](const Case& c) {
      load_frame(c);
      const bool harness_only = c.path == Path::HarnessOnly || c.path == Path::HarnessPush ||
                                c.path == Path::HarnessPushStamp;
      aim(c.path == Path::HarnessOnly ? bpf_program__fd(harness->progs.harness_drop)
          : harness_only              ? bpf_program__fd(harness->progs.harness_push_drop)
                                      : plane->entry_prog_fd());
      const bool vip = c.path == Path::NewFlow || c.path == Path::Established;
      const std::uint32_t verdict = harness_only ? XDP_DROP : vip ? XDP_TX : XDP_PASS;
      const std::string what = c.group + " / " + c.name;
      if (harness_only)
        return bench::run_xdp_round(harness_fd, c.frame, repeat, what, verdict).ns_per_packet;
      const std::uint64_t sent = vip ? count_of(SLUICE_VERDICT_TX, SLUICE_REASON_LB_ENCAP)
                                     : count_of(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END);
      const std::uint64_t fresh = vip ? lb.new_conns(c.vip_id) : 0;
      const double ns = bench::run_xdp_round(harness_fd, c.frame, repeat, what, verdict).ns_per_packet;
      const std::uint64_t took = (vip ? count_of(SLUICE_VERDICT_TX, SLUICE_REASON_LB_ENCAP)
                                      : count_of(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END)) - sent;
      const std::uint64_t inserted = vip ? lb.new_conns(c.vip_id) - fresh : 0;
      const std::uint64_t want_inserted = c.path == Path::NewFlow ? repeat : 0;
      if (took != repeat || inserted != want_inserted)
        throw std::runtime_error(what + ": " + std::to_string(took) + " of " + std::to_string(repeat) +
                                 " repeats took the path, " + std::to_string(inserted) + " connections inserted (" +
                                 std::to_string(want_inserted) + " expected)");
      return ns;
    };
    // The lb stage's own maps (lb_*; not the Maglev tables inside lb_maglev): what the VIPs cost in memory.
    auto lb_map_bytes = [&] {
      constexpr std::string_view lb_prefix = "lb_";
      auto tables = plane->tables();
      if (!tables) throw std::runtime_error(tables.error().message);
      std::uint64_t bytes = 0;
      for (const auto& table : *tables)
        if (table.name.rfind(lb_prefix, 0) == 0) bytes += table.memory_bytes;
      return bytes;
    };

    // label: what sets this run apart ("" / "filter on" / "1000 VIPs"), appended to its groups.
    auto make_cases = [&](const std::string& label) {
      const std::string suffix = label.empty() ? "" : ", " + label;
      std::vector<Case> cases;
      // what the restore costs an encapsulating path beyond the baseline (its adjust_head back)
      cases.push_back({"harness" + suffix, "harness + 20-byte push + XDP_DROP", tcp(false, "198.18.0.10", TcpFlags::ACK),
                       Path::HarnessPush, 0, false});
      // and what it costs a new flow's repeat, which also stamps a fresh flow number into the source
      cases.push_back({"harness" + suffix, "harness + flow stamp + 20-byte push + XDP_DROP",
                       tcp(false, "198.18.0.10", TcpFlags::SYN, kNewFlowPort), Path::HarnessPushStamp, 0, false});
      for (bool v6 : {false, true}) {
        const std::string group = (v6 ? "ipv6/tcp" : "ipv4/tcp") + suffix;
        const char* vip_addr = v6 ? "2001:db8::10" : "198.18.0.10";
        const std::uint32_t vip_id = v6 ? kVip6 : kVip4;
        cases.push_back({group, "new flow (Maglev + insert)", tcp(v6, vip_addr, TcpFlags::SYN, kNewFlowPort), Path::NewFlow,
                         vip_id, v6});
        cases.push_back({group, "established (connection hit)", tcp(v6, vip_addr, TcpFlags::ACK), Path::Established,
                         vip_id, v6});
        cases.push_back({group, "not a VIP", tcp(v6, v6 ? "2001:db8::99" : "198.18.0.99", TcpFlags::ACK), Path::NonVip,
                         0, v6});
      }
      return cases;
    };

    const Case harness_case{"harness", "harness + XDP_DROP", tcp(false, "198.18.0.10", TcpFlags::ACK), Path::HarnessOnly};
    const bench::TimedRound harness_round = [&] { return time_case(harness_case); };
    const std::string baseline_name = "harness + XDP_DROP";
    bench::SectionWriter writer("lb", cpu);
    // vips: set on the figures of the VIP-scaling sets (filter off), for the "vips" curve.
    auto run_set = [&](const std::vector<Case>& cases, std::optional<std::uint32_t> vips) {
      for (const Case& c : cases)  // the established flows' entries exist before timing
        if (c.path == Path::Established) {
          load_frame(c);
          aim(plane->entry_prog_fd());
          (void)bench::run_xdp_round(harness_fd, c.frame, bench::min_repeat, "warm-up of " + c.group + " / " + c.name);
        }
      const std::uint64_t bytes = lb_map_bytes();
      for (const Case& c : cases) {
        if ((c.group + " " + c.name).find(only) == std::string::npos) continue;
        const bench::TimedRound path = [&] { return time_case(c); };
        bench::Figure& figure = writer.add_paired(c.group, c.name, bench::time_paired(harness_round, path, options.rounds),
                                                  baseline_name, "verdict and path counters checked every round");
        if (vips && c.path != Path::HarnessPush && c.path != Path::HarnessPushStamp) {
          figure.curve = "vips";
          figure.x = *vips;
          figure.series = (c.v6 ? "ipv6 " : "ipv4 ") + c.name;
          figure.map_bytes = bytes;
        }
      }
    };

    writer.note(std::to_string(repeat) + " packets per round, " + std::to_string(options.rounds) +
                " paired rounds per figure, " + (per_cpu_lru ? "BPF_F_NO_COMMON_LRU" : "shared LRU") + ", " +
                std::to_string(conn_entries) + " connections per family");
    auto stages = [&](std::uint32_t enabled) {
      config.stages_enabled = enabled;
      if (auto set = plane->set_config(config); !set) throw std::runtime_error(set.error().message);
    };
    const std::uint32_t lb_and_forward = SLUICE_STAGE_BIT(SLUICE_STAGE_LB) | SLUICE_STAGE_BIT(SLUICE_STAGE_FORWARD);
    // filter off, 1 VIP per family
    stages(lb_and_forward);
    run_set(make_cases(""), 1u);
    // the bare empty program, for scale: what the harness itself adds
    if (std::string("empty bare XDP_DROP (no harness)").find(only) != std::string::npos) {
      const int empty_fd = bpf_program__fd(empty->progs.empty_drop);
      const bench::TimedRound bare = [&] {
        return bench::run_xdp_round(empty_fd, harness_case.frame, repeat, "empty", XDP_DROP).ns_per_packet;
      };
      writer.add_paired("empty", "bare XDP_DROP (no harness)", bench::time_paired(harness_round, bare, options.rounds),
                        baseline_name, "below 1: the harness's own cost");
    }
    if (!options.quick) {
      // filter on (empty rule set), 1 VIP
      stages(SLUICE_STAGES_ALL);
      run_set(make_cases("filter on"), std::nullopt);
      // filter off, 1,000 VIPs
      stages(lb_and_forward);
      for (std::uint32_t i = 0; i < kManyVips - 2; ++i)
        lb.vip("198.18." + std::to_string(4 + i / 250) + "." + std::to_string(1 + i % 250), 3 + i);
      run_set(make_cases(std::to_string(kManyVips) + " VIPs"), kManyVips);
    }
    writer.note("map_bytes: bytes_memlock of the lb stage's maps (lb_*; the Maglev tables inside lb_maglev not among them)");
    writer.emit(std::cout, options.json);
  } catch (const std::exception& e) {
    std::cerr << "lb_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
