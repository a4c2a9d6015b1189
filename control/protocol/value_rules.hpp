#pragma once
// Rules and bounds of values that more than one door accepts: the control
// protocol's ops (and so sluiced), the YAML desired state (control/config)
// and sluicectl's options. Defined once here so the doors cannot drift apart.
// Standard headers only: control/config and its fuzz harness take this
// header alone, without the rest of the protocol.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::protocol {

// config.set / defaults.drop_sample_every: 1 in N filter drops is sampled
// into the events (0 = off). 1 in a billion is practically off; anything
// above is a typo.
inline constexpr std::uint32_t max_drop_sample_every = 1'000'000'000;

// conn.list: flows in one reply, when the request says nothing and at most.
// A reply of the maximum is ~20 MB of JSON; bigger tables are read in parts.
inline constexpr std::uint64_t default_conn_list_limit = 1000;
inline constexpr std::uint64_t max_conn_list_limit = 100'000;

// route.list: routes in one reply, when the request says nothing and at
// most: a page of `limit` from `offset`, in table order (static routes as
// configured, then the kernel's while sync is on) or by packets (most first,
// ties in table order). Bounded whatever the table holds (a million routes
// are read in pages); the reply says the total.
inline constexpr std::uint64_t default_route_list_limit = 1000;
inline constexpr std::uint64_t max_route_list_limit = 100'000;

// Linux interface names as the kernel takes them (dev_valid_name): 1..15
// bytes (IFNAMSIZ - 1), not "." or "..", no '/', ':', whitespace or control
// byte. What is wrong with `name`, or nothing.
inline constexpr std::size_t max_ifname_bytes = 15;
inline std::optional<std::string> interface_name_problem(std::string_view name) {
  if (name.empty()) return "empty";
  if (name.size() > max_ifname_bytes) return "longer than " + std::to_string(max_ifname_bytes) + " bytes";
  if (name == "." || name == "..") return "reserved name";
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '/' || c == ':' || u <= ' ' || u == 0x7f) return "contains '/', ':', whitespace or a control byte";
  }
  return std::nullopt;
}

}  // namespace sluice::protocol
