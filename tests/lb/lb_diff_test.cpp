// Randomized differential test of the lb stage: random VIP sets, backends,
// Maglev tables (some forged), connection entries, settings and frames
// (malformed and truncated ones included) go through the data plane and the
// reference model (control/lb/lb_reference.hpp); both must agree on every
// packet: verdict, reason (its counter moved), output bytes; and at the end
// of each round on the counters, events and connection tables.
// SLUICE_LB_DIFF_SEED=<n> replays a run.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <limits>
#include <random>
#include <set>

#include "filter_model.hpp"
#include "lb_fixture.hpp"
#include "sluice.skel.h"

namespace sluice::test {
namespace {

namespace ref = lb::reference;

constexpr int kRounds = 10;
constexpr int kPacketsPerRound = 20'000;  // 200,000 per run
constexpr int kFlowsPerRound = 400;
constexpr int kMutateEvery = 2'500;
constexpr std::uint32_t kVipIds = 48;
constexpr std::uint32_t kBackendIds = 64;
constexpr std::uint16_t kPorts[] = {0, 53, 80, 443, 8080};
constexpr std::uint16_t kMtus[] = {0, 0, 576, 1280, 1500, 9000};
const char* const kMartians4[] = {"0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "169.254.1.1"};
const char* const kMartians6[] = {"::", "::1", "ff02::1", "fe80::1"};

std::uint64_t seed() {
  if (const char* s = std::getenv("SLUICE_LB_DIFF_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

struct Flow {
  bool v6 = false;
  int src = 0;  // host number in the client pool
  int martian = -1;  // >= 0: the source is kMartians*[martian] instead (no too-big answer may go there)
  int dst = 0;  // address number in the VIP pool (some never VIPs)
  std::uint16_t sport = 0, dport = 0;
  std::uint8_t proto = IPPROTO_TCP;
};

std::string v4_addr(const char* prefix, int n) { return std::string(prefix) + std::to_string(n); }

class LbDiff : public LbStageTest {
 protected:
  std::mt19937_64 rng;
  ref::MapState state;
  ref::Counters counters;
  std::map<std::uint32_t, std::uint64_t> expected_slots;  // verdict counter index -> packets
  std::vector<std::uint32_t> vip_ids;

  std::uint32_t pick(std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }

  std::string dst_text(bool v6, int n) const {
    return v6 ? "2001:db8::" + std::to_string(n + 1) : v4_addr("198.18.0.", n + 1);
  }

  std::vector<std::uint32_t> random_table(std::uint32_t vip_id) {
    std::vector<std::uint32_t> mine;
    for (std::uint32_t id = 1; id < kBackendIds; ++id)
      if (state.backends[id].vip_id == vip_id && state.backends[id].ip_version) mine.push_back(id);
    static constexpr std::uint32_t sizes[] = {1, 2, 3, 5, 7, 11, 13};
    const std::uint32_t n = sizes[pick(std::size(sizes))];
    std::vector<std::uint32_t> t(1 + n);
    t[0] = n;
    for (std::uint32_t i = 1; i <= n; ++i) {
      if (chance(0.04)) t[i] = SLUICE_LB_NO_BACKEND;
      else if (chance(0.01)) t[i] = SLUICE_LB_MAX_BACKENDS + pick(3);  // forged id
      else if (!mine.empty() && chance(0.9)) t[i] = mine[pick(static_cast<std::uint32_t>(mine.size()))];
      else t[i] = 1 + pick(kBackendIds - 1);
    }
    if (chance(0.02)) t[0] = 0;
    else if (chance(0.02)) t[0] = n + 1 + pick(5);  // past the array
    else if (chance(0.01)) t[0] = SLUICE_LB_MAGLEV_SIZE_MAX + 1;
    return t;
  }

  sluice_lb_backend random_backend(std::uint32_t id) {
    sluice_lb_backend be{};
    const bool v6 = chance(0.4);
    put_addr(be.addr, v6 ? "2001:db8:1::" + std::to_string(id) : v4_addr("198.18.1.", static_cast<int>(id)));
    be.ip_version = v6 ? 6 : 4;
    const double s = std::uniform_real_distribution<double>(0, 1)(rng);
    be.state = s < 0.7 ? SLUICE_LB_BACKEND_UP : s < 0.8 ? SLUICE_LB_BACKEND_DRAINING : s < 0.9 ? SLUICE_LB_BACKEND_DOWN
                                                                                        : SLUICE_LB_BACKEND_FREE;
    const std::uint8_t mac[6] = {0x02, 0, 0, 0, 0x0b, static_cast<std::uint8_t>(id)};
    if (!chance(0.05)) std::memcpy(be.mac, mac, 6);  // some without a MAC
    be.epoch = 1 + pick(3);
    be.vip_id = vip_ids.empty() || chance(0.05) ? pick(kVipIds) : vip_ids[pick(static_cast<std::uint32_t>(vip_ids.size()))];
    return be;
  }

  sluice_lb_settings random_settings() {
    sluice_lb_settings s = lb_settings(chance(0.95) ? "198.18.0.250" : "", chance(0.95) ? "2001:db8::fa" : "");
    if (chance(0.03)) s.version = 0;
    s.flags = chance(0.5) ? SLUICE_LB_F_ENTROPY_SOURCE : 0;
    const double e = std::uniform_real_distribution<double>(0, 1)(rng);
    s.egress = e < 0.6 ? SLUICE_LB_EGRESS_TX : e < 0.8 ? SLUICE_LB_EGRESS_REDIRECT : e < 0.99 ? SLUICE_LB_EGRESS_FORWARD
                                                                                            : SLUICE_LB_EGRESS_COUNT;
    s.mtu = kMtus[pick(std::size(kMtus))];
    s.conn_timeout_s = chance(0.5) ? 300 : 0;
    // Too-big answers: never, or a bucket no round can drain (a draining
    // bucket depends on the clock and the CPU: lb_stage_test pins that down).
    if (chance(0.2)) {
      s.icmp_rate = 0;
    } else {
      s.icmp_rate = 1'000'000;
      s.icmp_burst = std::numeric_limits<std::uint16_t>::max();
    }
    if (chance(0.5)) {
      const std::uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0xaa};
      std::memcpy(s.src_mac, mac, 6);
    }
    return s;
  }

  void random_state() {
    state = ref::MapState{};
    counters = ref::Counters{};
    vip_ids.clear();
    state.settings = random_settings();
    state.egress_port_present = chance(0.7);
    const int vips = 1 + static_cast<int>(pick(16));
    std::set<std::uint32_t> used;
    for (int i = 0; i < vips; ++i) {
      const bool v6 = chance(0.4);
      auto key = vip_key(dst_text(v6, static_cast<int>(pick(6))), kPorts[pick(std::size(kPorts))],
                         chance(0.7) ? IPPROTO_TCP : IPPROTO_UDP);
      std::uint32_t id = pick(kVipIds);
      while (used.count(id)) id = (id + 1) % kVipIds;
      used.insert(id);
      if (chance(0.01)) id = SLUICE_LB_MAX_VIPS + pick(4);  // forged
      state.vips[key] = {id, chance(0.1) ? SLUICE_LB_VIP_F_L2_DSR : 0u};
      vip_ids.push_back(id);
    }
    for (std::uint32_t id = 1; id < kBackendIds; ++id)
      if (chance(0.7)) state.backends[id] = random_backend(id);
    for (std::uint32_t vip_id : vip_ids)
      if (vip_id < SLUICE_LB_MAX_VIPS && chance(0.9)) state.maglev[vip_id] = random_table(vip_id);
    maps().write(state);
  }

  Flow random_flow() {
    Flow f;
    f.v6 = chance(0.4);
    f.src = static_cast<int>(pick(200));
    if (chance(0.05)) f.martian = static_cast<int>(pick(f.v6 ? std::size(kMartians6) : std::size(kMartians4)));
    f.dst = static_cast<int>(pick(8));  // 0..5 may be VIPs, 6..7 never
    f.sport = static_cast<std::uint16_t>(1024 + pick(60000));
    f.dport = kPorts[1 + pick(std::size(kPorts) - 1)];
    if (chance(0.05)) f.dport = static_cast<std::uint16_t>(pick(65536));
    const double p = std::uniform_real_distribution<double>(0, 1)(rng);
    f.proto = static_cast<std::uint8_t>(p < 0.6    ? int{IPPROTO_TCP}
                                        : p < 0.95 ? int{IPPROTO_UDP}
                                        : f.v6     ? int{IPPROTO_ICMPV6}
                                                   : int{IPPROTO_ICMP});
    // most flows are for a VIP of the round: address, protocol and (unless port-less) port
    if (!state.vips.empty() && chance(0.7)) {
      auto vip = state.vips.begin();
      std::advance(vip, pick(static_cast<std::uint32_t>(state.vips.size())));
      const auto& key = vip->first;
      f.v6 = key.ip_version == 6;
      std::uint8_t last;
      std::memcpy(&last, reinterpret_cast<const std::uint8_t*>(key.addr) + (f.v6 ? 15 : 3), 1);
      f.dst = last - 1;
      f.proto = key.proto;
      if (key.port) f.dport = key.port;
    }
    return f;
  }

  Bytes frame_of(const Flow& f) {
    PacketBuilder b;
    b.eth("02:00:00:00:00:01", "02:00:00:00:00:02");
    const int tags = chance(0.8) ? 0 : chance(0.5) ? 1 : 2;
    for (int t = 0; t < tags; ++t)
      b.vlan(static_cast<std::uint16_t>(10 + t), static_cast<std::uint16_t>(t == 0 && tags == 2 ? ETH_P_8021AD : ETH_P_8021Q));
    const std::string dst = dst_text(f.v6, f.dst);
    if (f.v6) {
      b.ipv6(f.martian >= 0 ? std::string(kMartians6[f.martian % std::size(kMartians6)]) : "2001:db8:2::" + std::to_string(f.src + 1), dst,
             {.traffic_class = static_cast<std::uint8_t>(pick(256)), .flow_label = pick(1u << 20)});
      if (chance(0.03)) b.ipv6_hop_by_hop();
      if (chance(0.03)) b.ipv6_fragment(chance(0.5) ? 0 : 64, chance(0.5), 7);
    } else {
      Ipv4Opts ip{.tos = static_cast<std::uint8_t>(pick(256)), .dont_fragment = chance(0.5)};
      if (chance(0.03)) ip.more_fragments = true;
      if (chance(0.03)) ip.frag_offset_bytes = 64;
      if (chance(0.03)) ip.options = {1, 1, 1, 1};
      b.ipv4(f.martian >= 0 ? std::string(kMartians4[f.martian % std::size(kMartians4)]) : v4_addr("198.18.2.", f.src + 1), dst, ip);
    }
    static constexpr std::uint8_t flag_sets[] = {TcpFlags::SYN, TcpFlags::ACK, TcpFlags::SYN | TcpFlags::ACK,
                                                 TcpFlags::FIN | TcpFlags::ACK, TcpFlags::RST, TcpFlags::PSH | TcpFlags::ACK};
    if (f.proto == IPPROTO_TCP) b.tcp(f.sport, f.dport, {.flags = flag_sets[pick(std::size(flag_sets))]});
    else if (f.proto == IPPROTO_UDP) b.udp(f.sport, f.dport);
    else if (f.proto == IPPROTO_ICMP) b.icmp(8, 0, icmp_echo_rest(1, 1));
    else b.icmpv6(128, 0, icmp_echo_rest(1, 1));
    const std::size_t payload = chance(0.15) ? 1100 + pick(500) : pick(200);
    b.payload(Bytes(payload, static_cast<std::uint8_t>(pick(256))));
    if (chance(0.03)) b.pad_to(60 + pick(40));  // Ethernet padding after the datagram
    Bytes frame = b.build();
    // truncated (BPF_PROG_TEST_RUN takes no frame shorter than an Ethernet header)
    if (chance(0.05)) frame.resize(ETH_HLEN + pick(static_cast<std::uint32_t>(frame.size() - ETH_HLEN)));
    if (chance(0.05) && !frame.empty()) frame[pick(std::min<std::uint32_t>(70, static_cast<std::uint32_t>(frame.size())))] ^= static_cast<std::uint8_t>(1 + pick(255));
    if (chance(0.005)) frame = PacketBuilder().eth("02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", ETH_P_ARP).raw(Bytes(28, 0)).build();
    return frame;
  }

  void mutate() {
    const double m = std::uniform_real_distribution<double>(0, 1)(rng);
    if (m < 0.5 && !vip_ids.empty()) {
      const std::uint32_t vip_id = vip_ids[pick(static_cast<std::uint32_t>(vip_ids.size()))];
      if (vip_id >= SLUICE_LB_MAX_VIPS) return;
      state.maglev[vip_id] = random_table(vip_id);
      maps().set_maglev(vip_id, state.maglev[vip_id]);
    } else if (m < 0.85) {
      const std::uint32_t id = 1 + pick(kBackendIds - 1);
      auto be = state.backends[id];
      if (!be.ip_version) return;
      if (chance(0.5)) be.epoch += 1;  // the slot reused
      be.state = static_cast<std::uint8_t>(pick(SLUICE_LB_BACKEND_STATE_COUNT));
      state.backends[id] = be;
      maps().put_backend(id, be);
    } else {
      state.settings = random_settings();
      maps().set_settings(state.settings);
    }
  }

  // The verdict counter the model says moved, checked against the data plane's.
  void expect_counted(const ref::Outcome& want, std::uint64_t packet, const Bytes& frame) {
    const std::uint32_t slot = static_cast<std::uint32_t>(want.verdict) * SLUICE_REASON_MAX + want.reason;
    const std::uint64_t expected = ++expected_slots[slot];
    const std::uint64_t got = packets(want.verdict, want.reason);
    ASSERT_EQ(got, expected) << "packet " << packet << ": the model says verdict " << want.verdict << " reason "
                             << want.reason << ", whose counter did not move; frame of " << frame.size() << " bytes";
  }

  void compare_round_end(int round) {
    for (std::uint32_t vip_id = 0; vip_id < kVipIds; ++vip_id) {
      const auto got = maps().vip_counter(vip_id);
      const auto want = counters.vips[vip_id];
      EXPECT_EQ(got.packets, want.packets) << "round " << round << " vip " << vip_id;
      EXPECT_EQ(got.bytes, want.bytes) << "round " << round << " vip " << vip_id;
      EXPECT_EQ(got.new_conns, want.new_conns) << "round " << round << " vip " << vip_id;
    }
    for (std::uint32_t id = 0; id < kBackendIds; ++id) {
      const auto got = maps().backend_counter(id);
      const auto want = counters.backends[id];
      EXPECT_EQ(got.packets, want.packets) << "round " << round << " backend " << id;
      EXPECT_EQ(got.new_conns, want.new_conns) << "round " << round << " backend " << id;
    }
    for (std::uint32_t e = 0; e < SLUICE_LB_EVENT_SLOTS; ++e)
      EXPECT_EQ(maps().event(static_cast<sluice_lb_event_slot>(e)), counters.events[e]) << "round " << round << " event " << e;
    for (const auto& [key, conn] : state.conns_v4) {
      const auto got = maps().conn(key);
      ASSERT_TRUE(got) << "round " << round << ": an IPv4 connection the model holds is missing";
      EXPECT_EQ(got->backend_id, conn.backend_id);
      EXPECT_EQ(got->backend_epoch, conn.backend_epoch);
      EXPECT_EQ(got->vip_id, conn.vip_id);
    }
    for (const auto& [key, conn] : state.conns_v6) {
      const auto got = maps().conn(key);
      ASSERT_TRUE(got) << "round " << round << ": an IPv6 connection the model holds is missing";
      EXPECT_EQ(got->backend_id, conn.backend_id);
    }
    EXPECT_EQ(maps().conn_count_v4(), state.conns_v4.size());
  }
};

TEST_F(LbDiff, DataPlaneAndModelAgreeOnEveryPacket) {
  const std::uint64_t s = seed();
  rng.seed(s);
  SCOPED_TRACE("SLUICE_LB_DIFF_SEED=" + std::to_string(s));
  sluice_config config = dataplane::default_config();
  config.stages_enabled = SLUICE_STAGE_BIT(SLUICE_STAGE_LB) | SLUICE_STAGE_BIT(SLUICE_STAGE_FORWARD);
  std::uint64_t packet = 0, sent_to_backend = 0, too_big = 0, corrupt = 0;
  std::chrono::steady_clock::duration packets_time{};
  for (int round = 0; round < kRounds; ++round) {
    config.drop_fragments = chance(0.2) ? 1 : 0;
    config.malformed_verdict = chance(0.2) ? SLUICE_VERDICT_PASS : SLUICE_VERDICT_DROP;
    set_config(config);
    random_state();
    // verdict counters were zeroed by SetUp only; each round counts on from there
    std::vector<Flow> flows(kFlowsPerRound);
    for (auto& f : flows) f = random_flow();
    // some flows start with a connection entry, right or stale
    for (int i = 0; i < kFlowsPerRound / 4; ++i) {
      const Flow& f = flows[pick(kFlowsPerRound)];
      const auto parsed = filter::model::parse(frame_of(f));
      if (parsed.reason != filter::model::kParseOk || !parsed.pkt.has_l4) continue;
      sluice_lb_conn conn{chance(0.8) ? coarse_now_ns() : 0, 1 + pick(kBackendIds - 1), 1 + pick(3),
                          vip_ids[pick(static_cast<std::uint32_t>(vip_ids.size()))], 0};
      if (chance(0.02)) conn.backend_id = SLUICE_LB_MAX_BACKENDS + pick(10);
      const auto& p = parsed.pkt;
      if (p.ip_version == 4) {
        sluice_lb_flow_v4_key key{p.src[0], p.dst[0], p.sport, p.dport, p.ip_proto, {}};
        state.conns_v4[key] = conn;
        maps().put_conn(key, conn);
      } else {
        sluice_lb_flow_key key{};
        std::memcpy(key.src, p.src, 16);
        std::memcpy(key.dst, p.dst, 16);
        key.sport = p.sport;
        key.dport = p.dport;
        key.proto = p.ip_proto;
        key.ip_version = 6;
        state.conns_v6[key] = conn;
        maps().put_conn(key, conn);
      }
    }
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < kPacketsPerRound; ++i, ++packet) {
      if (i > 0 && i % kMutateEvery == 0) mutate();
      const Bytes frame = frame_of(flows[pick(kFlowsPerRound)]);
      const ref::Outcome want = ref::run(state, counters, frame, config, coarse_now_ns());
      const RunResult got = send(frame);
      ASSERT_EQ(got.verdict, want.verdict) << "packet " << packet << " (round " << round << "), reason the model gave "
                                           << want.reason << ", frame of " << frame.size() << " bytes";
      expect_counted(want, packet, frame);
      if (HasFatalFailure()) return;
      if (want.verdict != SLUICE_VERDICT_DROP) {
        ASSERT_EQ(got.output, want.output) << "packet " << packet << " (round " << round << "), reason " << want.reason;
      }
      sent_to_backend += want.backend_id != SLUICE_LB_NO_BACKEND && want.verdict != SLUICE_VERDICT_DROP;
      too_big += want.reason == SLUICE_REASON_LB_TOO_BIG;
      corrupt += want.reason == SLUICE_REASON_CORRUPT_STATE;
    }
    packets_time += std::chrono::steady_clock::now() - started;
    compare_round_end(round);
    if (HasFatalFailure()) return;
  }
  std::printf("packets %.2f s\n", std::chrono::duration<double>(packets_time).count());
  std::printf("%llu packets: %llu to a backend, %llu too big, %llu corrupt state\n",
              static_cast<unsigned long long>(packet), static_cast<unsigned long long>(sent_to_backend),
              static_cast<unsigned long long>(too_big), static_cast<unsigned long long>(corrupt));
  // the run exercised what it claims to
  EXPECT_GT(sent_to_backend, packet / 10);
  EXPECT_GT(too_big, 0u);
  EXPECT_GT(corrupt, 0u);
}

}  // namespace
}  // namespace sluice::test
