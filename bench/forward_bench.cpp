// The forward stage's cost: ns per routed IPv4 / IPv6 packet at 1, 10,000
// and 1,000,000 routes (IPv4 from the trie and from the DIR-24-8 copy),
// next to the empty program, the restore-only baseline, and a minimal
// router on the kernel's own FIB (bpf_fib_lookup, as samples/bpf/xdp_fwd),
// in the same run with interleaved rounds. Every repeat restores the frame
// (xdp/forward_bench.bpf.c), and the verdict counters must show one routed
// packet per repeat, or the bench fails.
//
// Runs inside a network namespace it creates (the FIB router needs an
// interface, a route and a neighbour there); removed on exit.
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
#include <iostream>
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
  std::uint32_t repeat = 1'000'000;
  int rounds = 5;
  std::vector<std::size_t> route_counts = {1, 10'000, 1'000'000};
  std::size_t fib_routes = 10'000;
  bool json = false;
};

std::vector<std::size_t> parse_counts(const std::string& text) {
  std::vector<std::size_t> out;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t comma = text.find(',', at);
    out.push_back(std::stoul(text.substr(at, comma - at)));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

double time_once(int fd, const std::vector<std::uint8_t>& frame, std::uint32_t repeat, std::uint32_t ifindex,
                 std::uint32_t expect_verdict, const std::string& what) {
  std::vector<std::uint8_t> out(frame.size() + 256);
  xdp_md ctx{};
  ctx.data_end = static_cast<std::uint32_t>(frame.size());
  ctx.ingress_ifindex = ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<std::uint32_t>(frame.size()),
              .data_size_out = static_cast<std::uint32_t>(out.size()), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
              .repeat = static_cast<int>(repeat));
  if (int err = bpf_prog_test_run_opts(fd, &opts); err)
    throw std::runtime_error("BPF_PROG_TEST_RUN of " + what + ": " + std::strerror(-err));
  if (opts.retval != expect_verdict)
    throw std::runtime_error(what + " returned " + std::to_string(opts.retval) + ", expected " +
                             std::to_string(expect_verdict));
  return opts.duration;
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

struct Case {
  std::string group, name;
  int fd;
  const std::vector<std::uint8_t>* frame;
  std::uint32_t verdict;
  std::function<std::uint64_t()> routed;  // empty: nothing to prove
  std::vector<double> samples;
};

int run(const Options& options) {
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

  bench::Report report("forward stage: ns per routed packet (BPF_PROG_TEST_RUN, repeat " +
                           std::to_string(options.repeat) + ", median of " + std::to_string(options.rounds) +
                           " interleaved rounds)",
                       "empty");
  // One set of cases timed together: rounds interleaved, each frame restored into bench_restore before its case.
  auto time_cases = [&](std::vector<Case>& cases) {
    for (int round = 0; round < options.rounds; ++round)
      for (auto& c : cases) {
        set_restore(*c.frame);
        const std::uint64_t before = c.routed ? c.routed() : 0;
        c.samples.push_back(time_once(c.fd, *c.frame, options.repeat, ingress, c.verdict, c.name));
        if (c.routed && c.routed() - before != options.repeat)
          throw std::runtime_error(c.name + ": " + std::to_string(c.routed() - before) + " of " +
                                   std::to_string(options.repeat) + " repeats routed");
      }
    double empty_ns = 0;
    for (auto& c : cases) {
      std::sort(c.samples.begin(), c.samples.end());
      const double median = c.samples[c.samples.size() / 2];
      if (c.name == "empty (XDP_DROP)") empty_ns = median;
      report.add({c.group, c.name, median, empty_ns, c.verdict});
    }
  };

  const int fd_empty = bpf_program__fd(empty->progs.empty_drop);
  const int fd_restore = bpf_program__fd(bench->progs.bench_restore_only);
  const int fd_forward = bpf_program__fd(bench->progs.bench_forward);
  const int fd_fib = bpf_program__fd(bench->progs.bench_fib);
  const std::string fib_name = "bpf_fib_lookup router (" + std::to_string(options.fib_routes) + " kernel routes)";

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
    std::vector<Case> trie_cases = {
        {"ipv4 " + n, "empty (XDP_DROP)", fd_empty, &frame4, XDP_DROP, {}, {}},
        {"ipv4 " + n, "restore prologue alone", fd_restore, &frame4, XDP_DROP, {}, {}},
        {"ipv4 " + n, "sluice forward, trie", fd_forward, &frame4, XDP_REDIRECT, [&] { return forward_routed(plane); }, {}},
        {"ipv4 " + n, fib_name, fd_fib, &frame4, XDP_REDIRECT, [&] { return fib_routed(bench); }, {}},
    };
    time_cases(trie_cases);
    std::vector<Case> v6_cases = {
        {"ipv6 " + std::to_string(count6), "empty (XDP_DROP)", fd_empty, &frame6, XDP_DROP, {}, {}},
        {"ipv6 " + std::to_string(count6), "sluice forward, trie", fd_forward, &frame6, XDP_REDIRECT, [&] { return forward_routed(plane); }, {}},
        {"ipv6 " + std::to_string(count6), fib_name, fd_fib, &frame6, XDP_REDIRECT, [&] { return fib_routed(bench); }, {}},
    };
    time_cases(v6_cases);
    must(table->add_route(*maps::parse_prefix("198.18.0.0/24"), route::RouteTarget::to_stack()));
    // Some generated prefixes were skipped above: top up to the threshold.
    for (std::uint32_t extra = 0; !table->dir24_8_active() && extra < 0x10000; ++extra) {
      sluice_lpm_v4_key key{.prefixlen = 32, .addr = {203, 0, static_cast<std::uint8_t>(extra >> 8), static_cast<std::uint8_t>(extra)}};
      (void)table->add_route(key, route::RouteTarget::to_stack());
    }
    if (!table->dir24_8_active()) throw std::runtime_error("DIR-24-8 not plugged: " + table->dir24_8_error());
    std::vector<Case> dir_cases = {
        {"ipv4 " + n, "empty (XDP_DROP)", fd_empty, &frame4, XDP_DROP, {}, {}},
        {"ipv4 " + n, "sluice forward, DIR-24-8", fd_forward, &frame4, XDP_REDIRECT, [&] { return forward_routed(plane); }, {}},
        {"ipv4 " + n, fib_name, fd_fib, &frame4, XDP_REDIRECT, [&] { return fib_routed(bench); }, {}},
    };
    time_cases(dir_cases);
  }
  if (options.json) report.print_json(std::cout);
  else report.print_table(std::cout);
  forward_bench_bpf__destroy(bench);
  empty_bpf__destroy(empty);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--repeat") options.repeat = static_cast<std::uint32_t>(std::stoul(next()));
    else if (arg == "--rounds") options.rounds = std::stoi(next());
    else if (arg == "--routes") options.route_counts = parse_counts(next());
    else if (arg == "--fib-routes") options.fib_routes = std::stoul(next());
    else if (arg == "--json") options.json = true;
    else {
      std::cerr << "usage: forward_bench [--repeat N] [--rounds N] [--routes 1,10000,1000000] [--fib-routes N] [--json]\n";
      return 2;
    }
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::cerr << "forward_bench: " << e.what() << "\n";
    return 1;
  }
}
