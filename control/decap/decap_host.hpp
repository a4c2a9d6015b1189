#pragma once
// sluice-decap on a backend: attaches xdp/decap.bpf.c to an interface through
// libxdp, keeps that interface's accepted outer destinations and counters in
// maps pinned under <pin root>/<ifname>/, and reads them back for `status`.
//
// One program and one set of maps per interface: an interface's accepted
// addresses are its own, and detaching one leaves the others alone. Pins are
// keyed by interface name, so two network namespaces sharing one bpffs need
// different --bpffs roots (or interface names).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "maps.hpp"
#include "sluice_decap.h"
#include "xdp_attachment.hpp"

namespace sluice::decap {

template <class T>
using Result = maps::Result<T>;

inline constexpr const char* default_pin_root = "/sys/fs/bpf/sluice-decap";
// The XDP function name in decap.bpf.c: how libxdp finds our program on an interface.
inline constexpr const char* program_name = "sluice_decap";
// Pins carry the map names (bpf_map__name), as sluiced's do.
inline constexpr const char* addresses_pin = "decap_addresses";
inline constexpr const char* counters_pin = "decap_counters";
inline constexpr const char* sources_v4_pin = "decap_sources_v4";
inline constexpr const char* sources_v6_pin = "decap_sources_v6";

struct AcceptedAddress {
  sluice_decap_addr_key key{};
  sluice_decap_addr_origin origin = SLUICE_DECAP_ADDR_CONFIGURED;
};

// An outer source decapsulated from: a prefix of decap_sources_v4 or _v6.
struct AllowedSource {
  std::variant<sluice_decap_source4_key, sluice_decap_source6_key> prefix;
  sluice_decap_source_origin origin = SLUICE_DECAP_SOURCE_CONFIGURED;
};

// "198.18.0.100", "198.18.0.0/24", "2001:db8::100/128" (a bare address is a
// host prefix; host bits beyond the length are refused); the error names
// `field` and the text.
Result<AllowedSource> parse_source(std::string_view text, std::string_view field = "--source");
std::string source_text(const AllowedSource& source);
std::string_view source_origin_name(sluice_decap_source_origin origin);

// "198.18.0.2" / "2001:db8::2"; the error names `field` and the text.
Result<sluice_decap_addr_key> parse_address(std::string_view text, std::string_view field = "--address");
std::string address_text(const sluice_decap_addr_key& key);
std::string_view origin_name(sluice_decap_addr_origin origin);
// "decap_4in4", "not_for_us", ...; "unknown" out of range.
std::string_view outcome_name(std::uint32_t outcome);
// 1..IFNAMSIZ-1 characters, none of them '/', whitespace or NUL, not "." or
// "..": the name becomes a directory under the pin root.
Result<void> validate_ifname(std::string_view ifname);
// The addresses of ifname now (getifaddrs), IPv4 and IPv6.
Result<std::vector<sluice_decap_addr_key>> interface_addresses(const std::string& ifname);

struct AttachRequest {
  std::string ifname;
  dataplane::AttachMode mode = dataplane::AttachMode::Native;
  std::vector<std::string> addresses;  // --address, in addition to the interface's own
  // --source: the only outer sources decapsulated from. Empty is refused
  // unless any_source (--any-source) says every source is meant.
  std::vector<std::string> sources;
  bool any_source = false;
  std::string pin_root = default_pin_root;
};

struct AttachReport {
  bool already_attached = false;  // true: the running program kept, its addresses replaced
  dataplane::AttachedProgram program;
  std::vector<AcceptedAddress> addresses;
  std::vector<AllowedSource> sources;
};

// Attaches (or, when already attached, refreshes the accepted addresses and
// sources of) sluice-decap on the interface. A refresh writes the new set
// before it removes what is no longer wanted: a source or address kept
// throughout is accepted all along, and none outside old and new ever is. Input is checked before anything changes;
// a failed fresh attach removes what it pinned.
Result<AttachReport> attach(const AttachRequest& request);

struct DetachReport {
  bool was_attached = false;
  bool had_pins = false;
};
// Detaches our program (only ours: another XDP program is left alone) and
// removes the interface's pins and pin directory (and the root when empty).
Result<DetachReport> detach(const std::string& ifname, const std::string& pin_root = default_pin_root);

struct InterfaceStatus {
  std::string ifname;
  bool interface_exists = false;
  std::optional<dataplane::AttachedProgram> program;  // empty: not attached
  std::vector<AcceptedAddress> addresses;
  std::vector<AllowedSource> sources;
  std::array<sluice_decap_counter, SLUICE_DECAP_OUTCOME_COUNT> counters{};  // summed over CPUs
  std::string problem;  // why part of the above could not be read (empty when all was)
};

// Every interface with pins under pin_root, or just `only`.
Result<std::vector<InterfaceStatus>> status(const std::string& pin_root = default_pin_root,
                                            const std::optional<std::string>& only = std::nullopt);

std::string status_json(const std::vector<InterfaceStatus>& interfaces);
std::string status_text(const std::vector<InterfaceStatus>& interfaces);

}  // namespace sluice::decap
