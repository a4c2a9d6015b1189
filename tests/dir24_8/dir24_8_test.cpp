// DIR-24-8: random prefix sets with inserts and erases interleaved, compared
// with a naive reference LPM on thousands of random and boundary addresses,
// through the user-side lookup and through the BPF program; capacity
// exhaustion; bad input; reopening pinned tables; a 1M-prefix bulk load.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dir24_8.hpp"
#include "dir24_8_test.skel.h"
#include "packet_builder.hpp"
#include "prefix_sets.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

using maps::Dir24_8;
using maps::Dir24_8Entry;

constexpr std::uint32_t kGroupEntries = SLUICE_DIR24_8_GROUP_ENTRIES;
// Offset of the IPv4 source address in an untagged Ethernet frame.
constexpr std::size_t kSrcOffset = 14 + 12;

sluice_lpm_v4_key key_of(std::uint32_t addr_host, unsigned len) { return ipv4_prefix_key(addr_host, len); }
std::uint32_t mask_of(unsigned len) { return ipv4_mask(len); }
std::uint32_t addr_of(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return std::uint32_t{a} << 24 | std::uint32_t{b} << 16 | std::uint32_t{c} << 8 | d;
}
std::string text_of(std::uint32_t addr) {
  return std::to_string(addr >> 24) + "." + std::to_string((addr >> 16) & 255) + "." +
         std::to_string((addr >> 8) & 255) + "." + std::to_string(addr & 255);
}

// The obviously-correct LPM: every prefix checked, the longest match wins.
class NaiveLpm {
 public:
  void set(std::uint32_t addr, unsigned len, std::uint32_t value) { prefixes_[{len, addr}] = value; }
  bool erase(std::uint32_t addr, unsigned len) { return prefixes_.erase({len, addr}) > 0; }
  std::uint32_t lookup(std::uint32_t addr) const {
    int best_len = -1;
    std::uint32_t best = SLUICE_DIR24_8_NO_MATCH;
    for (const auto& [prefix, value] : prefixes_)
      if ((addr & mask_of(prefix.first)) == prefix.second && static_cast<int>(prefix.first) > best_len) {
        best_len = static_cast<int>(prefix.first);
        best = value;
      }
    return best;
  }
  const std::map<std::pair<unsigned, std::uint32_t>, std::uint32_t>& prefixes() const { return prefixes_; }

 private:
  std::map<std::pair<unsigned, std::uint32_t>, std::uint32_t> prefixes_;  // (len, addr) -> value
};

// A read-only mapping of a map, to compare whole tables before and after a failed change.
class TableView {
 public:
  TableView(int fd, std::size_t entries) : length_(entries * sizeof(std::uint32_t)) {
    address_ = ::mmap(nullptr, length_, PROT_READ, MAP_SHARED, fd, 0);
    EXPECT_NE(address_, MAP_FAILED) << std::strerror(errno);
  }
  ~TableView() {
    if (address_ != MAP_FAILED) ::munmap(address_, length_);
  }
  std::vector<std::uint8_t> snapshot() const {
    const auto* bytes = static_cast<const std::uint8_t*>(address_);
    return {bytes, bytes + length_};
  }

 private:
  void* address_ = MAP_FAILED;
  std::size_t length_;
};

struct SkeletonDeleter {
  void operator()(dir24_8_test_bpf* skeleton) const { dir24_8_test_bpf__destroy(skeleton); }
};

class Dir24_8Test : public ::testing::Test {
 protected:
  // Loads the test program with a tbl8 of `groups` groups and wraps its maps.
  void load(std::uint32_t groups) {
    skeleton_.reset(dir24_8_test_bpf__open());
    ASSERT_TRUE(skeleton_) << "open dir24_8_test: " << std::strerror(errno);
    ASSERT_EQ(bpf_map__set_max_entries(skeleton_->maps.blocklist_tbl8, groups), 0);
    ASSERT_EQ(dir24_8_test_bpf__load(skeleton_.get()), 0) << "load dir24_8_test: " << std::strerror(errno);
    auto table = Dir24_8::from_skeleton(skeleton_->maps.blocklist_tbl24, skeleton_->maps.blocklist_tbl8);
    ASSERT_TRUE(table) << table.error().message;
    table_.emplace(std::move(*table));
    frame_ = PacketBuilder()
                 .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                 .ipv4("198.18.0.1", "198.18.1.1")
                 .udp(40000, 53)
                 .payload("dir24_8")
                 .build();
  }

  struct BpfAnswer {
    int verdict;
    std::uint32_t value;
  };
  // The packet's source is addr; what the BPF program returned and recorded.
  BpfAnswer run_bpf(std::uint32_t addr) {
    const std::uint32_t addr_be = htonl(addr);
    std::memcpy(frame_.data() + kSrcOffset, &addr_be, sizeof(addr_be));
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame_.data(),
                .data_size_in = static_cast<std::uint32_t>(frame_.size()), .repeat = 1);
    const int err = bpf_prog_test_run_opts(bpf_program__fd(skeleton_->progs.dir24_8_src), &opts);
    EXPECT_EQ(err, 0) << "BPF_PROG_TEST_RUN: " << std::strerror(-err);
    std::uint32_t slot = 0, value = ~0u;
    EXPECT_EQ(bpf_map__lookup_elem(skeleton_->maps.last_value, &slot, sizeof(slot), &value, sizeof(value), 0), 0);
    return {static_cast<int>(opts.retval), value};
  }

  void expect_bpf(std::uint32_t addr, std::uint32_t expected) {
    const BpfAnswer answer = run_bpf(addr);
    EXPECT_EQ(answer.value, expected) << "BPF lookup of " << text_of(addr);
    EXPECT_EQ(answer.verdict, expected != SLUICE_DIR24_8_NO_MATCH ? XDP_DROP : XDP_PASS) << text_of(addr);
  }

  std::unique_ptr<dir24_8_test_bpf, SkeletonDeleter> skeleton_;
  std::optional<Dir24_8> table_;
  Bytes frame_;
};

TEST_F(Dir24_8Test, NestedPrefixesAndCollapse) {
  SLUICE_REQUIRE_PRIVILEGES();
  load(16);
  Dir24_8& t = *table_;
  const std::uint32_t outside = addr_of(11, 0, 0, 0);
  ASSERT_TRUE(t.insert(key_of(0, 0), 7));
  ASSERT_TRUE(t.insert(key_of(addr_of(10, 0, 0, 0), 8), 5));
  ASSERT_TRUE(t.insert(key_of(addr_of(10, 1, 2, 128), 25), 9));
  EXPECT_EQ(t.lookup(outside), 7u);
  EXPECT_EQ(t.lookup(addr_of(10, 1, 2, 127)), 5u);
  EXPECT_EQ(t.lookup(addr_of(10, 1, 2, 128)), 9u);
  EXPECT_EQ(t.lookup(addr_of(10, 1, 2, 255)), 9u);
  EXPECT_EQ(t.groups_used(), 1u);
  expect_bpf(addr_of(10, 1, 2, 200), 9);
  expect_bpf(addr_of(10, 1, 2, 1), 5);
  expect_bpf(outside, 7);

  // Erasing the /8 restores the /0 under it, also inside the group.
  ASSERT_TRUE(t.erase(key_of(addr_of(10, 0, 0, 0), 8)).value());
  EXPECT_EQ(t.lookup(addr_of(10, 1, 2, 127)), 7u);
  EXPECT_EQ(t.lookup(addr_of(10, 200, 0, 0)), 7u);
  expect_bpf(addr_of(10, 1, 2, 127), 7);

  // The sibling /25 with the same value makes the group uniform: it collapses.
  ASSERT_TRUE(t.insert(key_of(addr_of(10, 1, 2, 0), 25), 9));
  EXPECT_EQ(t.groups_used(), 0u);
  EXPECT_EQ(t.lookup(addr_of(10, 1, 2, 0)), 9u);
  expect_bpf(addr_of(10, 1, 2, 3), 9);

  // Changing a value in place; a /32 at each end of the address space.
  ASSERT_TRUE(t.insert(key_of(addr_of(10, 1, 2, 0), 25), 4));
  EXPECT_EQ(t.lookup(addr_of(10, 1, 2, 0)), 4u);
  EXPECT_EQ(t.groups_used(), 1u);
  ASSERT_TRUE(t.insert(key_of(0, 32), 1));
  ASSERT_TRUE(t.insert(key_of(0xffffffff, 32), SLUICE_DIR24_8_VALUE_MAX));
  expect_bpf(0, 1);
  expect_bpf(1, 7);
  expect_bpf(0xffffffff, SLUICE_DIR24_8_VALUE_MAX);
  expect_bpf(0xfffffffe, 7);

  // Erasing the /0 leaves no match outside the remaining prefixes.
  ASSERT_TRUE(t.erase(key_of(0, 0)).value());
  EXPECT_FALSE(t.erase(key_of(0, 0)).value());
  EXPECT_EQ(t.lookup(outside), 0u);
  expect_bpf(outside, SLUICE_DIR24_8_NO_MATCH);
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.find(key_of(addr_of(10, 1, 2, 0), 25)), std::optional<std::uint32_t>(4));
}

// Random prefixes clustered in a few regions so that they nest and share /24s.
class PrefixGenerator {
 public:
  explicit PrefixGenerator(std::uint64_t seed) : rng_(seed) {}
  std::pair<std::uint32_t, unsigned> next() {
    const unsigned len = next_length();
    return {next_address() & mask_of(len), len};
  }
  std::uint32_t next_address() {
    static constexpr std::uint32_t kRegions[] = {0x0a000000, 0x0a010200, 0xc0a80000, 0xffffff00, 0x00000000};
    const std::uint32_t region = kRegions[std::uniform_int_distribution<std::size_t>(0, std::size(kRegions) - 1)(rng_)];
    switch (std::uniform_int_distribution<int>(0, 3)(rng_)) {
      case 0:  return rng_();                                             // anywhere
      case 1:  return region ^ (rng_() & 0x0000ffff);                     // same /16
      default: return region ^ (rng_() & 0x000003ff);                     // a few /24s
    }
  }
  std::uint32_t next_value() {
    // Small values collide (and make groups collapse); large ones test the top of the range.
    return std::uniform_int_distribution<int>(0, 3)(rng_) == 0
               ? std::uniform_int_distribution<std::uint32_t>(1, SLUICE_DIR24_8_VALUE_MAX)(rng_)
               : std::uniform_int_distribution<std::uint32_t>(1, 4)(rng_);
  }
  std::mt19937_64& rng() { return rng_; }

 private:
  unsigned next_length() {
    const int bucket = std::uniform_int_distribution<int>(0, 99)(rng_);
    if (bucket < 2) return 0;
    if (bucket < 25) return std::uniform_int_distribution<unsigned>(1, 23)(rng_);
    if (bucket < 40) return 24;
    return std::uniform_int_distribution<unsigned>(25, 32)(rng_);
  }
  std::mt19937_64 rng_;
};

TEST_F(Dir24_8Test, DifferentialAgainstNaiveLpm) {
  SLUICE_REQUIRE_PRIVILEGES();
  constexpr std::uint32_t kGroups = 4096;
  constexpr int kOperations = 4000;
  constexpr int kCheckEvery = 250;
  constexpr int kRandomAddressesPerCheck = 1500;
  constexpr int kBpfAddressesPerCheck = 300;
  load(kGroups);
  Dir24_8& t = *table_;
  NaiveLpm reference;
  PrefixGenerator gen(20240611);
  std::size_t mismatches = 0, bpf_checked = 0, user_checked = 0;

  auto check = [&](int round) {
    std::vector<std::uint32_t> addresses;
    for (int i = 0; i < kRandomAddressesPerCheck; ++i) addresses.push_back(gen.next_address());
    // Boundaries of every prefix: first and last address, and one beyond each side.
    for (const auto& [prefix, value] : reference.prefixes()) {
      const std::uint32_t first = prefix.second, last = first | ~mask_of(prefix.first);
      addresses.insert(addresses.end(), {first, last, first - 1, last + 1});
    }
    for (const std::uint32_t addr : addresses) {
      ++user_checked;
      const std::uint32_t want = reference.lookup(addr), got = t.lookup(addr);
      if (got != want && ++mismatches <= 10)
        ADD_FAILURE() << "round " << round << ": lookup " << text_of(addr) << " = " << got << ", reference " << want;
    }
    std::shuffle(addresses.begin(), addresses.end(), gen.rng());
    for (std::size_t i = 0; i < addresses.size() && i < kBpfAddressesPerCheck; ++i) {
      ++bpf_checked;
      const std::uint32_t want = reference.lookup(addresses[i]);
      const BpfAnswer got = run_bpf(addresses[i]);
      if ((got.value != want || got.verdict != (want ? XDP_DROP : XDP_PASS)) && ++mismatches <= 10)
        ADD_FAILURE() << "round " << round << ": BPF " << text_of(addresses[i]) << " = " << got.value
                      << " verdict " << got.verdict << ", reference " << want;
    }
  };

  for (int op = 1; op <= kOperations; ++op) {
    const bool erase = !reference.prefixes().empty() && std::uniform_int_distribution<int>(0, 9)(gen.rng()) < 4;
    if (erase) {
      // Mostly a prefix that exists, sometimes one that does not.
      auto it = reference.prefixes().begin();
      std::advance(it, std::uniform_int_distribution<std::size_t>(0, reference.prefixes().size() - 1)(gen.rng()));
      auto [len, addr] = it->first;
      if (std::uniform_int_distribution<int>(0, 9)(gen.rng()) == 0) std::tie(addr, len) = gen.next();
      const bool expected = reference.erase(addr, len);
      auto erased = t.erase(key_of(addr, len));
      ASSERT_TRUE(erased) << erased.error().message;
      ASSERT_EQ(*erased, expected) << "erase " << text_of(addr) << "/" << len;
    } else {
      const auto [addr, len] = gen.next();
      const std::uint32_t value = gen.next_value();
      reference.set(addr, len, value);
      auto inserted = t.insert(key_of(addr, len), value);
      ASSERT_TRUE(inserted) << inserted.error().message;
    }
    ASSERT_EQ(t.size(), reference.prefixes().size());
    if (op % kCheckEvery == 0) check(op);
    ASSERT_LE(mismatches, 10u) << "too many mismatches";
  }
  // Bulk rebuild of the same set gives the same answers.
  std::vector<Dir24_8Entry> all;
  for (const auto& [prefix, value] : reference.prefixes()) all.push_back({key_of(prefix.second, prefix.first), value});
  ASSERT_TRUE(t.assign(all));
  check(kOperations + 1);
  // And erasing everything leaves an empty table with every group free.
  for (const auto& entry : all) ASSERT_TRUE(t.erase(entry.prefix).value());
  for (int i = 0; i < kRandomAddressesPerCheck; ++i) ASSERT_EQ(t.lookup(gen.next_address()), 0u);
  EXPECT_EQ(t.groups_used(), 0u);
  std::printf("differential: %d operations, %zu user-side and %zu BPF lookups compared\n", kOperations,
              user_checked, bpf_checked);
  EXPECT_EQ(mismatches, 0u);
}

TEST_F(Dir24_8Test, CapacityExhaustionChangesNothing) {
  SLUICE_REQUIRE_PRIVILEGES();
  constexpr std::uint32_t kGroups = 4;
  load(kGroups);
  Dir24_8& t = *table_;
  ASSERT_TRUE(t.insert(key_of(addr_of(10, 0, 0, 0), 8), 3));
  for (std::uint32_t i = 0; i < kGroups; ++i) ASSERT_TRUE(t.insert(key_of(addr_of(10, 0, i, 1), 32), 10 + i));
  ASSERT_EQ(t.groups_used(), kGroups);

  TableView tbl24(t.tbl24().fd(), SLUICE_DIR24_8_TBL24_ENTRIES), tbl8(t.tbl8().fd(), kGroups * kGroupEntries);
  const auto before24 = tbl24.snapshot(), before8 = tbl8.snapshot();
  auto unchanged = [&](const char* after) {
    EXPECT_TRUE(tbl24.snapshot() == before24) << "tbl24 changed by a failed " << after;
    EXPECT_TRUE(tbl8.snapshot() == before8) << "tbl8 changed by a failed " << after;
    EXPECT_EQ(t.size(), kGroups + 1);
    EXPECT_EQ(t.groups_used(), kGroups);
    expect_bpf(addr_of(10, 0, 0, 1), 10);
    expect_bpf(addr_of(10, 0, 9, 1), 3);
  };

  auto full = t.insert(key_of(addr_of(10, 0, 9, 1), 32), 99);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().errnum, ENOSPC);
  EXPECT_NE(full.error().message.find("10.0.9.1/32"), std::string::npos) << full.error().message;
  EXPECT_NE(full.error().message.find("tbl8 groups"), std::string::npos) << full.error().message;
  EXPECT_FALSE(t.find(key_of(addr_of(10, 0, 9, 1), 32)));
  unchanged("insert");

  // Erasing a /24 can need a group too: the /25 under it (same value, so no
  // group yet) then differs from the /8 covering the other half.
  ASSERT_TRUE(t.insert(key_of(addr_of(10, 0, 9, 0), 24), 5));
  ASSERT_TRUE(t.insert(key_of(addr_of(10, 0, 9, 0), 25), 5));
  ASSERT_EQ(t.groups_used(), kGroups);
  auto erase_full = t.erase(key_of(addr_of(10, 0, 9, 0), 24));
  ASSERT_FALSE(erase_full);
  EXPECT_EQ(erase_full.error().errnum, ENOSPC) << erase_full.error().message;
  EXPECT_EQ(t.find(key_of(addr_of(10, 0, 9, 0), 24)), std::optional<std::uint32_t>(5));
  EXPECT_EQ(t.lookup(addr_of(10, 0, 9, 200)), 5u);
  ASSERT_TRUE(t.erase(key_of(addr_of(10, 0, 9, 0), 25)).value());
  ASSERT_TRUE(t.erase(key_of(addr_of(10, 0, 9, 0), 24)).value());

  // A bulk load that does not fit: refused before any write.
  std::vector<Dir24_8Entry> too_many;
  for (std::uint32_t i = 0; i <= kGroups; ++i) too_many.push_back({key_of(addr_of(172, 16, i, 7), 32), 1});
  auto bulk = t.assign(too_many);
  ASSERT_FALSE(bulk);
  EXPECT_EQ(bulk.error().errnum, ENOSPC) << bulk.error().message;
  unchanged("assign");

  // A change that needs no new group still works on a full table.
  ASSERT_TRUE(t.insert(key_of(addr_of(10, 0, 0, 2), 32), 77));
  EXPECT_EQ(t.lookup(addr_of(10, 0, 0, 2)), 77u);

  // Groups freed by erases are reused (after a grace period) by later inserts.
  for (std::uint32_t i = 0; i < kGroups; ++i) ASSERT_TRUE(t.erase(key_of(addr_of(10, 0, i, 1), 32)).value());
  ASSERT_TRUE(t.erase(key_of(addr_of(10, 0, 0, 2), 32)).value());
  EXPECT_EQ(t.groups_used(), 0u);
  for (std::uint32_t i = 0; i < kGroups; ++i) {
    auto again = t.insert(key_of(addr_of(10, 0, 100 + i, 1), 32), 20 + i);
    ASSERT_TRUE(again) << again.error().message;
  }
  for (std::uint32_t i = 0; i < kGroups; ++i) {
    expect_bpf(addr_of(10, 0, 100 + i, 1), 20 + i);
    expect_bpf(addr_of(10, 0, i, 1), 3);
  }
}

TEST_F(Dir24_8Test, BadInputIsRefusedWithTheReason) {
  SLUICE_REQUIRE_PRIVILEGES();
  load(4);
  Dir24_8& t = *table_;
  auto expect_einval = [](const auto& result, const std::string& mention) {
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().errnum, EINVAL);
    EXPECT_NE(result.error().message.find(mention), std::string::npos) << result.error().message;
  };
  expect_einval(t.insert(key_of(addr_of(10, 0, 0, 1), 8), 1), "10.0.0.1/8 has host bits set");
  expect_einval(t.insert(key_of(addr_of(10, 0, 0, 0), 33), 1), "prefixlen 33");
  expect_einval(t.insert(key_of(addr_of(10, 0, 0, 0), 8), 0), "value 0");
  expect_einval(t.insert(key_of(addr_of(10, 0, 0, 0), 8), SLUICE_DIR24_8_GROUP_FLAG), "value 2147483648");
  expect_einval(t.erase(key_of(addr_of(10, 0, 0, 1), 8)), "host bits");
  const std::vector<Dir24_8Entry> twice{{key_of(addr_of(10, 0, 0, 0), 8), 1}, {key_of(addr_of(10, 0, 0, 0), 8), 2}};
  expect_einval(t.assign(twice), "10.0.0.0/8 given twice");
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.lookup(addr_of(10, 0, 0, 0)), 0u);

  // Maps of the wrong shape are refused when opened, naming the field.
  auto wrong = maps::MapFd::create(BPF_MAP_TYPE_ARRAY, "not_tbl24", 4, sizeof(sluice_dir24_8_row), 16, BPF_F_MMAPABLE);
  ASSERT_TRUE(wrong) << wrong.error().message;
  auto tbl8 = maps::MapFd::from_skeleton(skeleton_->maps.blocklist_tbl8);
  ASSERT_TRUE(tbl8);
  auto opened = Dir24_8::from(std::move(*wrong), std::move(*tbl8));
  ASSERT_FALSE(opened);
  EXPECT_NE(opened.error().message.find("max_entries 16"), std::string::npos) << opened.error().message;
}

TEST_F(Dir24_8Test, ReopenedPinnedTablesKeepAnswering) {
  SLUICE_REQUIRE_BPFFS();
  load(64);
  Dir24_8& t = *table_;
  const std::vector<Dir24_8Entry> set{{key_of(addr_of(192, 0, 2, 0), 24), 1},
                                      {key_of(addr_of(192, 0, 2, 64), 26), 2},
                                      {key_of(addr_of(198, 51, 100, 7), 32), 3}};
  ASSERT_TRUE(t.assign(set));
  const std::string dir = "/sys/fs/bpf/sluice_dir24_8_test_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(t.tbl24().pin(dir + "/tbl24"));
  ASSERT_TRUE(t.tbl8().pin(dir + "/tbl8"));
  {
    // A restarted control plane: same tables, groups in use are not handed out again.
    auto reopened = Dir24_8::open_pinned(dir + "/tbl24", dir + "/tbl8");
    ASSERT_TRUE(reopened) << reopened.error().message;
    EXPECT_EQ(reopened->lookup(addr_of(192, 0, 2, 65)), 2u);
    EXPECT_EQ(reopened->groups_used(), 2u);
    ASSERT_TRUE(reopened->assign(set));
    ASSERT_TRUE(reopened->insert(key_of(addr_of(203, 0, 113, 9), 32), 4));
    EXPECT_EQ(reopened->groups_used(), 3u);
    EXPECT_EQ(reopened->lookup(addr_of(198, 51, 100, 7)), 3u);
  }
  expect_bpf(addr_of(203, 0, 113, 9), 4);
  expect_bpf(addr_of(192, 0, 2, 65), 2);
  expect_bpf(addr_of(192, 0, 2, 1), 1);
  ASSERT_TRUE(t.tbl24().unpin(dir + "/tbl24"));
  ASSERT_TRUE(t.tbl8().unpin(dir + "/tbl8"));
  std::filesystem::remove(dir);
}

// 1M prefixes like a large blocklist, each with a value.
std::vector<Dir24_8Entry> blocklist_like(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 values(seed);
  std::vector<Dir24_8Entry> entries;
  for (const sluice_lpm_v4_key& key : blocklist_like_ipv4(count, seed))
    entries.push_back({key, std::uniform_int_distribution<std::uint32_t>(1, 1000)(values)});
  return entries;
}

TEST_F(Dir24_8Test, MillionPrefixBulkLoad) {
  SLUICE_REQUIRE_PRIVILEGES();
  constexpr std::size_t kPrefixes = 1'000'000;
  constexpr int kSamples = 200'000;
  constexpr int kBpfSamples = 2'000;
  load(SLUICE_DIR24_8_TBL8_GROUPS_DEFAULT);
  Dir24_8& t = *table_;
  const auto entries = blocklist_like(kPrefixes, 7);

  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  };
  auto start = Clock::now();
  auto loaded = t.assign(entries);
  const double load_ms = ms_since(start);
  ASSERT_TRUE(loaded) << loaded.error().message;
  start = Clock::now();
  ASSERT_TRUE(t.assign(entries));
  const double reload_ms = ms_since(start);
  std::printf("bulk load: %zu prefixes in %.0f ms (same set again: %.0f ms), %u of %u tbl8 groups used\n",
              kPrefixes, load_ms, reload_ms, t.groups_used(), t.groups_capacity());
  EXPECT_LT(load_ms, 20'000) << "bulk load should take seconds";

  // Reference: per-length hash tables, longest first (the naive scan is too slow at 1M).
  std::array<std::unordered_map<std::uint32_t, std::uint32_t>, 33> by_length;
  for (const auto& e : entries) {
    const std::uint32_t addr = std::uint32_t{e.prefix.addr[0]} << 24 | std::uint32_t{e.prefix.addr[1]} << 16 |
                               std::uint32_t{e.prefix.addr[2]} << 8 | e.prefix.addr[3];
    by_length[e.prefix.prefixlen][addr] = e.value;
  }
  auto reference = [&](std::uint32_t addr) {
    for (int len = 32; len >= 0; --len) {
      const auto found = by_length[len].find(addr & mask_of(len));
      if (found != by_length[len].end()) return found->second;
    }
    return SLUICE_DIR24_8_NO_MATCH;
  };
  std::mt19937_64 rng(99);
  std::vector<std::uint32_t> addresses;
  for (int i = 0; i < kSamples; ++i) {
    // Half anywhere, half inside a loaded prefix (most random addresses match nothing).
    const auto& e = entries[rng() % entries.size()];
    const std::uint32_t base = std::uint32_t{e.prefix.addr[0]} << 24 | std::uint32_t{e.prefix.addr[1]} << 16 |
                               std::uint32_t{e.prefix.addr[2]} << 8 | e.prefix.addr[3];
    addresses.push_back(i % 2 ? static_cast<std::uint32_t>(rng())
                              : base | (static_cast<std::uint32_t>(rng()) & ~mask_of(e.prefix.prefixlen)));
  }
  std::size_t mismatches = 0, hits = 0;
  for (const std::uint32_t addr : addresses) {
    const std::uint32_t want = reference(addr);
    hits += want != 0;
    if (t.lookup(addr) != want && ++mismatches <= 10)
      ADD_FAILURE() << "lookup " << text_of(addr) << " = " << t.lookup(addr) << ", reference " << want;
  }
  for (int i = 0; i < kBpfSamples; ++i) expect_bpf(addresses[i], reference(addresses[i]));
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GT(hits, addresses.size() / 4) << "the sample should exercise matches";

  // Incremental changes at this scale stay cheap.
  start = Clock::now();
  ASSERT_TRUE(t.insert(key_of(addr_of(100, 64, 3, 3), 32), 5));
  ASSERT_TRUE(t.erase(key_of(addr_of(100, 64, 3, 3), 32)));
  std::printf("insert+erase of a /32 at 1M prefixes: %.3f ms\n", ms_since(start));
  EXPECT_EQ(t.lookup(addr_of(100, 64, 3, 3)), reference(addr_of(100, 64, 3, 3)));
}

}  // namespace
}  // namespace sluice::test
