// Randomized differential of the route lookup: random route sets written by
// RouteTable, looked up by the data plane's own lookup code
// (xdp/forward_lookup.h, through route_lookup_probe: 512 IPv4 or 128 IPv6
// destinations per BPF_PROG_TEST_RUN), against a reference that cannot be
// wrong in an interesting way: one hash map per prefix length, longest
// first. IPv4 with the trie alone and with the DIR-24-8 copy, before and
// after churn; over 1,000,000 lookups in all.
#include <arpa/inet.h>

#include <gtest/gtest.h>

#include <array>
#include <random>
#include <unordered_map>
#include <vector>

#include "route_fixture.hpp"

namespace sluice::test {
namespace {

using route::RouteTarget;

constexpr int kHops = 256;
constexpr std::uint32_t kNoRoute = 0;

// What a route value says, without its counter slot (kind and target).
std::uint32_t destination_of(std::uint32_t value) { return value >> SLUICE_FWD_TARGET_SHIFT; }

std::uint32_t mask4(unsigned len) { return len == 0 ? 0 : ~0u << (32 - len); }

class ReferenceV4 {
 public:
  void set(std::uint32_t addr, unsigned len, std::uint32_t dest) { by_len_[len][addr & mask4(len)] = dest; }
  void erase(std::uint32_t addr, unsigned len) { by_len_[len].erase(addr & mask4(len)); }
  std::uint32_t lookup(std::uint32_t addr) const {
    for (int len = 32; len >= 0; --len) {
      auto it = by_len_[len].find(addr & mask4(len));
      if (it != by_len_[len].end()) return it->second;
    }
    return kNoRoute;
  }

 private:
  std::array<std::unordered_map<std::uint32_t, std::uint32_t>, 33> by_len_;
};

using Addr6 = std::array<std::uint32_t, 4>;  // network order words
Addr6 masked6(const Addr6& a, unsigned len) {
  Addr6 out{};
  for (unsigned w = 0; w < 4; ++w) {
    const unsigned bits = len > w * 32 ? std::min(32u, len - w * 32) : 0;
    out[w] = htonl(ntohl(a[w]) & mask4(bits));
  }
  return out;
}
struct Addr6Hash {
  std::size_t operator()(const Addr6& a) const {
    std::size_t h = 0;
    for (auto w : a) h = h * 0x9e3779b97f4a7c15ull + w;
    return h;
  }
};

class ReferenceV6 {
 public:
  void set(const Addr6& addr, unsigned len, std::uint32_t dest) { by_len_[len][masked6(addr, len)] = dest; }
  std::uint32_t lookup(const Addr6& addr) const {
    for (int len = 128; len >= 0; --len) {
      auto it = by_len_[len].find(masked6(addr, static_cast<unsigned>(len)));
      if (it != by_len_[len].end()) return it->second;
    }
    return kNoRoute;
  }

 private:
  std::array<std::unordered_map<Addr6, std::uint32_t, Addr6Hash>, 129> by_len_;
};

class RouteDiff : public RouteStageTest {
 protected:
  void add_hops() {
    for (int tag = 0; tag < kHops; ++tag) {
      auto added = table_->add_next_hop("hop" + std::to_string(tag), test_hop(static_cast<std::uint8_t>(tag)));
      ASSERT_TRUE(added) << added.error().message;
    }
    auto hops = table_->list_next_hops();
    ASSERT_TRUE(hops);
    for (const auto& hop : *hops) hop_ids_[hop.name] = hop.id;
  }
  std::uint32_t dest(int tag) {
    return SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_NEXTHOP, hop_ids_["hop" + std::to_string(tag)], 0) >>
           SLUICE_FWD_TARGET_SHIFT;
  }

  std::map<std::string, std::uint32_t> hop_ids_;
  std::mt19937 rng_{20261202};
};

struct Route4 {
  std::uint32_t addr;  // host order, masked
  unsigned len;
};

// Prefix lengths as a routing table has them: mostly /16../24, some short, some long.
unsigned random_len(std::mt19937& rng) {
  const unsigned roll = rng() % 100;
  if (roll < 3) return rng() % 8;
  if (roll < 25) return 8 + rng() % 8;
  if (roll < 75) return 16 + rng() % 9;
  return 25 + rng() % 8;
}

// Addresses concentrated in 198.18.0.0/15 so that prefixes overlap, some anywhere.
std::uint32_t random_addr(std::mt19937& rng) {
  return rng() % 4 == 0 ? static_cast<std::uint32_t>(rng()) : (0xc6120000u | (rng() & 0x1ffffu));
}

TEST_F(RouteDiff, Ipv4LookupMatchesTheReferenceWithTrieAndDir24_8) {
  LookupProbe probe(*plane_);
  std::size_t lookups = 0;
  for (bool dir : {false, true}) {
    for (int round = 0; round < 3; ++round) {
      open_table({.dir_threshold = dir ? 1u : 100000000u});
      add_hops();
      ReferenceV4 reference;
      std::vector<Route4> routes;
      std::map<std::pair<unsigned, std::uint32_t>, bool> present;
      auto add = [&](std::uint32_t addr, unsigned len) {
        addr &= mask4(len);
        if (present[{len, addr}]) return;
        present[{len, addr}] = true;
        const int tag = static_cast<int>(rng_() % kHops);
        sluice_lpm_v4_key key{.prefixlen = len, .addr = {}};
        const std::uint32_t net = htonl(addr);
        std::memcpy(key.addr, &net, 4);
        auto added = table_->add_route(key, RouteTarget::next_hop("hop" + std::to_string(tag)));
        ASSERT_TRUE(added) << added.error().message;
        reference.set(addr, len, dest(tag));
        routes.push_back({addr, len});
      };
      if (round == 1) add(0, 0);  // a default route in one round of each mode
      while (routes.size() < 2500) add(random_addr(rng_), random_len(rng_));
      ASSERT_EQ(table_->dir24_8_active(), dir) << table_->dir24_8_error();

      auto check = [&](const char* phase) {
        std::vector<std::uint32_t> queries;
        for (int i = 0; i < 60000; ++i) queries.push_back(random_addr(rng_));
        for (const auto& r : routes) {  // every prefix's edges and their neighbours
          const std::uint32_t last = r.addr | ~mask4(r.len);
          for (std::uint32_t a : {r.addr, r.addr - 1, last, last + 1}) queries.push_back(a);
        }
        std::vector<std::uint32_t> wire;
        for (auto q : queries) wire.push_back(htonl(q));
        const auto got = probe.lookup_v4(wire);
        ASSERT_EQ(got.size(), queries.size());
        for (std::size_t i = 0; i < queries.size(); ++i) {
          const std::uint32_t want = reference.lookup(queries[i]);
          ASSERT_EQ(destination_of(got[i]), want)
              << phase << (dir ? " dir24_8" : " trie") << " round " << round << ": address " << std::hex << queries[i];
        }
        lookups += queries.size();
      };
      check("fresh");
      // Churn: a third of the routes go, as many new ones come.
      std::shuffle(routes.begin(), routes.end(), rng_);
      const std::size_t drop = routes.size() / 3;
      for (std::size_t i = 0; i < drop; ++i) {
        sluice_lpm_v4_key key{.prefixlen = routes[i].len, .addr = {}};
        const std::uint32_t net = htonl(routes[i].addr);
        std::memcpy(key.addr, &net, 4);
        ASSERT_OK(table_->remove_route(key));
        reference.erase(routes[i].addr, routes[i].len);
        present[{routes[i].len, routes[i].addr}] = false;
      }
      routes.erase(routes.begin(), routes.begin() + static_cast<long>(drop));
      while (routes.size() < 2500) add(random_addr(rng_), random_len(rng_));
      check("after churn");
    }
  }
  EXPECT_GE(lookups, 700000u);
  std::printf("IPv4: %zu lookups agreed with the reference\n", lookups);
}

TEST_F(RouteDiff, Ipv6LookupMatchesTheReference) {
  LookupProbe probe(*plane_);
  std::size_t lookups = 0;
  auto random6 = [&]() {
    // 2001:db8::/32 with a few bits of variety in every word, so prefixes overlap at every length.
    Addr6 a{htonl(rng_() % 8 == 0 ? static_cast<std::uint32_t>(rng_()) : 0x20010db8u),
            htonl(rng_() & 0x000300ffu), htonl(rng_() & 0x0300000fu), htonl(rng_() & 0x000000ffu)};
    return a;
  };
  for (int round = 0; round < 3; ++round) {
    open_table();
    add_hops();
    ReferenceV6 reference;
    if (round == 1) {
      ASSERT_OK(table_->add_route(prefix("::/0"), RouteTarget::next_hop("hop7")));
      reference.set(Addr6{}, 0, dest(7));
    }
    std::vector<std::pair<Addr6, unsigned>> routes;
    for (int i = 0; i < 1500; ++i) {
      const unsigned len = rng_() % 3 == 0 ? 32 + rng_() % 33 : rng_() % 129;
      const Addr6 addr = masked6(random6(), len);
      const int tag = static_cast<int>(rng_() % kHops);
      sluice_lpm_v6_key key{.prefixlen = len, .addr = {}};
      std::memcpy(key.addr, addr.data(), 16);
      auto added = table_->replace_route(key, RouteTarget::next_hop("hop" + std::to_string(tag)));
      ASSERT_TRUE(added) << added.error().message;
      reference.set(addr, len, dest(tag));
      routes.push_back({addr, len});
    }
    std::vector<Addr6> queries;
    for (int i = 0; i < 100000; ++i) queries.push_back(random6());
    for (const auto& [addr, len] : routes) queries.push_back(addr);
    const auto got = probe.lookup_v6(queries);
    ASSERT_EQ(got.size(), queries.size());
    for (std::size_t i = 0; i < queries.size(); ++i)
      ASSERT_EQ(destination_of(got[i]), reference.lookup(queries[i])) << "round " << round << " query " << i;
    lookups += queries.size();
  }
  EXPECT_GE(lookups, 300000u);
  std::printf("IPv6: %zu lookups agreed with the reference\n", lookups);
}

}  // namespace
}  // namespace sluice::test
