// Packet builder for tests: wire-format Ethernet frames for BPF_PROG_TEST_RUN.
//
// Layers are appended outer first; build() serialises them back to front so
// every automatic field (EtherType, IP protocol / next header, lengths,
// checksums) is computed from what actually follows. Every automatic field
// has an override so deliberately malformed frames are one option away.
//
//   auto f = PacketBuilder()
//                .eth("02:00:00:00:00:01", "02:00:00:00:00:02")  // src, dst
//                .vlan(100)
//                .ipv4("198.18.0.1", "198.18.1.1", {.ttl = 64, .id = 7})
//                .tcp(40000, 80, {.flags = TcpFlags::SYN, .seq = 1})
//                .payload("hello")
//                .build();
//
// Rules of inference (when no override is given):
//  - eth / vlan EtherType: vlan -> that tag's TPID, ipv4 -> 0x0800,
//    ipv6 -> 0x86DD; anything else (raw/payload/nothing) needs the explicit
//    ethertype argument, otherwise build() throws std::logic_error.
//  - IPv4 protocol / IPv6 & extension next header: from the next layer
//    (tcp 6, udp 17, icmp 1, icmpv6 58, ipv4 4, ipv6 41, hop-by-hop 0,
//    routing 43, fragment 44, AH 51, dest-opts 60). With nothing or raw bytes
//    next: IPv6 chains use 59 (No Next Header), IPv4 uses 255.
//  - Lengths cover every layer that follows (including payload/raw), never
//    the trailer added by pad_to()/trailer().
//  - L4 checksums use the nearest enclosing IP layer for the pseudo header;
//    for IPv6 the destination is the final one (last address of a routing
//    header type 0/2 with segments_left > 0) and the length is the
//    upper-layer length (after extension headers). The IPv4 header checksum
//    is computed over the bytes actually emitted, after overrides.
//    An L4 layer with no enclosing IP layer gets a checksum without pseudo
//    header.
//  - Checksums are computed over the bytes present: a first fragment's L4
//    checksum covers only what is in this frame.
#pragma once

#include <linux/if_ether.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;
using Ipv4Addr = std::array<uint8_t, 4>;
using Ipv6Addr = std::array<uint8_t, 16>;

// ---- helpers -------------------------------------------------------------
// "aa:bb:cc:dd:ee:ff" (or '-' separated); throws std::invalid_argument.
Mac parse_mac(std::string_view text);
// inet_pton wrappers; throw std::invalid_argument.
Ipv4Addr parse_ipv4(std::string_view text);
Ipv6Addr parse_ipv6(std::string_view text);

// One's-complement sum of big-endian 16-bit words (odd byte padded with 0),
// not folded, not inverted: chain partial sums over several buffers.
uint64_t checksum_add(std::span<const uint8_t> data, uint64_t sum = 0);
// Fold and invert: the value of the checksum field (host order number whose
// big-endian bytes go on the wire). Over data that already contains a correct
// checksum the result is 0.
uint16_t checksum_finish(uint64_t sum);
uint16_t internet_checksum(std::span<const uint8_t> data, uint64_t initial = 0);
// RFC 791 header checksum; returns 0 over a header whose checksum is right.
uint16_t ipv4_checksum(std::span<const uint8_t> header);

struct TcpFlags {
  static constexpr uint8_t FIN = 0x01;
  static constexpr uint8_t SYN = 0x02;
  static constexpr uint8_t RST = 0x04;
  static constexpr uint8_t PSH = 0x08;
  static constexpr uint8_t ACK = 0x10;
  static constexpr uint8_t URG = 0x20;
  static constexpr uint8_t ECE = 0x40;
  static constexpr uint8_t CWR = 0x80;
};

// ---- per-layer options (designated initializers; declaration order) -----
struct Ipv4Opts {
  uint8_t ttl = 64;
  uint8_t tos = 0;
  uint16_t id = 0;
  bool dont_fragment = false;
  bool more_fragments = false;
  uint16_t frag_offset_bytes = 0;  // multiple of 8, else invalid_argument
  Bytes options = {};              // padded with zeros (EOL) to 4 bytes
  std::optional<uint8_t> ihl_override = std::nullopt;  // low 4 bits written
  std::optional<uint16_t> total_length_override = std::nullopt;
  std::optional<uint8_t> version_override = std::nullopt;  // low 4 bits
  std::optional<uint8_t> protocol_override = std::nullopt;
  std::optional<uint16_t> checksum_override = std::nullopt;
  bool reserved_flag = false;  // the "evil bit" (0x8000 of frag_off)
};

struct Ipv6Opts {
  uint8_t hop_limit = 64;
  uint8_t traffic_class = 0;
  uint32_t flow_label = 0;  // 20 bits
  std::optional<uint16_t> payload_length_override = std::nullopt;
  std::optional<uint8_t> version_override = std::nullopt;
  std::optional<uint8_t> next_header_override = std::nullopt;
};

// Hop-by-hop and destination options headers.
struct Ipv6OptionsHdrOpts {
  Bytes options = {};  // TLV bytes, as they go on the wire
  bool pad = true;     // pad to a multiple of 8 with Pad1/PadN
  std::optional<uint8_t> hdr_ext_len_override = std::nullopt;
  std::optional<uint8_t> next_header_override = std::nullopt;
};

struct Ipv6RoutingOpts {
  uint8_t routing_type = 0;
  std::optional<uint8_t> segments_left = std::nullopt;  // default: #segments
  // Type-specific data after the first 4 bytes; if set it replaces the
  // default layout (4 reserved bytes + addresses). Zero-padded to 8.
  std::optional<Bytes> type_data = std::nullopt;
  std::optional<uint8_t> hdr_ext_len_override = std::nullopt;
  std::optional<uint8_t> next_header_override = std::nullopt;
};

struct Ipv6FragOpts {
  uint8_t reserved = 0;       // second byte
  uint8_t reserved_bits = 0;  // the 2 bits between offset and M
  std::optional<uint8_t> next_header_override = std::nullopt;
  // The Hdr Ext Len position of a fragment header is the reserved byte;
  // use .reserved to put garbage there.
};

struct Ipv6AhOpts {
  uint32_t spi = 0x100;
  uint32_t seq = 1;
  Bytes icv = Bytes(12, 0);  // HMAC-96 sized; 12 + icv should be % 8 == 0
  std::optional<uint8_t> payload_len_override = std::nullopt;  // 32-bit words - 2
  std::optional<uint8_t> next_header_override = std::nullopt;
};

struct TcpOpts {
  uint8_t flags = TcpFlags::SYN;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint16_t window = 65535;
  uint16_t urg_ptr = 0;
  std::optional<uint8_t> doff_override = std::nullopt;  // 32-bit words, low 4 bits
  Bytes options = {};  // padded with zeros (EOL) to 4 bytes
  std::optional<uint16_t> checksum_override = std::nullopt;
  uint8_t reserved_bits = 0;  // the 4 bits next to doff
};

struct UdpOpts {
  std::optional<uint16_t> length_override = std::nullopt;
  // 0 means "no checksum" (legal for IPv4 only). A computed 0 is sent as 0xFFFF.
  std::optional<uint16_t> checksum_override = std::nullopt;
};

struct IcmpOpts {
  std::optional<uint16_t> checksum_override = std::nullopt;
};

// Rest-of-header word for echo request/reply: identifier and sequence.
constexpr uint32_t icmp_echo_rest(uint16_t id, uint16_t seq) {
  return (uint32_t{id} << 16) | seq;
}

// ---- the builder ---------------------------------------------------------
struct Layer;  // defined in packet_builder.cpp

class PacketBuilder {
 public:
  PacketBuilder();
  PacketBuilder(const PacketBuilder&);
  PacketBuilder(PacketBuilder&&) noexcept;
  PacketBuilder& operator=(const PacketBuilder&);
  PacketBuilder& operator=(PacketBuilder&&) noexcept;
  ~PacketBuilder();

  // L2. Note the argument order: source first.
  PacketBuilder& eth(std::string_view src, std::string_view dst,
                     std::optional<uint16_t> ethertype = std::nullopt);
  // 802.1Q / 802.1ad tag, outer first; any number. ethertype_override sets
  // the EtherType following this tag (instead of inferring it).
  PacketBuilder& vlan(uint16_t vid, uint16_t tpid = ETH_P_8021Q, uint8_t pcp = 0,
                      bool dei = false,
                      std::optional<uint16_t> ethertype_override = std::nullopt);

  // L3.
  PacketBuilder& ipv4(std::string_view src, std::string_view dst, Ipv4Opts opts = {});
  PacketBuilder& ipv6(std::string_view src, std::string_view dst, Ipv6Opts opts = {});
  PacketBuilder& ipv6_hop_by_hop(Ipv6OptionsHdrOpts opts = {});
  PacketBuilder& ipv6_dest_opts(Ipv6OptionsHdrOpts opts = {});
  PacketBuilder& ipv6_routing(const std::vector<std::string>& segments,
                              Ipv6RoutingOpts opts = {});
  PacketBuilder& ipv6_fragment(uint16_t offset_bytes, bool more, uint32_t id,
                               Ipv6FragOpts opts = {});
  PacketBuilder& ipv6_ah(Ipv6AhOpts opts = {});

  // L4.
  PacketBuilder& tcp(uint16_t sport, uint16_t dport, TcpOpts opts = {});
  PacketBuilder& udp(uint16_t sport, uint16_t dport, UdpOpts opts = {});
  PacketBuilder& icmp(uint8_t type, uint8_t code, uint32_t rest = 0, IcmpOpts opts = {});
  PacketBuilder& icmpv6(uint8_t type, uint8_t code, uint32_t rest = 0, IcmpOpts opts = {});

  // Opaque bytes after any layer (counted in lengths and checksums of the
  // layers before them). payload() and raw() are the same thing.
  PacketBuilder& payload(std::span<const uint8_t> bytes);
  PacketBuilder& payload(std::string_view text);
  PacketBuilder& payload(std::initializer_list<uint8_t> bytes);
  PacketBuilder& raw(std::span<const uint8_t> bytes);
  PacketBuilder& raw(std::initializer_list<uint8_t> bytes);

  // Final-frame steps, applied by build() in this order after all lengths and
  // checksums: trailer bytes, zero padding up to n, truncation to n.
  PacketBuilder& trailer(std::span<const uint8_t> bytes);  // not counted in any length
  PacketBuilder& pad_to(std::size_t n);                    // zeros; no-op if already >= n
  PacketBuilder& truncate_to(std::size_t n);               // no-op if already <= n

  Bytes build() const;

 private:
  std::vector<Layer> layers_;
  Bytes trailer_;
  std::optional<std::size_t> pad_to_;
  std::optional<std::size_t> truncate_to_;
};

}  // namespace sluice::test
