#pragma once
// The packet head carried by a drop event (up to SLUICE_EVENT_HEAD_BYTES of
// the frame, hex-encoded on the socket), decoded for people:
// "10.0.0.1:40000 > 10.0.0.2:22 tcp [S]". Every byte comes from a packet the
// data plane dropped — often because it was malformed — so decoding checks
// every length and says where the head ends instead of reading past it.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::cli {

// Lower- or upper-case hex, even length, at most max_bytes decoded bytes.
// nullopt: not such a string.
std::optional<std::vector<std::uint8_t>> decode_hex(std::string_view hex, std::size_t max_bytes);

// One line: addresses, ports, protocol, TCP flags / ICMP type; VLAN tags as
// "vlan 100"; non-IP frames by ethertype; "truncated ..." where the head
// ends inside a header.
std::string describe_packet_head(std::span<const std::uint8_t> head);

// The IPv4 or IPv6 source address of the head ("198.18.0.66"); nullopt when
// the head is not IP or ends before the source (sluicectl top's dropped sources).
std::optional<std::string> packet_source_address(std::span<const std::uint8_t> head);

}  // namespace sluice::cli
