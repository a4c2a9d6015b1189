#include "traffic_frame.hpp"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace sluice::trafficgen {
namespace {

constexpr std::size_t eth_bytes = 14, ipv4_bytes = 20, ipv6_bytes = 40, udp_bytes = 8, tcp_bytes = 20;
constexpr std::uint8_t default_ttl = 64;
constexpr std::uint8_t tcp_syn = 0x02;
constexpr std::uint16_t tcp_window = 65535;
constexpr std::uint8_t tcp_data_offset_words = 5;

void put16(std::vector<std::uint8_t>& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}

// Ones' complement sum of 16-bit words (RFC 1071), not yet inverted.
std::uint32_t sum16(const std::uint8_t* data, std::size_t len, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
  if (len % 2) sum += static_cast<std::uint32_t>(data[len - 1] << 8);
  return sum;
}

std::uint16_t fold(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

}  // namespace

std::variant<std::array<std::uint8_t, 6>, std::string> parse_mac(const std::string& text) {
  std::array<std::uint8_t, 6> mac{};
  unsigned parts[6];
  char trailing = 0;
  if (text.size() != 17 ||
      std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &parts[0], &parts[1], &parts[2], &parts[3], &parts[4],
                  &parts[5], &trailing) != 6)
    return "'" + text + "' is not a MAC address (aa:bb:cc:dd:ee:ff)";
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<std::uint8_t>(parts[i]);
  return mac;
}

std::variant<Frame, std::string> build_frame(const FrameSpec& spec) {
  in6_addr src6{}, dst6{};
  in_addr src4{}, dst4{};
  const bool v4 = inet_pton(AF_INET, spec.src.c_str(), &src4) == 1;
  const bool v6 = !v4 && inet_pton(AF_INET6, spec.src.c_str(), &src6) == 1;
  if (!v4 && !v6) return "--src: '" + spec.src + "' is not an IPv4 or IPv6 address";
  if (v4 ? inet_pton(AF_INET, spec.dst.c_str(), &dst4) != 1 : inet_pton(AF_INET6, spec.dst.c_str(), &dst6) != 1)
    return "--dst: '" + spec.dst + "' is not an " + (v4 ? "IPv4" : "IPv6") + " address (the family of --src)";
  if (spec.flows < 1 || spec.flows > max_flows) return "--flows: " + std::to_string(spec.flows) + " is not 1..65535";
  if (spec.sport == 0 || spec.sport + spec.flows - 1 > 65535)
    return "--sport " + std::to_string(spec.sport) + " with --flows " + std::to_string(spec.flows) +
           ": the source ports must stay within 1..65535";
  const std::size_t l3 = v4 ? ipv4_bytes : ipv6_bytes;
  const std::size_t l4 = spec.protocol == Protocol::udp ? udp_bytes : tcp_bytes;
  const std::size_t headers = eth_bytes + l3 + std::max<std::size_t>(l4, TRAFFICGEN_L4_TOUCHED_BYTES);
  const std::size_t least = std::max(min_frame_bytes, headers);
  if (spec.frame_bytes < least || spec.frame_bytes > max_frame_bytes)
    return "--size: " + std::to_string(spec.frame_bytes) + " is not " + std::to_string(least) + ".." +
           std::to_string(max_frame_bytes) + " bytes (the frame without its FCS)";

  Frame frame;
  auto& b = frame.bytes;
  b.assign(spec.frame_bytes, 0);
  std::memcpy(&b[0], spec.dst_mac.data(), 6);
  std::memcpy(&b[6], spec.src_mac.data(), 6);
  put16(b, 12, v4 ? ETH_P_IP : ETH_P_IPV6);
  const std::size_t ip = eth_bytes, at4 = eth_bytes + l3;
  const std::size_t l4_len = spec.frame_bytes - at4;  // payload: zero padding up to the frame size
  const std::uint8_t proto = spec.protocol == Protocol::udp ? IPPROTO_UDP : IPPROTO_TCP;
  std::uint32_t pseudo = 0;
  if (v4) {
    b[ip] = 0x45;
    put16(b, ip + 2, static_cast<std::uint16_t>(ipv4_bytes + l4_len));
    b[ip + 8] = default_ttl;
    b[ip + 9] = proto;
    std::memcpy(&b[ip + 12], &src4, 4);
    std::memcpy(&b[ip + 16], &dst4, 4);
    put16(b, ip + 10, fold(sum16(&b[ip], ipv4_bytes)));
    pseudo = sum16(&b[ip + 12], 8, proto + static_cast<std::uint32_t>(l4_len));
  } else {
    b[ip] = 0x60;
    put16(b, ip + 4, static_cast<std::uint16_t>(l4_len));
    b[ip + 6] = proto;
    b[ip + 7] = default_ttl;
    std::memcpy(&b[ip + 8], &src6, 16);
    std::memcpy(&b[ip + 24], &dst6, 16);
    pseudo = sum16(&b[ip + 8], 32, proto + static_cast<std::uint32_t>(l4_len));
  }
  put16(b, at4, spec.sport);
  put16(b, at4 + 2, spec.dport);
  if (spec.protocol == Protocol::udp) {
    put16(b, at4 + 4, static_cast<std::uint16_t>(l4_len));
    if (v6) {  // mandatory over IPv6; over IPv4 0 says "none", which the generator keeps
      std::uint16_t check = fold(sum16(&b[at4], l4_len, pseudo));
      put16(b, at4 + 6, check ? check : 0xffff);
    }
  } else {
    b[at4 + 12] = tcp_data_offset_words << 4;
    b[at4 + 13] = tcp_syn;
    put16(b, at4 + 14, tcp_window);
    put16(b, at4 + 16, fold(sum16(&b[at4], l4_len, pseudo)));
  }
  frame.config.l4_offset = static_cast<__u32>(at4);
  frame.config.csum = spec.protocol == Protocol::tcp ? TRAFFICGEN_CSUM_TCP : v6 ? TRAFFICGEN_CSUM_UDP : TRAFFICGEN_CSUM_NONE;
  frame.config.flows = spec.flows;
  frame.config.base_sport = spec.sport;
  // The template the generator restores before every frame (a rewriting receiver may have changed the page).
  frame.config.header_len = static_cast<__u32>(std::min<std::size_t>(b.size(), TRAFFICGEN_HEADER_MAX));
  std::copy_n(b.begin(), frame.config.header_len, frame.config.header);
  return frame;
}

}  // namespace sluice::trafficgen
