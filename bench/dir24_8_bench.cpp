// ns/packet of an IPv4 source-prefix lookup with 1,000,000 prefixes loaded:
// DIR-24-8 (xdp/dir24_8.h) against the kernel LPM trie holding the same
// prefixes, each from interleaved rounds paired with an empty XDP_DROP
// program on a pinned CPU, the verdict of both lookups checked every round.
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
#include <sstream>
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
  namespace bench = sluice::bench;
  CLI::App app{"DIR-24-8 vs LPM trie: ns/packet through BPF_PROG_TEST_RUN with 1M prefixes, paired with an empty XDP program"};
  bench::SectionOptions options;
  // --quick without --prefixes: enough for a /32 and a /24 to hit, loaded in well under a second.
  constexpr std::size_t quick_prefixes = 10'000;
  std::size_t prefixes = 1'000'000;
  bench::add_section_options(app, options);
  app.add_option("--prefixes", prefixes, "prefixes loaded in both structures (--quick: 10,000)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{SLUICE_DIR24_8_TBL8_GROUPS_DEFAULT}));
  CLI11_PARSE(app, argc, argv);

  try {
    const int cpu = bench::apply_section_options(app, options);
    if (options.quick && app.count("--prefixes") == 0) prefixes = quick_prefixes;
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
    const int empty_fd = bpf_program__fd(empty->progs.empty_drop);
    const std::pair<std::string, int> structures[] = {
        {"DIR-24-8 lookup", bpf_program__fd(lookups->progs.dir24_8_src)},
        {"kernel LPM trie lookup", bpf_program__fd(lookups->progs.lpm_src)}};
    bench::SectionWriter writer("dir24_8", cpu);
    for (const Case& c : cases) {
      using sluice::test::PacketBuilder;
      const auto frame = PacketBuilder()
                             .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                             .ipv4(dotted(c.source), "198.18.1.1")
                             .udp(40000, 53)
                             .payload(std::string(18, 'x'))
                             .build();
      const bench::TimedRound baseline = [&] {
        return bench::run_xdp_round(empty_fd, frame, options.repeat, "empty", XDP_DROP).ns_per_packet;
      };
      std::vector<double> medians;
      for (const auto& [name, fd] : structures) {
        const std::string what = c.group + " (" + dotted(c.source) + ") / " + name;
        const bench::TimedRound path = [&] {
          return bench::run_xdp_round(fd, frame, options.repeat, what, c.verdict).ns_per_packet;
        };
        const bench::Paired paired = bench::time_paired(baseline, path, options.rounds);
        bench::Figure& figure = writer.add_paired(c.group, name, paired, "empty XDP_DROP", "verdict checked every round");
        figure.curve = "prefixes";
        figure.x = static_cast<double>(entries.size());
        figure.series = name + ", " + c.group;
        medians.push_back(paired.value.median);
      }
      std::ostringstream note;
      note << std::fixed << std::setprecision(2) << c.group << " (" << dotted(c.source)
           << "): trie/DIR-24-8, medians of ns/packet: " << medians[1] / medians[0] << "x";
      writer.note(note.str());
    }
    std::ostringstream load;
    load << std::fixed << std::setprecision(0) << "DIR-24-8 bulk load of " << entries.size() << " prefixes: " << assign_ms
         << " ms, " << table->groups_used() << " of " << table->groups_capacity() << " tbl8 groups";
    writer.note(load.str());
    writer.emit(std::cout, options.json);
  } catch (const std::exception& error) {
    std::cerr << "dir24_8_bench: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
