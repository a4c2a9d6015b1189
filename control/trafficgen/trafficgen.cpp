// sluice-trafficgen: line-rate test traffic out of one interface, from the
// kernel itself: BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES runs a
// tiny XDP program (trafficgen.bpf.c) on each frame, which gives it its
// flow and sends it with XDP_TX. Bounded by --count and/or --duration (one
// of them is required), optionally paced by --rate; prints what it sent.
#include <CLI/CLI.hpp>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>
#include <thread>

#include "traffic_frame.hpp"
#include "trafficgen.skel.h"

namespace {

namespace json = boost::json;
using namespace sluice::trafficgen;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t max_count = 10'000'000'000ull;
constexpr double max_duration_s = 3600;
// One test run costs ~30 ms of setup: big batches when unpaced.
constexpr std::uint32_t default_batch = 2'000'000;
// Paced: a batch per this slice. Each test run costs ~30 ms of setup, so
// a smaller slice could not keep up; the rate holds over slices, and within
// one the frames go out as one burst.
constexpr std::chrono::milliseconds pacing_slice{200};

std::atomic<bool> interrupted{false};
extern "C" void on_signal(int) { interrupted.store(true); }

struct Bpf {
  trafficgen_bpf* skel = nullptr;
  Bpf() = default;
  Bpf(const Bpf&) = delete;
  Bpf& operator=(const Bpf&) = delete;
  ~Bpf() { trafficgen_bpf__destroy(skel); }
};

std::variant<std::array<std::uint8_t, 6>, std::string> own_mac(const std::string& dev) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  ifreq request{};
  std::memcpy(request.ifr_name, dev.c_str(), dev.size());
  const int got = ::ioctl(fd, SIOCGIFHWADDR, &request);
  const int saved = errno;
  ::close(fd);
  if (got != 0) return "--dev " + dev + ": no MAC address: " + std::strerror(saved);
  std::array<std::uint8_t, 6> mac{};
  std::memcpy(mac.data(), request.ifr_hwaddr.sa_data, mac.size());
  return mac;
}

std::uint64_t frames_counted(int map_fd) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return 0;
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(cpus));
  const std::uint32_t zero = 0;
  if (bpf_map_lookup_elem(map_fd, &zero, per_cpu.data()) != 0) return 0;
  std::uint64_t sum = 0;
  for (auto n : per_cpu) sum += n;
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-trafficgen: test traffic out of one interface at line rate, from XDP (BPF_F_TEST_XDP_LIVE_FRAMES)"};
  std::string dev, dst_mac_text, src, dst, protocol = "udp";
  std::uint16_t sport = 1024, dport = 9;
  std::uint32_t flows = 1, batch = 0;
  std::size_t size = min_frame_bytes;
  std::uint64_t count = 0, rate = 0;
  double duration = 0;
  bool as_json = false;
  app.add_option("--dev", dev, "Interface the frames leave by")->required();
  app.add_option("--dst-mac", dst_mac_text, "Destination MAC (the box's interface)")->required();
  app.add_option("--src", src, "Source address (IPv4 or IPv6)")->required();
  app.add_option("--dst", dst, "Destination address (the family of --src)")->required();
  app.add_option("--proto", protocol, "udp or tcp (a SYN)")->check(CLI::IsMember({"udp", "tcp"}))->capture_default_str();
  app.add_option("--sport", sport, "First source port")->check(CLI::Range(1, 65535))->capture_default_str();
  app.add_option("--dport", dport, "Destination port")->check(CLI::Range(0, 65535))->capture_default_str();
  app.add_option("--flows", flows, "Flows (source ports, round robin)")->check(CLI::Range(1u, max_flows))->capture_default_str();
  app.add_option("--size", size, "Frame bytes without FCS (60..1514)")
      ->check(CLI::Range(min_frame_bytes, max_frame_bytes))
      ->capture_default_str();
  app.add_option("--count", count, "Stop after this many frames")->check(CLI::Range(std::uint64_t{1}, max_count));
  app.add_option("--duration", duration, "Stop after this many seconds")->check(CLI::Range(0.001, max_duration_s));
  app.add_option("--rate", rate, "Frames per second (default: as fast as the CPU goes)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1'000'000'000}));
  app.add_option("--batch", batch, "Frames per test run (default 2,000,000, or 200 ms of --rate)")
      ->check(CLI::Range(1u, 100'000'000u));
  app.add_flag("--json", as_json, "Print the summary as JSON");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (!count && !duration) {
    std::cerr << "sluice-trafficgen: give --count or --duration (every run is bounded)\n";
    return 2;
  }

  FrameSpec spec;
  auto dst_mac = parse_mac(dst_mac_text);
  if (auto* error = std::get_if<std::string>(&dst_mac)) return std::cerr << "sluice-trafficgen: --dst-mac: " << *error << "\n", 2;
  spec.dst_mac = std::get<0>(dst_mac);
  if (dev.empty() || dev.size() >= IFNAMSIZ) return std::cerr << "sluice-trafficgen: --dev: '" << dev << "' is not an interface name\n", 2;
  const unsigned ifindex = if_nametoindex(dev.c_str());
  if (!ifindex) return std::cerr << "sluice-trafficgen: --dev: no interface '" << dev << "' here\n", 2;
  auto src_mac = own_mac(dev);
  if (auto* error = std::get_if<std::string>(&src_mac)) return std::cerr << "sluice-trafficgen: " << *error << "\n", 2;
  spec.src_mac = std::get<0>(src_mac);
  spec.src = src;
  spec.dst = dst;
  spec.protocol = protocol == "tcp" ? Protocol::tcp : Protocol::udp;
  spec.sport = sport;
  spec.dport = dport;
  spec.flows = flows;
  spec.frame_bytes = size;
  auto built = build_frame(spec);
  if (auto* error = std::get_if<std::string>(&built)) return std::cerr << "sluice-trafficgen: " << *error << "\n", 2;
  Frame frame = std::get<Frame>(std::move(built));

  Bpf bpf;
  bpf.skel = trafficgen_bpf__open();
  if (!bpf.skel) return std::cerr << "sluice-trafficgen: cannot open the XDP program\n", 1;
  bpf.skel->rodata->trafficgen_config = frame.config;
  if (int err = trafficgen_bpf__load(bpf.skel); err)
    return std::cerr << "sluice-trafficgen: cannot load the XDP program (root needed): " << std::strerror(-err) << "\n", 1;
  const int prog = bpf_program__fd(bpf.skel->progs.trafficgen);
  const int counter = bpf_map__fd(bpf.skel->maps.frames_run);

  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  if (!batch) batch = rate ? static_cast<std::uint32_t>(std::max<std::uint64_t>(1, rate * pacing_slice.count() / 1000)) : default_batch;
  const auto started = Clock::now();
  const auto until = duration ? started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration))
                              : Clock::time_point::max();
  std::uint64_t asked = 0, calls = 0;
  std::string failure;
  while (!interrupted.load() && Clock::now() < until && (!count || asked < count)) {
    std::uint32_t repeat = batch;
    if (count) repeat = static_cast<std::uint32_t>(std::min<std::uint64_t>(repeat, count - asked));
    if (rate) {
      // Paced: this batch may start once the frames before it are due.
      const auto due = started + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(static_cast<double>(asked) / static_cast<double>(rate)));
      if (due > Clock::now()) std::this_thread::sleep_until(std::min(due, until));
      if (Clock::now() >= until) break;
    }
    xdp_md ctx{};
    ctx.data_end = static_cast<__u32>(frame.bytes.size());
    ctx.ingress_ifindex = ifindex;
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.bytes.data(), .data_size_in = static_cast<__u32>(frame.bytes.size()),
                .ctx_in = &ctx, .ctx_size_in = sizeof ctx, .repeat = static_cast<int>(repeat), .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
    if (int err = bpf_prog_test_run_opts(prog, &opts); err) {
      failure = std::string("test run on ") + dev + ": " + std::strerror(errno);
      break;
    }
    asked += repeat;
    ++calls;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  const std::uint64_t sent = frames_counted(counter);
  const double pps = seconds > 0 ? static_cast<double>(sent) / seconds : 0;
  if (as_json) {
    std::cout << json::serialize(json::object{{"dev", dev},
                                              {"frame_bytes", frame.bytes.size()},
                                              {"flows", flows},
                                              {"sent", sent},
                                              {"seconds", seconds},
                                              {"pps", pps},
                                              {"bits_per_second", pps * static_cast<double>(frame.bytes.size()) * 8},
                                              {"test_runs", calls},
                                              {"interrupted", interrupted.load()},
                                              {"error", failure}})
              << "\n";
  } else {
    std::cout << "sluice-trafficgen: " << sent << " frames of " << frame.bytes.size() << " bytes (" << flows
              << " flows) out of " << dev << " in " << seconds << " s: " << static_cast<std::uint64_t>(pps) << " pps, "
              << pps * static_cast<double>(frame.bytes.size()) * 8 / 1e6 << " Mbit/s" << (interrupted.load() ? " (interrupted)" : "")
              << "\n";
    if (!failure.empty()) std::cerr << "sluice-trafficgen: " << failure << "\n";
  }
  return failure.empty() ? 0 : 1;
}
