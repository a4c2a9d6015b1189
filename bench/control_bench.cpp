// The control plane, through a real sluiced: rule updates per second (one
// rule.add at a time, and a batch of rules in one apply), a million
// prefixes streamed with `sluicectl block load`, and the latency from a
// command on the socket to the first packet that sees it — a probe runs the
// pinned entry program (BPF_PROG_TEST_RUN) in a tight loop while rule.add
// drops its packet, and the time to the first XDP_DROP is one sample.
//
// sluiced runs as a child of this process, with its own socket, state and
// pin directories (removed at the end), attached to nothing: no traffic
// leaves the machine.
#include <CLI/CLI.hpp>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "bench_support.hpp"
#include "child_process.hpp"
#include "client.hpp"
#include "packet_builder.hpp"

namespace {

namespace bench = sluice::bench;
namespace fs = std::filesystem;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr auto start_deadline = std::chrono::seconds(20);
constexpr auto load_deadline = std::chrono::seconds(300);
// The probe gives up this long after the reply (the change is live by then, or broken).
constexpr auto probe_grace = std::chrono::seconds(5);
constexpr auto probe_deadline = std::chrono::seconds(120);
constexpr std::uint16_t probe_port = 9;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

// sluiced as a child: started with its own directories, shut down (pins
// detached and removed) and reaped at the end, killed by its pid if it will not go.
class Sluiced {
 public:
  // bench_cpu: the CPU the bench (and its probe loop) is pinned to; sluiced,
  // which would inherit that pin, is moved to the others so the probe does
  // not starve the daemon it measures.
  Sluiced(const std::string& binary, const fs::path& dir, int bench_cpu) : dir_(dir) {
    fs::create_directories(dir_ / "state");
    pins_ = "/sys/fs/bpf/sluice-control-bench-" + std::to_string(::getpid());
    socket_ = (dir_ / "sluice.sock").string();
    std::vector<std::string> args{binary, "--socket", socket_, "--bpffs", pins_, "--state-dir", (dir_ / "state").string(),
                                  "--metrics", "off", "--log-level", "warn"};
    // A child that dies with this process (child_process.hpp): a killed bench leaves no sluiced.
    bench::ChildIo io;
    const fs::path log = dir_ / "sluiced.log";
    io.stdout_file = log;
    pid_ = bench::spawn_child(args, io);
    cpu_set_t others;
    CPU_ZERO(&others);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (cpu != bench_cpu) CPU_SET(cpu, &others);
    if (::sched_setaffinity(pid_, sizeof others, &others) != 0) {
      CPU_SET(bench_cpu, &others);  // a one-CPU machine: share it
      (void)::sched_setaffinity(pid_, sizeof others, &others);
    }
    const auto until = Clock::now() + start_deadline;
    while (Clock::now() < until) {
      if (auto transport = sluice::cli::connect_unix(socket_)) {
        session_ = std::make_unique<sluice::cli::Session>(std::move(*transport));
        if (session_->call("status", {})) return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        fail("sluiced exited at start; its log is " + log.string());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    fail("sluiced did not answer within " + std::to_string(start_deadline.count()) + " s");
  }
  Sluiced(const Sluiced&) = delete;
  Sluiced& operator=(const Sluiced&) = delete;
  ~Sluiced() {
    if (pid_ <= 0) return;
    if (session_) (void)session_->call("shutdown", {{"detach", true}});
    for (int i = 0; i < 100; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    std::error_code ignored;
    fs::remove_all(pins_, ignored);
  }

  json::value call(std::string_view op, const json::object& args = {}) {
    auto result = session_->call(op, args, std::chrono::seconds(120));
    if (!result) {
      const auto& e = result.error();
      fail(std::string(op) + ": " + (e.daemon ? e.daemon->message : e.transport->message));
    }
    return std::move(*result);
  }
  const std::string& socket() const { return socket_; }
  const std::string& pins() const { return pins_; }

 private:
  fs::path dir_;
  std::string pins_, socket_;
  pid_t pid_ = -1;
  std::unique_ptr<sluice::cli::Session> session_;
};

std::string rules_yaml(int count) {
  std::ostringstream yaml;
  yaml << "rules:\n";
  for (int i = 0; i < count; ++i)
    yaml << "  - {priority: " << i + 1 << ", proto: tcp, dst: 198.19.0.0/16, dport: " << 1000 + i << ", action: drop}\n";
  return yaml.str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice control-plane bench: updates/s, a million prefixes, command-to-packet latency, through sluiced"};
  bench::SectionOptions options;
  bench::add_section_options(app, options);
  std::string sluiced = SLUICED_BUILD_PATH, sluicectl = SLUICECTL_BUILD_PATH;
  app.add_option("--sluiced", sluiced, "sluiced to run");
  app.add_option("--sluicectl", sluicectl, "sluicectl to stream the prefix file with");
  CLI11_PARSE(app, argc, argv);
  const fs::path dir = fs::temp_directory_path() / ("sluice-control-bench." + std::to_string(::getpid()));
  int status = 0;
  try {
    const int cpu = bench::apply_section_options(app, options);
    if (!fs::exists(sluiced)) sluiced = "sluiced";
    if (!fs::exists(sluicectl)) sluicectl = "sluicectl";
    // Sized for the full run's 30-minute budget on a loaded 2-core machine:
    // the 1,000,000 prefixes, loaded in two rounds (each ~minutes
    // under load), and the socket loops in at most control_rounds rounds
    // (rule.add recompiles the whole set per request, issue 8).
    const int single_adds = options.quick ? 20 : 100;
    const int batch_rules = options.quick ? 100 : 1000;
    const int prefixes = options.quick ? 100'000 : 1'000'000;
    const int prefix_rounds = options.quick ? 1 : 2;
    const int latency_trials = options.quick ? 5 : 20;
    constexpr int control_rounds = 5;
    const int rounds = std::min(options.rounds, control_rounds);
    const auto section_begun = Clock::now();
    // Progress on stderr (sluice-bench keeps it in the section's log): where a slow run spends its time.
    auto progress = [&](const std::string& phase) {
      std::cerr << "control_bench: " << phase << " done at "
                << std::chrono::duration<double>(Clock::now() - section_begun).count() << " s\n";
    };
    bench::SectionWriter writer("control", cpu);
    Sluiced daemon(sluiced, dir, cpu);

    // ---- rule.add, one at a time; then a batch through apply ----
    std::vector<double> single, batched;
    for (int round = 0; round < rounds; ++round) {
      daemon.call("apply", {{"yaml", "rules: []\n"}});
      const auto begun = Clock::now();
      for (int i = 0; i < single_adds; ++i)
        daemon.call("rule.add", {{"proto", "tcp"}, {"dst", "198.19.0.0/16"}, {"dport", 1000 + i}, {"action", "drop"}});
      single.push_back(single_adds / std::chrono::duration<double>(Clock::now() - begun).count());
      const std::string yaml = rules_yaml(batch_rules);
      const auto applied = Clock::now();
      daemon.call("apply", {{"yaml", yaml}});
      batched.push_back(batch_rules / std::chrono::duration<double>(Clock::now() - applied).count());
    }
    const std::string group = "rules through the socket";
    writer.add_value(group, "rule.add, one per request (" + std::to_string(single_adds) + " onto a growing set)",
                     "updates/s", bench::summarize(single));
    writer.add_value(group, "apply of " + std::to_string(batch_rules) + " rules in one request", "rules/s",
                     bench::summarize(batched));
    daemon.call("apply", {{"yaml", "rules: []\n"}});
    progress("rule updates");

    // ---- command to first packet ----
    const std::string entry_pin = daemon.pins() + "/prog_entry";
    const int entry = bpf_obj_get(entry_pin.c_str());
    if (entry < 0) fail("cannot open " + entry_pin);
    const auto probe = sluice::test::PacketBuilder()
                           .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                           .ipv4("198.18.0.1", "198.19.0.1")
                           .udp(40000, probe_port)
                           .payload(std::string(18, 'x'))
                           .build();
    auto verdict = [&] {
      std::vector<std::uint8_t> out(probe.size() + 256);
      LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = probe.data(), .data_out = out.data(),
                  .data_size_in = static_cast<__u32>(probe.size()), .data_size_out = static_cast<__u32>(out.size()), .repeat = 1);
      if (bpf_prog_test_run_opts(entry, &opts) != 0) fail("probe test run");
      return opts.retval;
    };
    std::vector<double> latency_ms, reply_latency_ms;
    for (int trial = 0; trial < latency_trials; ++trial) {
      daemon.call("apply", {{"yaml", "rules: []\n"}});
      if (verdict() == XDP_DROP) fail("the probe is dropped before its rule exists");
      std::atomic<bool> stop{false};
      std::atomic<std::int64_t> dropped_at{0};
      const auto sent = Clock::now();
      std::thread prober([&] {
        const auto until = Clock::now() + probe_deadline;
        while (!stop.load() && Clock::now() < until) {
          if (verdict() == XDP_DROP) {
            dropped_at.store((Clock::now() - sent).count());
            return;
          }
        }
      });
      daemon.call("rule.add", {{"proto", "udp"}, {"dport", probe_port}, {"action", "drop"}});
      const double reply_ms = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
      reply_latency_ms.push_back(reply_ms);
      const auto replied = Clock::now();
      while (!dropped_at.load() && Clock::now() - replied < probe_grace) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      stop.store(true);
      prober.join();
      if (!dropped_at.load()) fail("the probe never saw its rule (trial " + std::to_string(trial) + ")");
      latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::duration(dropped_at.load())).count());
    }
    ::close(entry);
    progress("command to packet");
    const bench::Spread latency = bench::summarize(latency_ms);
    writer.add_value("command to packet", "rule.add on the socket to the first packet dropped by it", "ms", latency);
    std::ostringstream note;
    note << "command to packet over " << latency_ms.size() << " trials: p50 " << latency.median << " ms, max "
         << latency.max << " ms (a probe runs the pinned entry program in a loop while rule.add is sent)";
    writer.note(note.str());
    writer.add_value("command to packet", "rule.add on the socket to its reply", "ms", bench::summarize(reply_latency_ms));
    // ---- a prefix file streamed by sluicectl block load ----
    // Last: with 1,000,000 prefixes in the state, every later rule.add costs
    // sluiced minutes (same_rule_set sorts the prefix entries by their text
    // form, state_ops.cpp), even after an apply without lists.
    const fs::path file = dir / "prefixes.txt";
    {
      std::ofstream out(file);
      for (int i = 0; i < prefixes; ++i)
        out << (10 + (i >> 16)) << '.' << ((i >> 8) & 0xff) << '.' << (i & 0xff) << ".0/24\n";
    }
    std::vector<double> load_seconds;
    for (int round = 0; round < prefix_rounds; ++round) {
      daemon.call("apply", {{"yaml", "rules: []\n"}});  // the whole desired state: no lists
      const auto begun = Clock::now();
      const auto loaded = bench::run_child({sluicectl, "--socket", daemon.socket(), "block", "load", file.string()},
                                           dir / "load.err", load_deadline);
      if (loaded.exit_code != 0) fail("sluicectl block load: " + bench::describe(loaded, load_deadline));
      load_seconds.push_back(std::chrono::duration<double>(Clock::now() - begun).count());
      progress("prefix load round " + std::to_string(round + 1));
    }
    const auto listed = daemon.call("block.list");
    if (listed.at("prefixes").as_array().size() != static_cast<std::size_t>(prefixes))
      fail("block load left " + std::to_string(listed.at("prefixes").as_array().size()) + " prefixes, not " + std::to_string(prefixes));
    writer.add_value("prefix lists", "sluicectl block load of " + std::to_string(prefixes) + " IPv4 prefixes", "s",
                     bench::summarize(load_seconds));
    daemon.call("apply", {{"yaml", "rules: []\n"}});  // the whole desired state: no lists
    progress("prefix list check and clear");

    writer.note("rule.add copies and recompiles the whole rule set per request (issue 8); apply swaps the set in once");
    writer.emit(std::cout, options.json);
  } catch (const std::exception& e) {
    std::cerr << "control_bench: " << e.what() << "\n";
    status = 1;
  }
  std::error_code ignored;
  fs::remove_all(dir, ignored);
  return status;
}
