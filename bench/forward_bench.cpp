// The forward stage's cost: ns per routed IPv4 / IPv6 packet at 1, 10,000
// and 1,000,000 routes (IPv4 from the trie and from the DIR-24-8 copy),
// next to the restore-only prologue and a minimal router on the kernel's own
// FIB (bpf_fib_lookup, as samples/bpf/xdp_fwd) as a peer: each figure from
// interleaved rounds paired with the empty XDP_DROP program on a pinned CPU.
// Every repeat restores the frame (xdp/forward_bench.bpf.c), and the routed
// counters must show one routed packet per repeat in every round, or the
// bench fails.
//
// Runs inside a network namespace it creates (the FIB router needs an
// interface, a route and a neighbour there); removed on exit.
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sched.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "dataplane.hpp"
#include "empty.skel.h"
#include "forward_bench.skel.h"
#include "packet_builder.hpp"
#include "prefix_sets.hpp"
#include "route_table.hpp"
#include "sluice.skel.h"

namespace {

using namespace sluice;
namespace bench = sluice::bench;

int sh(const std::string& command) { return std::system(command.c_str()); }

struct Namespace {
  std::string name = "sl-fwdbench-" + std::to_string(getpid());
  int home = -1;
  Namespace() {
    if (sh("ip netns add " + name) != 0) throw std::runtime_error("ip netns add " + name);
    home = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    const int ns = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) throw std::runtime_error("enter " + name);
    ::close(ns);
  }
  ~Namespace() {
    if (home >= 0) setns(home, CLONE_NEWNET);
    sh("ip netns del " + name);
  }
};

struct Options {
  bench::SectionOptions section;
  std::vector<std::size_t> route_counts = {1, 10'000, 1'000'000};
  std::size_t fib_routes = 10'000;
};
// --quick without --routes / --fib-routes: small tables that still plug the DIR-24-8 copy in.
const std::vector<std::size_t> kQuickRouteCounts = {1, 1'000};
constexpr std::size_t kQuickFibRoutes = 100;
constexpr std::size_t kMaxRoutes = 1'000'000;

// "1,10000,1000000" -> counts; a bad field is named, nothing is run.
std::vector<std::size_t> parse_counts(const std::string& text) {
  std::vector<std::size_t> out;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = text.find(',', at);
    const std::string field = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    std::size_t used = 0;
    std::size_t count = 0;
    try {
      count = std::stoul(field, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (field.empty() || used != field.size() || count < 1 || count > kMaxRoutes)
      throw std::invalid_argument("--routes: '" + field + "' is not a route count in 1.." + std::to_string(kMaxRoutes));
    out.push_back(count);
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

std::uint64_t fib_routed(forward_bench_bpf* bench) {
  const int cpus = libbpf_num_possible_cpus();
  std::vector<std::uint64_t> values(static_cast<std::size_t>(cpus));
  std::uint32_t slot = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(bench->maps.bench_fib_counters), &slot, values.data()))
    throw std::runtime_error("read bench_fib_counters");
  std::uint64_t total = 0;
  for (auto v : values) total += v;
  return total;
}

std::uint64_t forward_routed(const dataplane::Dataplane& plane) {
  auto counted = plane.verdict_count(SLUICE_VERDICT_REDIRECT, static_cast<sluice_reason>(SLUICE_REASON_FWD_ROUTED));
  if (!counted) throw std::runtime_error(counted.error().message);
  return counted->packets;
}

void must(const maps::Result<void>& r) {
  if (!r) throw std::runtime_error(r.error().message);
}

// One timed path: paired with the empty program on its frame. `routed`, when
// set, must rise by one per repeat of every round (the path really routed).
struct Case {
  std::string name;
  int fd;
  const std::vector<std::uint8_t>* frame;
  std::uint32_t verdict;
  std::function<std::uint64_t()> routed;
  std::string series;  // on the routes curve; empty: not on it
  std::optional<double> x;
};

// The forward stage's own maps (fwd_*): what a route count costs in memory.
std::uint64_t map_bytes(const dataplane::Dataplane& plane) {
  constexpr std::string_view forward_prefix = "fwd_";
  auto tables = plane.tables();
  if (!tables) throw std::runtime_error(tables.error().message);
  std::uint64_t bytes = 0;
  for (const auto& table : *tables)
    if (table.name.rfind(forward_prefix, 0) == 0) bytes += table.memory_bytes;
  return bytes;
}

int run(const Options& options) {
  const std::uint32_t repeat = options.section.repeat;
  const int rounds = options.section.rounds;
  bench::SectionWriter writer("forward", options.section.cpu);
  Namespace ns;
  // fa: where packets come in; fb: where the FIB router sends them (neighbour 198.18.1.1 / 2001:db8:1::1).
  const char* setup =
      "ip link add fa type veth peer name fb && ip link set lo up && ip link set fa up && ip link set fb up && "
      "ip addr add 198.18.0.2/24 dev fa && ip addr add 198.18.1.2/24 dev fb && "
      "ip -6 addr add 2001:db8::2/64 dev fa nodad && ip -6 addr add 2001:db8:1::2/64 dev fb nodad && "
      "ip neigh add 198.18.1.1 lladdr 02:00:00:00:01:01 dev fb nud permanent && "
      "ip -6 neigh add 2001:db8:1::1 lladdr 02:00:00:00:01:01 dev fb nud permanent && "
      "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1";
  if (sh(setup) != 0) throw std::runtime_error("bench namespace setup");
  // The kernel FIB holds fib_routes routes (inside 198.18.0.0/15, via the neighbour) besides the connected ones.
  {
    const std::string batch = "/tmp/sluice-fwdbench-" + std::to_string(getpid()) + ".batch";
    FILE* f = std::fopen(batch.c_str(), "w");
    if (f == nullptr) throw std::runtime_error("cannot write " + batch);
    for (std::size_t i = 0; i + 1 < options.fib_routes; ++i)
      std::fprintf(f, "route add 198.19.%zu.%zu/30 via 198.18.1.1\n", (i >> 6) & 255, (i & 63) * 4);
    std::fclose(f);
    if (options.fib_routes > 1 && sh("ip -batch " + batch) != 0) throw std::runtime_error("kernel routes");
    std::remove(batch.c_str());
  }
  const std::uint32_t ingress = if_nametoindex("fa");

  auto loaded = dataplane::Dataplane::load({});
  if (!loaded) throw std::runtime_error(loaded.error().message);
  auto& plane = *loaded;

  forward_bench_bpf* bench = forward_bench_bpf__open();
  if (!bench) throw std::runtime_error("open forward_bench");
  bpf_map* map;
  bpf_object__for_each_map(map, bench->obj) {
    const bpf_map* theirs = bpf_object__find_map_by_name(plane.skeleton()->obj, bpf_map__name(map));
    if (theirs && bpf_map__reuse_fd(map, bpf_map__fd(theirs)))
      throw std::runtime_error(std::string("reuse ") + bpf_map__name(map));
  }
  if (forward_bench_bpf__load(bench)) throw std::runtime_error("load forward_bench");
  empty_bpf* empty = empty_bpf__open_and_load();
  if (!empty) throw std::runtime_error("load empty");

  const auto frame4 = test::PacketBuilder()
                          .eth("02:00:00:00:00:01", "02:00:00:00:00:aa")
                          .ipv4("198.18.0.1", "198.18.1.1", {.ttl = 64})
                          .udp(40000, 53)
                          .payload(std::vector<std::uint8_t>(40, 0))
                          .build();
  const auto frame6 = test::PacketBuilder()
                          .eth("02:00:00:00:00:01", "02:00:00:00:00:aa")
                          .ipv6("2001:db8::1", "2001:db8:1::1", {.hop_limit = 64})
                          .udp(40000, 53)
                          .payload(std::vector<std::uint8_t>(40, 0))
                          .build();
  auto set_restore = [&](const std::vector<std::uint8_t>& frame) {
    std::uint32_t slot = 0;
    if (bpf_map_update_elem(bpf_map__fd(bench->maps.bench_restore), &slot, frame.data(), BPF_ANY))
      throw std::runtime_error("write bench_restore");
  };

  const int fd_empty = bpf_program__fd(empty->progs.empty_drop);
  const int fd_restore = bpf_program__fd(bench->progs.bench_restore_only);
  // A routed case is paired with the restore prologue + XDP_DROP: the empty
  // program run through the same harness (as in lb_bench), so both sides pay
  // it. That shrinks the ratio against the bare program's: the prologue row,
  // paired with the bare empty program, gives what to take out of both.
  const std::string harness_baseline = "empty XDP_DROP through the restore harness";
  const std::string bare_baseline = "empty XDP_DROP";
  // Every case of a set paired with its baseline on the case's frame; rounds interleaved within the pair.
  auto time_cases = [&](const std::string& group, const std::vector<Case>& cases, std::uint64_t bytes) {
    for (const Case& c : cases) {
      const bool through_harness = c.fd != fd_restore;
      const bench::TimedRound baseline = [&] {
        if (!through_harness)
          return bench::run_xdp_round(fd_empty, *c.frame, repeat, "empty", XDP_DROP, ingress).ns_per_packet;
        set_restore(*c.frame);
        return bench::run_xdp_round(fd_restore, *c.frame, repeat, "restore harness", XDP_DROP, ingress).ns_per_packet;
      };
      const std::string what = group + " / " + c.name;
      const bench::TimedRound path = [&] {
        set_restore(*c.frame);
        const std::uint64_t before = c.routed ? c.routed() : 0;
        const double ns = bench::run_xdp_round(c.fd, *c.frame, repeat, what, c.verdict, ingress).ns_per_packet;
        if (c.routed && c.routed() - before != repeat)
          throw std::runtime_error(what + ": " + std::to_string(c.routed() - before) + " of " +
                                   std::to_string(repeat) + " repeats routed");
        return ns;
      };
      bench::Figure& figure = writer.add_paired(group, c.name, bench::time_paired(baseline, path, rounds),
                                                through_harness ? harness_baseline : bare_baseline,
                                                c.routed ? "every repeat routed (counter checked each round)"
                                                         : "verdict checked each round");
      if (!c.series.empty()) {
        figure.curve = "routes";
        figure.series = c.series;
        figure.x = c.x;
        if (c.x) figure.map_bytes = bytes;
      }
    }
  };

  const int fd_forward = bpf_program__fd(bench->progs.bench_forward);
  const int fd_fib = bpf_program__fd(bench->progs.bench_fib);
  const std::string fib_name = "bpf_fib_lookup router (" + std::to_string(options.fib_routes) + " kernel routes)";
  auto sluice_routed = [&] { return forward_routed(plane); };
  auto fib_count = [&] { return fib_routed(bench); };
  // The FIB router's kernel table does not follow sluice's route count: on
  // the curve it is a reference line, drawn from its first figure per family.
  bool fib_drawn4 = false, fib_drawn6 = false;
  auto fib_series = [](bool& drawn, const std::string& family) {
    const bool first = !drawn;
    drawn = true;
    return first ? "bpf_fib_lookup router, " + family : std::string();
  };

  for (std::size_t count : options.route_counts) {
    // Trie first (threshold above the count), then one route more plugs the DIR-24-8 copy in.
    auto table = route::RouteTable::open(plane, {.dir_threshold = count + 1});
    if (!table) throw std::runtime_error(table.error().message);
    must(table->add_next_hop("server", {"fb", test::parse_mac("02:00:00:00:01:01"), std::nullopt}));
    must(table->add_route(*maps::parse_prefix("198.18.1.0/24"), route::RouteTarget::next_hop("server")));
    must(table->add_route(*maps::parse_prefix("2001:db8:1::/64"), route::RouteTarget::next_hop("server")));
    const auto v4 = test::blocklist_like_ipv4(count + 1, 42);
    std::size_t added = 1;
    for (const auto& key : v4) {
      if (added >= count) break;
      if (key.addr[0] == 198 && (key.addr[1] & 0xfe) == 18) continue;  // leave the bench's own /24 alone
      if (table->add_route(key, route::RouteTarget::next_hop("server"))) ++added;
    }
    // IPv6: as many routes (the trie holds at most SLUICE_FWD_MAX_V6_ROUTES - 1 more).
    const std::size_t count6 = std::min<std::size_t>(count, SLUICE_FWD_MAX_V6_ROUTES - 1);
    std::mt19937_64 rng(7);
    for (std::size_t i = 1; i < count6; ++i) {
      sluice_lpm_v6_key key{.prefixlen = 48, .addr = {}};
      const std::uint64_t r = rng();
      key.addr[0] = 0x20;
      key.addr[1] = 0x01;
      key.addr[2] = 0x0d;
      key.addr[3] = 0xb9 + (r & 3);  // beside 2001:db8::/32 (map contents only)
      std::memcpy(key.addr + 4, &r, 2);
      (void)table->replace_route(key, route::RouteTarget::next_hop("server"));
    }
    const std::string n = std::to_string(count);
    const auto x4 = static_cast<double>(count), x6 = static_cast<double>(count6);
    time_cases("ipv4 " + n + " trie",
               {{"restore prologue alone", fd_restore, &frame4, XDP_DROP, {}, {}, {}},
                {"sluice forward, trie", fd_forward, &frame4, XDP_REDIRECT, sluice_routed, "sluice ipv4, trie", x4},
                {fib_name, fd_fib, &frame4, XDP_REDIRECT, fib_count, fib_series(fib_drawn4, "ipv4"), {}}},
               map_bytes(plane));
    time_cases("ipv6 " + std::to_string(count6) + " trie",
               {{"sluice forward, trie", fd_forward, &frame6, XDP_REDIRECT, sluice_routed, "sluice ipv6, trie", x6},
                {fib_name, fd_fib, &frame6, XDP_REDIRECT, fib_count, fib_series(fib_drawn6, "ipv6"), {}}},
               map_bytes(plane));
    must(table->add_route(*maps::parse_prefix("198.18.0.0/24"), route::RouteTarget::to_stack()));
    // Some generated prefixes were skipped above: top up to the threshold.
    for (std::uint32_t extra = 0; !table->dir24_8_active() && extra < 0x10000; ++extra) {
      sluice_lpm_v4_key key{.prefixlen = 32, .addr = {203, 0, static_cast<std::uint8_t>(extra >> 8), static_cast<std::uint8_t>(extra)}};
      (void)table->add_route(key, route::RouteTarget::to_stack());
    }
    if (!table->dir24_8_active()) throw std::runtime_error("DIR-24-8 not plugged: " + table->dir24_8_error());
    time_cases("ipv4 " + n + " DIR-24-8",
               {{"sluice forward, DIR-24-8", fd_forward, &frame4, XDP_REDIRECT, sluice_routed, "sluice ipv4, DIR-24-8", x4},
                {fib_name, fd_fib, &frame4, XDP_REDIRECT, fib_count, {}, {}}},
               map_bytes(plane));
  }
  writer.note(std::to_string(repeat) + " packets per round, " + std::to_string(rounds) +
              " paired rounds per figure; every repeat restores the frame (xdp/forward_bench.bpf.c)");
  writer.note("routed rows: paired with the empty program through the same restore harness (both sides pay it, which "
              "shrinks the ratio); the prologue row: paired with the bare empty program (what to take out of both)");
  writer.note("groups: family, route count, lookup structure; map_bytes: bytes_memlock of the forward stage's maps (fwd_*) at that route count; the DIR-24-8 copy's own maps are not among them");
  writer.emit(std::cout, options.section.json);
  forward_bench_bpf__destroy(bench);
  empty_bpf__destroy(empty);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice forward benchmark: ns per routed packet at each route count, paired with an empty XDP program, "
               "next to a bpf_fib_lookup router"};
  Options options;
  std::string routes;
  bench::add_section_options(app, options.section);
  app.add_option("--routes", routes, "route counts, comma-separated (default 1,10000,1000000; --quick: 1,1000)");
  app.add_option("--fib-routes", options.fib_routes, "routes in the kernel FIB of the bpf_fib_lookup router (--quick: 100)")
      ->check(CLI::Range(std::size_t{1}, kMaxRoutes));
  CLI11_PARSE(app, argc, argv);
  try {
    if (!routes.empty()) options.route_counts = parse_counts(routes);
    else if (options.section.quick) options.route_counts = kQuickRouteCounts;
    if (options.section.quick && app.count("--fib-routes") == 0) options.fib_routes = kQuickFibRoutes;
    bench::apply_section_options(app, options.section);
    return run(options);
  } catch (const std::exception& e) {
    std::cerr << "forward_bench: " << e.what() << "\n";
    return 1;
  }
}
