#include "lb_reference.hpp"

#include <linux/if_ether.h>
#include <netinet/in.h>

#include <algorithm>
#include <stdexcept>

#include "filter_model.hpp"
#include "sluice_flow_hash.h"

namespace sluice::lb::reference {
namespace {

constexpr std::size_t kIpv4HdrLen = 20;
constexpr std::size_t kIpv6HdrLen = 40;
constexpr std::size_t kIcmpHdrLen = 8;
constexpr std::size_t kVlanLen = 4;
constexpr std::uint8_t kOuterTtl = 64;
constexpr std::uint16_t kIpDf = 0x4000;
constexpr std::uint32_t kIpMaxLen = 0xffff;
// The answer's size limits: RFC 1812 4.3.2.3 (IPv4), RFC 4443 2.4(c) (IPv6).
constexpr std::size_t kIpv4QuoteMax = 576 - kIpv4HdrLen - kIcmpHdrLen;
constexpr std::size_t kIpv6QuoteMax = 1280 - kIpv6HdrLen - kIcmpHdrLen;
constexpr std::uint64_t kNsPerSec = 1'000'000'000;
constexpr std::uint64_t kLastSeenRefreshNs = kNsPerSec;
constexpr std::uint8_t kTcpSyn = 0x02, kTcpAck = 0x10;

using Bytes = std::vector<std::uint8_t>;

void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) {
  put16(p, static_cast<std::uint16_t>(v >> 16));
  put16(p + 2, static_cast<std::uint16_t>(v));
}
// An address word as sluice_pkt holds it (network order in memory) -> its big-endian value.
std::uint32_t be_word(std::uint32_t memory_word) {
  std::uint8_t b[4];
  std::memcpy(b, &memory_word, 4);
  return std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 | b[3];
}
std::uint64_t sum16(std::span<const std::uint8_t> data, std::uint64_t sum = 0) {
  for (std::size_t i = 0; i + 1 < data.size(); i += 2) sum += std::uint32_t{data[i]} << 8 | data[i + 1];
  if (data.size() % 2) sum += std::uint32_t{data.back()} << 8;
  return sum;
}

bool is_zero_mac(const std::uint8_t* mac) { return std::all_of(mac, mac + ETH_ALEN, [](std::uint8_t b) { return b == 0; }); }

struct Stage {
  MapState& state;
  Counters& counters;
  const sluice_config& config;
  std::uint64_t now;
  Outcome out;

  Outcome finish(sluice_verdict verdict, std::uint32_t reason) {
    out.verdict = verdict;
    out.reason = reason;
    return out;
  }
  // pipeline_next from `done`: only the forward stage (a pass-through) may follow.
  Outcome next(const sluice_pkt& pkt) { return finish(static_cast<sluice_verdict>(config.end_verdict), pkt.note); }

  void count(std::map<std::uint32_t, sluice_lb_counter>& table, std::uint32_t id, std::uint64_t bytes,
             std::uint64_t new_conn, std::uint64_t packet) {
    auto& c = table[id];
    c.packets += packet;
    c.bytes += packet ? bytes : 0;
    c.new_conns += new_conn;
  }

  const sluice_lb_backend* backend(std::uint32_t id) const {
    if (id == SLUICE_LB_NO_BACKEND || id >= SLUICE_LB_MAX_BACKENDS) return nullptr;
    return &state.backends[id];
  }

  enum class Pick { Ok, NoBackend, Corrupt };

  Pick maglev(std::uint32_t vip_id, std::uint32_t hash, std::uint32_t& id_out) {
    auto table = state.maglev.find(vip_id);
    if (table == state.maglev.end()) return Pick::NoBackend;
    const auto& entries = table->second;
    if (entries.empty()) return Pick::Corrupt;
    const std::uint32_t n = entries[SLUICE_LB_MAGLEV_SIZE_SLOT];
    if (n == 0 || n > SLUICE_LB_MAGLEV_SIZE_MAX) return Pick::Corrupt;
    const std::uint64_t slot = 1 + std::uint64_t{hash % n};
    if (slot >= entries.size()) return Pick::Corrupt;
    const std::uint32_t id = entries[slot];
    if (id >= SLUICE_LB_MAX_BACKENDS) return Pick::Corrupt;
    if (id == SLUICE_LB_NO_BACKEND) return Pick::NoBackend;
    const sluice_lb_backend& be = state.backends[id];
    if (be.state != SLUICE_LB_BACKEND_UP || be.vip_id != vip_id) return Pick::NoBackend;
    id_out = id;
    return Pick::Ok;
  }

  bool conn_holds(const sluice_lb_conn& conn, std::uint32_t vip_id, const sluice_pkt& pkt) const {
    const sluice_lb_backend* be = backend(conn.backend_id);
    if (!be) return false;
    if (be->state != SLUICE_LB_BACKEND_UP && be->state != SLUICE_LB_BACKEND_DRAINING &&
        be->state != SLUICE_LB_BACKEND_DOWN)
      return false;
    if (be->epoch != conn.backend_epoch || be->vip_id != conn.vip_id || conn.vip_id != vip_id) return false;
    const auto& s = state.settings;
    if (s.conn_timeout_s && now > conn.last_seen_ns && now - conn.last_seen_ns > std::uint64_t{s.conn_timeout_s} * kNsPerSec)
      return false;
    const bool syn = pkt.ip_proto == IPPROTO_TCP && (pkt.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn;
    if (syn && be->state != SLUICE_LB_BACKEND_UP) return false;
    // UDP has no end for a drain to wait for: a failed check moves the flow (an operator's drain does not).
    if (pkt.ip_proto == IPPROTO_UDP && be->state == SLUICE_LB_BACKEND_DOWN) return false;
    return true;
  }

  template <class Table, class Key>
  Pick select_in(Table& table, const Key& key, std::uint32_t vip_id, std::uint32_t hash, const sluice_pkt& pkt,
                 std::uint64_t bytes, std::uint32_t& id_out) {
    if (auto found = table.find(key); found != table.end()) {
      sluice_lb_conn& conn = found->second;
      if (conn_holds(conn, vip_id, pkt)) {
        if (now > conn.last_seen_ns + kLastSeenRefreshNs) conn.last_seen_ns = now;
        id_out = conn.backend_id;
        return Pick::Ok;
      }
      ++counters.events[SLUICE_LB_EVENT_RESELECTED];
    }
    const Pick picked = maglev(vip_id, hash, id_out);
    if (picked != Pick::Ok) return picked;
    sluice_lb_conn fresh{};
    fresh.last_seen_ns = now;
    fresh.backend_id = id_out;
    fresh.backend_epoch = state.backends[id_out].epoch;
    fresh.vip_id = vip_id;
    table[key] = fresh;
    count(counters.vips, vip_id, bytes, 1, 0);
    count(counters.backends, id_out, bytes, 1, 0);
    return Pick::Ok;
  }

  Pick select(const sluice_pkt& pkt, std::uint32_t vip_id, std::uint32_t hash, std::uint64_t bytes,
              std::uint32_t& id_out) {
    if (pkt.ip_version == 4) {
      sluice_lb_flow_v4_key key{};
      key.src = pkt.src[0];
      key.dst = pkt.dst[0];
      key.sport = pkt.sport;
      key.dport = pkt.dport;
      key.proto = pkt.ip_proto;
      return select_in(state.conns_v4, key, vip_id, hash, pkt, bytes, id_out);
    }
    sluice_lb_flow_key key{};
    std::memcpy(key.src, pkt.src, sizeof key.src);
    std::memcpy(key.dst, pkt.dst, sizeof key.dst);
    key.sport = pkt.sport;
    key.dport = pkt.dport;
    key.proto = pkt.ip_proto;
    key.ip_version = 6;
    return select_in(state.conns_v6, key, vip_id, hash, pkt, bytes, id_out);
  }

  // The L2 header of what the stage sends: next hop (or `dst`) and this port's MAC.
  void set_macs(Bytes& frame, const std::uint8_t* dst) const {
    std::uint8_t src[ETH_ALEN];
    if (!is_zero_mac(state.settings.src_mac)) std::memcpy(src, state.settings.src_mac, ETH_ALEN);
    else std::memcpy(src, frame.data(), ETH_ALEN);
    std::memcpy(frame.data(), dst, ETH_ALEN);
    std::memcpy(frame.data() + ETH_ALEN, src, ETH_ALEN);
  }

  // No ICMP error goes to a source nobody can be reached at (RFC 1812
  // 4.3.2.7, RFC 4443 2.4(e)): forged or lost, answering it aims the box.
  static bool martian_source(const sluice_pkt& pkt) {
    constexpr std::uint32_t kV4Multicast = 224, kV4Loopback = 127, kV4LinkLocal16 = 0xa9fe;
    if (pkt.ip_version == 4) {
      const std::uint32_t a = be_word(pkt.src[0]);
      const std::uint32_t first = a >> 24;
      return first == 0 || first == kV4Loopback || first >= kV4Multicast || (a >> 16) == kV4LinkLocal16;
    }
    const std::uint32_t first = be_word(pkt.src[0]);
    constexpr std::uint32_t kV6Multicast8 = 0xff, kV6LinkLocal10 = 0xfe80 >> 6;
    if ((first >> 24) == kV6Multicast8 || (first >> 22) == kV6LinkLocal10) return true;
    const bool upper_zero = pkt.src[0] == 0 && pkt.src[1] == 0 && pkt.src[2] == 0;
    return upper_zero && (be_word(pkt.src[3]) == 0 || be_word(pkt.src[3]) == 1);  // :: and ::1
  }

  // A token bucket of `icmp_burst` answers refilled at `icmp_rate` per
  // second (at most 10 s of refill counted), full before its first use.
  bool take_icmp_token() {
    constexpr std::uint64_t kMaxIdleNs = 10 * kNsPerSec;
    auto& b = state.icmp_bucket;
    const auto& s = state.settings;
    if (s.icmp_rate == 0) return false;
    const std::uint64_t cap = std::uint64_t{s.icmp_burst} * kNsPerSec;
    std::uint64_t tokens = cap;
    if (b.last_ns != 0) {
      const std::uint64_t idle = std::min<std::uint64_t>(now > b.last_ns ? now - b.last_ns : 0, kMaxIdleNs);
      tokens = std::min<std::uint64_t>(cap, b.tokens + idle * s.icmp_rate);
    }
    b.last_ns = now;
    if (tokens < kNsPerSec) {
      b.tokens = tokens;
      return false;
    }
    b.tokens = tokens - kNsPerSec;
    return true;
  }

  Bytes too_big(std::span<const std::uint8_t> frame, const sluice_pkt& pkt, std::size_t overhead) const {
    const std::size_t l2 = pkt.l3_off;
    const bool v4 = pkt.ip_version == 4;
    const std::size_t hdr = v4 ? kIpv4HdrLen : kIpv6HdrLen;
    const std::size_t quote = std::min<std::size_t>(pkt.l3_len, v4 ? kIpv4QuoteMax : kIpv6QuoteMax) & ~std::size_t{3};
    const std::uint32_t mtu = state.settings.mtu > overhead ? state.settings.mtu - overhead : 0;
    Bytes answer(l2 + hdr + kIcmpHdrLen + quote, 0);
    std::copy_n(frame.begin(), l2, answer.begin());
    std::copy_n(frame.begin(), ETH_ALEN, answer.begin() + ETH_ALEN);           // source: the MAC it was sent to
    std::copy_n(frame.begin() + ETH_ALEN, ETH_ALEN, answer.begin());           // back to the client
    std::copy_n(frame.begin() + l2, quote, answer.begin() + l2 + hdr + kIcmpHdrLen);
    std::uint8_t* ip = answer.data() + l2;
    std::uint8_t* icmp = ip + hdr;
    const std::size_t icmp_len = kIcmpHdrLen + quote;
    if (v4) {
      ip[0] = 0x45;
      put16(ip + 2, static_cast<std::uint16_t>(hdr + icmp_len));
      ip[8] = kOuterTtl;
      ip[9] = IPPROTO_ICMP;
      std::memcpy(ip + 12, &pkt.dst[0], 4);
      std::memcpy(ip + 16, &pkt.src[0], 4);
      put16(ip + 10, checksum({ip, hdr}));
      icmp[0] = 3;  // destination unreachable
      icmp[1] = 4;  // fragmentation needed
      put16(icmp + 6, static_cast<std::uint16_t>(mtu));
      put16(icmp + 2, checksum({icmp, icmp_len}));
    } else {
      ip[0] = 0x60;
      put16(ip + 4, static_cast<std::uint16_t>(icmp_len));
      ip[6] = IPPROTO_ICMPV6;
      ip[7] = kOuterTtl;
      std::memcpy(ip + 8, pkt.dst, 16);
      std::memcpy(ip + 24, pkt.src, 16);
      icmp[0] = 2;  // packet too big
      put32(icmp + 4, mtu);
      std::uint64_t pseudo = sum16({ip + 8, 32});
      pseudo += icmp_len;
      pseudo += IPPROTO_ICMPV6;
      put16(icmp + 2, checksum({icmp, icmp_len}, pseudo));
    }
    return answer;
  }

  Bytes encapsulate(std::span<const std::uint8_t> frame, const sluice_pkt& pkt, const sluice_lb_backend& be,
                    std::uint32_t hash) const {
    const auto& s = state.settings;
    const std::size_t l2 = pkt.l3_off;
    const bool outer_v4 = be.ip_version == 4;
    const std::size_t hdr = outer_v4 ? kIpv4HdrLen : kIpv6HdrLen;
    const std::uint8_t* inner = frame.data() + l2;
    const std::uint8_t tos =
        pkt.ip_version == 4 ? inner[1] : static_cast<std::uint8_t>((inner[0] << 4) | (inner[1] >> 4));
    Bytes out(frame.size() + hdr);
    std::copy_n(frame.begin(), l2, out.begin());
    std::copy(frame.begin() + l2, frame.end(), out.begin() + l2 + hdr);
    set_macs(out, s.next_hop_mac);
    put16(out.data() + l2 - 2, outer_v4 ? ETH_P_IP : ETH_P_IPV6);
    std::uint8_t* ip = out.data() + l2;
    if (outer_v4) {
      std::uint32_t src = be_word(s.encap_src_v4);
      if (s.flags & SLUICE_LB_F_ENTROPY_SOURCE) src = (src & 0xffff0000u) | (hash & 0xffffu);
      ip[0] = 0x45;
      ip[1] = tos;
      put16(ip + 2, static_cast<std::uint16_t>(pkt.l3_len + hdr));
      put16(ip + 6, kIpDf);
      ip[8] = kOuterTtl;
      ip[9] = IPPROTO_IPIP;
      put32(ip + 12, src);
      std::memcpy(ip + 16, &be.addr[0], 4);
      put16(ip + 10, checksum({ip, hdr}));
    } else {
      const std::uint32_t flow = hash & 0xfffffu;
      ip[0] = static_cast<std::uint8_t>(0x60 | (tos >> 4));
      ip[1] = static_cast<std::uint8_t>(((tos & 0xf) << 4) | (flow >> 16));
      ip[2] = static_cast<std::uint8_t>(flow >> 8);
      ip[3] = static_cast<std::uint8_t>(flow);
      put16(ip + 4, pkt.l3_len);
      ip[6] = pkt.ip_version == 4 ? IPPROTO_IPIP : IPPROTO_IPV6;
      ip[7] = kOuterTtl;
      std::memcpy(ip + 8, s.encap_src_v6, 16);
      if (s.flags & SLUICE_LB_F_ENTROPY_SOURCE) put32(ip + 8 + 12, hash);
      std::memcpy(ip + 24, be.addr, 16);
    }
    return out;
  }

  Outcome lb(std::span<const std::uint8_t> frame, sluice_pkt& pkt) {
    const auto& s = state.settings;
    out.output.assign(frame.begin(), frame.end());
    if (s.version != SLUICE_LB_SETTINGS_VERSION || (pkt.ip_proto != IPPROTO_TCP && pkt.ip_proto != IPPROTO_UDP))
      return next(pkt);
    sluice_lb_vip_key key{};
    std::memcpy(key.addr, pkt.dst, sizeof key.addr);
    key.port = pkt.dport;
    key.proto = pkt.ip_proto;
    key.ip_version = pkt.ip_version;
    auto vip = state.vips.find(key);
    if (vip == state.vips.end() && key.port != 0) {
      key.port = 0;
      vip = state.vips.find(key);
    }
    if (vip == state.vips.end()) return next(pkt);
    const std::uint32_t vip_id = vip->second.vip_id;
    const std::uint32_t flags = vip->second.flags;
    if (vip_id >= SLUICE_LB_MAX_VIPS) {
      ++counters.events[SLUICE_LB_EVENT_CORRUPT_TABLE];
      return finish(SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE);
    }
    if (s.egress >= SLUICE_LB_EGRESS_COUNT) return finish(SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE);
    const std::uint64_t bytes = frame.size();
    count(counters.vips, vip_id, bytes, 0, 1);
    if (pkt.frag != SLUICE_FRAG_NONE || !pkt.has_l4) return finish(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_FRAGMENT);

    const std::uint32_t hash = flow_hash(pkt);
    std::uint32_t id = SLUICE_LB_NO_BACKEND;
    const Pick picked = select(pkt, vip_id, hash, bytes, id);
    if (picked == Pick::Corrupt) {
      ++counters.events[SLUICE_LB_EVENT_CORRUPT_TABLE];
      return finish(SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE);
    }
    if (picked != Pick::Ok) return finish(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_NO_BACKEND);
    out.backend_id = id;
    const sluice_lb_backend& be = state.backends[id];

    if (flags & SLUICE_LB_VIP_F_L2_DSR) {
      if (is_zero_mac(be.mac)) return finish(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_NO_BACKEND);
      count(counters.backends, id, bytes, 0, 1);
      set_macs(out.output, be.mac);
      return finish(SLUICE_VERDICT_TX, SLUICE_REASON_LB_L2_DSR);
    }
    std::size_t overhead = 0;
    if (be.ip_version == 4) overhead = pkt.ip_version == 4 ? kIpv4HdrLen : 0;
    else if (be.ip_version == 6) overhead = kIpv6HdrLen;
    const bool has_source = be.ip_version == 4 ? s.encap_src_v4 != 0
                                                : (s.encap_src_v6[0] | s.encap_src_v6[1] | s.encap_src_v6[2] |
                                                   s.encap_src_v6[3]) != 0;
    if (!overhead || !has_source) return finish(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_NO_BACKEND);
    if (s.mtu && pkt.l3_len + overhead > s.mtu) {
      if (martian_source(pkt)) {
        ++counters.events[SLUICE_LB_EVENT_ICMP_MARTIAN];
        return finish(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_TOO_BIG);
      }
      if (!take_icmp_token()) {
        ++counters.events[SLUICE_LB_EVENT_ICMP_RATE_LIMITED];
        return finish(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_TOO_BIG);
      }
      out.output = too_big(frame, pkt, overhead);
      return finish(SLUICE_VERDICT_TX, SLUICE_REASON_LB_TOO_BIG);
    }
    if (pkt.l3_len + overhead > kIpMaxLen) return finish(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_ENCAP_FAILED);
    out.output = encapsulate(frame, pkt, be, hash);
    count(counters.backends, id, bytes, 0, 1);
    switch (s.egress) {
      case SLUICE_LB_EGRESS_TX:
        return finish(SLUICE_VERDICT_TX, SLUICE_REASON_LB_ENCAP);
      case SLUICE_LB_EGRESS_REDIRECT:
        if (!state.egress_port_present) return finish(SLUICE_VERDICT_DROP, SLUICE_REASON_LB_ENCAP_FAILED);
        return finish(SLUICE_VERDICT_REDIRECT, SLUICE_REASON_LB_ENCAP);
      default:  // forward: the pass-through forward stage ends the pipeline with the lb's note
        pkt.note = SLUICE_REASON_LB_FORWARD;
        return next(pkt);
    }
  }
};

bool is_pass_or_drop(std::uint32_t verdict) { return verdict == SLUICE_VERDICT_PASS || verdict == SLUICE_VERDICT_DROP; }

}  // namespace

std::uint16_t checksum(std::span<const std::uint8_t> data, std::uint64_t initial) {
  std::uint64_t sum = sum16(data, initial);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

std::uint32_t flow_hash(const sluice_pkt& pkt) {
  return sluice_flow_hash(pkt.ip_version, pkt.src, pkt.dst, pkt.sport, pkt.dport, pkt.ip_proto);
}

Outcome run(MapState& state, Counters& counters, std::span<const std::uint8_t> frame, const sluice_config& config,
            std::uint64_t now_ns) {
  if (config.stages_enabled & SLUICE_STAGE_BIT(SLUICE_STAGE_FILTER))
    throw std::invalid_argument("lb reference model: the filter stage is not modelled; clear its bit");
  if (!is_pass_or_drop(config.end_verdict) || !is_pass_or_drop(config.malformed_verdict) ||
      !is_pass_or_drop(config.non_ip_verdict))
    throw std::invalid_argument("lb reference model: config verdicts must be pass or drop");
  Stage stage{state, counters, config, now_ns, {}};
  stage.out.output.assign(frame.begin(), frame.end());
  auto parsed = filter::model::parse(frame);
  if (parsed.reason == SLUICE_REASON_NON_IP)
    return stage.finish(static_cast<sluice_verdict>(config.non_ip_verdict), SLUICE_REASON_NON_IP);
  if (parsed.reason != filter::model::kParseOk)
    return stage.finish(static_cast<sluice_verdict>(config.malformed_verdict), static_cast<std::uint32_t>(parsed.reason));
  if (parsed.pkt.frag != SLUICE_FRAG_NONE && config.drop_fragments)
    return stage.finish(SLUICE_VERDICT_DROP, SLUICE_REASON_FRAGMENT_DROPPED);
  if (!(config.stages_enabled & SLUICE_STAGE_BIT(SLUICE_STAGE_LB))) return stage.next(parsed.pkt);
  return stage.lb(frame, parsed.pkt);
}

}  // namespace sluice::lb::reference
