#pragma once
// The one parser of integers written as text, shared by every door that
// takes them: sluicectl's options, the filter's text forms (ports, protocol
// numbers) that the control protocol and the YAML desired state carry, and
// the YAML's own numbers. Integers are decimal everywhere: "010" is refused
// rather than read as 8 (strtoul base 0) or as 10 (a reader's guess), and so
// are base prefixes (0x20, 0o7, 0b1), signs (+5, -1), exponents (1e3),
// fractions, spaces and digit separators. "0" itself is fine.
//
// Standard headers only: the fuzz harnesses compile it without the rest of
// the project.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::maps {

struct ParsedDecimal {
  std::optional<std::uint64_t> value;  // set when the text is a decimal integer in range
  std::string reason;                  // otherwise: what is wrong ("a leading zero is not allowed: ...")
  std::string problem;                 // the same, naming the value first ("'010': a leading zero ...")
};

// Longest value quoted back in a problem: a hostile megabyte never comes back.
inline constexpr std::size_t decimal_quote_chars = 64;

inline ParsedDecimal parse_decimal(std::string_view text, std::uint64_t min, std::uint64_t max) {
  std::string quoted = "'" + std::string(text.substr(0, decimal_quote_chars)) +
                       (text.size() > decimal_quote_chars ? "...'" : "'");
  const std::string expected = "; expected a decimal integer in " + std::to_string(min) + ".." + std::to_string(max);
  auto refuse = [&](std::string_view why) {
    std::string reason = std::string(why) + expected;
    return ParsedDecimal{std::nullopt, reason, quoted + ": " + reason};
  };
  if (text.empty()) return refuse("empty");
  if (text.front() == '+' || text.front() == '-') return refuse("a sign is not allowed");
  if (text.size() > 1 && text.front() == '0') {
    const char second = text[1];
    if (second == 'x' || second == 'X' || second == 'o' || second == 'O' || second == 'b' || second == 'B')
      return refuse("a base prefix is not allowed (integers are decimal)");
    if (second >= '0' && second <= '9') return refuse("a leading zero is not allowed (integers are decimal: 010 is not 8)");
  }
  std::uint64_t value = 0;
  bool overflow = false;
  for (char c : text) {
    if (c < '0' || c > '9') return refuse("only the digits 0-9 are allowed");
    const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) overflow = true;
    else value = value * 10 + digit;
  }
  if (overflow || value < min || value > max) return refuse("out of range");
  return ParsedDecimal{value, {}, {}};
}

}  // namespace sluice::maps
