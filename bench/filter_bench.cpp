// ns/packet of the filter stage's paths through the whole sluice pipeline
// (entry/parse -> filter -> lb -> forward, BPF_PROG_TEST_RUN), each from
// interleaved rounds paired with an empty XDP_DROP program on a pinned CPU,
// and xdp-filter from xdp-tools as a peer, timed the same way on the same
// frames and shown in the group of the sluice rows it compares with:
//   - the filter with an empty rule set, a conntrack hit (established flow),
//   - a rule miss, a first-rule and a last-rule match with 1, 64, 1,024 and 4,096 rules,
//   - a rate-limited drop,
//   - a blocklist hit with 1,000,000 IPv4 prefixes loaded (DIR-24-8), next to
//     xdp-filter with 10,000 addresses: an IP hit;
//   - a tcp dport 80 rule hit, and that rule on a non-first IPv4 fragment
//     (xdp-filter reads "ports" from the fragment's payload; sluice must not).
// Every round checks its verdict, and sluice's drop and conntrack paths their
// counters: a broken path fails the bench instead of timing fast.
// xdp-filter runs on a veth in a network namespace this program creates
// (sfbench<pid>, removed on exit); its program is found by the id the
// interface reports and timed through BPF_PROG_TEST_RUN like sluice's.
// Ends with the targets, met or not (notes of the report).
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "bench_support.hpp"
#include "dataplane.hpp"
#include "filter_table.hpp"
#include "packet_builder.hpp"
#include "prefix_sets.hpp"
// after the contract: the skeletons name its structs
#include "empty.skel.h"

namespace {

namespace bench = sluice::bench;
using sluice::filter::Action;
using sluice::filter::FilterRule;
using sluice::filter::FilterTable;
using sluice::filter::RuleSet;
using sluice::test::PacketBuilder;
using sluice::test::TcpFlags;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint16_t kRulePortBase = 1000;   // rule i matches dst port kRulePortBase + i
constexpr std::uint16_t kMissPort = 999;         // below every rule's port
constexpr std::uint32_t kRateClass = 1;
constexpr std::uint32_t kRatePerSec = 1;          // the rate-limit rule: 1 packet/s, burst 1
constexpr std::uint16_t kAnchorPort = 80;        // the port rule of the fragment demonstration
constexpr std::uint32_t kXdpFilterSrcFlag = 1;   // xdp-filter's MAP_FLAG_SRC (learned, checked below)
const std::vector<std::uint32_t> kRuleCounts = {1, 64, 1024, 4096};

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

template <class T>
T must(sluice::maps::Result<T> result, const std::string& what) {
  if (!result) fail(what + ": " + result.error().message);
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

PacketBuilder ether() { return PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02"); }

constexpr std::uint32_t kTcpPayload = 18;
Bytes tcp4(const std::string& src, const std::string& dst, std::uint16_t sport, std::uint16_t dport, std::uint8_t flags,
           std::uint32_t ack = 0) {
  return ether().ipv4(src, dst).tcp(sport, dport, {.flags = flags, .ack = ack}).payload(std::string(kTcpPayload, 'x')).build();
}

Bytes udp4(const std::string& src, const std::string& dst, std::uint16_t sport, std::uint16_t dport) {
  return ether().ipv4(src, dst).udp(sport, dport).payload(std::string(18, 'x')).build();
}

std::string dotted(std::uint32_t addr_host) {
  char text[INET_ADDRSTRLEN];
  const std::uint32_t addr_be = htonl(addr_host);
  return inet_ntop(AF_INET, &addr_be, text, sizeof(text));
}

// One packet through prog_fd (state set-up: conntrack, rate buckets); returns the verdict.
std::uint32_t send_once(int prog_fd, const Bytes& frame) {
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = static_cast<std::uint32_t>(frame.size()),
              .repeat = 1);
  if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err != 0) fail(std::string("test run: ") + std::strerror(-err));
  return opts.retval;
}

std::string verdict_name(std::uint32_t verdict) {
  switch (verdict) {
    case XDP_ABORTED: return "XDP_ABORTED";
    case XDP_DROP: return "XDP_DROP";
    case XDP_PASS: return "XDP_PASS";
    case XDP_TX: return "XDP_TX";
    case XDP_REDIRECT: return "XDP_REDIRECT";
  }
  return std::to_string(verdict);
}

int run_command(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

std::string command_output(const std::string& command) {
  std::unique_ptr<FILE, decltype(&pclose)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) fail("popen " + command);
  std::string out;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof(buffer), pipe.get())) out.append(buffer, n);
  return out;
}

// xdp-filter on veth0 of a namespace this process creates; unloaded and removed on destruction.
class XdpFilterLab {
 public:
  static constexpr const char* kPinDir = "/sys/fs/bpf/xdp-filter";

  XdpFilterLab() : ns_("sfbench" + std::to_string(getpid())) {
    // xdp-filter keeps its maps under one fixed bpffs directory: another user's would be shared.
    if (std::filesystem::exists(kPinDir)) fail(std::string(kPinDir) + " exists: another xdp-filter is loaded");
    if (run_command("ip netns add " + ns_) != 0) fail("cannot create namespace " + ns_);
    created_ = true;
    if (run_command("ip -n " + ns_ + " link add veth0 type veth peer name veth1") != 0 ||
        run_command("ip -n " + ns_ + " link set veth0 up") != 0 || run_command("ip -n " + ns_ + " link set veth1 up") != 0)
      fail("cannot create the veth pair in " + ns_);
    // nsenter --net, not ip netns exec: the latter remounts /sys and xdp-filter's pins would vanish.
    if (xdp_filter("load veth0") != 0) fail("xdp-filter load veth0 failed");
    loaded_ = true;
    const auto links = boost::json::parse(command_output("ip -n " + ns_ + " -j link show dev veth0"));
    const auto id = links.at(0).at("xdp").at("prog").at("id").to_number<std::uint32_t>();
    prog_fd_ = bpf_prog_get_fd_by_id(id);
    if (prog_fd_ < 0) fail("bpf_prog_get_fd_by_id(" + std::to_string(id) + ")");
  }
  XdpFilterLab(const XdpFilterLab&) = delete;
  XdpFilterLab& operator=(const XdpFilterLab&) = delete;
  ~XdpFilterLab() {
    if (prog_fd_ >= 0) close(prog_fd_);
    if (loaded_) xdp_filter("unload veth0");
    if (created_) run_command("ip netns del " + ns_);
  }

  int xdp_filter(const std::string& args) const {
    return run_command("nsenter --net=/run/netns/" + ns_ + " xdp-filter " + args);
  }
  int prog_fd() const { return prog_fd_; }

  // fd of one of the program's maps, by name.
  int map_fd(const std::string& name) const {
    bpf_prog_info info{};
    std::uint32_t ids[16] = {};
    info.nr_map_ids = std::size(ids);
    info.map_ids = reinterpret_cast<std::uint64_t>(ids);
    std::uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(prog_fd_, &info, &len) != 0) fail("xdp-filter program info");
    for (std::uint32_t i = 0; i < info.nr_map_ids && i < std::size(ids); ++i) {
      const int fd = bpf_map_get_fd_by_id(ids[i]);
      if (fd < 0) continue;
      bpf_map_info map{};
      std::uint32_t map_len = sizeof(map);
      if (bpf_obj_get_info_by_fd(fd, &map, &map_len) == 0 && name == map.name) return fd;
      close(fd);
    }
    fail("xdp-filter has no map " + name);
  }

  // `count` source addresses listed: the first through the CLI (which shows the value
  // format), the rest written directly (10,000 CLI calls would take minutes).
  void list_sources(const std::vector<std::uint32_t>& addrs_host) {
    if (xdp_filter("ip " + dotted(addrs_host.front()) + " -m src") != 0) fail("xdp-filter ip");
    const int fd = map_fd("filter_ipv4");
    const int cpus = libbpf_num_possible_cpus();
    std::vector<std::uint64_t> values(cpus);
    std::uint32_t key = htonl(addrs_host.front());
    if (bpf_map_lookup_elem(fd, &key, values.data()) != 0) fail("xdp-filter's filter_ipv4 lacks the CLI entry");
    if ((values[0] & kXdpFilterSrcFlag) == 0) fail("xdp-filter's value format changed (no src flag)");
    for (std::size_t i = 1; i < addrs_host.size(); ++i) {
      key = htonl(addrs_host[i]);
      if (bpf_map_update_elem(fd, &key, values.data(), BPF_NOEXIST) != 0)
        fail("xdp-filter filter_ipv4 update of " + dotted(addrs_host[i]) + ": " + std::strerror(errno));
    }
    close(fd);
  }

 private:
  std::string ns_;
  bool created_ = false;
  bool loaded_ = false;
  int prog_fd_ = -1;
};

// One of the targets: a ratio (median of paired rounds) and the most it may be.
struct Target {
  std::string name;
  double value;
  double limit;
};

// A figure's place on a scaling curve.
struct CurvePoint {
  std::string curve, series;
  std::optional<double> x;  // none: a reference line (a peer at its own scale)
  std::optional<std::uint64_t> map_bytes;
};

// The sluice counter a path must raise by one per repeat: (verdict, reason).
struct PathCounter {
  sluice_verdict verdict;
  std::uint32_t reason;
  // A rate-limited path lets through what its bucket refills during the round
  // (packets per second): that many repeats, and one for a partial second, may miss the counter.
  std::uint64_t refill_per_sec = 0;
};

// --quick without the options given: a blocklist, a tbl8 budget and rule
// counts that load in seconds and still take every path.
constexpr std::size_t kQuickPrefixes = 100'000;
constexpr std::uint32_t kQuickTbl8Groups = 131'072;
const std::vector<std::uint32_t> kQuickRuleCounts = {1, 64};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice filter benchmark: ns/packet through BPF_PROG_TEST_RUN, paired with an empty XDP program, next to "
               "xdp-filter"};
  bench::SectionOptions options;
  std::size_t prefixes = 1'000'000;
  std::uint32_t tbl8_groups = 1u << 20;
  std::size_t xdp_filter_addresses = 10'000;
  std::vector<std::string> only;
  bench::add_section_options(app, options);
  app.add_option("--prefixes", prefixes, "IPv4 blocklist prefixes loaded (--quick: 100,000)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{SLUICE_FILTER_MAX_V4_PREFIXES}));
  app.add_option("--blocklist-tbl8-groups", tbl8_groups,
                 "DIR-24-8 tbl8 groups per generation (1 KiB each; ~half of a blocklist-like set needs one; --quick: 131,072)")
      ->check(CLI::Range(1u, std::uint32_t{SLUICE_DIR24_8_TBL8_GROUPS_MAX}));
  app.add_option("--xdp-filter-addresses", xdp_filter_addresses, "addresses listed in xdp-filter (its map holds 10,000)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10'000}));
  app.add_option("--only", only, "run only these groups (repeatable): empty, conntrack, rules, ratelimit, blocklist, xdp-filter")
      ->check(CLI::IsMember({"empty", "conntrack", "rules", "ratelimit", "blocklist", "xdp-filter"}));
  CLI11_PARSE(app, argc, argv);

  // A group runs when --only is absent or names it.
  const auto wanted = [&](const std::string& group) {
    return only.empty() || std::find(only.begin(), only.end(), group) != only.end();
  };

  try {
    const int cpu = bench::apply_section_options(app, options);
    if (options.quick && app.count("--prefixes") == 0) prefixes = kQuickPrefixes;
    if (options.quick && app.count("--blocklist-tbl8-groups") == 0) tbl8_groups = kQuickTbl8Groups;
    const std::vector<std::uint32_t>& rule_counts = options.quick ? kQuickRuleCounts : kRuleCounts;
    const std::uint32_t repeat = options.repeat;
    std::unique_ptr<empty_bpf, decltype(&empty_bpf__destroy)> empty(empty_bpf__open_and_load(), empty_bpf__destroy);
    if (!empty) fail("cannot load the baseline program (root needed)");
    const int empty_fd = bpf_program__fd(empty->progs.empty_drop);
    auto plane = must(sluice::dataplane::Dataplane::load({}), "load the data plane");
    must(plane.install_stages(), "install stages");
    auto table = must(FilterTable::open(plane, {.tbl8_groups_max = tbl8_groups}), "open the filter");
    // BPF map memory (bytes_memlock) now: every map of the object, of which operator-sized, and the DIR-24-8 copies.
    struct Memory {
      std::uint64_t all = 0, sized = 0, dir = 0;
    };
    auto memory = [&] {
      Memory m;
      for (const auto& t : must(plane.tables(), "list the tables")) {
        m.all += t.memory_bytes;
        if (t.sized_by) m.sized += t.memory_bytes;
      }
      for (std::uint32_t gen = 0; gen < SLUICE_FILTER_GENERATIONS; ++gen) {
        const auto info = must(table.prefix_dir(gen), "read the prefix-list tables");
        m.dir += info.tbl24_bytes + info.tbl8_bytes;
      }
      return m;
    };
    auto memory_note = [&](const std::string& when) {
      const Memory m = memory();
      constexpr double mib = 1 << 20;
      std::ostringstream note;
      note << std::fixed << std::setprecision(1) << "memory, " << when << ": " << (m.all + m.dir) / mib
           << " MiB of BPF maps (" << m.sized / mib << " MiB operator-sized state, " << m.dir / mib
           << " MiB prefix-list DIR-24-8 copies, " << (m.all - m.sized) / mib << " MiB other)";
      return note.str();
    };
    const std::string idle_memory = memory_note("idle");
    const int sluice_fd = plane.entry_prog_fd();
    auto counted = [&](const PathCounter& counter) {
      return must(plane.verdict_count(counter.verdict, static_cast<sluice_reason>(counter.reason)), "read a counter")
          .packets;
    };

    bench::SectionWriter writer("filter", cpu);
    writer.note(std::to_string(repeat) + " packets per round, " + std::to_string(options.rounds) +
                " paired rounds per figure, whole pipeline (parse + filter + lb + forward)");
    const std::string baseline_name = "empty XDP_DROP";
    // Times prog on frame paired with the empty program (empty, prog, empty, prog, ...): every round
    // must return `expected` and, for a sluice path with a counter, count one packet per repeat there.
    auto measure = [&](const std::string& group, const std::string& name, int prog_fd, const Bytes& frame,
                       std::uint32_t expected, std::optional<PathCounter> counter = std::nullopt,
                       const std::optional<CurvePoint>& point = std::nullopt) {
      const std::string what = group + " / " + name;
      const bench::TimedRound baseline = [&] {
        return bench::run_xdp_round(empty_fd, frame, repeat, "empty", XDP_DROP).ns_per_packet;
      };
      const bench::TimedRound path = [&] {
        const std::uint64_t before = counter ? counted(*counter) : 0;
        const auto start = std::chrono::steady_clock::now();
        const double ns = bench::run_xdp_round(prog_fd, frame, repeat, what, expected).ns_per_packet;
        if (!counter) return ns;
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const auto refilled = static_cast<std::uint64_t>(std::ceil(seconds * static_cast<double>(counter->refill_per_sec))) +
                              (counter->refill_per_sec > 0 ? 1 : 0);
        const std::uint64_t took = counted(*counter) - before;
        if (took > repeat || took + refilled < repeat)
          fail(what + ": " + std::to_string(took) + " of " + std::to_string(repeat) + " repeats counted on its path" +
               (refilled > 0 ? " (" + std::to_string(refilled) + " may refill)" : ""));
        return ns;
      };
      const bench::Paired paired = bench::time_paired(baseline, path, options.rounds);
      bench::Figure& figure = writer.add_paired(
          group, name, paired, baseline_name,
          "verdict " + verdict_name(expected) + (counter ? ", path counter" : "") + " checked every round");
      if (point) {
        figure.curve = point->curve;
        figure.series = point->series;
        figure.x = point->x;
        figure.map_bytes = point->map_bytes;
      }
      return paired;
    };
    // A peer's figure: its failure is noted, not fatal (sluice's own rows must still report).
    auto measure_peer = [&](auto&&... args) -> std::optional<bench::Paired> {
      try {
        return measure(args...);
      } catch (const std::exception& error) {
        writer.note(std::string("xdp-filter figure not timed: ") + error.what());
        return std::nullopt;
      }
    };
    const PathCounter rule_drop{SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RULE_DROP};
    const Bytes plain = tcp4("198.18.0.10", "198.19.0.1", 40000, kMissPort, TcpFlags::ACK);
    if (wanted("empty")) {
      auto untracked = sluice::filter::default_settings();
      untracked.conntrack = false;
      must(table.set_settings(untracked), "disable conntrack");
      measure("empty set", "sluice: no prefixes/rules, conntrack off", sluice_fd, plain, XDP_PASS);
    }
    must(table.set_settings(sluice::filter::default_settings()), "enable conntrack");
    if (wanted("empty")) measure("empty set", "sluice: no prefixes/rules, ct miss (pass)", sluice_fd, plain, XDP_PASS);

    // Conntrack: a pass-and-track rule lets the SYN in, the SYN-ACK establishes, the ACK is timed.
    std::optional<double> conntrack_ratio;
    if (wanted("conntrack")) {
      RuleSet set;
      FilterRule track;
      track.priority = 1;
      track.protocol = IPPROTO_TCP;
      track.dst_ports = sluice::filter::PortRange{80, 80};
      track.action = Action::PassTrack;
      set.rules = {track};
      must(table.replace(set), "conntrack rule set");
      send_once(sluice_fd, tcp4("198.18.0.10", "198.19.0.1", 40001, 80, TcpFlags::SYN));
      // The SYN-ACK acks the SYN (seq 0, its payload, the SYN itself): conntrack takes it as the reply.
      send_once(sluice_fd, tcp4("198.19.0.1", "198.18.0.10", 80, 40001, TcpFlags::SYN | TcpFlags::ACK, kTcpPayload + 1));
      // The timed packets must take the conntrack path, not the rule.
      conntrack_ratio = measure("conntrack", "sluice: established flow (ct hit)", sluice_fd,
                                tcp4("198.18.0.10", "198.19.0.1", 40001, 80, TcpFlags::ACK), XDP_PASS,
                                PathCounter{SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_CONNTRACK})
                            .ratio.median;
      must(table.clear_conntrack(), "clear conntrack");
    }

    // Ordered rules: rule i drops TCP to 198.19.0.0/16 port kRulePortBase + i (a port-based firewall).
    // rules -> ratios to the empty program (medians of paired rounds) of a miss, the first and the last match
    struct RulePath {
      double miss = 0, first = 0, last = 0;
    };
    std::map<std::uint32_t, RulePath> by_count;
    for (std::uint32_t count : wanted("rules") ? rule_counts : std::vector<std::uint32_t>{}) {
      RuleSet set;
      for (std::uint32_t i = 0; i < count; ++i) {
        FilterRule r;
        r.priority = i;
        r.dst = sluice::maps::parse_prefix("198.19.0.0/16").value();
        r.protocol = IPPROTO_TCP;
        r.dst_ports = sluice::filter::PortRange{static_cast<std::uint16_t>(kRulePortBase + i),
                                                static_cast<std::uint16_t>(kRulePortBase + i)};
        r.action = Action::Drop;
        set.rules.push_back(r);
      }
      must(table.replace(set), std::to_string(count) + " rules");
      const std::string group = std::to_string(count) + (count == 1 ? " rule" : " rules");
      const auto x = static_cast<double>(count);
      by_count[count].miss = measure(group, "sluice: rule miss (pass)", sluice_fd, plain, XDP_PASS, std::nullopt,
                                     CurvePoint{"rules", "sluice, rule miss", x, std::nullopt})
                                 .ratio.median;
      const Bytes first = tcp4("198.18.0.10", "198.19.0.1", 40000, kRulePortBase, TcpFlags::ACK);
      by_count[count].first = measure(group, "sluice: first rule matches (drop)", sluice_fd, first, XDP_DROP, rule_drop,
                                      CurvePoint{"rules", "sluice, first rule", x, std::nullopt})
                                  .ratio.median;
      const Bytes last = tcp4("198.18.0.10", "198.19.0.1", 40000, static_cast<std::uint16_t>(kRulePortBase + count - 1),
                              TcpFlags::ACK);
      by_count[count].last = measure(group, "sluice: last rule matches (drop)", sluice_fd, last, XDP_DROP, rule_drop,
                                     CurvePoint{"rules", "sluice, last rule", x, std::nullopt})
                                 .ratio.median;
    }

    std::optional<double> rate_ratio;
    // Rate limit: 1 packet/s with a burst of 1; the timed packets find the bucket empty.
    if (wanted("ratelimit")) {
      RuleSet set;
      set.rate_classes = {sluice::filter::RateClass{.id = kRateClass, .packets_per_sec = kRatePerSec, .packet_burst = 1}};
      FilterRule r;
      r.priority = 1;
      r.protocol = IPPROTO_UDP;
      r.dst_ports = sluice::filter::PortRange{53, 53};
      r.action = Action::RateLimit;
      r.rate_class = kRateClass;
      set.rules = {r};
      must(table.replace(set), "rate-limit rule set");
      const Bytes dns = udp4("198.18.0.20", "198.19.0.1", 40000, 53);
      send_once(sluice_fd, dns);  // spends the burst
      rate_ratio = measure("rate limit", "sluice: rate-limited drop", sluice_fd, dns, XDP_DROP,
                           PathCounter{SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RATE_LIMITED, kRatePerSec})
                       .ratio.median;
    }

    // xdp-filter from xdp-tools, timed on the same frames next to the sluice rows it compares with.
    std::optional<XdpFilterLab> lab;
    std::vector<std::uint32_t> listed;
    if (wanted("xdp-filter")) {
      try {
        lab.emplace();
        for (std::uint32_t i = 0; i < xdp_filter_addresses; ++i) listed.push_back(0xc6120000 + 0x100 + i);  // 198.18.1.0 ...
        lab->list_sources(listed);
        if (lab->xdp_filter("port " + std::to_string(kAnchorPort) + " -p tcp -m dst") != 0) fail("xdp-filter port");
        writer.note("xdp-filter rows: " + std::to_string(listed.size()) + " source addresses listed, tcp dport " +
                    std::to_string(kAnchorPort) + " filtered");
      } catch (const std::exception& error) {
        lab.reset();
        writer.note(std::string("xdp-filter not timed: ") + error.what());
      }
    }

    // Blocklist: `prefixes` IPv4 prefixes outside 198.18.0.0/15, plus two inside it to hit.
    must(table.replace(RuleSet{}), "empty rule set");
    const std::uint32_t bench_net = 0xc6120000, bench_mask = sluice::test::ipv4_mask(15);  // 198.18.0.0/15
    const std::uint32_t hit_host = 0xc612c807;    // 198.18.200.7/32: its /24 has a tbl8 group
    const std::uint32_t hit_block = 0xc6130500;   // 198.19.5.0/24: one tbl24 load
    std::optional<double> blocklist_ratio;
    const std::string blocklist_group = "blocklist";
    if (wanted("blocklist")) {
      const auto keys = sluice::test::blocklist_like_ipv4(prefixes + prefixes / 8 + 16, 11);
      const auto path = std::filesystem::temp_directory_path() / ("sluice_filter_bench_" + std::to_string(getpid()));
      std::size_t written = 0;
      {
        std::ofstream out(path);
        out << dotted(hit_host) << "/32\n" << dotted(hit_block) << "/24\n";
        written = 2;
        for (const auto& key : keys) {
          if (written == prefixes) break;
          std::uint32_t addr_be;
          std::memcpy(&addr_be, key.addr, sizeof(addr_be));
          const std::uint32_t addr = ntohl(addr_be);
          const std::uint32_t mask = sluice::test::ipv4_mask(key.prefixlen) & bench_mask;
          if ((addr & mask) == (bench_net & mask)) continue;  // overlaps 198.18.0.0/15
          out << dotted(addr) << "/" << key.prefixlen << "\n";
          ++written;
        }
      }
      const auto start = std::chrono::steady_clock::now();
      auto loaded = table.load_prefix_file(path);
      std::filesystem::remove(path);
      if (!loaded) fail("load the blocklist: " + loaded.error().message);
      const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::ostringstream note;
      note << std::fixed << std::setprecision(2) << "blocklist: " << *loaded << " IPv4 prefixes loaded in " << load_s
           << " s (trie + DIR-24-8 from " << table.options().dir_prefixes << " prefixes, at most " << tbl8_groups
           << " tbl8 groups per generation)";
      writer.note(note.str());
      writer.note(idle_memory);
      writer.note(memory_note("with " + std::to_string(*loaded) + " prefixes"));
      const Memory loaded_memory = memory();
      const auto x = static_cast<double>(*loaded);
      const std::uint64_t bytes = loaded_memory.all + loaded_memory.dir;
      const PathCounter blocked{SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_BLOCKLIST};
      blocklist_ratio = measure(blocklist_group, "sluice: blocklist hit, /32 (tbl8)", sluice_fd,
                                udp4(dotted(hit_host), "198.19.0.1", 40000, 53), XDP_DROP, blocked,
                                CurvePoint{"prefixes", "sluice, blocklist hit /32", x, bytes})
                            .ratio.median;
      measure(blocklist_group, "sluice: blocklist hit, /24 (tbl24)", sluice_fd,
              udp4(dotted(hit_block | 9), "198.19.0.1", 40000, 53), XDP_DROP, blocked,
              CurvePoint{"prefixes", "sluice, blocklist hit /24", x, bytes});
      measure(blocklist_group, "sluice: blocklist miss (pass)", sluice_fd, udp4("198.18.0.30", "198.19.0.1", 40000, 53),
              XDP_PASS, std::nullopt, CurvePoint{"prefixes", "sluice, blocklist miss", x, bytes});
    }
    std::optional<double> xdp_filter_ip_ratio, xdp_filter_rule_ratio;
    if (lab) {
      // A reference on the prefixes curve: xdp-filter at its own scale (a hash of listed addresses).
      const std::string series = "xdp-filter IP hit, " + std::to_string(listed.size()) + " addresses";
      if (auto ip = measure_peer(blocklist_group, "xdp-filter: IP hit (drop)", lab->prog_fd(),
                                 udp4(dotted(listed.back()), "198.19.0.1", 40000, 53), XDP_DROP, std::nullopt,
                                 CurvePoint{"prefixes", series, std::nullopt, std::nullopt}))
        xdp_filter_ip_ratio = ip->ratio.median;
      measure_peer(blocklist_group, "xdp-filter: miss (pass)", lab->prog_fd(),
                   udp4("198.18.0.30", "198.19.0.1", 40000, 53), XDP_PASS, std::nullopt, std::nullopt);
    }

    if (wanted("xdp-filter")) {
      // sluice: the same port rule; a later fragment must pass it (sluice reads no ports from payload).
      RuleSet set;
      FilterRule r;
      r.priority = 1;
      r.protocol = IPPROTO_TCP;
      r.dst_ports = sluice::filter::PortRange{kAnchorPort, kAnchorPort};
      r.action = Action::Drop;
      set.rules = {r};
      set.prefixes = table.rule_set().prefixes;
      must(table.replace(set), "port rule");
      // A non-first fragment (offset 64) whose first payload bytes read like ports 40000 -> 80.
      const Bytes later_fragment = ether()
                                       .ipv4("198.18.0.40", "198.19.0.1", {.frag_offset_bytes = 64, .protocol_override = IPPROTO_TCP})
                                       .payload(Bytes{0x9c, 0x40, 0x00, kAnchorPort, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x10, 0xff,
                                                      0xff, 0, 0, 0, 0, 'x', 'x', 'x', 'x'})
                                       .build();
      const Bytes real_port80 = tcp4("198.18.0.40", "198.19.0.1", 40000, kAnchorPort, TcpFlags::ACK);
      const std::string anchor_sluice = verdict_name(send_once(sluice_fd, later_fragment));
      std::string anchor_xdp_filter = "not run";
      const std::string rule_group = "tcp dport 80 rule";
      if (lab)
        if (auto hit = measure_peer(rule_group, "xdp-filter: rule hit (drop)", lab->prog_fd(), real_port80, XDP_DROP,
                                    std::nullopt, std::nullopt))
          xdp_filter_rule_ratio = hit->ratio.median;
      measure(rule_group, "sluice: rule hit (drop), same packet", sluice_fd, real_port80, XDP_DROP, rule_drop);
      if (lab) {
        anchor_xdp_filter = verdict_name(send_once(lab->prog_fd(), later_fragment));
        measure_peer("fragment", "xdp-filter: later fragment vs port rule", lab->prog_fd(), later_fragment,
                     send_once(lab->prog_fd(), later_fragment), std::nullopt, std::nullopt);
      }
      measure("fragment", "sluice: later fragment vs port rule (pass)", sluice_fd, later_fragment, XDP_PASS);
      writer.note("non-first IPv4 fragment (offset 64, payload starting 9c40 0050) against a 'tcp dport 80 drop' rule: "
                  "xdp-filter " + anchor_xdp_filter + " (reads the payload as a TCP header), sluice " + anchor_sluice +
                  " (no L4 header in a later fragment: port rules never match it)");
    }

    // The targets, from the median ratios of paired rounds.
    std::vector<Target> targets;
    if (!by_count.empty()) {
      const auto& [fewest, one] = *by_count.begin();
      const auto& [most, all] = *by_count.rbegin();
      auto label = [](std::uint32_t count) { return std::to_string(count) + (count == 1 ? " rule" : " rules"); };
      for (const auto& [count, path] : {std::pair{fewest, one}, std::pair{most, all}}) {
        targets.push_back({"first-rule match, " + label(count) + " / empty", path.first, 4.0});
        targets.push_back({"last-rule match, " + label(count) + " / empty", path.last, 4.0});
        if (xdp_filter_rule_ratio) {
          targets.push_back({"first-rule match, " + label(count) + " / xdp-filter tcp dport 80 hit",
                             path.first / *xdp_filter_rule_ratio, 1.0});
          targets.push_back({"last-rule match, " + label(count) + " / xdp-filter tcp dport 80 hit",
                             path.last / *xdp_filter_rule_ratio, 1.0});
        }
      }
      const std::string scale = std::to_string(most) + " / " + std::to_string(fewest) + " rules";
      targets.push_back({"rule miss, " + scale, all.miss / one.miss, 1.2});
      targets.push_back({"first-rule match, " + scale, all.first / one.first, 1.2});
      targets.push_back({"last-rule match, " + scale, all.last / one.last, 1.2});
    }
    if (xdp_filter_ip_ratio && blocklist_ratio)
      targets.push_back({"blocklist hit at " + std::to_string(prefixes) + " prefixes / xdp-filter IP hit at " +
                             std::to_string(listed.size()),
                         *blocklist_ratio / *xdp_filter_ip_ratio, 1.0});
    if (conntrack_ratio) targets.push_back({"conntrack hit through the whole filter / empty", *conntrack_ratio, 2.5});
    if (rate_ratio) targets.push_back({"rate-limited drop / empty", *rate_ratio, 4.0});
    for (const Target& t : targets) {
      std::ostringstream line;
      line << std::fixed << std::setprecision(2) << "target: " << t.name << " " << t.value << "x (<= " << t.limit
           << "x) " << (t.value <= t.limit ? "met" : "NOT MET");
      writer.note(line.str());
    }
    writer.emit(std::cout, options.json);
  } catch (const std::exception& error) {
    std::cerr << "filter_bench: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
