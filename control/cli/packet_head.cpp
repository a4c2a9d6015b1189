#include "packet_head.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstdio>

namespace sluice::cli {
namespace {

// Header sizes and field values from the RFCs; names say which.
constexpr std::size_t kEthHeaderBytes = 14;
constexpr std::size_t kVlanTagBytes = 4;
constexpr std::size_t kIpv4MinHeaderBytes = 20;
constexpr std::size_t kIpv6HeaderBytes = 40;
constexpr std::size_t kTcpMinHeaderBytes = 20;
constexpr std::size_t kUdpHeaderBytes = 8;
constexpr std::size_t kIcmpMinBytes = 2;  // type + code is all we show
constexpr std::size_t kIpv6ExtMinBytes = 8;
constexpr std::size_t kIpv6FragHeaderBytes = 8;
// More than this many extension headers: the data plane calls it malformed.
constexpr int kMaxIpv6ExtHeaders = 8;

constexpr std::uint16_t kEthIpv4 = 0x0800;
constexpr std::uint16_t kEthIpv6 = 0x86dd;
constexpr std::uint16_t kEthArp = 0x0806;
constexpr std::uint16_t kEthVlan = 0x8100;
constexpr std::uint16_t kEthQinQ = 0x88a8;
constexpr std::uint16_t kVlanIdMask = 0x0fff;

constexpr std::uint8_t kProtoIcmp = 1;
constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint8_t kProtoUdp = 17;
constexpr std::uint8_t kProtoIcmpv6 = 58;
constexpr std::uint8_t kIpv6HopByHop = 0;
constexpr std::uint8_t kIpv6Routing = 43;
constexpr std::uint8_t kIpv6Fragment = 44;
constexpr std::uint8_t kIpv6DestOpts = 60;

constexpr std::uint16_t kIpv4FragOffsetMask = 0x1fff;
constexpr std::uint16_t kIpv4MoreFragments = 0x2000;
constexpr std::uint16_t kIpv6FragOffsetMask = 0xfff8;
constexpr std::uint16_t kIpv6MoreFragments = 0x0001;

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  bool has(std::size_t offset, std::size_t count) const { return offset <= bytes_.size() && count <= bytes_.size() - offset; }
  std::uint8_t u8(std::size_t offset) const { return bytes_[offset]; }
  std::uint16_t u16(std::size_t offset) const {
    return static_cast<std::uint16_t>(bytes_[offset] << 8 | bytes_[offset + 1]);
  }
  const std::uint8_t* at(std::size_t offset) const { return bytes_.data() + offset; }

 private:
  std::span<const std::uint8_t> bytes_;
};

std::string hex16(std::uint16_t value) {
  std::array<char, 8> text{};
  std::snprintf(text.data(), text.size(), "0x%04x", value);
  return text.data();
}

std::string address(int family, const std::uint8_t* bytes) {
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (!inet_ntop(family, bytes, text.data(), text.size())) return "?";
  return text.data();
}

std::string tcp_flags_text(std::uint8_t flags) {
  // tcpdump's letters, in its order.
  constexpr std::array<std::pair<std::uint8_t, char>, 8> kLetters{
      {{0x02, 'S'}, {0x01, 'F'}, {0x04, 'R'}, {0x08, 'P'}, {0x10, '.'}, {0x20, 'U'}, {0x40, 'E'}, {0x80, 'W'}}};
  std::string out;
  for (auto [bit, letter] : kLetters)
    if (flags & bit) out += letter;
  return "[" + (out.empty() ? std::string("none") : out) + "]";
}

std::string with_port(const std::string& addr, bool v6, std::uint16_t port) {
  return (v6 ? "[" + addr + "]" : addr) + ":" + std::to_string(port);
}

// L4 after the IP header at `offset`; src/dst already formatted.
std::string describe_l4(const Reader& r, std::size_t offset, std::uint8_t proto, const std::string& src,
                        const std::string& dst, bool v6) {
  switch (proto) {
    case kProtoTcp:
      if (!r.has(offset, kTcpMinHeaderBytes)) return src + " > " + dst + " tcp (truncated header)";
      return with_port(src, v6, r.u16(offset)) + " > " + with_port(dst, v6, r.u16(offset + 2)) + " tcp " +
             tcp_flags_text(r.u8(offset + 13));
    case kProtoUdp:
      if (!r.has(offset, kUdpHeaderBytes)) return src + " > " + dst + " udp (truncated header)";
      return with_port(src, v6, r.u16(offset)) + " > " + with_port(dst, v6, r.u16(offset + 2)) + " udp";
    case kProtoIcmp:
    case kProtoIcmpv6: {
      const std::string name = proto == kProtoIcmp ? "icmp" : "icmpv6";
      if (!r.has(offset, kIcmpMinBytes)) return src + " > " + dst + " " + name + " (truncated header)";
      return src + " > " + dst + " " + name + " type " + std::to_string(r.u8(offset)) + " code " +
             std::to_string(r.u8(offset + 1));
    }
    default: return src + " > " + dst + " proto " + std::to_string(proto);
  }
}

std::string describe_ipv4(const Reader& r, std::size_t offset) {
  if (!r.has(offset, kIpv4MinHeaderBytes)) return "ipv4 (truncated header)";
  const std::uint8_t version = r.u8(offset) >> 4;
  const std::size_t header_bytes = std::size_t{r.u8(offset) & 0x0fu} * 4;
  if (version != 4) return "ipv4 (bad version " + std::to_string(version) + ")";
  const std::string src = address(AF_INET, r.at(offset + 12));
  const std::string dst = address(AF_INET, r.at(offset + 16));
  if (header_bytes < kIpv4MinHeaderBytes) return src + " > " + dst + " ipv4 (bad header length " + std::to_string(header_bytes) + ")";
  const std::uint8_t proto = r.u8(offset + 9);
  const std::uint16_t frag = r.u16(offset + 6);
  const std::uint16_t frag_offset = frag & kIpv4FragOffsetMask;
  if (frag_offset != 0)
    return src + " > " + dst + " proto " + std::to_string(proto) + " fragment offset " + std::to_string(frag_offset * 8);
  std::string out = describe_l4(r, offset + header_bytes, proto, src, dst, false);
  if (frag & kIpv4MoreFragments) out += " (first fragment)";
  return out;
}

std::string describe_ipv6(const Reader& r, std::size_t offset) {
  if (!r.has(offset, kIpv6HeaderBytes)) return "ipv6 (truncated header)";
  const std::uint8_t version = r.u8(offset) >> 4;
  if (version != 6) return "ipv6 (bad version " + std::to_string(version) + ")";
  const std::string src = address(AF_INET6, r.at(offset + 8));
  const std::string dst = address(AF_INET6, r.at(offset + 24));
  std::uint8_t next = r.u8(offset + 6);
  std::size_t at = offset + kIpv6HeaderBytes;
  bool first_fragment = false;
  for (int depth = 0;; ++depth) {
    if (next != kIpv6HopByHop && next != kIpv6Routing && next != kIpv6DestOpts && next != kIpv6Fragment) break;
    if (depth == kMaxIpv6ExtHeaders) return src + " > " + dst + " ipv6 (extension header chain too long)";
    if (next == kIpv6Fragment) {
      if (!r.has(at, kIpv6FragHeaderBytes)) return src + " > " + dst + " ipv6 (truncated fragment header)";
      const std::uint16_t frag = r.u16(at + 2);
      if (frag & kIpv6FragOffsetMask)
        return src + " > " + dst + " proto " + std::to_string(r.u8(at)) + " fragment offset " +
               std::to_string(frag & kIpv6FragOffsetMask);
      first_fragment = (frag & kIpv6MoreFragments) != 0;
      next = r.u8(at);
      at += kIpv6FragHeaderBytes;
      continue;
    }
    if (!r.has(at, kIpv6ExtMinBytes)) return src + " > " + dst + " ipv6 (truncated extension header)";
    next = r.u8(at);
    at += (std::size_t{r.u8(at + 1)} + 1) * kIpv6ExtMinBytes;
  }
  std::string out = describe_l4(r, at, next, src, dst, true);
  if (first_fragment) out += " (first fragment)";
  return out;
}

}  // namespace

std::optional<std::vector<std::uint8_t>> decode_hex(std::string_view hex, std::size_t max_bytes) {
  if (hex.size() % 2 != 0 || hex.size() / 2 > max_bytes) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<std::uint8_t> out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int high = nibble(hex[i]);
    const int low = nibble(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<std::uint8_t>(high << 4 | low));
  }
  return out;
}

namespace {

// The Ethernet header and its VLAN tags: where L3 starts and its ethertype.
struct L2 {
  std::uint16_t ethertype = 0;
  std::size_t l3_offset = 0;
  std::string vlans;     // "vlan 100 vlan 7 "
  std::string problem;   // set when the head ends inside L2
};

L2 walk_l2(const Reader& r, std::size_t head_bytes) {
  L2 out;
  if (!r.has(0, kEthHeaderBytes)) {
    out.problem = "(truncated ethernet header, " + std::to_string(head_bytes) + " bytes)";
    return out;
  }
  out.l3_offset = kEthHeaderBytes;
  out.ethertype = r.u16(12);
  while (out.ethertype == kEthVlan || out.ethertype == kEthQinQ) {
    if (!r.has(out.l3_offset, kVlanTagBytes)) {
      out.problem = out.vlans + "(truncated vlan tag)";
      return out;
    }
    out.vlans += "vlan " + std::to_string(r.u16(out.l3_offset) & kVlanIdMask) + " ";
    out.ethertype = r.u16(out.l3_offset + 2);
    out.l3_offset += kVlanTagBytes;
  }
  return out;
}

}  // namespace

std::string describe_packet_head(std::span<const std::uint8_t> head) {
  const Reader r(head);
  const L2 l2 = walk_l2(r, head.size());
  if (!l2.problem.empty()) return l2.problem;
  switch (l2.ethertype) {
    case kEthIpv4: return l2.vlans + describe_ipv4(r, l2.l3_offset);
    case kEthIpv6: return l2.vlans + describe_ipv6(r, l2.l3_offset);
    case kEthArp: return l2.vlans + "arp";
    default: return l2.vlans + "ethertype " + hex16(l2.ethertype);
  }
}

std::optional<std::string> packet_source_address(std::span<const std::uint8_t> head) {
  const Reader r(head);
  const L2 l2 = walk_l2(r, head.size());
  if (!l2.problem.empty()) return std::nullopt;
  constexpr std::size_t ipv4_source_offset = 12, ipv6_source_offset = 8;
  if (l2.ethertype == kEthIpv4 && r.has(l2.l3_offset, kIpv4MinHeaderBytes) && (r.u8(l2.l3_offset) >> 4) == 4)
    return address(AF_INET, r.at(l2.l3_offset + ipv4_source_offset));
  if (l2.ethertype == kEthIpv6 && r.has(l2.l3_offset, kIpv6HeaderBytes) && (r.u8(l2.l3_offset) >> 4) == 6)
    return address(AF_INET6, r.at(l2.l3_offset + ipv6_source_offset));
  return std::nullopt;
}

}  // namespace sluice::cli
