// Packets per second through a real interface. The bench makes its own lab
// (two network namespaces and a veth pair, named with its pid, removed on
// exit), moves itself into the box namespace, and drives the box's veth
// with sluice-trafficgen (XDP live frames, XDP_TX) from the other side. Two
// receivers alternate round by round on the same generator: the empty
// XDP_DROP program (the ceiling) and sluice's pipeline dropping the frames by
// a filter rule. Each round's pps is what the receiver counted (the veth's
// rx counter for the ceiling, sluice's own drop counter for the path) over
// the generator's time; the ratio is path / ceiling of the same round.
//
// On a veth the receiver's XDP runs in the sender's softirq, on the
// generator's CPU: one generator is one core's worth of both, the lower
// bound of a real NIC where the two run apart. The 2-core rows run two
// generators at once on two CPUs, into a veth with a receive queue each.
#include <CLI/CLI.hpp>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <iostream>
#include <optional>
#include <sstream>

#include "bench_support.hpp"
#include "child_process.hpp"
#include "dataplane.hpp"
#include "filter_table.hpp"
#include "prefix.hpp"
#include "route_table.hpp"
#include "xdp_attachment.hpp"
// after the contract: the skeletons name its structs
#include "empty.skel.h"

namespace {

namespace bench = sluice::bench;
namespace json = boost::json;
using sluice::filter::Action;
using sluice::filter::FilterRule;
using sluice::filter::RuleSet;
using sluice::dataplane::AttachMode;

constexpr std::uint64_t full_frames = 4'000'000, quick_frames = 1'000'000;
constexpr std::uint16_t dropped_port = 9;
constexpr auto generator_deadline = std::chrono::seconds(120);
// Queues on each end of the lab veth: one per generator of the 2-core rows.
constexpr int lab_queues = 2;
constexpr const char* generator_address = "198.18.0.1";
constexpr const char* box_address = "198.18.0.2";
// The routed path: gen -> box (box_if) -> out_if -> sink, to a prefix the box routes via the sink.
constexpr const char* box_out_address = "198.18.1.2";
constexpr const char* sink_address = "198.18.1.1";
constexpr const char* routed_prefix = "198.19.0.0/24";
constexpr const char* routed_address = "198.19.0.1";
constexpr std::uint16_t routed_port = 5001;  // not the dropped port: the filter lets it through

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

template <class T>
T must(sluice::maps::Result<T> result, const std::string& what) {
  if (!result) fail(what + ": " + result.error().message);
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

std::string run(const std::vector<std::string>& argv, const std::string& what) {
  const auto errors = std::filesystem::temp_directory_path() / ("sluice-pps-bench." + std::to_string(::getpid()) + ".err");
  const auto result = bench::run_child(argv, errors, generator_deadline);
  std::error_code ignored;
  std::filesystem::remove(errors, ignored);
  if (result.exit_code != 0) fail(what + ": " + bench::describe(result, generator_deadline));
  return result.out;
}

// The lab: gen <-veth-> box, both namespaces this process made. The process
// itself moves into box (so attach and the counters work by name) and back.
class VethLab {
 public:
  VethLab() {
    const std::string id = std::to_string(::getpid());
    gen = "sb-gen-" + id;
    box = "sb-box-" + id;
    sink = "sb-sink-" + id;
    gen_if = "sbg" + id;
    box_if = "sbb" + id;
    out_if = "sbo" + id;
    sink_if = "sbs" + id;
    original_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original_ < 0) fail("cannot open this process's network namespace");
    run({"ip", "netns", "add", gen}, "ip netns add");
    made_gen_ = true;
    run({"ip", "netns", "add", box}, "ip netns add");
    made_box_ = true;
    // A queue pair per CPU this bench drives from (veth picks the receive queue by the sending CPU).
    run({"ip", "link", "add", gen_if, "netns", gen, "numtxqueues", std::to_string(lab_queues), "numrxqueues",
         std::to_string(lab_queues), "type", "veth", "peer", "name", box_if, "netns", box, "numtxqueues",
         std::to_string(lab_queues), "numrxqueues", std::to_string(lab_queues)},
        "veth pair");
    run({"ip", "netns", "add", sink}, "ip netns add");
    made_sink_ = true;
    // box -> sink: where routed frames leave the box (sluice's forward stage, or the kernel's).
    run({"ip", "link", "add", out_if, "netns", box, "type", "veth", "peer", "name", sink_if, "netns", sink}, "veth pair");
    run({"ip", "-n", box, "addr", "add", std::string(box_out_address) + "/24", "dev", out_if}, "address");
    run({"ip", "-n", sink, "addr", "add", std::string(sink_address) + "/24", "dev", sink_if}, "address");
    for (const auto& [ns, ifname] : {std::pair{box, out_if}, std::pair{sink, sink_if}})
      run({"ip", "-n", ns, "link", "set", ifname, "up"}, "link up");
    sink_mac = mac_of(sink, sink_if);
    run({"ip", "-n", gen, "addr", "add", std::string(generator_address) + "/24", "dev", gen_if}, "address");
    run({"ip", "-n", box, "addr", "add", std::string(box_address) + "/24", "dev", box_if}, "address");
    for (const auto& [ns, ifname] : {std::pair{gen, gen_if}, std::pair{box, box_if}})
      run({"ip", "-n", ns, "link", "set", ifname, "up"}, "link up");
    box_mac = mac_of(box, box_if);
    // The kernel's forwarding peer: a route to the routed prefix via the sink, its neighbour fixed.
    run({"ip", "-n", box, "route", "add", routed_prefix, "via", sink_address, "dev", out_if}, "kernel route");
    run({"ip", "-n", box, "neigh", "replace", sink_address, "lladdr", sink_mac, "dev", out_if, "nud", "permanent"}, "neighbour");
    const int box_ns = ::open(("/run/netns/" + box).c_str(), O_RDONLY | O_CLOEXEC);
    if (box_ns < 0 || ::setns(box_ns, CLONE_NEWNET) != 0) fail("cannot enter the box namespace " + box);
    ::close(box_ns);
    inside_ = true;
  }
  VethLab(const VethLab&) = delete;
  VethLab& operator=(const VethLab&) = delete;
  ~VethLab() {
    if (inside_) ::setns(original_, CLONE_NEWNET);
    std::error_code ignored;
    if (made_gen_) bench::run_child({"ip", "netns", "del", gen}, "/dev/null", std::chrono::seconds(10));
    if (made_box_) bench::run_child({"ip", "netns", "del", box}, "/dev/null", std::chrono::seconds(10));
    if (made_sink_) bench::run_child({"ip", "netns", "del", sink}, "/dev/null", std::chrono::seconds(10));
    if (original_ >= 0) ::close(original_);
  }

  // Frames the box's veth received (XDP drops included), from inside the box namespace.
  std::uint64_t rx_packets() const {
    const std::string shown = run({"ip", "-s", "-j", "link", "show", box_if}, "rx counter");
    return json::parse(shown).at(0).at("stats64").at("rx").at("packets").to_number<std::uint64_t>();
  }

  // Frames the sink's veth received (its XDP_DROP counts them all): what crossed the box.
  std::uint64_t sink_rx_packets() const {
    const std::string shown = run({"ip", "-n", sink, "-s", "-j", "link", "show", sink_if}, "sink rx counter");
    return json::parse(shown).at(0).at("stats64").at("rx").at("packets").to_number<std::uint64_t>();
  }
  void kernel_forwarding(bool on) const {
    run({"ip", "netns", "exec", box, "sysctl", "-qw", std::string("net.ipv4.ip_forward=") + (on ? "1" : "0")}, "ip_forward");
  }

  std::string gen, box, sink, gen_if, box_if, out_if, sink_if, box_mac, sink_mac;

 private:
  static std::string mac_of(const std::string& ns, const std::string& ifname) {
    const std::string shown = run({"ip", "-n", ns, "-j", "link", "show", ifname}, "MAC of " + ifname);
    return std::string(json::parse(shown).at(0).at("address").as_string());
  }
  int original_ = -1;
 public:
  // Runs f inside the sink namespace (attach by name there), then back in the box.
  template <class F>
  void in_sink(F&& f) const {
    const int here = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    const int there = ::open(("/run/netns/" + sink).c_str(), O_RDONLY | O_CLOEXEC);
    if (here < 0 || there < 0 || ::setns(there, CLONE_NEWNET) != 0) fail("cannot enter the sink namespace " + sink);
    ::close(there);
    try {
      f();
    } catch (...) {
      ::setns(here, CLONE_NEWNET);
      ::close(here);
      throw;
    }
    if (::setns(here, CLONE_NEWNET) != 0) fail("cannot return to the box namespace");
    ::close(here);
  }

 private:
  bool made_gen_ = false, made_box_ = false, made_sink_ = false, inside_ = false;
};

struct GeneratorRun {
  std::uint64_t sent = 0;
  double seconds = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice pps bench: frames per second through a veth into sluice, against an XDP_DROP receiver"};
  bench::SectionOptions options;
  bench::add_section_options(app, options);
  std::string trafficgen = SLUICE_TRAFFICGEN_BUILD_PATH;
  std::uint64_t frames = 0;
  app.add_option("--trafficgen", trafficgen, "sluice-trafficgen to drive the box with");
  app.add_option("--frames", frames, "Frames per round (default 4,000,000; --quick 1,000,000)")
      ->check(CLI::Range(std::uint64_t{100'000}, std::uint64_t{1'000'000'000}));
  CLI11_PARSE(app, argc, argv);
  try {
    const int cpu = bench::apply_section_options(app, options);
    if (!frames) frames = options.quick ? quick_frames : full_frames;
    if (!std::filesystem::exists(trafficgen)) trafficgen = "sluice-trafficgen";  // installed: in PATH
    bench::SectionWriter writer("pps", cpu);

    VethLab lab;
    std::unique_ptr<empty_bpf, decltype(&empty_bpf__destroy)> empty(empty_bpf__open_and_load(), empty_bpf__destroy);
    if (!empty) fail("cannot load the XDP_DROP receiver (root needed)");
    auto plane = must(sluice::dataplane::Dataplane::load({}), "load the data plane");
    must(plane.install_stages(), "install stages");
    auto table = must(sluice::filter::FilterTable::open(plane, {}), "open the filter");
    RuleSet set;
    FilterRule drop;
    drop.priority = 1;
    drop.protocol = IPPROTO_UDP;
    drop.dst_ports = sluice::filter::PortRange{dropped_port, dropped_port};
    drop.action = Action::Drop;
    set.rules = {drop};
    must(table.replace(set), "the drop rule");

    auto attached = must(sluice::dataplane::attach_xdp(bpf_program__fd(empty->progs.empty_drop), lab.box_if, AttachMode::Native),
                         "attach the receiver");
    // One generator per CPU given, all at once, each pinned (veth: its CPU is
    // the receiver's too, the XDP runs in the sender's softirq), each sending
    // `frames`: the run is what they sent together over the slowest one's time.
    auto generate = [&](const std::vector<int>& cpus, const std::string& dst = box_address,
                        std::uint16_t dport = dropped_port) {
      std::vector<pid_t> pids;
      std::vector<std::filesystem::path> outputs;
      const auto scratch = std::filesystem::temp_directory_path() / ("sluice-pps-bench." + std::to_string(::getpid()));
      for (const int on : cpus) {
        outputs.push_back(scratch.string() + ".gen" + std::to_string(on) + ".json");
        bench::ChildIo io;
        io.stdout_file = outputs.back();
        io.stderr_file = outputs.back().string() + ".err";
        pids.push_back(bench::spawn_child({"nsenter", "--net=/run/netns/" + lab.gen, "taskset", "-c", std::to_string(on),
                                           trafficgen, "--dev", lab.gen_if, "--dst-mac", lab.box_mac, "--src",
                                           generator_address, "--dst", dst, "--dport", std::to_string(dport),
                                           "--count", std::to_string(frames), "--json"},
                                          io));
      }
      const auto until = std::chrono::steady_clock::now() + generator_deadline;
      std::string failed;
      for (std::size_t i = 0; i < pids.size(); ++i) {
        int status = 0;
        pid_t reaped = 0;
        while ((reaped = ::waitpid(pids[i], &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < until)
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (reaped == 0) {  // past the bound: killed by its pid
          ::kill(pids[i], SIGKILL);
          ::waitpid(pids[i], &status, 0);
          failed = "sluice-trafficgen on CPU " + std::to_string(cpus[i]) + " timed out after " +
                   std::to_string(generator_deadline.count()) + " s and was killed";
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
          std::ifstream err(outputs[i].string() + ".err");
          std::string line;
          std::getline(err, line);
          failed = "sluice-trafficgen on CPU " + std::to_string(cpus[i]) + " failed: " + line;
        }
      }
      GeneratorRun g;
      for (std::size_t i = 0; i < outputs.size() && failed.empty(); ++i) {
        std::ifstream in(outputs[i]);
        const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const json::value summary = json::parse(out);
        const auto sent = summary.at("sent").to_number<std::uint64_t>();
        const double seconds = summary.at("seconds").to_number<double>();
        if (sent != frames || seconds <= 0) failed = "sluice-trafficgen sent " + std::to_string(sent) + " of " + std::to_string(frames);
        g.sent += sent;
        g.seconds = std::max(g.seconds, seconds);
      }
      std::error_code ignored;
      for (const auto& file : outputs) {
        std::filesystem::remove(file, ignored);
        std::filesystem::remove(file.string() + ".err", ignored);
      }
      if (!failed.empty()) fail(failed);
      return g;
    };
    // Between rounds no frame is in flight: detach and attach is the whole swap.
    auto swap_to = [&](int prog_fd) {
      must(sluice::dataplane::detach_xdp(lab.box_if), "detach the receiver");
      attached = must(sluice::dataplane::attach_xdp(prog_fd, lab.box_if, AttachMode::Native), "attach the receiver");
    };
    const int empty_fd = bpf_program__fd(empty->progs.empty_drop);
    const int sluice_fd = plane.entry_prog_fd();
    auto rule_drops = [&] {
      return must(plane.verdict_count(SLUICE_VERDICT_DROP, static_cast<sluice_reason>(SLUICE_REASON_FILTER_RULE_DROP)),
                  "read the rule-drop counter")
          .packets;
    };
    // One round of one receiver: the pps it counted, checked against what was sent.
    auto ceiling_round = [&](const std::vector<int>& cpus) {
      swap_to(empty_fd);
      const auto before = lab.rx_packets();
      const GeneratorRun g = generate(cpus);
      const auto got = lab.rx_packets() - before;
      if (got > g.sent + 100 || got < g.sent / 2) fail("the XDP_DROP receiver counted " + std::to_string(got) + " of " + std::to_string(g.sent));
      return static_cast<double>(got) / g.seconds;
    };
    auto sluice_round = [&](const std::vector<int>& cpus) {
      swap_to(sluice_fd);
      const auto before = rule_drops();
      const GeneratorRun g = generate(cpus);
      const auto got = rule_drops() - before;
      if (got > g.sent || got < g.sent / 2) fail("sluice's rule dropped " + std::to_string(got) + " of " + std::to_string(g.sent));
      return static_cast<double>(got) / g.seconds;
    };
    // time_paired divides path by baseline per round: here that is path pps / ceiling pps.
    auto measure = [&](const std::string& group, const std::vector<int>& cpus) {
      const bench::Paired paired = bench::time_paired([&] { return ceiling_round(cpus); }, [&] { return sluice_round(cpus); },
                                                      options.rounds);
      auto& path = writer.add_value(group, "sluice: rule drop (udp dport 9), 60-byte frames", "pps", paired.value);
      path.baseline = "XDP_DROP ceiling";
      path.ratio = paired.ratio;
      path.baseline_value = paired.baseline;
      writer.add_value(group, "XDP_DROP receiver (the ceiling)", "pps", paired.baseline);
    };
    measure("veth, 1 core", {cpu});
    std::ostringstream note;
    note << frames << " frames per generator per round from sluice-trafficgen (live frames, XDP_TX), " << options.rounds
         << " paired rounds; the receiver's XDP runs in the sender's softirq on the sender's CPU (veth); 1 core: CPU " << cpu;
    const int online = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
    if (online >= 2) {
      // The veth has a receive queue per CPU: each generator's frames land on
      // its own CPU's queue, so two generators are two cores of receiver too.
      const int second = (cpu + 1) % online;
      measure("veth, 2 cores", {cpu, second});
      note << "; 2 cores: CPUs " << cpu << " and " << second << " at once, one generator each (a shared machine: the"
           << " second core is not reserved)";
    } else {
      note << "; 2 cores not measured: this machine has " << online << " CPU";
    }
    // ---- routed: through the box to the sink, sluice's forward stage and the kernel's ----
    // A redirect into a veth reaches its peer only if the peer runs XDP: the
    // sink's XDP_DROP is that, and its rx counter is what crossed the box.
    lab.in_sink([&] { must(sluice::dataplane::attach_xdp(empty_fd, lab.sink_if, AttachMode::Native), "attach the sink"); });
    auto routes = must(sluice::route::RouteTable::open(plane), "open the route table");
    sluice::route::Mac sink_mac{};
    if (std::sscanf(lab.sink_mac.c_str(), "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &sink_mac[0], &sink_mac[1], &sink_mac[2],
                    &sink_mac[3], &sink_mac[4], &sink_mac[5]) != 6)
      fail("the sink's MAC " + lab.sink_mac);
    must(routes.add_next_hop("sink", {lab.out_if, sink_mac}), "next hop");
    must(routes.add_route(must(sluice::maps::parse_prefix(routed_prefix), "routed prefix"),
                          sluice::route::RouteTarget::next_hop("sink")),
         "route");
    // What sluice's forward stage did (a broken path names itself in the failure).
    auto forward_counts = [&] {
      std::string out;
      const std::pair<sluice_verdict, int> reasons[] = {{SLUICE_VERDICT_REDIRECT, SLUICE_REASON_FWD_ROUTED},
                                                        {SLUICE_VERDICT_PASS, SLUICE_REASON_FWD_NO_ROUTE},
                                                        {SLUICE_VERDICT_DROP, SLUICE_REASON_FWD_TTL_EXCEEDED},
                                                        {SLUICE_VERDICT_DROP, SLUICE_REASON_FWD_REDIRECT_FAILED},
                                                        {SLUICE_VERDICT_PASS, SLUICE_REASON_FWD_TO_STACK}};
      for (const auto& [verdict, reason] : reasons)
        out += " reason " + std::to_string(reason) + ": " +
               std::to_string(must(plane.verdict_count(verdict, static_cast<sluice_reason>(reason)), "counter").packets);
      return out;
    };
    // One round through the box: the pps the sink received of what was sent.
    auto routed_round = [&](int prog_fd, const char* what) {
      swap_to(prog_fd);
      const auto before = lab.sink_rx_packets();
      const GeneratorRun g = generate({cpu}, routed_address, routed_port);
      const auto got = lab.sink_rx_packets() - before;
      if (got > g.sent + 100 || got < g.sent / 100)
        fail(std::string(what) + ": the sink received " + std::to_string(got) + " of " + std::to_string(g.sent) +
             "; sluice's forward verdicts: " + forward_counts());
      return static_cast<double>(got) / g.seconds;
    };
    auto measure_routed = [&](const std::string& name, int prog_fd, const char* what) {
      const bench::Paired paired = bench::time_paired([&] { return ceiling_round({cpu}); },
                                                      [&] { return routed_round(prog_fd, what); }, options.rounds);
      auto& path = writer.add_value("veth, routed, 1 core", name, "pps", paired.value);
      path.baseline = "XDP_DROP ceiling";
      path.ratio = paired.ratio;
      path.baseline_value = paired.baseline;
    };
    lab.kernel_forwarding(false);  // sluice alone carries the frames
    measure_routed("sluice forward (1 route, XDP_REDIRECT), received by the sink", sluice_fd, "sluice forward");
    lab.kernel_forwarding(true);
    measure_routed("kernel IP forwarding (ip_forward=1, 1 route, XDP_PASS on the box's veth), received by the sink",
                   bpf_program__fd(empty->progs.empty_pass), "kernel forwarding");
    lab.kernel_forwarding(false);
    note << "; routed rows: " << routed_address << " udp " << routed_port << " into the box, " << routed_prefix
         << " routed via the sink (" << sink_address << "), pps counted by the sink's veth, each paired with the ceiling; the"
         << " kernel row runs an XDP_PASS program on the box's veth (a veth delivers XDP-sent frames only to a peer running XDP)";
    writer.note(note.str());
    must(sluice::dataplane::detach_xdp(lab.box_if), "detach");
    writer.emit(std::cout, options.json);
  } catch (const std::exception& e) {
    std::cerr << "pps_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
