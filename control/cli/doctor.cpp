#include "doctor.hpp"

#include <algorithm>

#include "top_frame.hpp"

namespace sluice::cli {
namespace {

namespace json = boost::json;

// Outer IPv4 header of the IP-in-IP encapsulation (the smallest the lb adds).
constexpr unsigned encap_overhead_bytes = 20;
constexpr int rp_filter_strict = 1;

const json::array& array_at(const json::object& object, std::string_view key) {
  static const json::array empty;
  const json::value* value = object.if_contains(key);
  return value && value->is_array() ? value->get_array() : empty;
}

std::string text_at(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (!value) return {};
  if (value->is_string()) return terminal_safe(value->get_string());
  return terminal_safe(json::serialize(*value));
}

bool flag_at(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value && value->is_bool() && value->get_bool();
}

std::uint64_t count_at(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (!value || !value->is_number()) return 0;
  const double number = value->to_number<double>();
  return number > 0 ? static_cast<std::uint64_t>(number) : 0;
}

const json::object* object_at(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value && value->is_object() ? &value->get_object() : nullptr;
}

// A counter reason that should never count on a healthy box: what it means and the fix.
struct CounterCause {
  const char* reason;
  Severity severity;
  const char* meaning;
  const char* fix;
};
constexpr CounterCause counter_causes[] = {
    {"corrupt_state", Severity::error,
     "a map value failed its range check and the packet was dropped (fail closed): a map was written by something "
     "other than this sluiced, or by an older build",
     "restart sluiced (systemctl restart sluiced) so it rewrites its maps; if it comes back, report the map it names"},
    {"tail_call_failed", Severity::error,
     "a stage program was missing from the program array: an upgrade was interrupted or a pin was replaced",
     "restart sluiced (systemctl restart sluiced): it reinstalls every stage"},
    {"bad_stage_bank", Severity::error, "the stage bank selector held a value out of range: packets were dropped",
     "restart sluiced (systemctl restart sluiced)"},
    {"no_scratch", Severity::error, "the per-CPU scratch map was unreadable: packets were dropped",
     "restart sluiced (systemctl restart sluiced)"},
    {"bad_verdict", Severity::error, "a stage returned a verdict the pipeline does not know: packets were dropped",
     "restart sluiced; report it with `sluicectl stats`"},
    {"lb_no_backend", Severity::error, "packets to a VIP found no backend up and were dropped",
     "bring a backend up (sluicectl backend list; scripts/backend-setup.sh on the backend)"},
    {"lb_encap_failed", Severity::error, "encapsulating a VIP packet failed (no headroom on the driver): it was dropped",
     "attach in native mode on a driver with XDP headroom, or skb mode (sluicectl attach IFACE --mode skb)"},
    {"lb_too_big", Severity::warning,
     "clients sent VIP packets too big to encapsulate; they were answered with ICMP too-big (clients whose PMTU "
     "discovery is blocked will stall)",
     "raise the MTU towards the backends by 20 bytes (40 for IPv6 outer headers), or leave it to PMTU discovery"},
    {"fwd_redirect_failed", Severity::error,
     "redirecting a routed packet to its egress port failed: the egress interface is down, or a veth egress has no "
     "XDP program or GRO on its peer",
     "ip link set DEV up; for a veth egress: ethtool -K PEER gro on"},
};

}  // namespace

std::string_view to_string(Severity severity) { return severity == Severity::error ? "error" : "warning"; }

std::vector<std::string> doctor_checks() {
  std::vector<std::string> checks{"bpffs",       "pin_dir",   "degraded",     "no_interface", "not_attached",
                                  "attach_mode", "rp_filter", "lb_mtu",       "backend_down", "vip_no_backend",
                                  "next_hop_unresolved",     "op_failed",    "lb_corrupt_table"};
  for (const auto& cause : counter_causes) checks.push_back(std::string("counter_") + cause.reason);
  return checks;
}

std::vector<Finding> diagnose(const DoctorFacts& facts) {
  std::vector<Finding> out;
  const json::object& doc = facts.document;
  auto add = [&out](std::string check, Severity severity, std::string subject, std::string problem,
                    std::string meaning, std::string fix) {
    out.push_back({std::move(check), severity, std::move(subject), std::move(problem), std::move(meaning), std::move(fix)});
  };

  if (!facts.bpffs_mounted)
    add("bpffs", Severity::error, "/sys/fs/bpf", "bpffs is not mounted at /sys/fs/bpf",
        "sluiced cannot pin its maps here: a restart starts from empty tables", "mount -t bpf -o mode=0700 bpf /sys/fs/bpf");
  else if (facts.pin_dir_present && !*facts.pin_dir_present)
    add("pin_dir", Severity::error, facts.pin_dir, "sluiced's pin directory " + facts.pin_dir + " is gone",
        "the attached program runs on, but the next start cannot find the running maps (connections and counters start over)",
        "systemctl restart sluiced (it pins again)");

  if (const json::object* daemon = object_at(doc, "daemon"); daemon && flag_at(*daemon, "degraded")) {
    std::string why = text_at(*daemon, "restore_error");
    if (why.empty()) why = text_at(*daemon, "rollback_error");
    add("degraded", Severity::error, "sluiced", "sluiced runs degraded: " + why,
        "part of the desired state is not live; what `status` shows is what runs",
        "fix what the reason names, then sluicectl apply -f YOUR.yaml (or restart sluiced)");
  }

  const auto& interfaces = array_at(doc, "interfaces");
  if (interfaces.empty())
    add("no_interface", Severity::warning, "sluiced", "no interface is attached", "sluice sees no traffic",
        "sluicectl attach IFACE");
  unsigned smallest_mtu = 0;
  for (const auto& value : interfaces) {
    if (!value.is_object()) continue;
    const json::object& row = value.get_object();
    const std::string name = text_at(row, "name");
    if (!flag_at(row, "attached")) {
      add("not_attached", Severity::error, name, "sluice's program is not attached to " + name,
          "traffic on " + name + " is not filtered or balanced: it was detached, replaced by another XDP program, or "
          "the interface went away",
          "ip -d link show " + name + " (another program?); then sluicectl attach " + name);
      continue;
    }
    if (text_at(row, "mode") == "skb")
      add("attach_mode", Severity::warning, name, name + " runs generic (skb) XDP",
          "every packet pays for an skb before sluice sees it: a fraction of native speed",
          "if the driver has native XDP (ethtool -i " + name + "): sluicectl detach " + name + " && sluicectl attach " +
              name + " --mode native");
    const auto facts_of = facts.interfaces.find(name);
    if (facts_of == facts.interfaces.end()) continue;
    const int rp = std::max(facts_of->second.rp_filter.value_or(0), facts.rp_filter_all.value_or(0));
    if (rp == rp_filter_strict)
      add("rp_filter", Severity::warning, name, "strict reverse-path filtering (rp_filter=1) on " + name,
          "packets sluice hands to the stack are dropped when the route back leaves by another interface (asymmetric "
          "paths, replies to health checks and to the box itself)",
          "sysctl -w net.ipv4.conf." + name + ".rp_filter=2 net.ipv4.conf.all.rp_filter=2");
    if (facts_of->second.mtu) smallest_mtu = smallest_mtu ? std::min(smallest_mtu, *facts_of->second.mtu) : *facts_of->second.mtu;
  }

  const auto& vips = array_at(doc, "vips");
  if (!vips.empty() && facts.lb) {
    const json::object* settings = object_at(*facts.lb, "settings");
    const std::uint64_t lb_mtu = settings ? count_at(*settings, "mtu") : 0;
    if (lb_mtu == 0)
      add("lb_mtu", Severity::warning, "lb settings", "the balancer has no MTU set (mtu 0: no too-big check)",
          "a client packet within 20 bytes of the path MTU grows past it when encapsulated and is lost silently on the "
          "way to the backend",
          "sluicectl lb set --mtu " + std::to_string(smallest_mtu ? smallest_mtu : 1500u) +
              " (the MTU towards the backends; packets that would not fit get ICMP too-big)");
    else if (smallest_mtu && lb_mtu > smallest_mtu)
      add("lb_mtu", Severity::warning, "lb settings",
          "the balancer's mtu " + std::to_string(lb_mtu) + " is above the interface MTU " + std::to_string(smallest_mtu),
          "encapsulated packets between the two sizes are dropped by the interface",
          "sluicectl lb set --mtu " + std::to_string(smallest_mtu));
  }
  for (const auto& value : vips) {
    if (!value.is_object()) continue;
    const json::object& vip = value.get_object();
    const std::string name = text_at(vip, "vip");
    int up = 0, total = 0;
    for (const auto& b : array_at(vip, "backends")) {
      if (!b.is_object()) continue;
      const json::object& backend = b.get_object();
      ++total;
      const std::string health = text_at(backend, "health");
      if (health == "down") {
        const std::string address = text_at(backend, "address");
        add("backend_down", Severity::error, name + " " + address,
            "backend " + address + " of " + name + " is down (its health check " + text_at(vip, "check") + " fails)",
            "it gets no new connections; usual causes: the server is not listening, no decapsulation on the backend "
            "(sluice-decap or a tunnel), the VIP not on its lo, arp_ignore/rp_filter unset",
            "on the backend: scripts/backend-setup.sh --vip VIP --box BOX_ADDRESS; here: sluicectl backend list " + name);
      } else if (text_at(backend, "state") != "draining") {
        ++up;
      }
    }
    if (up == 0)
      add("vip_no_backend", Severity::error, name,
          total ? name + " has no backend up" : name + " has no backend",
          "new connections to it are dropped (lb_no_backend)",
          total ? "bring one up (see the backend_down findings)" : "sluicectl backend add " + name + " ADDRESS");
  }

  for (const auto& value : array_at(doc, "next_hops")) {
    if (!value.is_object()) continue;
    const json::object& hop = value.get_object();
    if (flag_at(hop, "resolved")) continue;
    const std::string name = text_at(hop, "next_hop");  // "via@dev"
    const std::string dev = text_at(hop, "dev");
    std::string via = text_at(hop, "via");
    if (via.empty()) via = name.substr(0, name.find('@'));
    add("next_hop_unresolved", Severity::error, name, "next hop " + name + " has no MAC address",
        "its routes go to the kernel's stack until it resolves (slow path, or dropped if the stack has no route)",
        "ping -c 1 -I " + dev + " " + via + " (the kernel resolves it); check the link and VLAN; or give its MAC "
        "(sluicectl route replace PREFIX --via " + via + " --dev " + dev + " --mac MAC)");
  }

  for (const auto& value : array_at(doc, "counters")) {
    if (!value.is_object()) continue;
    const json::object& counter = value.get_object();
    const std::string reason = text_at(counter, "reason");
    const std::uint64_t packets = count_at(counter, "packets");
    if (!packets) continue;
    for (const auto& cause : counter_causes)
      if (reason == cause.reason)
        add(std::string("counter_") + cause.reason, cause.severity, reason,
            std::to_string(packets) + " packets counted " + text_at(counter, "verdict") + " " + reason, cause.meaning,
            cause.fix);
  }
  if (facts.lb)
    if (const json::object* events = object_at(*facts.lb, "events"); events && count_at(*events, "corrupt_table"))
      add("lb_corrupt_table", Severity::error, "lb", "the lb stage found a corrupt Maglev table entry",
          "packets to that VIP were dropped (fail closed)", "restart sluiced (it rewrites the tables)");

  for (const auto& value : array_at(doc, "errors"))
    add("op_failed", Severity::warning, "sluiced",
        "a read-only op failed: " + (value.is_string() ? terminal_safe(value.get_string()) : std::string("?")),
        "doctor could not check what that op shows", "sluicectl status; the daemon's log (journalctl -u sluiced)");
  return out;
}

}  // namespace sluice::cli
