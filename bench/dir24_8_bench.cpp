// ns/packet of an IPv4 source-prefix lookup with 1,000,000 prefixes loaded:
// DIR-24-8 (xdp/dir24_8.h) against the kernel LPM trie holding the same
// prefixes, next to an empty XDP_DROP program timed in the same run.
// Three source addresses: one whose /24 holds longer prefixes (two array
// loads), one covered by a /24 or shorter (one load), one matching nothing.
#include <CLI/CLI.hpp>
#include <bpf/libbpf.h>

#include <arpa/inet.h>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <memory>
#include <random>
#include <unordered_set>

#include "bench_support.hpp"
#include "dir24_8.hpp"
#include "kv_map.hpp"
#include "packet_builder.hpp"
#include "prefix_sets.hpp"
// after the contract: the skeletons name its structs
#include "dir24_8_test.skel.h"
#include "empty.skel.h"

namespace {

using sluice::maps::Dir24_8Entry;

using sluice::test::ipv4_prefix_key;

// Prefixes like a large blocklist, each with a value.
std::vector<Dir24_8Entry> blocklist_like(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 values(seed);
  std::vector<Dir24_8Entry> entries;
  for (const sluice_lpm_v4_key& key : sluice::test::blocklist_like_ipv4(count, seed))
    entries.push_back({key, std::uniform_int_distribution<std::uint32_t>(1, 1000)(values)});
  return entries;
}

std::uint32_t host_of(const sluice_lpm_v4_key& key) {
  std::uint32_t addr_be;
  std::memcpy(&addr_be, key.addr, sizeof(addr_be));
  return ntohl(addr_be);
}

std::string dotted(std::uint32_t addr_host) {
  char text[INET_ADDRSTRLEN];
  const std::uint32_t addr_be = htonl(addr_host);
  return inet_ntop(AF_INET, &addr_be, text, sizeof(text));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DIR-24-8 vs LPM trie: ns/packet through BPF_PROG_TEST_RUN with 1M prefixes, relative to an empty XDP program"};
  std::uint32_t repeat = 2'000'000;
  int rounds = 5;
  std::size_t prefixes = 1'000'000;
  bool json = false;
  app.add_option("--repeat", repeat, "packets per timing (>= 1,000,000)")
      ->check(CLI::Range(sluice::bench::min_repeat, 100'000'000u));
  app.add_option("--rounds", rounds, "timings per program; the median is reported")->check(CLI::Range(1, 100));
  app.add_option("--prefixes", prefixes, "prefixes loaded in both structures")
      ->check(CLI::Range(std::size_t{1}, std::size_t{SLUICE_DIR24_8_TBL8_GROUPS_DEFAULT}));
  app.add_flag("--json", json, "print JSON instead of a table");
  CLI11_PARSE(app, argc, argv);

  try {
    std::unique_ptr<empty_bpf, decltype(&empty_bpf__destroy)> empty(empty_bpf__open_and_load(), empty_bpf__destroy);
    std::unique_ptr<dir24_8_test_bpf, decltype(&dir24_8_test_bpf__destroy)> lookups(dir24_8_test_bpf__open_and_load(),
                                                                                   dir24_8_test_bpf__destroy);
    if (!empty || !lookups) throw std::runtime_error("cannot load the benchmark programs (root needed)");

    const auto entries = blocklist_like(prefixes, 7);
    auto table = sluice::maps::Dir24_8::from_skeleton(lookups->maps.blocklist_tbl24, lookups->maps.blocklist_tbl8);
    if (!table) throw std::runtime_error(table.error().message);
    const auto start = std::chrono::steady_clock::now();
    if (auto loaded = table->assign(entries); !loaded) throw std::runtime_error(loaded.error().message);
    const double assign_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

    auto trie_fd = sluice::maps::MapFd::from_skeleton(lookups->maps.lpm_blocklist);
    if (!trie_fd) throw std::runtime_error(trie_fd.error().message);
    auto trie = sluice::maps::LpmTrie<sluice_lpm_v4_key, std::uint32_t>::from(std::move(*trie_fd));
    if (!trie) throw std::runtime_error(trie.error().message);
    std::vector<sluice_lpm_v4_key> keys;
    std::vector<std::uint32_t> values;
    for (const auto& entry : entries) {
      keys.push_back(entry.prefix);
      values.push_back(entry.value);
    }
    if (auto written = trie->update_batch(keys, values); !written) throw std::runtime_error(written.error().message);

    // Source addresses: the first /32 (its /24 has a group), the first /24, and one that matches nothing.
    std::optional<std::uint32_t> in_group, in_tbl24, nowhere;
    for (const auto& entry : entries) {
      if (!in_group && entry.prefix.prefixlen == 32) in_group = host_of(entry.prefix);
      if (!in_tbl24 && entry.prefix.prefixlen == 24 && !(table->lookup(host_of(entry.prefix)) == 0))
        in_tbl24 = host_of(entry.prefix) | 1;
    }
    for (std::uint32_t candidate = 0x01020304; !nowhere; candidate += 0x01000000)
      if (table->lookup(candidate) == SLUICE_DIR24_8_NO_MATCH) nowhere = candidate;
    if (!in_group || !in_tbl24) throw std::runtime_error("the prefix set has no /32 or no /24 to hit");

    struct Case {
      std::string group;
      std::uint32_t source;
      std::uint32_t verdict;  // expected of both lookup programs
    };
    const std::vector<Case> cases{{"hit, tbl8", *in_group, XDP_DROP},
                                  {"hit, tbl24", *in_tbl24, XDP_DROP},
                                  {"miss", *nowhere, XDP_PASS}};
    sluice::bench::Report report("IPv4 source lookup, " + std::to_string(entries.size()) +
                                     " prefixes: BPF_PROG_TEST_RUN, " + std::to_string(repeat) + " packets x " +
                                     std::to_string(rounds) + " rounds (median)",
                                 "empty");
    std::vector<std::string> notes;
    for (const Case& c : cases) {
      using sluice::bench::time_xdp;
      using sluice::test::PacketBuilder;
      const auto frame = PacketBuilder()
                             .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                             .ipv4(dotted(c.source), "198.18.1.1")
                             .udp(40000, 53)
                             .payload(std::string(18, 'x'))
                             .build();
      const auto baseline = time_xdp(bpf_program__fd(empty->progs.empty_drop), frame, repeat, rounds, "empty");
      const auto dir = time_xdp(bpf_program__fd(lookups->progs.dir24_8_src), frame, repeat, rounds, "dir24_8");
      const auto lpm = time_xdp(bpf_program__fd(lookups->progs.lpm_src), frame, repeat, rounds, "lpm trie");
      if (dir.verdict != c.verdict || lpm.verdict != c.verdict)
        throw std::runtime_error(c.group + " (" + dotted(c.source) + "): verdicts dir24_8 " +
                                 std::to_string(dir.verdict) + ", lpm " + std::to_string(lpm.verdict) +
                                 ", expected " + std::to_string(c.verdict));
      report.add({c.group, "empty XDP_DROP (baseline)", baseline.ns_per_packet, baseline.ns_per_packet, baseline.verdict});
      report.add({c.group, "DIR-24-8 lookup", dir.ns_per_packet, baseline.ns_per_packet, dir.verdict});
      report.add({c.group, "kernel LPM trie lookup", lpm.ns_per_packet, baseline.ns_per_packet, lpm.verdict});
      std::ostringstream note;
      note << std::fixed << std::setprecision(1) << c.group << " (" << dotted(c.source) << "): DIR-24-8 adds "
           << dir.ns_per_packet - baseline.ns_per_packet << " ns over empty, the LPM trie "
           << lpm.ns_per_packet - baseline.ns_per_packet << " ns (trie/DIR-24-8 "
           << std::setprecision(2) << lpm.ns_per_packet / dir.ns_per_packet << "x)";
      notes.push_back(note.str());
    }
    if (json) {
      report.print_json(std::cout);
    } else {
      report.print_table(std::cout);
      for (const auto& note : notes) std::cout << note << "\n";
      std::cout << std::fixed << std::setprecision(0) << "DIR-24-8 bulk load of " << entries.size() << " prefixes: "
                << assign_ms << " ms, " << table->groups_used() << " of " << table->groups_capacity()
                << " tbl8 groups\n";
    }
  } catch (const std::exception& error) {
    std::cerr << "dir24_8_bench: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
