// ns/packet of the bare parser, of the pipeline machinery (the product's
// entry program + three pass-through stages, xdp/pipeline_bench.bpf.c), and of
// the product's pipeline with its real stages and nothing configured, next to
// an empty XDP_DROP program timed in the same run.
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice pipeline benchmark: ns/packet through BPF_PROG_TEST_RUN, relative to an empty XDP program"};
  std::uint32_t repeat = 2'000'000;
  int rounds = 5;
  bool json = false;
  app.add_option("--repeat", repeat, "packets per timing (>= 1,000,000)")->check(CLI::Range(sluice::bench::min_repeat, 100'000'000u));
  app.add_option("--rounds", rounds, "timings per program; the median is reported")->check(CLI::Range(1, 100));
  app.add_flag("--json", json, "print JSON instead of a table");
  CLI11_PARSE(app, argc, argv);

  try {
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

    sluice::bench::Report report("pipeline: BPF_PROG_TEST_RUN, " + std::to_string(repeat) + " packets x " +
                                     std::to_string(rounds) + " rounds (median)",
                                 "empty");
    for (const Sample& sample : samples()) {
      using sluice::bench::time_xdp;
      const auto baseline = time_xdp(bpf_program__fd(empty->progs.empty_drop), sample.frame, repeat, rounds, "empty");
      const auto parse = time_xdp(bpf_program__fd(parser->progs.parse_only), sample.frame, repeat, rounds, "parser");
      const auto pass_through = time_xdp(bpf_program__fd(machinery->progs.bench_entry), sample.frame, repeat, rounds,
                                         "pass-through pipeline");
      const auto pipeline = time_xdp(plane->entry_prog_fd(), sample.frame, repeat, rounds, "pipeline");
      report.add({sample.group, "empty XDP_DROP (baseline)", baseline.ns_per_packet, baseline.ns_per_packet, baseline.verdict});
      report.add({sample.group, "parser only", parse.ns_per_packet, baseline.ns_per_packet, parse.verdict});
      report.add({sample.group, "parse + 3 pass-through stages", pass_through.ns_per_packet, baseline.ns_per_packet,
                  pass_through.verdict});
      report.add({sample.group, "sluice: parse + filter (empty) + lb + forward", pipeline.ns_per_packet,
                  baseline.ns_per_packet, pipeline.verdict});
      if (pipeline.verdict != XDP_PASS || pass_through.verdict != XDP_PASS)
        throw std::runtime_error(sample.group + ": a pipeline did not pass the packet");
    }
    if (json)
      report.print_json(std::cout);
    else
      report.print_table(std::cout);
  } catch (const std::exception& error) {
    std::cerr << "pipeline_bench: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
