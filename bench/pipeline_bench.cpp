// ns/packet of the bare parser, of the pipeline machinery (the product's
// entry program + three pass-through stages, xdp/pipeline_bench.bpf.c), and of
// the product's pipeline with its real stages and nothing configured, each
// from interleaved rounds paired with an empty XDP_DROP program (baseline,
// path, baseline, path, ...) on one pinned CPU. Every round checks its
// verdict: a path that stopped passing the packet fails the bench.
#include <CLI/CLI.hpp>

#include <bpf/libbpf.h>

#include <cstring>
#include <iostream>

#include "bench_support.hpp"
#include "dataplane.hpp"
#include "packet_builder.hpp"
// after the contract: the skeletons name its structs
#include "empty.skel.h"
#include "parse_only.skel.h"
#include "pipeline_bench.skel.h"

namespace {

using sluice::test::PacketBuilder;
namespace bench = sluice::bench;

struct Sample {
  std::string group;
  std::vector<std::uint8_t> frame;
};

std::vector<Sample> samples() {
  auto ether = [] { return PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02"); };
  return {
      {"ipv4/tcp", ether().ipv4("198.18.0.1", "198.18.1.1").tcp(40000, 80).payload(std::string(18, 'x')).build()},
      {"ipv6/udp", ether().ipv6("2001:db8::1", "2001:db8::2").udp(40000, 53).payload(std::string(18, 'x')).build()},
      {"vlan/ipv4/tcp",
       ether().vlan(100).ipv4("198.18.0.1", "198.18.1.1").tcp(40000, 80).payload(std::string(18, 'x')).build()},
  };
}

struct Path {
  std::string name;
  int prog_fd;
  std::uint32_t verdict;  // every round must return it
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice pipeline benchmark: ns/packet through BPF_PROG_TEST_RUN, paired with an empty XDP program"};
  bench::SectionOptions options;
  bench::add_section_options(app, options);
  CLI11_PARSE(app, argc, argv);

  try {
    const int cpu = bench::apply_section_options(app, options);
    std::unique_ptr<empty_bpf, decltype(&empty_bpf__destroy)> empty(empty_bpf__open_and_load(), empty_bpf__destroy);
    std::unique_ptr<parse_only_bpf, decltype(&parse_only_bpf__destroy)> parser(parse_only_bpf__open_and_load(),
                                                                               parse_only_bpf__destroy);
    std::unique_ptr<pipeline_bench_bpf, decltype(&pipeline_bench_bpf__destroy)> machinery(
        pipeline_bench_bpf__open_and_load(), pipeline_bench_bpf__destroy);
    if (!empty || !parser || !machinery) throw std::runtime_error("cannot load the bench programs (root needed)");
    const std::pair<sluice_stage, const bpf_program*> pass_through_stages[] = {
        {SLUICE_STAGE_FILTER, machinery->progs.bench_stage_filter},
        {SLUICE_STAGE_LB, machinery->progs.bench_stage_lb},
        {SLUICE_STAGE_FORWARD, machinery->progs.bench_stage_forward}};
    for (const auto& [slot, prog] : pass_through_stages) {
      const std::uint32_t key = slot;
      const int fd = bpf_program__fd(prog);
      if (int err = bpf_map__update_elem(machinery->maps.stage_progs, &key, sizeof(key), &fd, sizeof(fd), BPF_ANY); err)
        throw std::runtime_error("install pass-through stage: " + std::string(std::strerror(-err)));
    }
    auto plane = sluice::dataplane::Dataplane::load({});
    if (!plane) throw std::runtime_error(plane.error().message);
    if (auto installed = plane->install_stages(); !installed) throw std::runtime_error(installed.error().message);

    const int empty_fd = bpf_program__fd(empty->progs.empty_drop);
    // The parser drops what it parsed (its only way to say "parsed"); the pipelines pass it on.
    const std::vector<Path> paths = {
        {"parser only", bpf_program__fd(parser->progs.parse_only), XDP_DROP},
        {"parse + 3 pass-through stages", bpf_program__fd(machinery->progs.bench_entry), XDP_PASS},
        {"sluice: parse + filter (empty) + lb + forward", plane->entry_prog_fd(), XDP_PASS},
    };
    const std::string baseline_name = "empty XDP_DROP";
    bench::SectionWriter writer("pipeline", cpu);
    for (const Sample& sample : samples()) {
      const bench::TimedRound baseline = [&] {
        return bench::run_xdp_round(empty_fd, sample.frame, options.repeat, "empty", XDP_DROP).ns_per_packet;
      };
      for (const Path& path : paths) {
        const std::string what = sample.group + " / " + path.name;
        const bench::TimedRound timed = [&] {
          return bench::run_xdp_round(path.prog_fd, sample.frame, options.repeat, what, path.verdict).ns_per_packet;
        };
        writer.add_paired(sample.group, path.name, bench::time_paired(baseline, timed, options.rounds), baseline_name,
                          "verdict " + std::string(path.verdict == XDP_PASS ? "XDP_PASS" : "XDP_DROP") +
                              " checked every round");
      }
    }
    writer.note(std::to_string(options.repeat) + " packets per round, " + std::to_string(options.rounds) +
                " paired rounds per figure");
    writer.emit(std::cout, options.json);
  } catch (const std::exception& error) {
    std::cerr << "pipeline_bench: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
