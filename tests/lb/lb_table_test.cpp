// LbTable on a loaded data plane whose maps are pinned under a temporary
// bpffs directory. Every assertion reads the raw maps through their pins (fds
// of the test's own, not LbTable's): exact contents after each change,
// nothing changed by invalid input or a failed write, a new inner map per
// table swap (the old one frozen, never written again), and ids, slots and
// epochs kept across a reopen so a connection entry stays valid.
#include <gtest/gtest.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "dataplane.hpp"
#include "lb_table.hpp"
#include "maglev.hpp"
#include "maps.hpp"
#include "privileges.hpp"

namespace sluice::lb {
namespace {

using maps::ArrayMap;
using maps::HashMap;
using maps::MapFd;
using maps::PerCpuArrayMap;

constexpr std::uint32_t kSmallTable = 251;  // prime: fast tests, readable dumps

class PinDir {
 public:
  PinDir() : path_("/sys/fs/bpf/sluice-lbtable-test-" + std::to_string(getpid())) { std::filesystem::remove_all(path_); }
  ~PinDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Address addr(const char* text) { return parse_address(text).value(); }
VipKey key(const char* text) { return parse_vip_key(text).value(); }
Backend backend(const char* address, std::uint32_t weight = 1) {
  Backend b;
  b.address = addr(address);
  b.weight = weight;
  return b;
}
Vip vip(const char* text, std::initializer_list<Backend> backends, std::uint32_t table_size = kSmallTable) {
  Vip v;
  v.key = key(text);
  v.table_size = table_size;
  v.backends = backends;
  return v;
}

sluice_lb_vip_key raw_key(const VipKey& k) {
  sluice_lb_vip_key out{};
  std::memcpy(out.addr, k.address.bytes.data(), k.address.family == 4 ? 4 : 16);
  out.port = k.port;
  out.proto = static_cast<std::uint8_t>(k.protocol);
  out.ip_version = static_cast<std::uint8_t>(k.address.family);
  return out;
}

// Everything the lb maps hold that LbTable writes, read through the pins.
struct Raw {
  std::map<std::vector<std::uint8_t>, sluice_lb_vip> vips;  // key bytes -> value
  std::map<std::uint32_t, std::uint32_t> inner_ids;          // vip_id -> inner map id
  std::map<std::uint32_t, std::vector<std::uint32_t>> tables;  // vip_id -> entries 0..N
  std::vector<sluice_lb_backend> backends;
  sluice_lb_settings settings{};

  bool operator==(const Raw& other) const {
    auto same_vips = vips.size() == other.vips.size() &&
                     std::equal(vips.begin(), vips.end(), other.vips.begin(), [](const auto& a, const auto& b) {
                       return a.first == b.first && std::memcmp(&a.second, &b.second, sizeof(a.second)) == 0;
                     });
    return same_vips && inner_ids == other.inner_ids && tables == other.tables &&
           backends.size() == other.backends.size() &&
           std::memcmp(backends.data(), other.backends.data(), backends.size() * sizeof(sluice_lb_backend)) == 0 &&
           std::memcmp(&settings, &other.settings, sizeof(settings)) == 0;
  }
};

std::vector<std::uint32_t> read_inner(std::uint32_t inner_id) {
  const int fd = bpf_map_get_fd_by_id(inner_id);
  EXPECT_GE(fd, 0) << "inner map " << inner_id;
  auto map = MapFd::adopt(fd, "inner").value();
  auto array = ArrayMap<std::uint32_t>::from(std::move(map)).value();
  std::vector<std::uint32_t> out(array.map().max_entries());
  auto all = array.lookup_batch().value();
  EXPECT_EQ(all.size(), out.size());
  for (const auto& [i, value] : all) out.at(i) = value;
  return out;
}

class LbTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_BPFFS();
    load();
  }

  void load() {
    table_.reset();
    plane_.reset();
    auto plane = dataplane::Dataplane::load({.pin_dir = pins_.path()});
    ASSERT_TRUE(plane) << plane.error().message;
    plane_.emplace(std::move(*plane));
    auto table = LbTable::open(*plane_);
    ASSERT_TRUE(table) << table.error().message;
    table_.emplace(std::move(*table));
  }

  std::string pin(const char* name) const { return pins_.path() + "/" + name; }

  Raw raw() const {
    Raw out;
    auto vips = HashMap<sluice_lb_vip_key, sluice_lb_vip>::open_pinned(pin("lb_vips")).value();
    for (const auto& [k, v] : vips.entries().value()) {
      const auto* bytes = reinterpret_cast<const std::uint8_t*>(&k);
      out.vips[std::vector<std::uint8_t>(bytes, bytes + sizeof(k))] = v;
    }
    auto outer = MapFd::open_pinned(pin("lb_maglev")).value();
    for (std::uint32_t id = 0; id < SLUICE_LB_MAX_VIPS; ++id) {
      std::uint32_t inner = 0;
      if (bpf_map_lookup_elem(outer.fd(), &id, &inner) == 0) {
        out.inner_ids[id] = inner;
        out.tables[id] = read_inner(inner);
      }
    }
    auto backends = ArrayMap<sluice_lb_backend>::open_pinned(pin("lb_backends")).value();
    out.backends.resize(SLUICE_LB_MAX_BACKENDS);
    for (const auto& [slot, value] : backends.lookup_batch().value()) out.backends.at(slot) = value;
    auto settings = ArrayMap<sluice_lb_settings>::open_pinned(pin("lb_settings")).value();
    out.settings = settings.lookup(0).value().value();
    return out;
  }

  sluice_lb_vip vip_entry(const VipKey& k) const {
    auto vips = HashMap<sluice_lb_vip_key, sluice_lb_vip>::open_pinned(pin("lb_vips")).value();
    auto found = vips.lookup(raw_key(k)).value();
    EXPECT_TRUE(found) << to_string(k) << " not in lb_vips";
    return found.value_or(sluice_lb_vip{});
  }

  // The table LbTable must have written: Maglev over the UP backends, as slot ids.
  static std::vector<std::uint32_t> expected_table(const std::vector<std::pair<Backend, std::uint32_t>>& members,
                                                   std::uint32_t table_size) {
    std::vector<MaglevBackend> input;
    for (const auto& [b, slot] : members) input.push_back({b.address, b.weight});
    auto built = build_maglev(input, table_size).value();
    std::vector<std::uint32_t> out{table_size};
    for (std::uint32_t index : built) out.push_back(members[index].second);
    if (members.empty()) out.resize(1 + table_size, SLUICE_LB_NO_BACKEND);
    return out;
  }

  PinDir pins_;
  std::optional<dataplane::Dataplane> plane_;
  std::optional<LbTable> table_;
};

TEST_F(LbTableTest, OpensEmptyAndWritesNothing) {
  EXPECT_FALSE(table_->has_vips());
  EXPECT_TRUE(table_->config().vips.empty());
  const Raw before = raw();
  EXPECT_TRUE(before.vips.empty());
  EXPECT_TRUE(before.inner_ids.empty());
  EXPECT_EQ(before.settings.version, 0u) << "lb_settings untouched until the first change";
}

TEST_F(LbTableTest, AddVipWritesSlotsTableThenVipExactly) {
  LbSettings settings;
  settings.encap_source_v4 = addr("198.18.0.1");
  settings.next_hop_mac = parse_mac("02:00:00:00:00:fe").value();
  settings.mtu = 1500;
  settings.conn_timeout_s = 120;
  ASSERT_TRUE(table_->set_settings(settings));
  Vip web = vip("198.18.0.10:80/tcp", {backend("198.18.1.1", 1), backend("198.18.1.2", 2), backend("2001:db8::3", 3)});
  ASSERT_TRUE(table_->add_vip(web));
  EXPECT_TRUE(table_->has_vips());

  const Raw now = raw();
  ASSERT_EQ(now.vips.size(), 1u);
  const sluice_lb_vip entry = vip_entry(web.key);
  EXPECT_EQ(entry.vip_id, 0u);
  EXPECT_EQ(entry.flags, 0u);
  // Slots 1..3 in the VIP's backend order, epoch 1 (first owner), owner vip 0.
  for (std::uint32_t i = 0; i < 3; ++i) {
    const sluice_lb_backend& slot = now.backends[1 + i];
    SCOPED_TRACE(i);
    EXPECT_EQ(slot.state, SLUICE_LB_BACKEND_UP);
    EXPECT_EQ(slot.epoch, 1u);
    EXPECT_EQ(slot.vip_id, 0u);
    EXPECT_EQ(slot.ip_version, web.backends[i].address.family);
    EXPECT_EQ(std::memcmp(slot.addr, web.backends[i].address.bytes.data(), slot.ip_version == 4 ? 4 : 16), 0);
  }
  EXPECT_EQ(now.backends[0].state, SLUICE_LB_BACKEND_FREE) << "slot 0 is 'no backend'";
  EXPECT_EQ(now.backends[4].state, SLUICE_LB_BACKEND_FREE);
  // The table: size, then exactly Maglev's entries as slot ids.
  ASSERT_EQ(now.tables.size(), 1u) << "one inner array per VIP, none for absent VIPs";
  EXPECT_EQ(now.tables.at(0),
            expected_table({{web.backends[0], 1}, {web.backends[1], 2}, {web.backends[2], 3}}, kSmallTable));
  // Settings, as the contract lays them out.
  EXPECT_EQ(now.settings.version, SLUICE_LB_SETTINGS_VERSION);
  EXPECT_EQ(now.settings.encap_src_v4, htonl(0xc6120001));
  EXPECT_EQ(now.settings.mtu, 1500);
  EXPECT_EQ(now.settings.conn_timeout_s, 120u);
  EXPECT_EQ(now.settings.next_hop_mac[5], 0xfe);
  EXPECT_EQ(now.settings.egress, static_cast<std::uint32_t>(SLUICE_LB_EGRESS_TX));

  // status: table entries per backend match the table.
  auto status = table_->status();
  ASSERT_TRUE(status) << status.error().message;
  ASSERT_EQ(status->size(), 1u);
  std::uint32_t sum = 0;
  for (const BackendStatus& b : (*status)[0].backends) {
    const auto& t = now.tables.at(0);
    EXPECT_EQ(b.table_entries, static_cast<std::uint32_t>(std::count(t.begin() + 1, t.end(), b.backend_id)));
    sum += b.table_entries;
  }
  EXPECT_EQ(sum, kSmallTable);
}

TEST_F(LbTableTest, ReweightSwapsInAFreshFrozenTableAndLeavesTheOldWhole) {
  Vip web = vip("198.18.0.10:80/tcp", {backend("198.18.1.1"), backend("198.18.1.2")}, SLUICE_LB_MAGLEV_SIZE_DEFAULT);
  ASSERT_TRUE(table_->add_vip(web));
  const Raw before = raw();
  const std::uint32_t old_id = before.inner_ids.at(0);
  // Hold the old inner map open: it must stay exactly as it was when it was live.
  auto old_map = MapFd::adopt(bpf_map_get_fd_by_id(old_id), "old inner").value();

  ASSERT_TRUE(table_->set_weight(web.key, addr("198.18.1.2"), 3));
  const Raw after = raw();
  EXPECT_NE(after.inner_ids.at(0), old_id) << "a new inner map, swapped in with one update";
  EXPECT_EQ(read_inner(old_id), before.tables.at(0)) << "the old table was never written in place";
  web.backends[1].weight = 3;
  EXPECT_EQ(after.tables.at(0), expected_table({{web.backends[0], 1}, {web.backends[1], 2}}, SLUICE_LB_MAGLEV_SIZE_DEFAULT));
  const auto& t = after.tables.at(0);
  EXPECT_EQ(std::count(t.begin() + 1, t.end(), 2u), 49153) << "3/4 of 65,537 (largest remainder)";
  // Inner maps are frozen: no syscall can change a live table.
  std::uint32_t zero = 0, value = 1;
  auto live = MapFd::adopt(bpf_map_get_fd_by_id(after.inner_ids.at(0)), "live inner").value();
  EXPECT_NE(bpf_map_update_elem(live.fd(), &zero, &value, BPF_ANY), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(live.map_flags() & BPF_F_INNER_MAP, static_cast<std::uint32_t>(BPF_F_INNER_MAP));
  EXPECT_EQ(live.max_entries(), 1 + SLUICE_LB_MAGLEV_SIZE_DEFAULT);
  EXPECT_EQ(std::memcmp(after.backends.data(), before.backends.data(), after.backends.size() * sizeof(sluice_lb_backend)), 0)
      << "a reweight touches no slot";
}

// Inner arrays of different sizes (BPF_F_INNER_MAP): a VIP's table size is its own.
TEST_F(LbTableTest, TableSizeChangeSwapsInAnArrayOfTheNewSize) {
  Vip web = vip("198.18.0.10:80/tcp", {backend("198.18.1.1"), backend("198.18.1.2")});
  ASSERT_TRUE(table_->add_vip(web));
  ASSERT_TRUE(table_->add_vip(vip("198.18.0.11:80/tcp", {backend("198.18.1.1")}, 7)));
  LbConfig bigger = table_->config();
  bigger.vips[0].table_size = 1009;
  ASSERT_TRUE(table_->replace(bigger));
  const Raw now = raw();
  ASSERT_EQ(now.tables.at(0).size(), 1u + 1009);
  EXPECT_EQ(now.tables.at(0), expected_table({{web.backends[0], 1}, {web.backends[1], 2}}, 1009));
  ASSERT_EQ(now.tables.at(1).size(), 1u + 7);
  EXPECT_EQ(now.tables.at(1), (std::vector<std::uint32_t>{7, 3, 3, 3, 3, 3, 3, 3}));
}

TEST_F(LbTableTest, DrainAndHealthKeepSlotsButLeaveTheTable) {
  Vip web = vip("198.18.0.10:80/tcp", {backend("198.18.1.1"), backend("198.18.1.2"), backend("198.18.1.3")});
  web.check = HealthCheck{};
  ASSERT_TRUE(table_->add_vip(web));
  ASSERT_TRUE(table_->drain_backend(web.key, addr("198.18.1.2")));
  Raw now = raw();
  EXPECT_EQ(now.backends[2].state, SLUICE_LB_BACKEND_DRAINING) << "existing connections keep it";
  EXPECT_EQ(now.backends[2].epoch, 1u);
  EXPECT_EQ(now.tables.at(0), expected_table({{web.backends[0], 1}, {web.backends[2], 3}}, kSmallTable));

  ASSERT_TRUE(table_->set_health(web.key, addr("198.18.1.3"), Health::Down));
  now = raw();
  EXPECT_EQ(now.backends[3].state, SLUICE_LB_BACKEND_DOWN);
  EXPECT_EQ(now.tables.at(0), expected_table({{web.backends[0], 1}}, kSmallTable));
  auto status = table_->status().value();
  EXPECT_EQ(status[0].backends[2].health, Health::Down);
  EXPECT_EQ(status[0].backends[2].table_entries, 0u);
  EXPECT_EQ(status[0].backends[0].table_entries, kSmallTable);

  // All out: the table names no backend (the data plane drops, NO_BACKEND).
  ASSERT_TRUE(table_->set_health(web.key, addr("198.18.1.1"), Health::Down));
  EXPECT_EQ(raw().tables.at(0), expected_table({}, kSmallTable));

  ASSERT_TRUE(table_->set_health(web.key, addr("198.18.1.3"), Health::Up));
  ASSERT_TRUE(table_->set_health(web.key, addr("198.18.1.1"), Health::Up));
  now = raw();
  EXPECT_EQ(now.backends[3].state, SLUICE_LB_BACKEND_UP);
  EXPECT_EQ(now.backends[3].epoch, 1u) << "same owner: same epoch";
  EXPECT_EQ(now.tables.at(0), expected_table({{web.backends[0], 1}, {web.backends[2], 3}}, kSmallTable));
}

TEST_F(LbTableTest, RemovalFreesSlotsAndReuseBumpsTheEpoch) {
  ASSERT_TRUE(table_->add_vip(vip("198.18.0.10:80/tcp", {backend("198.18.1.1"), backend("198.18.1.2")})));
  ASSERT_TRUE(table_->add_vip(vip("198.18.0.11:80/tcp", {backend("198.18.1.1")})));
  Raw now = raw();
  EXPECT_EQ(now.tables.size(), 2u);
  EXPECT_EQ(vip_entry(key("198.18.0.11:80/tcp")).vip_id, 1u);
  EXPECT_EQ(now.backends[3].vip_id, 1u) << "one slot per (VIP, backend)";

  ASSERT_TRUE(table_->remove_backend(key("198.18.0.10:80/tcp"), addr("198.18.1.1")));
  now = raw();
  EXPECT_EQ(now.backends[1].state, SLUICE_LB_BACKEND_FREE);
  EXPECT_EQ(now.backends[1].epoch, 1u) << "kept while free";
  EXPECT_EQ(now.tables.at(0)[1], 2u);

  ASSERT_TRUE(table_->add_backend(key("198.18.0.11:80/tcp"), backend("198.18.1.9")));
  now = raw();
  EXPECT_EQ(now.backends[1].state, SLUICE_LB_BACKEND_UP);
  EXPECT_EQ(now.backends[1].epoch, 2u) << "a reused slot: connections naming the old owner pick again";
  EXPECT_EQ(now.backends[1].vip_id, 1u);

  ASSERT_TRUE(table_->remove_vip(key("198.18.0.10:80/tcp")));
  now = raw();
  EXPECT_EQ(now.vips.size(), 1u);
  EXPECT_FALSE(now.inner_ids.contains(0)) << "the removed VIP's table is gone";
  EXPECT_EQ(now.tables.size(), 1u);
  EXPECT_EQ(now.backends[2].state, SLUICE_LB_BACKEND_FREE);
  ASSERT_TRUE(table_->remove_vip(key("198.18.0.11:80/tcp")));
  EXPECT_FALSE(table_->has_vips());
  now = raw();
  EXPECT_TRUE(now.vips.empty());
  EXPECT_TRUE(now.inner_ids.empty());
  for (std::uint32_t slot = 0; slot < SLUICE_LB_MAX_BACKENDS; ++slot) EXPECT_EQ(now.backends[slot].state, SLUICE_LB_BACKEND_FREE);
}

TEST_F(LbTableTest, InvalidInputChangesNothing) {
  Vip web = vip("198.18.0.10:80/tcp", {backend("198.18.1.1"), backend("198.18.1.2")});
  ASSERT_TRUE(table_->add_vip(web));
  ASSERT_TRUE(table_->add_vip(vip("[2001:db8::10]:443/tcp", {backend("2001:db8::1")})));
  const Raw before = raw();
  const LbConfig config_before = table_->config();

  struct Case {
    const char* what;
    Result<void> result;
    const char* needle;
  };
  Vip not_prime = vip("198.18.0.12:80/tcp", {backend("198.18.1.1")}, 65536);
  Vip l2 = vip("198.18.0.13:80/tcp", {backend("198.18.1.1")});
  l2.l2_dsr = true;
  LbConfig too_many = table_->config();
  too_many.vips.push_back(vip("198.18.0.14:80/tcp", {backend("198.18.1.1"), backend("198.18.1.1")}));
  LbSettings bad_settings;
  bad_settings.mtu = 10;
  const Case cases[] = {
      {"weight 0", table_->set_weight(web.key, addr("198.18.1.1"), 0), "weight 0"},
      {"weight over max", table_->set_weight(web.key, addr("198.18.1.1"), SLUICE_LB_WEIGHT_MAX + 1), "weight 1001"},
      {"duplicate backend", table_->add_backend(web.key, backend("198.18.1.2")), "duplicate backend"},
      {"missing VIP", table_->add_backend(key("198.18.0.99:80/tcp"), backend("198.18.1.2")), "198.18.0.99:80/tcp"},
      {"not prime", table_->add_vip(not_prime), "table_size 65536: not prime"},
      {"mixed family", table_->add_backend(key("[2001:db8::10]:443/tcp"), backend("198.18.1.5")), "IPv4 backend"},
      {"L2 without MAC", table_->add_vip(l2), "mac missing"},
      {"existing VIP", table_->add_vip(web), "exists"},
      {"remove missing VIP", table_->remove_vip(key("198.18.0.98:80/tcp")), "no such VIP"},
      {"remove missing backend", table_->remove_backend(web.key, addr("198.18.1.77")), "198.18.1.77"},
      {"drain missing backend", table_->drain_backend(web.key, addr("198.18.1.77")), "no such backend"},
      {"health without check", table_->set_health(web.key, addr("198.18.1.1"), Health::Down), "no health check"},
      {"replace with a bad VIP", table_->replace(too_many), "vips[2]"},
      {"bad settings", table_->set_settings(bad_settings), "mtu 10"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ASSERT_FALSE(c.result);
    EXPECT_NE(c.result.error().message.find(c.needle), std::string::npos) << c.result.error().message;
  }
  EXPECT_TRUE(raw() == before) << "an invalid change wrote to the maps";
  EXPECT_EQ(table_->config(), config_before);
}

// A map write that fails half way (lb_vips full of entries LbTable does not
// know, so the VIP entry — the last write of an add — fails): the backends
// and the table written before it are taken back.
TEST_F(LbTableTest, FailedWriteIsUndone) {
  ASSERT_TRUE(table_->add_vip(vip("198.18.0.10:80/tcp", {backend("198.18.1.1")})));
  auto vips = HashMap<sluice_lb_vip_key, sluice_lb_vip>::open_pinned(pin("lb_vips")).value();
  for (std::uint32_t i = 1; i < SLUICE_LB_MAX_VIPS; ++i) {
    VipKey filler = key("198.19.0.0:1/udp");
    filler.address.bytes[2] = static_cast<std::uint8_t>(i >> 8);
    filler.address.bytes[3] = static_cast<std::uint8_t>(i);
    ASSERT_TRUE(vips.update(raw_key(filler), sluice_lb_vip{.vip_id = 0, .flags = 0}));
  }
  const Raw before = raw();
  const LbConfig config_before = table_->config();
  auto added = table_->add_vip(vip("198.18.0.11:80/tcp", {backend("198.18.1.1"), backend("198.18.1.2")}));
  ASSERT_FALSE(added) << "lb_vips was full";
  EXPECT_NE(added.error().message.find("lb_vips"), std::string::npos) << added.error().message;
  EXPECT_NE(added.error().message.find("undone"), std::string::npos) << added.error().message;
  const Raw after = raw();
  EXPECT_TRUE(after == before) << "backends or table of the failed add were left behind";
  EXPECT_EQ(after.tables.size(), 1u);
  EXPECT_EQ(table_->config(), config_before);
  // And the table still works afterwards.
  for (const auto& k : vips.keys().value())
    if (k.addr[0] != raw_key(key("198.18.0.10:80/tcp")).addr[0]) {
      ASSERT_TRUE(vips.erase(k));
    }
  ASSERT_TRUE(table_->add_vip(vip("198.18.0.11:80/tcp", {backend("198.18.1.1"), backend("198.18.1.2")})));
  EXPECT_EQ(raw().backends[2].epoch, 1u) << "the undone slot was free again: its first owner";
}

// A restarted daemon: new Dataplane on the same pins, LbTable::open reads
// back ids and slots, replace(persisted config) keeps them, and a connection
// written before names the same backend, epoch and VIP after.
TEST_F(LbTableTest, ReopenKeepsIdsSlotsEpochsAndConnections) {
  LbConfig persisted;
  persisted.settings.encap_source_v4 = addr("198.18.0.1");
  persisted.vips.push_back(vip("198.18.0.10:80/tcp", {backend("198.18.1.1", 5), backend("198.18.1.2", 7)}));
  persisted.vips.push_back(vip("[2001:db8::10]:443/tcp", {backend("2001:db8::1"), backend("2001:db8::2")}));
  persisted.vips.push_back(vip("198.18.0.12/udp", {backend("198.18.1.3")}));
  persisted.vips[1].check = HealthCheck{};
  ASSERT_TRUE(table_->replace(persisted));
  // Churn so ids and slots are not simply 0.. and epochs not all 1.
  ASSERT_TRUE(table_->remove_backend(persisted.vips[0].key, addr("198.18.1.1")));
  ASSERT_TRUE(table_->add_backend(persisted.vips[0].key, backend("198.18.1.1", 5)));
  ASSERT_TRUE(table_->set_health(persisted.vips[1].key, addr("2001:db8::2"), Health::Down));
  persisted = table_->config();
  const Raw before = raw();
  const std::uint32_t slot = table_->status().value()[0].backends.back().backend_id;
  ASSERT_EQ(before.backends[slot].epoch, 2u);

  // A connection the data plane recorded.
  auto conns = HashMap<sluice_lb_flow_v4_key, sluice_lb_conn>::open_pinned(pin("lb_conns_v4")).value();
  sluice_lb_flow_v4_key flow{.src = htonl(0xc6130001), .dst = htonl(0xc612000a), .sport = 40000, .dport = 80, .proto = 6, .pad = {}};
  ASSERT_TRUE(conns.update(flow, sluice_lb_conn{.last_seen_ns = 1, .backend_id = slot, .backend_epoch = 2,
                                                .vip_id = vip_entry(persisted.vips[0].key).vip_id, .pad = 0}));

  load();  // the restart
  ASSERT_TRUE(plane_->reused_maps().size() > 0);
  // Read back: keys, l2 flags, table sizes, backends and their slots.
  const LbConfig& recovered = table_->config();
  ASSERT_EQ(recovered.vips.size(), 3u);
  for (const Vip& v : persisted.vips) {
    auto found = std::find_if(recovered.vips.begin(), recovered.vips.end(), [&](const Vip& r) { return r.key == v.key; });
    ASSERT_NE(found, recovered.vips.end()) << to_string(v.key);
    EXPECT_EQ(found->table_size, v.table_size);
    EXPECT_EQ(found->backends.size(), v.backends.size());
  }
  EXPECT_EQ(recovered.settings.encap_source_v4, addr("198.18.0.1"));
  EXPECT_TRUE(raw() == before) << "opening writes nothing";

  // The persisted config, in another order: same ids, same slots, same tables.
  LbConfig reordered = persisted;
  std::reverse(reordered.vips.begin(), reordered.vips.end());
  std::reverse(reordered.vips[0].backends.begin(), reordered.vips[0].backends.end());
  ASSERT_TRUE(table_->replace(reordered));
  const Raw after = raw();
  EXPECT_EQ(after.tables, before.tables) << "the same tables, so no new flow moves either";
  EXPECT_EQ(std::memcmp(after.backends.data(), before.backends.data(), after.backends.size() * sizeof(sluice_lb_backend)), 0)
      << "slots, states (DOWN kept), epochs, owners";
  EXPECT_EQ(after.vips.size(), before.vips.size());
  for (const auto& [k, v] : before.vips) EXPECT_EQ(after.vips.at(k).vip_id, v.vip_id);
  auto status = table_->status().value();
  auto v6 = std::find_if(status.begin(), status.end(), [&](const VipStatus& s) { return s.vip.key == persisted.vips[1].key; });
  ASSERT_NE(v6, status.end());
  EXPECT_EQ(v6->backends[1].health, Health::Down) << "health survives until the checker says otherwise";

  // The connection is still valid: its slot has the same owner, epoch and a live state.
  auto kept = conns.lookup(flow).value();
  ASSERT_TRUE(kept);
  const sluice_lb_backend& named = after.backends[kept->backend_id];
  EXPECT_EQ(named.epoch, kept->backend_epoch);
  EXPECT_EQ(named.vip_id, kept->vip_id);
  EXPECT_EQ(named.state, SLUICE_LB_BACKEND_UP);
  EXPECT_EQ(std::memcmp(named.addr, addr("198.18.1.1").bytes.data(), 4), 0);

  // A VIP added after the restart takes a fresh id.
  ASSERT_TRUE(table_->add_vip(vip("198.18.0.20:80/tcp", {backend("198.18.1.4")})));
  EXPECT_EQ(vip_entry(key("198.18.0.20:80/tcp")).vip_id, 3u);
}

// Left behind by a crash between steps: a taken slot whose VIP is gone, and a
// table without a VIP. The first change after a reopen frees them.
TEST_F(LbTableTest, CrashLeftoversAreFreedByTheNextChange) {
  ASSERT_TRUE(table_->add_vip(vip("198.18.0.10:80/tcp", {backend("198.18.1.1")})));
  auto backends = ArrayMap<sluice_lb_backend>::open_pinned(pin("lb_backends")).value();
  sluice_lb_backend stray{};
  stray.ip_version = 4;
  stray.state = SLUICE_LB_BACKEND_UP;
  stray.epoch = 7;
  stray.vip_id = 9;  // no such VIP
  ASSERT_TRUE(backends.update(100, stray));
  auto outer = MapFd::open_pinned(pin("lb_maglev")).value();
  auto stray_table = MapFd::create(BPF_MAP_TYPE_ARRAY, "stray", 4, 4, 1 + kSmallTable, BPF_F_INNER_MAP).value();
  const std::uint32_t stray_id = 9, fd = static_cast<std::uint32_t>(stray_table.fd());
  ASSERT_EQ(bpf_map_update_elem(outer.fd(), &stray_id, &fd, BPF_ANY), 0);
  std::uint32_t size_slot = 0, size = kSmallTable;
  ASSERT_EQ(bpf_map_update_elem(stray_table.fd(), &size_slot, &size, BPF_ANY), 0);

  // And a VIP whose table does not read back (size entry not prime): rebuilt, not trusted.
  Vip other = vip("198.18.0.11:80/tcp", {backend("198.18.1.2")});
  ASSERT_TRUE(table_->add_vip(other));
  auto corrupt = MapFd::create(BPF_MAP_TYPE_ARRAY, "corrupt", 4, 4, 1 + kSmallTable, BPF_F_INNER_MAP).value();
  std::uint32_t bad_size = kSmallTable - 1;
  ASSERT_EQ(bpf_map_update_elem(corrupt.fd(), &size_slot, &bad_size, BPF_ANY), 0);
  const std::uint32_t other_id = vip_entry(other.key).vip_id, corrupt_fd = static_cast<std::uint32_t>(corrupt.fd());
  ASSERT_EQ(bpf_map_update_elem(outer.fd(), &other_id, &corrupt_fd, BPF_ANY), 0);
  const LbConfig persisted = table_->config();

  load();
  ASSERT_TRUE(table_->replace(persisted));
  const Raw now = raw();
  EXPECT_EQ(now.backends[100].state, SLUICE_LB_BACKEND_FREE);
  EXPECT_EQ(now.backends[100].epoch, 7u);
  EXPECT_FALSE(now.inner_ids.contains(stray_id));
  EXPECT_EQ(now.tables.size(), 2u);
  EXPECT_EQ(now.tables.at(other_id), expected_table({{other.backends[0], 2}}, kSmallTable));
}

// Counters are summed over every possible CPU; conntrack fill counts entries.
TEST_F(LbTableTest, StatusSumsCountersOverPossibleCpus) {
  ASSERT_TRUE(table_->add_vip(vip("198.18.0.10:80/tcp", {backend("198.18.1.1"), backend("198.18.1.2")})));
  const int cpus = libbpf_num_possible_cpus();
  ASSERT_GT(cpus, 0);
  auto vip_counters = PerCpuArrayMap<sluice_lb_counter>::open_pinned(pin("lb_vip_counters")).value();
  auto backend_counters = PerCpuArrayMap<sluice_lb_counter>::open_pinned(pin("lb_backend_counters")).value();
  auto events = PerCpuArrayMap<std::uint64_t>::open_pinned(pin("lb_event_counters")).value();
  std::vector<sluice_lb_counter> per_cpu(cpus);
  std::vector<std::uint64_t> event_per_cpu(cpus);
  for (int cpu = 0; cpu < cpus; ++cpu) {
    per_cpu[cpu] = {.packets = 1u + cpu, .bytes = 100u, .new_conns = 1, .pad = 0};
    event_per_cpu[cpu] = 2;
  }
  ASSERT_TRUE(vip_counters.update(0, per_cpu));
  ASSERT_TRUE(backend_counters.update(2, per_cpu));
  ASSERT_TRUE(events.update(SLUICE_LB_EVENT_RESELECTED, event_per_cpu));
  auto status = table_->status();
  ASSERT_TRUE(status) << status.error().message;
  const std::uint64_t packets = static_cast<std::uint64_t>(cpus) * (cpus + 1) / 2;
  EXPECT_EQ((*status)[0].total.packets, packets);
  EXPECT_EQ((*status)[0].total.bytes, 100u * cpus);
  EXPECT_EQ((*status)[0].total.new_conns, static_cast<std::uint64_t>(cpus));
  EXPECT_EQ((*status)[0].backends[1].total.packets, packets);
  EXPECT_EQ((*status)[0].backends[0].total.packets, 0u);
  auto counted = table_->events().value();
  EXPECT_EQ(counted[SLUICE_LB_EVENT_RESELECTED], 2u * cpus);
  EXPECT_EQ(counted[SLUICE_LB_EVENT_CONN_INSERT_FAILED], 0u);

  auto conns = HashMap<sluice_lb_flow_v4_key, sluice_lb_conn>::open_pinned(pin("lb_conns_v4")).value();
  for (std::uint16_t port = 1; port <= 5; ++port)
    ASSERT_TRUE(conns.update(sluice_lb_flow_v4_key{.src = 1, .dst = 2, .sport = port, .dport = 80, .proto = 6, .pad = {}},
                             sluice_lb_conn{}));
  auto fill = table_->conn_fill();
  ASSERT_TRUE(fill) << fill.error().message;
  EXPECT_EQ(fill->v4, 5u);
  EXPECT_EQ(fill->v6, 0u);
  EXPECT_EQ(fill->v4_capacity, SLUICE_LB_CONN_ENTRIES_DEFAULT);

  // A new VIP on a reused id, a new owner of a reused slot: counters start at zero.
  ASSERT_TRUE(table_->remove_vip(key("198.18.0.10:80/tcp")));
  ASSERT_TRUE(table_->add_vip(vip("198.18.0.11:80/tcp", {backend("198.18.1.1"), backend("198.18.1.2")})));
  status = table_->status();
  ASSERT_TRUE(status);
  EXPECT_EQ((*status)[0].total.packets, 0u);
  EXPECT_EQ((*status)[0].backends[1].total.packets, 0u);
}

}  // namespace
}  // namespace sluice::lb
