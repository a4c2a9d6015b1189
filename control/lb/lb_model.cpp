#include "lb_model.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <map>
#include <set>

#include "decimal.hpp"

namespace sluice::lb {
namespace {

constexpr std::size_t kIpv4Bytes = 4;
constexpr std::size_t kIpv6Bytes = 16;
constexpr std::size_t kMacBytes = 6;
constexpr std::uint64_t kPortMax = 65535;
// Longest piece of hostile text quoted back in an error.
constexpr std::size_t kQuoteChars = maps::decimal_quote_chars;

std::string quote(std::string_view text) {
  return "'" + std::string(text.substr(0, kQuoteChars)) + (text.size() > kQuoteChars ? "...'" : "'");
}

Error invalid(std::string message) { return Error{EINVAL, std::move(message)}; }

bool has_space_or_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return std::isspace(byte) || std::iscntrl(byte) || byte >= 0x80;
  });
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

Result<std::uint16_t> parse_port(std::string_view text, std::string_view what) {
  auto parsed = maps::parse_decimal(text, 1, kPortMax);
  if (!parsed.value) return invalid(std::string(what) + " " + parsed.problem);
  return static_cast<std::uint16_t>(*parsed.value);
}

bool is_unspecified(const Address& address) {
  const std::size_t used = address.family == 4 ? kIpv4Bytes : kIpv6Bytes;
  return std::all_of(address.bytes.begin(), address.bytes.begin() + used, [](std::uint8_t b) { return b == 0; });
}

bool is_multicast_or_broadcast(const Address& address) {
  constexpr std::uint8_t kV4MulticastFirst = 224;  // 224/4 multicast, 240/4 reserved, 255.255.255.255
  constexpr std::uint8_t kV6Multicast = 0xff;      // ff00::/8
  if (address.family == 4) return address.bytes[0] >= kV4MulticastFirst;
  return address.bytes[0] == kV6Multicast;
}

// A unicast address a packet can be sent to: not 0.0.0.0/::, not multicast or broadcast.
Result<void> check_unicast(const Address& address, std::string_view field) {
  if (is_unspecified(address))
    return invalid(std::string(field) + " " + to_string(address) + ": the unspecified address");
  if (is_multicast_or_broadcast(address))
    return invalid(std::string(field) + " " + to_string(address) + ": not a unicast address");
  return {};
}

bool is_http_path_char(char c) {
  // RFC 3986 path and query characters; no spaces, no controls, no fragment.
  const auto byte = static_cast<unsigned char>(c);
  if (std::isalnum(byte)) return true;
  constexpr std::string_view allowed = "-._~!$&'()*+,;=:@/?%";
  return allowed.find(c) != std::string_view::npos;
}

Result<void> check_http_path(std::string_view path, std::string_view field) {
  if (path.empty() || path.front() != '/')
    return invalid(std::string(field) + " " + quote(path) + ": must start with '/'");
  if (path.size() > kCheckPathMax)
    return invalid(std::string(field) + " " + quote(path) + ": longer than " + std::to_string(kCheckPathMax) +
                   " bytes");
  if (!std::all_of(path.begin(), path.end(), is_http_path_char))
    return invalid(std::string(field) + " " + quote(path) +
                   ": only letters, digits and -._~!$&'()*+,;=:@/?% are allowed");
  return {};
}

std::string vip_prefix(const Vip& vip) { return "vip " + to_string(vip.key) + ": "; }

Result<void> validate_check(const HealthCheck& check, const Vip& vip) {
  const std::string where = vip_prefix(vip) + "check.";
  if (check.port == 0 && vip.key.port == 0)
    return invalid(where + "port 0: a port-less VIP's check must name a port");
  if (check.kind == HealthCheck::Kind::Http) {
    if (auto path = check_http_path(check.http_path, where + "http_path"); !path) return path.error();
  }
  if (check.interval_ms < kCheckIntervalMsMin || check.interval_ms > kCheckIntervalMsMax)
    return invalid(where + "interval_ms " + std::to_string(check.interval_ms) + ": must be " +
                   std::to_string(kCheckIntervalMsMin) + ".." + std::to_string(kCheckIntervalMsMax));
  if (check.timeout_ms < kCheckTimeoutMsMin || check.timeout_ms > check.interval_ms)
    return invalid(where + "timeout_ms " + std::to_string(check.timeout_ms) + ": must be " +
                   std::to_string(kCheckTimeoutMsMin) + ".." + std::to_string(check.interval_ms) +
                   " (at most interval_ms)");
  if (check.rise == 0 || check.rise > kCheckCountMax)
    return invalid(where + "rise " + std::to_string(check.rise) + ": must be 1.." + std::to_string(kCheckCountMax));
  if (check.fall == 0 || check.fall > kCheckCountMax)
    return invalid(where + "fall " + std::to_string(check.fall) + ": must be 1.." + std::to_string(kCheckCountMax));
  return {};
}

}  // namespace

// ---- parsing ----

Result<Address> parse_address(std::string_view text) {
  const std::string what = "address " + quote(text);
  if (text.empty()) return invalid("address '': empty");
  if (text.size() >= INET6_ADDRSTRLEN) return invalid(what + ": too long for an IPv4 or IPv6 address");
  if (has_space_or_control(text)) return invalid(what + ": contains whitespace or control characters");
  const std::string nul_terminated(text);
  Address address;
  if (text.find(':') != std::string_view::npos) {
    if (text.find('%') != std::string_view::npos) return invalid(what + ": zone ids are not allowed");
    if (inet_pton(AF_INET6, nul_terminated.c_str(), address.bytes.data()) != 1)
      return invalid(what + ": not an IPv6 address");
    address.family = 6;
    return address;
  }
  if (has_zero_padded_octet(text))
    return invalid(what + ": IPv4 octet with a leading zero is ambiguous (octal or decimal?)");
  if (inet_pton(AF_INET, nul_terminated.c_str(), address.bytes.data()) != 1)
    return invalid(what + ": not an IPv4 address");
  address.family = 4;
  return address;
}

std::string to_string(const Address& address) {
  std::array<char, INET6_ADDRSTRLEN> buffer{};
  if (address.family != 4 && address.family != 6) return "<family " + std::to_string(address.family) + ">";
  inet_ntop(address.family == 4 ? AF_INET : AF_INET6, address.bytes.data(), buffer.data(), buffer.size());
  return buffer.data();
}

Result<Protocol> parse_protocol(std::string_view text) {
  if (text == "tcp") return Protocol::Tcp;
  if (text == "udp") return Protocol::Udp;
  return invalid("protocol " + quote(text) + ": unknown (tcp or udp)");
}

std::string_view to_string(Protocol protocol) { return protocol == Protocol::Tcp ? "tcp" : "udp"; }

Result<VipKey> parse_vip_key(std::string_view text) {
  const std::string what = "vip " + quote(text);
  const std::size_t slash = text.rfind('/');
  if (slash == std::string_view::npos) return invalid(what + ": missing '/tcp' or '/udp'");
  auto protocol = parse_protocol(text.substr(slash + 1));
  if (!protocol) return invalid(what + ": " + protocol.error().message);
  const std::string_view host_port = text.substr(0, slash);
  std::string_view host = host_port, port_text;
  bool has_port = false;
  if (!host_port.empty() && host_port.front() == '[') {
    const std::size_t close = host_port.find(']');
    if (close == std::string_view::npos) return invalid(what + ": '[' without ']'");
    host = host_port.substr(1, close - 1);
    const std::string_view rest = host_port.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return invalid(what + ": expected ':PORT' after ']'");
      port_text = rest.substr(1);
      has_port = true;
    }
  } else {
    const std::size_t colon = host_port.find(':');
    // "2001:db8::10:443/tcp" could be a port or the address's last group: IPv6 goes in brackets.
    if (colon != std::string_view::npos && host_port.find(':', colon + 1) != std::string_view::npos)
      return invalid(what + ": an IPv6 address goes in brackets ([2001:db8::10]:443/tcp, [2001:db8::10]/tcp)");
    if (colon != std::string_view::npos) {
      host = host_port.substr(0, colon);  // IPv4:PORT
      port_text = host_port.substr(colon + 1);
      has_port = true;
    }
  }
  auto address = parse_address(host);
  if (!address) return invalid(what + ": " + address.error().message);
  if (host_port.front() == '[' && address->family != 6) return invalid(what + ": brackets are for IPv6 addresses");
  VipKey key{.address = *address, .port = 0, .protocol = *protocol};
  if (has_port) {
    auto port = parse_port(port_text, "port");
    if (!port) return invalid(what + ": " + port.error().message);
    key.port = *port;
  }
  return key;
}

std::string to_string(const VipKey& key) {
  std::string host = key.address.family == 6 ? "[" + to_string(key.address) + "]" : to_string(key.address);
  if (key.port != 0) host += ":" + std::to_string(key.port);
  return host + "/" + std::string(to_string(key.protocol));
}

Result<HealthCheck> parse_health_check(std::string_view text) {
  const std::string what = "check " + quote(text);
  HealthCheck check;
  const std::size_t colon = text.find(':');
  const std::string_view kind = text.substr(0, colon);
  if (kind == "tcp") check.kind = HealthCheck::Kind::Tcp;
  else if (kind == "http") check.kind = HealthCheck::Kind::Http;
  else return invalid(what + ": kind " + quote(kind) + " unknown (tcp:PORT or http:PORT/PATH)");
  if (colon == std::string_view::npos) return check;  // the VIP's port, path "/"
  std::string_view rest = text.substr(colon + 1);
  std::string_view port_text = rest;
  if (check.kind == HealthCheck::Kind::Http) {
    const std::size_t slash = rest.find('/');
    if (slash != std::string_view::npos) {
      port_text = rest.substr(0, slash);
      check.http_path = std::string(rest.substr(slash));
      if (auto path = check_http_path(check.http_path, "path"); !path) return invalid(what + ": " + path.error().message);
    }
  }
  if (port_text.empty() && check.kind == HealthCheck::Kind::Http && rest.starts_with('/')) return check;
  auto port = parse_port(port_text, "port");
  if (!port) return invalid(what + ": " + port.error().message);
  check.port = *port;
  return check;
}

std::string to_string(const HealthCheck& check) {
  std::string text = check.kind == HealthCheck::Kind::Tcp ? "tcp" : "http";
  const bool path = check.kind == HealthCheck::Kind::Http && check.http_path != "/";
  if (check.port != 0 || path) text += ":";
  if (check.port != 0) text += std::to_string(check.port);
  if (path) text += check.http_path;  // "http:/healthz": the VIP's port
  return text;
}

Result<std::array<std::uint8_t, 6>> parse_mac(std::string_view text) {
  const std::string what = "mac " + quote(text);
  constexpr std::size_t kMacTextChars = kMacBytes * 3 - 1;
  if (text.size() != kMacTextChars) return invalid(what + ": expected six hex pairs aa:bb:cc:dd:ee:ff");
  std::array<std::uint8_t, kMacBytes> mac{};
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < kMacBytes; ++i) {
    const std::size_t at = i * 3;
    const int high = hex(text[at]), low = hex(text[at + 1]);
    if (high < 0 || low < 0 || (i + 1 < kMacBytes && text[at + 2] != ':'))
      return invalid(what + ": expected six hex pairs aa:bb:cc:dd:ee:ff");
    mac[i] = static_cast<std::uint8_t>(high * 16 + low);
  }
  return mac;
}

std::string mac_to_string(const std::array<std::uint8_t, 6>& mac) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string text;
  for (std::size_t i = 0; i < mac.size(); ++i) {
    if (i) text += ':';
    text += digits[mac[i] >> 4];
    text += digits[mac[i] & 0xf];
  }
  return text;
}

// ---- validation ----

bool is_prime(std::uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (std::uint64_t d = 3; d * d <= n; d += 2)
    if (n % d == 0) return false;
  return true;
}

Result<void> validate(const Backend& backend, const Vip& vip) {
  const std::string where = vip_prefix(vip) + "backend " + to_string(backend.address) + ": ";
  if (backend.address.family != 4 && backend.address.family != 6)
    return invalid(where + "address family " + std::to_string(backend.address.family) + ": must be 4 or 6");
  if (auto unicast = check_unicast(backend.address, "address"); !unicast) return invalid(where + unicast.error().message);
  if (backend.weight == 0 || backend.weight > SLUICE_LB_WEIGHT_MAX)
    return invalid(where + "weight " + std::to_string(backend.weight) + ": must be 1.." +
                   std::to_string(SLUICE_LB_WEIGHT_MAX));
  if (backend.state != BackendState::Up && backend.state != BackendState::Draining)
    return invalid(where + "state " + std::to_string(static_cast<int>(backend.state)) + ": unknown");
  // IPv4 inside IPv6 is encapsulable; IPv6 inside IPv4 is not (no 6in4 on the backend side).
  if (vip.key.address.family == 6 && backend.address.family == 4)
    return invalid(where + "an IPv4 backend cannot serve an IPv6 VIP (IPv6 does not fit in IPv4-in-IPv4)");
  if (vip.l2_dsr && !backend.mac) return invalid(where + "mac missing: an L2 DSR VIP's backends need their MAC");
  return {};
}

Result<void> validate(const Vip& vip) {
  const std::string where = vip_prefix(vip);
  if (vip.key.address.family != 4 && vip.key.address.family != 6)
    return invalid(where + "address family " + std::to_string(vip.key.address.family) + ": must be 4 or 6");
  if (auto unicast = check_unicast(vip.key.address, "address"); !unicast) return invalid(where + unicast.error().message);
  if (vip.key.protocol != Protocol::Tcp && vip.key.protocol != Protocol::Udp)
    return invalid(where + "protocol " + std::to_string(static_cast<int>(vip.key.protocol)) + ": unknown (tcp or udp)");
  if (vip.table_size > SLUICE_LB_MAGLEV_SIZE_MAX)
    return invalid(where + "table_size " + std::to_string(vip.table_size) + ": over the maximum " +
                   std::to_string(SLUICE_LB_MAGLEV_SIZE_MAX));
  if (!is_prime(vip.table_size))
    return invalid(where + "table_size " + std::to_string(vip.table_size) + ": not prime");
  if (vip.backends.size() > vip.table_size)
    return invalid(where + "backends: " + std::to_string(vip.backends.size()) + " backends, more than table_size " +
                   std::to_string(vip.table_size));
  if (vip.backends.size() > kBackendSlots)
    return invalid(where + "backends: " + std::to_string(vip.backends.size()) + " backends, more than the " +
                   std::to_string(kBackendSlots) + " backend slots");
  if (vip.check) {
    if (auto check = validate_check(*vip.check, vip); !check) return check;
  }
  std::set<Address> seen;
  for (const Backend& backend : vip.backends) {
    if (auto valid = validate(backend, vip); !valid) return valid;
    if (!seen.insert(backend.address).second)
      return invalid(where + "backend " + to_string(backend.address) + ": duplicate backend");
  }
  return {};
}

Result<void> validate(const LbSettings& settings) {
  const std::string where = "lb settings: ";
  if (settings.encap_source_v4) {
    if (settings.encap_source_v4->family != 4)
      return invalid(where + "encap_source_v4 " + to_string(*settings.encap_source_v4) + ": not an IPv4 address");
    if (auto unicast = check_unicast(*settings.encap_source_v4, "encap_source_v4"); !unicast)
      return invalid(where + unicast.error().message);
  }
  if (settings.encap_source_v6) {
    if (settings.encap_source_v6->family != 6)
      return invalid(where + "encap_source_v6 " + to_string(*settings.encap_source_v6) + ": not an IPv6 address");
    if (auto unicast = check_unicast(*settings.encap_source_v6, "encap_source_v6"); !unicast)
      return invalid(where + unicast.error().message);
  }
  if (static_cast<std::uint32_t>(settings.egress) >= SLUICE_LB_EGRESS_COUNT)
    return invalid(where + "egress " + std::to_string(static_cast<std::uint32_t>(settings.egress)) +
                   ": unknown (tx, redirect or forward)");
  if (settings.mtu != 0 && (settings.mtu < kMtuMin || settings.mtu > kMtuMax))
    return invalid(where + "mtu " + std::to_string(settings.mtu) + ": must be 0 (no check) or " +
                   std::to_string(kMtuMin) + ".." + std::to_string(kMtuMax));
  if (settings.conn_timeout_s == 0 || settings.conn_timeout_s > kConnTimeoutMaxS)
    return invalid(where + "conn_timeout_s " + std::to_string(settings.conn_timeout_s) + ": must be 1.." +
                   std::to_string(kConnTimeoutMaxS));
  if (settings.icmp_rate > kIcmpRateMax)
    return invalid(where + "icmp_rate " + std::to_string(settings.icmp_rate) + ": must be 0 (never answer) .." +
                   std::to_string(kIcmpRateMax));
  if (settings.icmp_rate != 0 && settings.icmp_burst == 0)
    return invalid(where + "icmp_burst 0: must be at least 1 when icmp_rate is not 0");
  constexpr std::uint8_t kMulticastBit = 0x01;
  if (settings.next_hop_mac && ((*settings.next_hop_mac)[0] & kMulticastBit))
    return invalid(where + "next_hop_mac " + mac_to_string(*settings.next_hop_mac) + ": a group (multicast) address");
  if (settings.src_mac && ((*settings.src_mac)[0] & kMulticastBit))
    return invalid(where + "src_mac " + mac_to_string(*settings.src_mac) + ": a group (multicast) address");
  return {};
}

Result<void> validate(const LbConfig& config) {
  if (auto settings = validate(config.settings); !settings) return settings;
  if (config.vips.size() > SLUICE_LB_MAX_VIPS)
    return invalid("vips: " + std::to_string(config.vips.size()) + " VIPs, more than the maximum " +
                   std::to_string(SLUICE_LB_MAX_VIPS));
  std::set<VipKey> keys;
  std::uint64_t slots = 0, entries = 0;
  for (std::size_t i = 0; i < config.vips.size(); ++i) {
    const Vip& vip = config.vips[i];
    const std::string where = "vips[" + std::to_string(i) + "] (" + to_string(vip.key) + "): ";
    if (auto valid = validate(vip); !valid) return invalid(where + valid.error().message);
    if (!keys.insert(vip.key).second) return invalid(where + "duplicate VIP");
    if (vip.key.address.family == 6 && config.settings.mtu != 0 && config.settings.mtu < kMtuMinIpv6Vip)
      return invalid(where + "settings.mtu " + std::to_string(config.settings.mtu) + ": an IPv6 VIP needs 0 or at least " +
                     std::to_string(kMtuMinIpv6Vip) + " (its packet-too-big answer may not announce less than 1280)");
    slots += vip.backends.size();
    entries += vip.table_size;
    if (slots > kBackendSlots)
      return invalid(where + "backends: " + std::to_string(slots) + " backends over all VIPs so far, more than the " +
                     std::to_string(kBackendSlots) + " backend slots");
    if (entries > kTotalTableEntriesMax)
      return invalid(where + "table_size " + std::to_string(vip.table_size) + ": " + std::to_string(entries) +
                     " Maglev entries over all VIPs so far, more than " + std::to_string(kTotalTableEntriesMax));
  }
  return {};
}

}  // namespace sluice::lb
