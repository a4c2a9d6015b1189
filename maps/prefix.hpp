#pragma once
// CIDR text <-> the LPM trie keys of the contract (sluice_lpm_v4_key,
// sluice_lpm_v6_key: prefixlen in host order, address in network order).
//
// Accepted: "198.18.0.0/15", "2001:db8::/32", and a bare address, which
// means a host route (/32 or /128). Rejected, with the text and the reason
// in the error: whitespace anywhere, more than one '/', an empty, signed,
// non-decimal or zero-padded length ("/015"), a length beyond 32/128, IPv4
// octets with leading zeros ("010.0.0.0": octal or decimal?), IPv6 zone ids,
// and host bits set beyond the prefix ("198.18.0.1/15").
#include <string>
#include <string_view>
#include <variant>

#include "contract.hpp"
#include "error.hpp"

namespace sluice::maps {

using Prefix = std::variant<sluice_lpm_v4_key, sluice_lpm_v6_key>;

// Error.errnum is EINVAL; message "bad prefix '<text>': <reason>".
[[nodiscard]] Result<Prefix> parse_prefix(std::string_view text);

// Canonical text: inet_ntop form plus "/len", always with the length.
std::string to_string(const sluice_lpm_v4_key& key);
std::string to_string(const sluice_lpm_v6_key& key);
std::string to_string(const Prefix& prefix);

}  // namespace sluice::maps
