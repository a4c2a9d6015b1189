#include "packet_builder.hpp"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>

#include <cstring>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

namespace sluice::test {

static_assert(TcpFlags::FIN == TH_FIN && TcpFlags::SYN == TH_SYN && TcpFlags::RST == TH_RST &&
              TcpFlags::PSH == TH_PUSH && TcpFlags::ACK == TH_ACK && TcpFlags::URG == TH_URG);

// ---- helpers -------------------------------------------------------------

Mac parse_mac(std::string_view text) {
  Mac mac{};
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  // Exactly "xx:xx:xx:xx:xx:xx" (17 chars) with ':' or '-' separators.
  if (text.size() != 17) throw std::invalid_argument("bad MAC address: " + std::string(text));
  for (std::size_t i = 0; i < 6; ++i) {
    int hi = hex(text[i * 3]);
    int lo = hex(text[i * 3 + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':' && text[i * 3 + 2] != '-'))
      throw std::invalid_argument("bad MAC address: " + std::string(text));
    mac[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return mac;
}

Ipv4Addr parse_ipv4(std::string_view text) {
  Ipv4Addr a{};
  std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), a.data()) != 1)
    throw std::invalid_argument("bad IPv4 address: " + s);
  return a;
}

Ipv6Addr parse_ipv6(std::string_view text) {
  Ipv6Addr a{};
  std::string s(text);
  if (inet_pton(AF_INET6, s.c_str(), a.data()) != 1)
    throw std::invalid_argument("bad IPv6 address: " + s);
  return a;
}

uint64_t checksum_add(std::span<const uint8_t> data, uint64_t sum) {
  std::size_t i = 0;
  for (; i + 1 < data.size(); i += 2) sum += uint64_t{data[i]} << 8 | data[i + 1];
  if (i < data.size()) sum += uint64_t{data[i]} << 8;
  return sum;
}

uint16_t checksum_finish(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

uint16_t internet_checksum(std::span<const uint8_t> data, uint64_t initial) {
  return checksum_finish(checksum_add(data, initial));
}

uint16_t ipv4_checksum(std::span<const uint8_t> header) { return internet_checksum(header); }

// ---- layers --------------------------------------------------------------

namespace {

struct EthL {
  Mac src, dst;
  std::optional<uint16_t> ethertype;
};
struct VlanL {
  uint16_t vid, tpid;
  uint8_t pcp;
  bool dei;
  std::optional<uint16_t> ethertype;
};
struct Ipv4L {
  Ipv4Addr src, dst;
  Ipv4Opts o;
};
struct Ipv6L {
  Ipv6Addr src, dst;
  Ipv6Opts o;
};
struct Ipv6OptHdrL {
  uint8_t proto;  // IPPROTO_HOPOPTS or IPPROTO_DSTOPTS
  Ipv6OptionsHdrOpts o;
};
struct Ipv6RoutingL {
  std::vector<Ipv6Addr> segments;
  Ipv6RoutingOpts o;
};
struct Ipv6FragL {
  uint16_t offset_bytes;
  bool more;
  uint32_t id;
  Ipv6FragOpts o;
};
struct Ipv6AhL {
  Ipv6AhOpts o;
};
struct TcpL {
  uint16_t sport, dport;
  TcpOpts o;
};
struct UdpL {
  uint16_t sport, dport;
  UdpOpts o;
};
struct IcmpL {
  bool v6;
  uint8_t type, code;
  uint32_t rest;
  IcmpOpts o;
};
struct RawL {
  Bytes bytes;
};

using LayerVariant = std::variant<EthL, VlanL, Ipv4L, Ipv6L, Ipv6OptHdrL, Ipv6RoutingL, Ipv6FragL,
                                  Ipv6AhL, TcpL, UdpL, IcmpL, RawL>;

template <class T>
void append(Bytes& out, const T& s) {
  static_assert(std::is_trivially_copyable_v<T>);
  const auto* p = reinterpret_cast<const uint8_t*>(&s);
  out.insert(out.end(), p, p + sizeof(T));
}

void put16(Bytes& out, std::size_t at, uint16_t host) {
  out[at] = static_cast<uint8_t>(host >> 8);
  out[at + 1] = static_cast<uint8_t>(host);
}

}  // namespace

struct Layer {
  LayerVariant v;
};

// ---- builder boilerplate ---------------------------------------------------

PacketBuilder::PacketBuilder() = default;
PacketBuilder::PacketBuilder(const PacketBuilder&) = default;
PacketBuilder::PacketBuilder(PacketBuilder&&) noexcept = default;
PacketBuilder& PacketBuilder::operator=(const PacketBuilder&) = default;
PacketBuilder& PacketBuilder::operator=(PacketBuilder&&) noexcept = default;
PacketBuilder::~PacketBuilder() = default;

PacketBuilder& PacketBuilder::eth(std::string_view src, std::string_view dst,
                                  std::optional<uint16_t> ethertype) {
  layers_.push_back({EthL{parse_mac(src), parse_mac(dst), ethertype}});
  return *this;
}

PacketBuilder& PacketBuilder::vlan(uint16_t vid, uint16_t tpid, uint8_t pcp, bool dei,
                                   std::optional<uint16_t> ethertype_override) {
  layers_.push_back({VlanL{vid, tpid, pcp, dei, ethertype_override}});
  return *this;
}

PacketBuilder& PacketBuilder::ipv4(std::string_view src, std::string_view dst, Ipv4Opts opts) {
  if (opts.frag_offset_bytes % 8 != 0)
    throw std::invalid_argument("ipv4: frag_offset_bytes must be a multiple of 8");
  layers_.push_back({Ipv4L{parse_ipv4(src), parse_ipv4(dst), std::move(opts)}});
  return *this;
}

PacketBuilder& PacketBuilder::ipv6(std::string_view src, std::string_view dst, Ipv6Opts opts) {
  layers_.push_back({Ipv6L{parse_ipv6(src), parse_ipv6(dst), std::move(opts)}});
  return *this;
}

PacketBuilder& PacketBuilder::ipv6_hop_by_hop(Ipv6OptionsHdrOpts opts) {
  layers_.push_back({Ipv6OptHdrL{IPPROTO_HOPOPTS, std::move(opts)}});
  return *this;
}

PacketBuilder& PacketBuilder::ipv6_dest_opts(Ipv6OptionsHdrOpts opts) {
  layers_.push_back({Ipv6OptHdrL{IPPROTO_DSTOPTS, std::move(opts)}});
  return *this;
}

PacketBuilder& PacketBuilder::ipv6_routing(const std::vector<std::string>& segments,
                                           Ipv6RoutingOpts opts) {
  std::vector<Ipv6Addr> segs;
  for (const auto& s : segments) segs.push_back(parse_ipv6(s));
  layers_.push_back({Ipv6RoutingL{std::move(segs), std::move(opts)}});
  return *this;
}

PacketBuilder& PacketBuilder::ipv6_fragment(uint16_t offset_bytes, bool more, uint32_t id,
                                            Ipv6FragOpts opts) {
  if (offset_bytes % 8 != 0)
    throw std::invalid_argument("ipv6_fragment: offset_bytes must be a multiple of 8");
  layers_.push_back({Ipv6FragL{offset_bytes, more, id, std::move(opts)}});
  return *this;
}

PacketBuilder& PacketBuilder::ipv6_ah(Ipv6AhOpts opts) {
  layers_.push_back({Ipv6AhL{std::move(opts)}});
  return *this;
}

PacketBuilder& PacketBuilder::tcp(uint16_t sport, uint16_t dport, TcpOpts opts) {
  layers_.push_back({TcpL{sport, dport, std::move(opts)}});
  return *this;
}

PacketBuilder& PacketBuilder::udp(uint16_t sport, uint16_t dport, UdpOpts opts) {
  layers_.push_back({UdpL{sport, dport, opts}});
  return *this;
}

PacketBuilder& PacketBuilder::icmp(uint8_t type, uint8_t code, uint32_t rest, IcmpOpts opts) {
  layers_.push_back({IcmpL{false, type, code, rest, opts}});
  return *this;
}

PacketBuilder& PacketBuilder::icmpv6(uint8_t type, uint8_t code, uint32_t rest, IcmpOpts opts) {
  layers_.push_back({IcmpL{true, type, code, rest, opts}});
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::span<const uint8_t> bytes) {
  layers_.push_back({RawL{Bytes(bytes.begin(), bytes.end())}});
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::string_view text) {
  layers_.push_back({RawL{Bytes(text.begin(), text.end())}});
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::initializer_list<uint8_t> bytes) {
  layers_.push_back({RawL{Bytes(bytes)}});
  return *this;
}

PacketBuilder& PacketBuilder::raw(std::span<const uint8_t> bytes) { return payload(bytes); }
PacketBuilder& PacketBuilder::raw(std::initializer_list<uint8_t> bytes) { return payload(bytes); }

PacketBuilder& PacketBuilder::trailer(std::span<const uint8_t> bytes) {
  trailer_.insert(trailer_.end(), bytes.begin(), bytes.end());
  return *this;
}

PacketBuilder& PacketBuilder::pad_to(std::size_t n) {
  pad_to_ = n;
  return *this;
}

PacketBuilder& PacketBuilder::truncate_to(std::size_t n) {
  truncate_to_ = n;
  return *this;
}

// ---- serialisation ---------------------------------------------------------

namespace {

// EtherType announcing layer `l`, if it has one.
std::optional<uint16_t> ethertype_of(const LayerVariant& l) {
  if (auto* v = std::get_if<VlanL>(&l)) return v->tpid;
  if (std::holds_alternative<Ipv4L>(l)) return ETH_P_IP;
  if (std::holds_alternative<Ipv6L>(l)) return ETH_P_IPV6;
  return std::nullopt;
}

// IP protocol number / IPv6 next header announcing layer `l`, if any.
std::optional<uint8_t> proto_of(const LayerVariant& l) {
  return std::visit(
      [](const auto& x) -> std::optional<uint8_t> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Ipv4L>) return IPPROTO_IPIP;
        else if constexpr (std::is_same_v<T, Ipv6L>) return IPPROTO_IPV6;
        else if constexpr (std::is_same_v<T, Ipv6OptHdrL>) return x.proto;
        else if constexpr (std::is_same_v<T, Ipv6RoutingL>) return IPPROTO_ROUTING;
        else if constexpr (std::is_same_v<T, Ipv6FragL>) return IPPROTO_FRAGMENT;
        else if constexpr (std::is_same_v<T, Ipv6AhL>) return IPPROTO_AH;
        else if constexpr (std::is_same_v<T, TcpL>) return IPPROTO_TCP;
        else if constexpr (std::is_same_v<T, UdpL>) return IPPROTO_UDP;
        else if constexpr (std::is_same_v<T, IcmpL>) return static_cast<uint8_t>(x.v6 ? int{IPPROTO_ICMPV6} : int{IPPROTO_ICMP});
        else return std::nullopt;
      },
      l);
}

class Serializer {
 public:
  explicit Serializer(const std::vector<Layer>& layers) : layers_(layers) {}

  Bytes run() {
    Bytes tail;
    for (std::size_t i = layers_.size(); i-- > 0;) {
      Bytes head = std::visit([&](const auto& x) { return emit(i, x, tail); }, layers_[i].v);
      head.insert(head.end(), tail.begin(), tail.end());
      tail = std::move(head);
    }
    return tail;
  }

 private:
  const LayerVariant* next(std::size_t i) const {
    return i + 1 < layers_.size() ? &layers_[i + 1].v : nullptr;
  }
  std::optional<uint16_t> next_ethertype(std::size_t i) const {
    auto* n = next(i);
    return n ? ethertype_of(*n) : std::nullopt;
  }
  uint8_t next_proto(std::size_t i, uint8_t fallback) const {
    auto* n = next(i);
    auto p = n ? proto_of(*n) : std::nullopt;
    return p.value_or(fallback);
  }

  // Pseudo-header sum for the L4 layer at index i with upper-layer length len.
  uint64_t pseudo_sum(std::size_t i, uint8_t proto, std::size_t len) const {
    for (std::size_t j = i; j-- > 0;) {
      if (auto* v4 = std::get_if<Ipv4L>(&layers_[j].v)) {
        Bytes ph;
        ph.insert(ph.end(), v4->src.begin(), v4->src.end());
        ph.insert(ph.end(), v4->dst.begin(), v4->dst.end());
        ph.push_back(0);
        ph.push_back(proto);
        ph.push_back(static_cast<uint8_t>(len >> 8));
        ph.push_back(static_cast<uint8_t>(len));
        return checksum_add(ph);
      }
      if (auto* v6 = std::get_if<Ipv6L>(&layers_[j].v)) {
        Ipv6Addr dst = v6->dst;
        for (std::size_t k = j + 1; k < i; ++k) {
          auto* rh = std::get_if<Ipv6RoutingL>(&layers_[k].v);
          if (!rh || rh->segments.empty()) continue;
          uint8_t left = rh->o.segments_left.value_or(static_cast<uint8_t>(rh->segments.size()));
          if (left > 0 && (rh->o.routing_type == 0 || rh->o.routing_type == 2))
            dst = rh->segments.back();
        }
        Bytes ph;
        ph.insert(ph.end(), v6->src.begin(), v6->src.end());
        ph.insert(ph.end(), dst.begin(), dst.end());
        uint32_t l = htonl(static_cast<uint32_t>(len));
        append(ph, l);
        ph.insert(ph.end(), {0, 0, 0, proto});
        return checksum_add(ph);
      }
    }
    return 0;  // no enclosing IP layer
  }

  Bytes emit(std::size_t i, const EthL& x, const Bytes&) {
    auto type = x.ethertype ? x.ethertype : next_ethertype(i);
    if (!type)
      throw std::logic_error("eth: cannot infer the EtherType of the next layer; pass one");
    ethhdr h{};
    std::memcpy(h.h_dest, x.dst.data(), ETH_ALEN);
    std::memcpy(h.h_source, x.src.data(), ETH_ALEN);
    h.h_proto = htons(*type);
    Bytes out;
    append(out, h);
    return out;
  }

  Bytes emit(std::size_t i, const VlanL& x, const Bytes&) {
    // 802.1Q tag as it follows the outer EtherType/TPID: TCI, inner EtherType.
    // (The TPID itself is written by the layer before, as its EtherType.)
    auto type = x.ethertype ? x.ethertype : next_ethertype(i);
    if (!type)
      throw std::logic_error("vlan: cannot infer the EtherType of the next layer; pass one");
    uint16_t tci = static_cast<uint16_t>((x.pcp & 7) << 13 | (x.dei ? 1 : 0) << 12 | (x.vid & 0xfff));
    Bytes out(4);
    put16(out, 0, tci);
    put16(out, 2, *type);
    return out;
  }

  Bytes emit(std::size_t i, const Ipv4L& x, const Bytes& tail) {
    const auto& o = x.o;
    Bytes opts = o.options;
    while (opts.size() % 4) opts.push_back(0);
    const std::size_t hlen = sizeof(iphdr) + opts.size();
    iphdr h{};
    h.ihl = o.ihl_override.value_or(static_cast<uint8_t>(hlen / 4)) & 0xf;
    h.version = o.version_override.value_or(4) & 0xf;
    h.tos = o.tos;
    h.tot_len = htons(o.total_length_override.value_or(static_cast<uint16_t>(hlen + tail.size())));
    h.id = htons(o.id);
    uint16_t frag = static_cast<uint16_t>(o.frag_offset_bytes / 8) & IP_OFFMASK;
    if (o.reserved_flag) frag |= IP_RF;
    if (o.dont_fragment) frag |= IP_DF;
    if (o.more_fragments) frag |= IP_MF;
    h.frag_off = htons(frag);
    h.ttl = o.ttl;
    h.protocol = o.protocol_override.value_or(next_proto(i, IPPROTO_RAW));
    h.check = 0;
    std::memcpy(&h.saddr, x.src.data(), 4);
    std::memcpy(&h.daddr, x.dst.data(), 4);
    Bytes out;
    append(out, h);
    out.insert(out.end(), opts.begin(), opts.end());
    put16(out, offsetof(iphdr, check), o.checksum_override.value_or(ipv4_checksum(out)));
    return out;
  }

  Bytes emit(std::size_t i, const Ipv6L& x, const Bytes& tail) {
    const auto& o = x.o;
    ip6_hdr h{};
    uint32_t flow = uint32_t{o.version_override.value_or(6) & 0xfu} << 28 |
                    uint32_t{o.traffic_class} << 20 | (o.flow_label & 0xfffff);
    h.ip6_flow = htonl(flow);
    h.ip6_plen = htons(o.payload_length_override.value_or(static_cast<uint16_t>(tail.size())));
    h.ip6_nxt = o.next_header_override.value_or(next_proto(i, IPPROTO_NONE));
    h.ip6_hlim = o.hop_limit;
    std::memcpy(&h.ip6_src, x.src.data(), 16);
    std::memcpy(&h.ip6_dst, x.dst.data(), 16);
    Bytes out;
    append(out, h);
    return out;
  }

  Bytes emit(std::size_t i, const Ipv6OptHdrL& x, const Bytes&) {
    const auto& o = x.o;
    ip6_hbh h{};  // same layout as ip6_dest
    static_assert(sizeof(ip6_hbh) == 2 && sizeof(ip6_dest) == 2);
    Bytes body = o.options;
    if (o.pad) {
      std::size_t pad = (8 - (sizeof(h) + body.size()) % 8) % 8;
      if (pad == 1) {
        body.push_back(IP6OPT_PAD1);
      } else if (pad > 1) {
        body.push_back(IP6OPT_PADN);
        body.push_back(static_cast<uint8_t>(pad - 2));
        body.insert(body.end(), pad - 2, 0);
      }
    }
    h.ip6h_nxt = o.next_header_override.value_or(next_proto(i, IPPROTO_NONE));
    h.ip6h_len = o.hdr_ext_len_override.value_or(
        static_cast<uint8_t>((sizeof(h) + body.size() + 7) / 8 - 1));
    Bytes out;
    append(out, h);
    out.insert(out.end(), body.begin(), body.end());
    return out;
  }

  Bytes emit(std::size_t i, const Ipv6RoutingL& x, const Bytes&) {
    const auto& o = x.o;
    ip6_rthdr h{};
    Bytes data;
    if (o.type_data) {
      data = *o.type_data;
    } else {
      data.assign(4, 0);  // reserved (type 0/2)
      for (const auto& a : x.segments) data.insert(data.end(), a.begin(), a.end());
    }
    while ((sizeof(h) + data.size()) % 8) data.push_back(0);
    h.ip6r_nxt = o.next_header_override.value_or(next_proto(i, IPPROTO_NONE));
    h.ip6r_len = o.hdr_ext_len_override.value_or(static_cast<uint8_t>((sizeof(h) + data.size()) / 8 - 1));
    h.ip6r_type = o.routing_type;
    h.ip6r_segleft = o.segments_left.value_or(static_cast<uint8_t>(x.segments.size()));
    Bytes out;
    append(out, h);
    out.insert(out.end(), data.begin(), data.end());
    return out;
  }

  Bytes emit(std::size_t i, const Ipv6FragL& x, const Bytes&) {
    ip6_frag h{};
    h.ip6f_nxt = x.o.next_header_override.value_or(next_proto(i, IPPROTO_NONE));
    h.ip6f_reserved = x.o.reserved;
    h.ip6f_offlg = htons(static_cast<uint16_t>((x.offset_bytes & 0xfff8) | (x.o.reserved_bits & 3) << 1 |
                                               (x.more ? 1 : 0)));
    h.ip6f_ident = htonl(x.id);
    Bytes out;
    append(out, h);
    return out;
  }

  Bytes emit(std::size_t i, const Ipv6AhL& x, const Bytes&) {
    // RFC 4302 layout. glibc has no AH struct and <linux/ip.h>'s ip_auth_hdr
    // cannot be included next to <netinet/ip.h>, so serialise the fields.
    const auto& o = x.o;
    ip6_ext e{};
    const std::size_t total = 12 + o.icv.size();
    e.ip6e_nxt = o.next_header_override.value_or(next_proto(i, IPPROTO_NONE));
    e.ip6e_len = o.payload_len_override.value_or(static_cast<uint8_t>(total / 4 - 2));
    Bytes out;
    append(out, e);
    uint16_t reserved = 0;
    uint32_t spi = htonl(o.spi), seq = htonl(o.seq);
    append(out, reserved);
    append(out, spi);
    append(out, seq);
    out.insert(out.end(), o.icv.begin(), o.icv.end());
    return out;
  }

  Bytes emit(std::size_t i, const TcpL& x, const Bytes& tail) {
    const auto& o = x.o;
    Bytes opts = o.options;
    while (opts.size() % 4) opts.push_back(0);
    tcphdr h{};
    h.th_sport = htons(x.sport);
    h.th_dport = htons(x.dport);
    h.th_seq = htonl(o.seq);
    h.th_ack = htonl(o.ack);
    h.th_off = o.doff_override.value_or(static_cast<uint8_t>((sizeof(tcphdr) + opts.size()) / 4)) & 0xf;
    h.th_x2 = o.reserved_bits & 0xf;
    h.th_flags = o.flags;
    h.th_win = htons(o.window);
    h.th_sum = 0;
    h.th_urp = htons(o.urg_ptr);
    Bytes out;
    append(out, h);
    out.insert(out.end(), opts.begin(), opts.end());
    uint64_t sum = pseudo_sum(i, IPPROTO_TCP, out.size() + tail.size());
    sum = checksum_add(tail, checksum_add(out, sum));
    put16(out, offsetof(tcphdr, th_sum), o.checksum_override.value_or(checksum_finish(sum)));
    return out;
  }

  Bytes emit(std::size_t i, const UdpL& x, const Bytes& tail) {
    udphdr h{};
    const std::size_t len = sizeof(udphdr) + tail.size();
    h.uh_sport = htons(x.sport);
    h.uh_dport = htons(x.dport);
    h.uh_ulen = htons(x.o.length_override.value_or(static_cast<uint16_t>(len)));
    h.uh_sum = 0;
    Bytes out;
    append(out, h);
    // The pseudo header carries the real upper-layer length, the UDP header
    // its (possibly overridden) length field.
    uint64_t sum = pseudo_sum(i, IPPROTO_UDP, len);
    uint16_t c = checksum_finish(checksum_add(tail, checksum_add(out, sum)));
    if (c == 0) c = 0xffff;
    put16(out, offsetof(udphdr, uh_sum), x.o.checksum_override.value_or(c));
    return out;
  }

  Bytes emit(std::size_t i, const IcmpL& x, const Bytes& tail) {
    Bytes out;
    uint64_t sum = 0;
    std::size_t check_at;
    if (x.v6) {
      icmp6_hdr h{};
      h.icmp6_type = x.type;
      h.icmp6_code = x.code;
      h.icmp6_data32[0] = htonl(x.rest);
      append(out, h);
      sum = pseudo_sum(i, IPPROTO_ICMPV6, out.size() + tail.size());
      check_at = offsetof(icmp6_hdr, icmp6_cksum);
    } else {
      icmphdr h{};
      h.type = x.type;
      h.code = x.code;
      uint32_t rest = htonl(x.rest);
      std::memcpy(&h.un, &rest, 4);
      append(out, h);
      check_at = offsetof(icmphdr, checksum);
    }
    static_assert(sizeof(icmp6_hdr) == 8 && sizeof(icmphdr) == 8);
    uint16_t c = checksum_finish(checksum_add(tail, checksum_add(out, sum)));
    put16(out, check_at, x.o.checksum_override.value_or(c));
    return out;
  }

  Bytes emit(std::size_t, const RawL& x, const Bytes&) { return x.bytes; }

  const std::vector<Layer>& layers_;
};

}  // namespace

Bytes PacketBuilder::build() const {
  Bytes frame = Serializer(layers_).run();
  frame.insert(frame.end(), trailer_.begin(), trailer_.end());
  if (pad_to_ && frame.size() < *pad_to_) frame.resize(*pad_to_, 0);
  if (truncate_to_ && frame.size() > *truncate_to_) frame.resize(*truncate_to_);
  return frame;
}

}  // namespace sluice::test
