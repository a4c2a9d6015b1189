// What an idle sluiced costs (issue 8): the BPF map memory of its pinned
// maps, measured as bpftool does (bytes_memlock, read from each pin, not from
// the daemon's word), at most 64 MiB beyond the tables the operator sizes
// (conntrack, rate buckets, lb connections: their sizes checked against the
// options), and its resident memory under 50 MB. The prefix lists' DIR-24-8
// copies come with a big enough list and go with it, and status shows every
// table with its size and memory.
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "daemon_test_support.hpp"
#include "privileges.hpp"
#include "sluice_maps.h"

namespace sluice::test {
namespace {

namespace json = boost::json;

constexpr std::uint64_t kMiB = 1u << 20;
constexpr std::uint64_t kIdleMapBudget = 64 * kMiB;
constexpr std::uint64_t kIdleRssBudget = 50'000'000;  // bytes

// The operator-sized tables and the option that sizes each.
const std::map<std::string, std::string> kSizedBy = {
    {"filter_conntrack", "conntrack_entries"},      {"filter_conntrack_v4", "conntrack_entries"},
    {"filter_ct_unreplied", "conntrack_entries"},   {"filter_ct_unreplied_v4", "conntrack_entries"},
    {"filter_rate_buckets", "rate_bucket_entries"}, {"lb_conns", "lb_conn_entries"},
    {"lb_conns_v4", "lb_conn_entries"},
};

struct PinnedMemory {
  std::uint64_t sized = 0, other = 0;
  std::map<std::string, std::uint32_t> sized_entries;  // map name -> max_entries
};

// /proc/self/fdinfo/<fd> as "field" -> value: a map's has map_type, max_entries and memlock (bytes_memlock).
std::map<std::string, std::string> fdinfo(int fd) {
  std::map<std::string, std::string> fields;
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const auto value = line.find_first_not_of(" \t", colon + 1);
    fields[line.substr(0, colon)] = value == std::string::npos ? "" : line.substr(value);
  }
  return fields;
}

// Every map pinned under pin_dir (program pins skipped), read from the kernel.
PinnedMemory pinned_memory(const std::string& pin_dir) {
  PinnedMemory out;
  for (const auto& entry : std::filesystem::directory_iterator(pin_dir)) {
    const int fd = bpf_obj_get(entry.path().c_str());
    if (fd < 0) {
      ADD_FAILURE() << "open pin " << entry.path();
      continue;
    }
    auto fields = fdinfo(fd);
    ::close(fd);
    if (!fields.count("map_type")) continue;  // a program pin
    EXPECT_TRUE(fields.count("memlock") && fields.count("max_entries")) << entry.path();
    const std::uint64_t bytes = std::stoull(fields["memlock"]);
    const std::string name = entry.path().filename().string();
    if (kSizedBy.count(name)) {
      out.sized += bytes;
      out.sized_entries[name] = static_cast<std::uint32_t>(std::stoul(fields["max_entries"]));
    } else {
      out.other += bytes;
    }
  }
  return out;
}

std::uint64_t rss_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "VmRSS:   1234 kB"
  ADD_FAILURE() << "no VmRSS for pid " << pid;
  return ~std::uint64_t{0};
}

// status.tables by name.
std::map<std::string, json::object> status_tables(ControlClient& client) {
  std::map<std::string, json::object> out;
  const json::value status = client.result("status");
  for (const auto& row : status.at("tables").as_array())
    out[std::string(row.at("name").as_string())] = row.as_object();
  return out;
}

TEST(DaemonMemory, AnIdleDaemonHoldsLittleMapMemoryAndResidentMemory) {
  SLUICE_REQUIRE_BPFFS();
  SluicedProcess daemon;
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  client.result("status");  // served: start-up is over

  const PinnedMemory pinned = pinned_memory(daemon.pin_dir());
  std::printf("idle: %.1f MiB of maps beyond %.1f MiB of operator-sized state; RSS %.1f MB\n",
              static_cast<double>(pinned.other) / kMiB, static_cast<double>(pinned.sized) / kMiB,
              static_cast<double>(rss_bytes(daemon.pid())) / 1e6);
  EXPECT_LE(pinned.other, kIdleMapBudget);
  ASSERT_EQ(pinned.sized_entries.size(), kSizedBy.size());
  for (const auto& [name, entries] : pinned.sized_entries) {
    const std::uint32_t wanted = name.rfind("lb_conns", 0) == 0       ? SLUICE_LB_CONN_ENTRIES_DEFAULT
                                 : name == "filter_rate_buckets"      ? SLUICE_FILTER_RATE_BUCKETS
                                                                      : SLUICE_FILTER_CONNTRACK_ENTRIES;
    EXPECT_EQ(entries, wanted) << name;
  }
  EXPECT_LT(rss_bytes(daemon.pid()), kIdleRssBudget);

  // status tells the same: every table with its size and memory, the sized ones naming their option.
  const auto tables = status_tables(client);
  for (const auto& [name, option] : kSizedBy) {
    ASSERT_TRUE(tables.count(name)) << name;
    EXPECT_EQ(tables.at(name).at("sized_by"), json::value(option)) << name;
    EXPECT_EQ(tables.at(name).at("max_entries").to_number<std::uint32_t>(), pinned.sized_entries.at(name)) << name;
  }
  EXPECT_FALSE(tables.count("fsrc4_g0_t24")) << "no DIR-24-8 copy for empty lists";
  const auto totals = client.result("status").at("table_memory_bytes");
  EXPECT_EQ(totals.at("operator_sized").to_number<std::uint64_t>(), pinned.sized);
  EXPECT_EQ(totals.at("other").to_number<std::uint64_t>(), pinned.other);
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
}

TEST(DaemonMemory, StateTablesFollowTheirOptionsAndListsGetTheirCopyWhenBig) {
  SLUICE_REQUIRE_BPFFS();
  SluicedOptions options;
  constexpr std::size_t kDirFrom = 8;
  options.extra_args = {"--conntrack-entries",  "4096", "--rate-bucket-entries",    "2048",
                        "--lb-conn-entries",    "1024", "--blocklist-dir-prefixes", std::to_string(kDirFrom)};
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  const PinnedMemory pinned = pinned_memory(daemon.pin_dir());
  for (const auto& [name, entries] : pinned.sized_entries) {
    const std::uint32_t wanted = name.rfind("lb_conns", 0) == 0 ? 1024 : name == "filter_rate_buckets" ? 2048 : 4096;
    EXPECT_EQ(entries, wanted) << name;
  }

  // Below the threshold the trie answers; from it on the live generation has a copy (64 MiB of tbl24).
  json::array prefixes;
  for (std::size_t i = 0; i + 1 < kDirFrom; ++i) prefixes.push_back(json::value("198.18." + std::to_string(i) + ".0/24"));
  client.result("block.add", {{"prefixes", prefixes}});
  auto tables = status_tables(client);
  EXPECT_FALSE(tables.count("fsrc4_g0_t24") || tables.count("fsrc4_g1_t24"));
  client.result("block.add", {{"prefixes", json::array{"198.19.0.128/25"}}});
  tables = status_tables(client);
  const std::string copy = tables.count("fsrc4_g0_t24") ? "fsrc4_g0" : "fsrc4_g1";
  ASSERT_TRUE(tables.count(copy + "_t24")) << "a copy once the list holds " << kDirFrom;
  EXPECT_GE(tables.at(copy + "_t24").at("memory_bytes").to_number<std::uint64_t>(),
            std::uint64_t{SLUICE_DIR24_8_TBL24_ROWS} * sizeof(sluice_dir24_8_row));
  EXPECT_GE(tables.at(copy + "_t8").at("max_entries").to_number<std::uint32_t>(), 1u);

  // Below half the threshold it goes again.
  for (std::size_t i = kDirFrom / 2 - 2; i + 1 < kDirFrom; ++i)
    client.result("block.del", {{"prefixes", json::array{json::value("198.18." + std::to_string(i) + ".0/24")}}});
  tables = status_tables(client);
  EXPECT_FALSE(tables.count("fsrc4_g0_t24") || tables.count("fsrc4_g1_t24"));
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
}

}  // namespace
}  // namespace sluice::test
