#pragma once
// The frame sluice-trafficgen sends, built from its options: Ethernet,
// IPv4 or IPv6, UDP or TCP (a SYN), padded to the frame size, checksums
// computed; and the configuration its XDP program varies the flow by.
#include <array>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "trafficgen.h"

namespace sluice::trafficgen {

// Frame length without the FCS: 60 is the Ethernet minimum, 1514 a 1500-byte MTU.
inline constexpr std::size_t min_frame_bytes = 60;
inline constexpr std::size_t max_frame_bytes = 1514;
inline constexpr std::uint32_t max_flows = 65535;

enum class Protocol { udp, tcp };

struct FrameSpec {
  std::array<std::uint8_t, 6> src_mac{}, dst_mac{};
  std::string src, dst;  // addresses, one family
  Protocol protocol = Protocol::udp;
  std::uint16_t sport = 1024, dport = 9;
  std::uint32_t flows = 1;  // source ports sport .. sport + flows - 1
  std::size_t frame_bytes = min_frame_bytes;
};

struct Frame {
  std::vector<std::uint8_t> bytes;
  trafficgen_config config{};
};

// The frame, or what is wrong with the spec (naming the field and value).
std::variant<Frame, std::string> build_frame(const FrameSpec& spec);

// "02:00:00:00:00:01"; nullopt-like empty string error otherwise.
std::variant<std::array<std::uint8_t, 6>, std::string> parse_mac(const std::string& text);

}  // namespace sluice::trafficgen
