#pragma once
// `sluicectl doctor`'s judgement, apart from how its facts are gathered:
// the set-ups that silently do not forward (a program detached or replaced,
// generic XDP, strict rp_filter, encapsulation past the MTU, backends down,
// next hops unresolved, a degraded start, gone pins) and the counters that
// point at a cause (corrupt state, failed tail calls, redirect errors, no
// backend). Each finding says what is wrong, what it means for traffic, and
// the command that fixes it. Pure: tested on canned facts.
#include <boost/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sluice::cli {

struct InterfaceFacts {
  std::optional<unsigned> mtu;       // SIOCGIFMTU in sluicectl's network namespace
  std::optional<int> rp_filter;      // net.ipv4.conf.<if>.rp_filter
};

struct DoctorFacts {
  boost::json::object document;            // the status document (protocol/status_document.hpp)
  std::optional<boost::json::object> lb;   // lb.show: settings and events
  bool bpffs_mounted = true;               // /sys/fs/bpf is a bpffs here
  std::optional<bool> pin_dir_present;     // status's pin_dir seen here (nullopt: not known)
  std::string pin_dir;
  std::optional<int> rp_filter_all;        // net.ipv4.conf.all.rp_filter (the kernel takes the max with the interface's)
  std::map<std::string, InterfaceFacts> interfaces;  // by name, for the attached interfaces
};

enum class Severity { warning, error };

struct Finding {
  std::string check;    // stable id: "not_attached", "backend_down", ...
  Severity severity = Severity::error;
  std::string subject;  // what it is about: an interface, a VIP, a backend, a counter
  std::string problem;  // what is wrong, one line
  std::string meaning;  // what it does to traffic
  std::string fix;      // the command (or step) that fixes it
};

std::vector<Finding> diagnose(const DoctorFacts& facts);

// The checks diagnose runs, for the report's "checked" list.
std::vector<std::string> doctor_checks();

std::string_view to_string(Severity severity);

}  // namespace sluice::cli
