#include "bench_support.hpp"

#include <CLI/CLI.hpp>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sched.h>

#include <boost/json.hpp>
#include <cstring>
#include <stdexcept>

namespace sluice::bench {

RoundTiming run_xdp_round(int prog_fd, const std::vector<std::uint8_t>& frame, std::uint32_t repeat,
                          const std::string& what, std::optional<std::uint32_t> expect_verdict,
                          std::uint32_t ingress_ifindex) {
  // Room for a path that grows the frame (encapsulation) within the test run's headroom.
  constexpr std::size_t growth_room = 256;
  std::vector<std::uint8_t> out(frame.size() + growth_room);
  xdp_md ctx{};
  ctx.data_end = static_cast<std::uint32_t>(frame.size());
  ctx.ingress_ifindex = ingress_ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<std::uint32_t>(frame.size()),
              .data_size_out = static_cast<std::uint32_t>(out.size()), .repeat = static_cast<int>(repeat));
  if (ingress_ifindex != 0) {
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof(ctx);
  }
  if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err != 0)
    throw std::runtime_error("BPF_PROG_TEST_RUN of " + what + ": " + std::strerror(-err));
  if (expect_verdict && opts.retval != *expect_verdict)
    throw std::runtime_error(what + ": verdict " + std::to_string(opts.retval) + ", expected " +
                             std::to_string(*expect_verdict));
  return {static_cast<double>(opts.duration), opts.retval};
}

Paired time_paired(const TimedRound& baseline, const TimedRound& path, int rounds) {
  if (rounds < 1) throw std::invalid_argument("time_paired: rounds " + std::to_string(rounds) + " < 1");
  std::vector<double> base_ns, path_ns, ratios;
  for (int round = 0; round < rounds; ++round) {
    base_ns.push_back(baseline());
    path_ns.push_back(path());
    if (!(base_ns.back() > 0)) throw std::runtime_error("time_paired: the baseline timed 0 ns (too few repeats?)");
    ratios.push_back(path_ns.back() / base_ns.back());
  }
  return {summarize(path_ns), summarize(base_ns), summarize(ratios)};
}

int default_bench_cpu() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) throw std::runtime_error("sched_getaffinity failed");
  const int possible = libbpf_num_possible_cpus();
  if (possible > 0 && CPU_ISSET(possible - 1, &allowed)) return possible - 1;
  for (int cpu = CPU_SETSIZE - 1; cpu >= 0; --cpu)
    if (CPU_ISSET(cpu, &allowed)) return cpu;
  throw std::runtime_error("no CPU in this process's affinity mask");
}

void pin_to_cpu(int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE) throw std::runtime_error("--cpu " + std::to_string(cpu) + ": not a CPU number");
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  if (sched_setaffinity(0, sizeof(one), &one) != 0)
    throw std::runtime_error("--cpu " + std::to_string(cpu) + ": cannot pin to it: " + std::strerror(errno));
}

void add_section_options(CLI::App& app, SectionOptions& options) {
  app.add_option("--repeat", options.repeat, "packets per BPF_PROG_TEST_RUN round (>= 1,000,000)")
      ->check(CLI::Range(min_repeat, 100'000'000u));
  app.add_option("--rounds", options.rounds, "paired rounds (baseline, path) per figure")->check(CLI::Range(1, 100));
  app.add_flag("--json", options.json, "print the section's report as JSON (schema sluice-bench/1)");
  app.add_flag("--quick", options.quick, "small tables and few rounds: proves it works, measures little");
  app.add_option("--cpu", options.cpu, "CPU to pin to (default: the last possible CPU)")->check(CLI::NonNegativeNumber);
}

int apply_section_options(CLI::App& app, SectionOptions& options) {
  if (options.quick && app.count("--rounds") == 0) options.rounds = options.quick_rounds;
  const int cpu = options.cpu >= 0 ? options.cpu : default_bench_cpu();
  pin_to_cpu(cpu);
  options.cpu = cpu;
  return cpu;
}

SectionWriter::SectionWriter(std::string section, int pinned_cpu) {
  report_.section = std::move(section);
  report_.machine = read_machine(pinned_cpu);
}

Figure& SectionWriter::add_paired(const std::string& group, const std::string& name, const Paired& timing,
                                  const std::string& baseline_name, const std::string& note) {
  Figure figure;
  figure.section = report_.section;
  figure.group = group;
  figure.name = name;
  figure.unit = "ns/packet";
  figure.value = timing.value;
  figure.baseline = baseline_name;
  figure.ratio = timing.ratio;
  figure.baseline_value = timing.baseline;
  figure.note = note;
  report_.figures.push_back(std::move(figure));
  return report_.figures.back();
}

Figure& SectionWriter::add_value(const std::string& group, const std::string& name, const std::string& unit,
                                 const Spread& value, const std::string& note) {
  Figure figure;
  figure.section = report_.section;
  figure.group = group;
  figure.name = name;
  figure.unit = unit;
  figure.value = value;
  figure.note = note;
  report_.figures.push_back(std::move(figure));
  return report_.figures.back();
}

void SectionWriter::emit(std::ostream& out, bool json) const {
  if (json) {
    out << boost::json::serialize(to_json(report_)) << "\n";
    return;
  }
  const Machine& m = report_.machine;
  out << report_.section << " on " << m.cpu_model << ", CPU " << m.pinned_cpu << ", kernel " << m.kernel << "\n";
  print_figure_table(out, report_.figures);
  for (const std::string& note : report_.notes) out << "  " << note << "\n";
}

}  // namespace sluice::bench
