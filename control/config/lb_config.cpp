#include "yaml_walk.hpp"
#include "lb_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>

#include "decimal.hpp"

namespace sluice::config {
namespace {

// The same walk as the rest of the document (yaml_walk.hpp): unknown,
// duplicate and null keys refused, every node counted against kMaxVisitedNodes.
using yaml_walk::boolean;
using yaml_walk::fail;
using yaml_walk::Failure;
using yaml_walk::kind_name;
using yaml_walk::number;
using yaml_walk::quoted;
using yaml_walk::Walker;

lb::Address address(Walker& w, const YAML::Node& node, const std::string& path) {
  const std::string text = w.scalar(node, path, "an IPv4 or IPv6 address");
  auto parsed = lb::parse_address(text);
  if (!parsed) fail(path, parsed.error().message, node);
  return *parsed;
}

std::array<std::uint8_t, 6> mac(Walker& w, const YAML::Node& node, const std::string& path) {
  const std::string text = w.scalar(node, path, "a MAC address");
  auto parsed = lb::parse_mac(text);
  if (!parsed) fail(path, parsed.error().message, node);
  return *parsed;
}

std::string index_path(const std::string& path, std::size_t index) { return path + "[" + std::to_string(index) + "]"; }

constexpr std::array<std::pair<std::string_view, sluice_lb_egress>, SLUICE_LB_EGRESS_COUNT> egress_names{{
    {"tx", SLUICE_LB_EGRESS_TX}, {"redirect", SLUICE_LB_EGRESS_REDIRECT}, {"forward", SLUICE_LB_EGRESS_FORWARD}}};

lb::LbSettings parse_settings(Walker& w, const YAML::Node& node, const std::string& path) {
  lb::LbSettings out;
  for (auto& [key, value] : w.fields(node, path, {"encap_source_v4", "encap_source_v6", "entropy_source", "egress",
                                                  "next_hop_mac", "src_mac", "mtu", "conn_timeout_s"})) {
    const std::string child = path + "." + key;
    if (key == "encap_source_v4" || key == "encap_source_v6") {
      const lb::Address source = address(w, value, child);
      const int family = key == "encap_source_v4" ? 4 : 6;
      if (source.family != family)
        fail(child, quoted(lb::to_string(source)) + " is not an IPv" + std::to_string(family) + " address", value);
      (family == 4 ? out.encap_source_v4 : out.encap_source_v6) = source;
    } else if (key == "entropy_source") {
      out.entropy_source = boolean(w, value, child);
    } else if (key == "egress") {
      const std::string text = w.scalar(value, child, "tx, redirect or forward");
      auto egress = parse_egress(text);
      if (!egress) fail(child, "bad egress " + quoted(text) + ": expected tx, redirect or forward", value);
      out.egress = *egress;
    } else if (key == "next_hop_mac") {
      out.next_hop_mac = mac(w, value, child);
    } else if (key == "src_mac") {
      out.src_mac = mac(w, value, child);
    } else if (key == "mtu") {
      out.mtu = static_cast<std::uint16_t>(number<std::uint64_t>(w, value, child, 0, 65535));
    } else {
      out.conn_timeout_s = static_cast<std::uint32_t>(number<std::uint64_t>(w, value, child, 1, 86400));
    }
  }
  return out;
}

lb::HealthCheck parse_check(Walker& w, const YAML::Node& node, const std::string& path) {
  lb::HealthCheck out;
  bool has_type = false;
  for (auto& [key, value] :
       w.fields(node, path, {"type", "port", "path", "interval_ms", "timeout_ms", "rise", "fall"})) {
    const std::string child = path + "." + key;
    if (key == "type") {
      const std::string text = w.scalar(value, child, "tcp or http");
      if (text == "tcp") out.kind = lb::HealthCheck::Kind::Tcp;
      else if (text == "http") out.kind = lb::HealthCheck::Kind::Http;
      else fail(child, "bad check type " + quoted(text) + ": expected tcp or http", value);
      has_type = true;
    } else if (key == "port") {
      out.port = static_cast<std::uint16_t>(number<std::uint64_t>(w, value, child, 1, 65535));
    } else if (key == "path") {
      out.http_path = w.scalar(value, child, "an HTTP path");
    } else if (key == "interval_ms") {
      out.interval_ms = static_cast<std::uint32_t>(number<std::uint64_t>(w, value, child, 1, std::numeric_limits<std::uint32_t>::max()));
    } else if (key == "timeout_ms") {
      out.timeout_ms = static_cast<std::uint32_t>(number<std::uint64_t>(w, value, child, 1, std::numeric_limits<std::uint32_t>::max()));
    } else if (key == "rise") {
      out.rise = static_cast<std::uint32_t>(number<std::uint64_t>(w, value, child, 1, std::numeric_limits<std::uint32_t>::max()));
    } else {
      out.fall = static_cast<std::uint32_t>(number<std::uint64_t>(w, value, child, 1, std::numeric_limits<std::uint32_t>::max()));
    }
  }
  if (!has_type) fail(path + ".type", "is required (tcp or http)", node);
  if (out.kind == lb::HealthCheck::Kind::Tcp && node["path"])
    fail(path + ".path", "only with type http", node["path"]);
  return out;
}

lb::Backend parse_backend(Walker& w, const YAML::Node& node, const std::string& path) {
  lb::Backend out;
  bool has_address = false;
  for (auto& [key, value] : w.fields(node, path, {"address", "weight", "state", "mac"})) {
    const std::string child = path + "." + key;
    if (key == "address") {
      out.address = address(w, value, child);
      has_address = true;
    } else if (key == "weight") {
      out.weight = static_cast<std::uint32_t>(number<std::uint64_t>(w, value, child, 1, SLUICE_LB_WEIGHT_MAX));
    } else if (key == "state") {
      const std::string text = w.scalar(value, child, "up or draining");
      auto state = parse_backend_state(text);
      if (!state) fail(child, "bad backend state " + quoted(text) + ": expected up or draining", value);
      out.state = *state;
    } else {
      out.mac = mac(w, value, child);
    }
  }
  if (!has_address) fail(path + ".address", "is required", node);
  return out;
}

lb::Vip parse_vip(Walker& w, const YAML::Node& node, const std::string& path) {
  lb::Vip out;
  bool has_key = false;
  for (auto& [key, value] : w.fields(node, path, {"vip", "table_size", "l2_dsr", "check", "backends"})) {
    const std::string child = path + "." + key;
    if (key == "vip") {
      const std::string text = w.scalar(value, child, "ADDR[:PORT]/PROTO");
      auto parsed = lb::parse_vip_key(text);
      if (!parsed) fail(child, parsed.error().message, value);
      out.key = *parsed;
      has_key = true;
    } else if (key == "table_size") {
      out.table_size = static_cast<std::uint32_t>(number<std::uint64_t>(w, value, child, 1, SLUICE_LB_MAGLEV_SIZE_MAX));
    } else if (key == "l2_dsr") {
      out.l2_dsr = boolean(w, value, child);
    } else if (key == "check") {
      out.check = parse_check(w, value, child);
    } else {
      w.sequence(value, child);
      std::map<lb::Address, std::size_t> seen;
      for (std::size_t i = 0; i < value.size(); ++i) {
        const std::string item = index_path(child, i);
        lb::Backend backend = parse_backend(w, value[i], item);
        if (auto [it, fresh] = seen.emplace(backend.address, i); !fresh)
          fail(item + ".address", quoted(lb::to_string(backend.address)) + " is also " + index_path(child, it->second),
               value[i]);
        out.backends.push_back(std::move(backend));
      }
    }
  }
  if (!has_key) fail(path + ".vip", "is required (ADDR[:PORT]/PROTO)", node);
  return out;
}

std::string check_text(const lb::HealthCheck& check) {
  return lb::to_string(check) + " every " + std::to_string(check.interval_ms) + "ms timeout " +
         std::to_string(check.timeout_ms) + "ms rise " + std::to_string(check.rise) + " fall " +
         std::to_string(check.fall);
}

std::string opt_address_text(const std::optional<lb::Address>& address) {
  return address ? lb::to_string(*address) : "(unset)";
}
std::string opt_mac_text(const std::optional<std::array<std::uint8_t, 6>>& mac) {
  return mac ? lb::mac_to_string(*mac) : "(unset)";
}

}  // namespace

std::string_view egress_name(sluice_lb_egress egress) {
  for (const auto& [name, value] : egress_names)
    if (value == egress) return name;
  return "tx";
}

std::optional<sluice_lb_egress> parse_egress(std::string_view text) {
  for (const auto& [name, value] : egress_names)
    if (name == text) return value;
  return std::nullopt;
}

std::string_view backend_state_name(lb::BackendState state) {
  return state == lb::BackendState::Draining ? "draining" : "up";
}

std::optional<lb::BackendState> parse_backend_state(std::string_view text) {
  if (text == "up") return lb::BackendState::Up;
  if (text == "draining") return lb::BackendState::Draining;
  return std::nullopt;
}

std::string describe(const lb::Vip& vip) {
  std::string out = "table " + std::to_string(vip.table_size);
  if (vip.l2_dsr) out += " l2";
  if (vip.check) out += " check " + check_text(*vip.check);
  out += " backends " + std::to_string(vip.backends.size());
  return out;
}

std::string describe(const lb::Backend& backend) {
  std::string out = "weight " + std::to_string(backend.weight);
  if (backend.state == lb::BackendState::Draining) out += " draining";
  if (backend.mac) out += " mac " + lb::mac_to_string(*backend.mac);
  return out;
}

Result<lb::LbConfig> parse_lb_section(const YAML::Node& node) {
  const std::string path = "lb";
  try {
    Walker w;
    lb::LbConfig out;
    std::map<lb::VipKey, std::size_t> seen;
    for (auto& [key, value] : w.fields(node, path, {"settings", "vips"})) {
      if (key == "settings") {
        out.settings = parse_settings(w, value, path + ".settings");
        if (auto valid = lb::validate(out.settings); !valid) fail(path + ".settings", valid.error().message, value);
        continue;
      }
      const std::string child = path + ".vips";
      w.sequence(value, child);
      for (std::size_t i = 0; i < value.size(); ++i) {
        const std::string item = index_path(child, i);
        lb::Vip vip = parse_vip(w, value[i], item);
        if (auto [it, fresh] = seen.emplace(vip.key, i); !fresh)
          fail(item + ".vip", quoted(lb::to_string(vip.key)) + " is also " + index_path(child, it->second), value[i]);
        if (auto valid = lb::validate(vip); !valid) fail(item, valid.error().message, value[i]);
        out.vips.push_back(std::move(vip));
      }
    }
    // What the VIPs mean together (families against the encapsulation sources, totals).
    if (auto valid = lb::validate(out); !valid) fail(path, valid.error().message, node);
    return out;
  } catch (const Failure& failure) {
    return failure.error;
  }
}

void emit_lb_section(YAML::Emitter& out, const lb::LbConfig& config) {
  out << YAML::Key << "lb" << YAML::Value << YAML::BeginMap;
  const lb::LbSettings& s = config.settings;
  out << YAML::Key << "settings" << YAML::Value << YAML::BeginMap;
  if (s.encap_source_v4) out << YAML::Key << "encap_source_v4" << YAML::Value << lb::to_string(*s.encap_source_v4);
  if (s.encap_source_v6) out << YAML::Key << "encap_source_v6" << YAML::Value << lb::to_string(*s.encap_source_v6);
  out << YAML::Key << "entropy_source" << YAML::Value << (s.entropy_source ? "true" : "false");
  out << YAML::Key << "egress" << YAML::Value << std::string(egress_name(s.egress));
  if (s.next_hop_mac) out << YAML::Key << "next_hop_mac" << YAML::Value << lb::mac_to_string(*s.next_hop_mac);
  if (s.src_mac) out << YAML::Key << "src_mac" << YAML::Value << lb::mac_to_string(*s.src_mac);
  out << YAML::Key << "mtu" << YAML::Value << s.mtu;
  out << YAML::Key << "conn_timeout_s" << YAML::Value << s.conn_timeout_s;
  out << YAML::EndMap;
  out << YAML::Key << "vips" << YAML::Value;
  if (config.vips.empty()) {
    out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
  } else {
    out << YAML::BeginSeq;
    for (const auto& vip : config.vips) {
      out << YAML::BeginMap << YAML::Key << "vip" << YAML::Value << lb::to_string(vip.key);
      out << YAML::Key << "table_size" << YAML::Value << vip.table_size;
      out << YAML::Key << "l2_dsr" << YAML::Value << (vip.l2_dsr ? "true" : "false");
      if (vip.check) {
        const auto& c = *vip.check;
        out << YAML::Key << "check" << YAML::Value << YAML::Flow << YAML::BeginMap;
        out << YAML::Key << "type" << YAML::Value << (c.kind == lb::HealthCheck::Kind::Http ? "http" : "tcp");
        if (c.port) out << YAML::Key << "port" << YAML::Value << c.port;
        if (c.kind == lb::HealthCheck::Kind::Http)
          out << YAML::Key << "path" << YAML::Value << YAML::DoubleQuoted << c.http_path;
        out << YAML::Key << "interval_ms" << YAML::Value << c.interval_ms << YAML::Key << "timeout_ms" << YAML::Value
            << c.timeout_ms << YAML::Key << "rise" << YAML::Value << c.rise << YAML::Key << "fall" << YAML::Value
            << c.fall << YAML::EndMap;
      }
      out << YAML::Key << "backends" << YAML::Value;
      if (vip.backends.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
      } else {
        out << YAML::BeginSeq;
        for (const auto& backend : vip.backends) {
          out << YAML::Flow << YAML::BeginMap << YAML::Key << "address" << YAML::Value << lb::to_string(backend.address)
              << YAML::Key << "weight" << YAML::Value << backend.weight << YAML::Key << "state" << YAML::Value
              << std::string(backend_state_name(backend.state));
          if (backend.mac) out << YAML::Key << "mac" << YAML::Value << lb::mac_to_string(*backend.mac);
          out << YAML::EndMap;
        }
        out << YAML::EndSeq;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
}

void diff_lb_section(std::vector<std::string>& out, const lb::LbConfig& live, const lb::LbConfig& wanted) {
  const lb::LbSettings& l = live.settings;
  const lb::LbSettings& w = wanted.settings;
  auto field = [&](std::string_view name, const std::string& from, const std::string& to) {
    if (from != to) out.push_back("~ lb.settings." + std::string(name) + ": " + from + " -> " + to);
  };
  field("encap_source_v4", opt_address_text(l.encap_source_v4), opt_address_text(w.encap_source_v4));
  field("encap_source_v6", opt_address_text(l.encap_source_v6), opt_address_text(w.encap_source_v6));
  field("entropy_source", l.entropy_source ? "true" : "false", w.entropy_source ? "true" : "false");
  field("egress", std::string(egress_name(l.egress)), std::string(egress_name(w.egress)));
  field("next_hop_mac", opt_mac_text(l.next_hop_mac), opt_mac_text(w.next_hop_mac));
  field("src_mac", opt_mac_text(l.src_mac), opt_mac_text(w.src_mac));
  field("mtu", std::to_string(l.mtu), std::to_string(w.mtu));
  field("conn_timeout_s", std::to_string(l.conn_timeout_s), std::to_string(w.conn_timeout_s));

  std::map<lb::VipKey, const lb::Vip*> live_vips, wanted_vips;
  for (const auto& vip : live.vips) live_vips.emplace(vip.key, &vip);
  for (const auto& vip : wanted.vips) wanted_vips.emplace(vip.key, &vip);
  for (const auto& [key, vip] : live_vips)
    if (!wanted_vips.contains(key)) out.push_back("- vip " + lb::to_string(key));
  for (const auto& [key, vip] : wanted_vips) {
    const std::string name = lb::to_string(key);
    auto it = live_vips.find(key);
    if (it == live_vips.end()) {
      out.push_back("+ vip " + name + ": " + describe(*vip));
      for (const auto& backend : vip->backends)
        out.push_back("+ backend " + name + " " + lb::to_string(backend.address) + ": " + describe(backend));
      continue;
    }
    const lb::Vip& was = *it->second;
    lb::Vip was_shape = was, now_shape = *vip;
    was_shape.backends.clear();
    now_shape.backends.clear();
    if (!(was_shape == now_shape)) {
      was_shape.backends = was.backends;  // describe() counts them
      now_shape.backends = vip->backends;
      out.push_back("~ vip " + name + ": " + describe(was_shape) + " -> " + describe(now_shape));
    }
    std::map<lb::Address, const lb::Backend*> live_backends, wanted_backends;
    for (const auto& backend : was.backends) live_backends.emplace(backend.address, &backend);
    for (const auto& backend : vip->backends) wanted_backends.emplace(backend.address, &backend);
    for (const auto& [address, backend] : live_backends)
      if (!wanted_backends.contains(address)) out.push_back("- backend " + name + " " + lb::to_string(address));
    for (const auto& [address, backend] : wanted_backends) {
      auto found = live_backends.find(address);
      if (found == live_backends.end())
        out.push_back("+ backend " + name + " " + lb::to_string(address) + ": " + describe(*backend));
      else if (!(*found->second == *backend))
        out.push_back("~ backend " + name + " " + lb::to_string(address) + ": " + describe(*found->second) + " -> " +
                      describe(*backend));
    }
  }
}

}  // namespace sluice::config
