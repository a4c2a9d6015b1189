#include "bench_support.hpp"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstring>
#include <iomanip>
#include <stdexcept>

namespace sluice::bench {

Timing time_xdp(int prog_fd, const std::vector<std::uint8_t>& frame, std::uint32_t repeat, int rounds,
                const std::string& what) {
  std::vector<double> samples;
  Timing timing;
  for (int round = 0; round < rounds; ++round) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = static_cast<std::uint32_t>(frame.size()), .repeat = static_cast<int>(repeat));
    if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err != 0)
      throw std::runtime_error("BPF_PROG_TEST_RUN of " + what + ": " + std::strerror(-err));
    samples.push_back(opts.duration);
    timing.verdict = opts.retval;
  }
  std::sort(samples.begin(), samples.end());
  timing.ns_per_packet = samples[samples.size() / 2];
  return timing;
}

void Report::print_table(std::ostream& out) const {
  out << title_ << "\n";
  out << std::left << std::setw(16) << "packet" << std::setw(44) << "program" << std::right << std::setw(12)
      << "ns/packet" << std::setw(12) << "x " + baseline_name_ << "\n";
  for (const Row& row : rows_) {
    out << std::left << std::setw(16) << row.group << std::setw(44) << row.name << std::right << std::fixed
        << std::setprecision(1) << std::setw(12) << row.ns_per_packet << std::setprecision(2) << std::setw(12)
        << row.ns_per_packet / row.baseline_ns << "\n";
  }
}

void Report::print_json(std::ostream& out) const {
  boost::json::array rows;
  for (const Row& row : rows_) {
    rows.push_back({{"group", row.group},
                    {"program", row.name},
                    {"ns_per_packet", row.ns_per_packet},
                    {"baseline_ns", row.baseline_ns},
                    {"ratio", row.ns_per_packet / row.baseline_ns},
                    {"verdict", row.verdict}});
  }
  out << boost::json::serialize(boost::json::object{{"title", title_}, {"baseline", baseline_name_}, {"rows", rows}})
      << "\n";
}

}  // namespace sluice::bench
