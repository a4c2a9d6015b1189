#include "prefix.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>

namespace sluice::maps {
namespace {

constexpr unsigned kBitsPerByte = 8;
constexpr unsigned kIpv4Bits = 32;
constexpr unsigned kIpv6Bits = 128;

Error bad_prefix(std::string_view text, std::string_view reason) {
  return Error{EINVAL, "bad prefix '" + std::string(text) + "': " + std::string(reason)};
}

// Leading zeros are ambiguous: inet_aton reads "010" as octal 8, inet_pton rejects it.
bool has_zero_padded_octet(std::string_view address) {
  std::size_t start = 0;
  while (start <= address.size()) {
    const std::size_t end = std::min(address.find('.', start), address.size());
    const std::string_view octet = address.substr(start, end - start);
    if (octet.size() > 1 && octet.front() == '0') return true;
    start = end + 1;
  }
  return false;
}

// Any bit set after the first prefix_bits bits of addr?
template <std::size_t N>
bool host_bits_set(const std::array<std::uint8_t, N>& addr, unsigned prefix_bits) {
  for (std::size_t byte = 0; byte < N; ++byte) {
    const unsigned first_bit = static_cast<unsigned>(byte) * kBitsPerByte;
    if (first_bit + kBitsPerByte <= prefix_bits) continue;
    const unsigned network_bits = prefix_bits > first_bit ? prefix_bits - first_bit : 0;
    const auto host_mask = static_cast<std::uint8_t>(0xffu >> network_bits);
    if (addr[byte] & host_mask) return true;
  }
  return false;
}

template <class Key, std::size_t N>
Key make_key(unsigned prefix_bits, const std::array<std::uint8_t, N>& addr) {
  static_assert(sizeof(Key::addr) == N);
  Key key{};
  key.prefixlen = prefix_bits;
  std::copy(addr.begin(), addr.end(), key.addr);
  return key;
}

}  // namespace

Result<Prefix> parse_prefix(std::string_view text) {
  if (text.empty()) return bad_prefix(text, "empty");
  if (std::any_of(text.begin(), text.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return std::isspace(byte) || std::iscntrl(byte);
      }))
    return bad_prefix(text, "contains whitespace or control characters");

  const std::size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  if (address.empty()) return bad_prefix(text, "missing address");
  const bool is_v6 = address.find(':') != std::string_view::npos;
  const unsigned max_bits = is_v6 ? kIpv6Bits : kIpv4Bits;

  unsigned prefix_bits = max_bits;  // a bare address is a host route
  if (slash != std::string_view::npos) {
    const std::string_view length = text.substr(slash + 1);
    if (length.empty()) return bad_prefix(text, "missing prefix length after '/'");
    if (!std::all_of(length.begin(), length.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return bad_prefix(text, "prefix length '" + std::string(length) + "' is not a decimal number");
    if (length.size() > 1 && length.front() == '0')
      return bad_prefix(text, "prefix length '" + std::string(length) + "' has a leading zero");
    unsigned parsed = 0;
    const auto [end, status] = std::from_chars(length.data(), length.data() + length.size(), parsed);
    if (status != std::errc{} || end != length.data() + length.size() || parsed > max_bits)
      return bad_prefix(text, "prefix length " + std::string(length) + " out of range 0.." + std::to_string(max_bits));
    prefix_bits = parsed;
  }

  const std::string address_text(address);  // inet_pton needs a NUL-terminated string
  if (is_v6) {
    std::array<std::uint8_t, kIpv6Bits / kBitsPerByte> addr{};
    if (inet_pton(AF_INET6, address_text.c_str(), addr.data()) != 1)
      return bad_prefix(text, "'" + address_text + "' is not an IPv6 address");
    if (host_bits_set(addr, prefix_bits))
      return bad_prefix(text, "host bits set beyond /" + std::to_string(prefix_bits));
    return Prefix{make_key<sluice_lpm_v6_key>(prefix_bits, addr)};
  }
  if (has_zero_padded_octet(address))
    return bad_prefix(text, "IPv4 octet with a leading zero is ambiguous (octal or decimal?)");
  std::array<std::uint8_t, kIpv4Bits / kBitsPerByte> addr{};
  if (inet_pton(AF_INET, address_text.c_str(), addr.data()) != 1)
    return bad_prefix(text, "'" + address_text + "' is not an IPv4 address");
  if (host_bits_set(addr, prefix_bits))
    return bad_prefix(text, "host bits set beyond /" + std::to_string(prefix_bits));
  return Prefix{make_key<sluice_lpm_v4_key>(prefix_bits, addr)};
}

std::string to_string(const sluice_lpm_v4_key& key) {
  std::array<char, INET_ADDRSTRLEN> buffer{};
  inet_ntop(AF_INET, key.addr, buffer.data(), buffer.size());
  return std::string(buffer.data()) + "/" + std::to_string(key.prefixlen);
}

std::string to_string(const sluice_lpm_v6_key& key) {
  std::array<char, INET6_ADDRSTRLEN> buffer{};
  inet_ntop(AF_INET6, key.addr, buffer.data(), buffer.size());
  return std::string(buffer.data()) + "/" + std::to_string(key.prefixlen);
}

std::string to_string(const Prefix& prefix) {
  return std::visit([](const auto& key) { return to_string(key); }, prefix);
}

}  // namespace sluice::maps
