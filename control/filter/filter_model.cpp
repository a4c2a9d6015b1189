#include "filter_model.hpp"

#include <linux/if_ether.h>
#include <netinet/in.h>

#include <cstring>

namespace sluice::filter::model {
namespace {

// Constants of xdp/parsing.h, restated: the model must not share code with what it checks.
constexpr std::size_t kEthLen = 14;
constexpr std::size_t kVlanLen = 4;
constexpr std::size_t kIpv4MinLen = 20;
constexpr std::size_t kIpv6Len = 40;
constexpr std::uint16_t kIpMf = 0x2000;
constexpr std::uint16_t kIpOffsetMask = 0x1fff;
constexpr std::uint16_t kIp6FragOffsetMask = 0xfff8;
constexpr std::uint16_t kIp6FragMore = 0x0001;
constexpr std::size_t kExtMinLen = 8;
constexpr std::uint8_t kIpprotoMh = 135;

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

bool is_vlan(std::uint16_t proto) { return proto == ETH_P_8021Q || proto == ETH_P_8021AD; }

bool is_exthdr(std::uint8_t nh) {
  return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_FRAGMENT || nh == IPPROTO_DSTOPTS ||
         nh == IPPROTO_AH || nh == kIpprotoMh;
}

}  // namespace

Parsed parse(std::span<const std::uint8_t> f, std::uint32_t ifindex) {
  Parsed out;
  sluice_pkt& pkt = out.pkt;
  pkt.ifindex = ifindex;
  pkt.pkt_len = static_cast<std::uint32_t>(f.size());
  const std::size_t len = f.size();
  auto fail = [&](int reason) {
    out.reason = reason;
    return out;
  };
  if (len < kEthLen) return fail(SLUICE_REASON_TRUNC_ETH);
  pkt.eth_proto = be16(&f[12]);
  std::size_t pos = kEthLen;
  for (int i = 0; i < SLUICE_MAX_VLAN_TAGS; ++i) {
    if (!is_vlan(pkt.eth_proto)) break;
    if (pos + kVlanLen > len) return fail(SLUICE_REASON_TRUNC_VLAN);
    pkt.vlan_id[i] = be16(&f[pos]) & 0x0fff;
    pkt.vlan_depth = static_cast<std::uint8_t>(i + 1);
    pkt.eth_proto = be16(&f[pos + 2]);
    pos += kVlanLen;
  }
  if (is_vlan(pkt.eth_proto)) return fail(SLUICE_REASON_VLAN_TOO_DEEP);

  std::size_t l3_end = 0;
  if (pkt.eth_proto == ETH_P_IP) {
    if (pos + kIpv4MinLen > len) return fail(SLUICE_REASON_TRUNC_IPV4);
    const std::uint8_t* ip = &f[pos];
    if ((ip[0] >> 4) != 4) return fail(SLUICE_REASON_IPV4_BAD_VERSION);
    const std::size_t ihl = ip[0] & 0x0f;
    if (ihl < 5) return fail(SLUICE_REASON_IPV4_BAD_IHL);
    const std::size_t hdr_len = ihl * 4;
    if (pos + hdr_len > len) return fail(SLUICE_REASON_TRUNC_IPV4);
    const std::size_t tot_len = be16(ip + 2);
    if (tot_len < hdr_len || pos + tot_len > len) return fail(SLUICE_REASON_IPV4_BAD_TOTLEN);
    const std::uint16_t frag_off = be16(ip + 6);
    if (std::size_t(frag_off & kIpOffsetMask) * 8 + (tot_len - hdr_len) > 0xffff)
      return fail(SLUICE_REASON_IPV4_BAD_FRAGMENT);
    pkt.ip_version = 4;
    pkt.ip_proto = ip[9];
    std::memcpy(&pkt.src[0], ip + 12, 4);
    std::memcpy(&pkt.dst[0], ip + 16, 4);
    pkt.l3_off = static_cast<std::uint16_t>(pos);
    pkt.l3_len = static_cast<std::uint16_t>(tot_len);
    if (frag_off & kIpOffsetMask) pkt.frag = SLUICE_FRAG_NONFIRST;
    else if (frag_off & kIpMf) pkt.frag = SLUICE_FRAG_FIRST;
    l3_end = pos + tot_len;
    pos += hdr_len;
  } else if (pkt.eth_proto == ETH_P_IPV6) {
    if (pos + kIpv6Len > len) return fail(SLUICE_REASON_TRUNC_IPV6);
    const std::uint8_t* ip6 = &f[pos];
    if ((ip6[0] >> 4) != 6) return fail(SLUICE_REASON_IPV6_BAD_VERSION);
    const std::size_t payload = be16(ip6 + 4);
    if (payload == 0 && ip6[6] != IPPROTO_NONE) return fail(SLUICE_REASON_IPV6_BAD_PAYLOAD_LEN);
    if (pos + kIpv6Len + payload > len) return fail(SLUICE_REASON_IPV6_BAD_PAYLOAD_LEN);
    pkt.ip_version = 6;
    pkt.ip_proto = ip6[6];
    std::memcpy(pkt.src, ip6 + 8, 16);
    std::memcpy(pkt.dst, ip6 + 24, 16);
    pkt.l3_off = static_cast<std::uint16_t>(pos);
    pkt.l3_len = static_cast<std::uint16_t>(kIpv6Len + payload);
    l3_end = pos + kIpv6Len + payload;
    pos += kIpv6Len;
  } else {
    return fail(SLUICE_REASON_NON_IP);
  }

  auto span_ok = [&](std::size_t off, std::size_t n) { return off + n <= len && off + n <= l3_end; };
  if (pkt.ip_version == 6) {
    std::uint8_t nh = pkt.ip_proto;
    for (int i = 0; i < SLUICE_MAX_IPV6_EXTHDRS; ++i) {
      if (!is_exthdr(nh)) break;
      if (!span_ok(pos, kExtMinLen)) return fail(SLUICE_REASON_TRUNC_IPV6_EXTHDR);
      const std::uint8_t* hdr = &f[pos];
      if (nh == IPPROTO_FRAGMENT) {
        const std::uint16_t fo = be16(hdr + 2);
        nh = hdr[0];
        pos += 8;
        if (fo & kIp6FragOffsetMask) {
          pkt.frag = SLUICE_FRAG_NONFIRST;
          break;
        }
        if (fo & kIp6FragMore) pkt.frag = SLUICE_FRAG_FIRST;
        continue;
      }
      const std::size_t ext_len = nh == IPPROTO_AH ? (std::size_t(hdr[1]) + 2) * 4 : (std::size_t(hdr[1]) + 1) * 8;
      if (!span_ok(pos, ext_len)) return fail(SLUICE_REASON_TRUNC_IPV6_EXTHDR);
      nh = hdr[0];
      pos += ext_len;
    }
    if (is_exthdr(nh) && pkt.frag != SLUICE_FRAG_NONFIRST) return fail(SLUICE_REASON_IPV6_EXTHDR_CHAIN_TOO_LONG);
    pkt.ip_proto = nh;
  }
  if (pkt.frag == SLUICE_FRAG_NONFIRST) {
    pkt.note = SLUICE_REASON_FRAGMENT;
    return out;
  }
  switch (pkt.ip_proto) {
    case IPPROTO_TCP: {
      if (!span_ok(pos, 20)) return fail(SLUICE_REASON_TRUNC_TCP);
      const std::size_t doff = f[pos + 12] >> 4;
      if (doff < 5) return fail(SLUICE_REASON_TCP_BAD_DOFF);
      if (!span_ok(pos, doff * 4)) return fail(SLUICE_REASON_TRUNC_TCP);
      pkt.sport = be16(&f[pos]);
      pkt.dport = be16(&f[pos + 2]);
      pkt.tcp_flags = f[pos + 13];
      pkt.tcp_seq = (std::uint32_t{be16(&f[pos + 4])} << 16) | be16(&f[pos + 6]);
      pkt.tcp_ack = (std::uint32_t{be16(&f[pos + 8])} << 16) | be16(&f[pos + 10]);
      pkt.tcp_window = be16(&f[pos + 14]);
      pkt.tcp_hdr_len = static_cast<std::uint16_t>(doff * 4);
      break;
    }
    case IPPROTO_UDP:
      if (!span_ok(pos, 8)) return fail(SLUICE_REASON_TRUNC_UDP);
      pkt.sport = be16(&f[pos]);
      pkt.dport = be16(&f[pos + 2]);
      break;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6: {
      const bool own_family = pkt.ip_proto == IPPROTO_ICMP ? pkt.ip_version == 4 : pkt.ip_version == 6;
      if (!own_family) return out;
      if (!span_ok(pos, 4))
        return fail(pkt.ip_proto == IPPROTO_ICMP ? SLUICE_REASON_TRUNC_ICMP : SLUICE_REASON_TRUNC_ICMPV6);
      pkt.icmp_type = f[pos];
      pkt.icmp_code = f[pos + 1];
      if (span_ok(pos, 8)) pkt.icmp_id = be16(&f[pos + 4]);
      break;
    }
    default:
      return out;
  }
  pkt.has_l4 = 1;
  pkt.l4_off = static_cast<std::uint16_t>(pos);
  return out;
}

bool matches(const FilterRule& rule, const sluice_pkt& pkt) {
  const int family = pkt.ip_version;
  const int rule_family = family_of(rule);
  if (rule_family != 0 && rule_family != family) return false;
  const auto* src = reinterpret_cast<const std::uint8_t*>(pkt.src);
  const auto* dst = reinterpret_cast<const std::uint8_t*>(pkt.dst);
  if (rule.src && !contains(*rule.src, src, family)) return false;
  if (rule.dst && !contains(*rule.dst, dst, family)) return false;
  if (rule.protocol && *rule.protocol != pkt.ip_proto) return false;
  if (rule.ifindex && *rule.ifindex != pkt.ifindex) return false;
  const bool has_ports = pkt.has_l4 && (pkt.ip_proto == IPPROTO_TCP || pkt.ip_proto == IPPROTO_UDP);
  if (rule.src_ports && !(has_ports && rule.src_ports->first <= pkt.sport && pkt.sport <= rule.src_ports->last))
    return false;
  if (rule.dst_ports && !(has_ports && rule.dst_ports->first <= pkt.dport && pkt.dport <= rule.dst_ports->last))
    return false;
  const bool has_flags = pkt.has_l4 && pkt.ip_proto == IPPROTO_TCP;
  if (rule.tcp_flags && !(has_flags && (pkt.tcp_flags & rule.tcp_flags->mask) == rule.tcp_flags->value)) return false;
  const bool has_icmp = pkt.has_l4 && (pkt.ip_proto == IPPROTO_ICMP || pkt.ip_proto == IPPROTO_ICMPV6);
  if (rule.icmp_type && !(has_icmp && *rule.icmp_type == pkt.icmp_type)) return false;
  return true;
}

Outcome filter(const RuleSet& set, const std::vector<FilterRule>& ordered, const sluice_pkt& pkt,
               sluice_verdict end_verdict) {
  const auto pass = [&](std::uint32_t reason, int position = -1) { return Outcome{end_verdict, reason, position}; };
  const auto drop = [](std::uint32_t reason, int position = -1) { return Outcome{SLUICE_VERDICT_DROP, reason, position}; };
  // 1. prefix lists: the longest listed prefix covering the source
  const PrefixEntry* best = nullptr;
  const auto* src = reinterpret_cast<const std::uint8_t*>(pkt.src);
  for (const PrefixEntry& e : set.prefixes) {
    if (!contains(e.prefix, src, pkt.ip_version)) continue;
    const auto len = [](const Prefix& p) { return std::visit([](const auto& k) { return k.prefixlen; }, p); };
    if (!best || len(e.prefix) > len(best->prefix)) best = &e;
  }
  if (best && best->action == Action::Drop) return drop(SLUICE_REASON_FILTER_BLOCKLIST);
  if (best && best->action == Action::Pass) return pass(SLUICE_REASON_FILTER_ALLOWLIST);
  // 2. TCP flag sets no stack sends (drop_invalid_tcp_flags, on in default_settings()); conntrack: not modelled.
  if (pkt.has_l4 && pkt.ip_proto == IPPROTO_TCP &&
      !((SLUICE_TCP_VALID_FLAG_SETS >> (pkt.tcp_flags & SLUICE_TCP_FLAGS_CHECKED)) & 1))
    return drop(SLUICE_REASON_FILTER_TCP_INVALID_FLAGS);
  // 3. rules
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    if (!matches(ordered[i], pkt)) continue;
    if (ordered[i].action == Action::Drop) return drop(SLUICE_REASON_FILTER_RULE_DROP, static_cast<int>(i));
    return pass(SLUICE_REASON_FILTER_RULE_PASS, static_cast<int>(i));
  }
  // 5. default
  if (set.default_policy == DefaultPolicy::Drop) return drop(SLUICE_REASON_FILTER_DEFAULT_DROP);
  return pass(pkt.note);
}

Outcome classify(const RuleSet& set, const std::vector<FilterRule>& ordered, std::span<const std::uint8_t> frame,
                 const sluice_config& config, std::uint32_t ifindex) {
  const Parsed parsed = parse(frame, ifindex);
  if (parsed.reason == SLUICE_REASON_NON_IP)
    return {static_cast<sluice_verdict>(config.non_ip_verdict), SLUICE_REASON_NON_IP};
  if (parsed.reason != kParseOk)
    return {static_cast<sluice_verdict>(config.malformed_verdict), static_cast<std::uint32_t>(parsed.reason)};
  if (parsed.pkt.frag != SLUICE_FRAG_NONE && config.drop_fragments)
    return {SLUICE_VERDICT_DROP, SLUICE_REASON_FRAGMENT_DROPPED};
  if (!(config.stages_enabled & SLUICE_STAGE_BIT(SLUICE_STAGE_FILTER)))
    return {static_cast<sluice_verdict>(config.end_verdict), parsed.pkt.note};
  return filter(set, ordered, parsed.pkt, static_cast<sluice_verdict>(config.end_verdict));
}

}  // namespace sluice::filter::model
