#pragma once
// The declarative desired state of a sluice box, as an operator writes it in
// YAML and `sluicectl apply -f` sends it: interfaces to attach, the data
// plane defaults, and (parsed and validated now, applied once the filter
// lands) prefix lists, ordered rules and rate-limit classes.
//
// Sections are independent. A section present in the document is the whole
// truth for that section (a rule missing from `rules:` is deleted, `[]`
// empties it); a section absent is not managed and left as it is. Inside
// `defaults`, the same holds per key.
//
// Every input is hostile: unknown or duplicate keys, wrong node kinds, values
// out of range and oversized documents are rejected with an error naming the
// path ("rules[3].dport"), the value and the YAML line. Nothing is partly
// parsed: either the whole document is valid or there is no state.
#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "contract.hpp"
#include "value_rules.hpp"
#include "filter_rules.hpp"
#include "forward_model.hpp"
#include "lb_model.hpp"
#include "xdp_attachment.hpp"

namespace sluice::config {

struct ParseError {
  std::string path;     // "rules[3].dport"; empty: the document as a whole
  std::string message;  // "bad port range '9-3': first port above last"
  int line = 0;         // 1-based line of the offending node; 0: unknown
  int column = 0;       // 1-based; 0: unknown

  // "rules[3].dport: bad port range '9-3': first port above last (line 12, column 12)"
  std::string to_string() const;
  bool operator==(const ParseError&) const = default;
};

template <class T>
using Result = boost::system::result<T, ParseError>;

// Found by ADL from Result<T>::value() on an error.
[[noreturn]] void throw_exception_from_error(const ParseError& error, const boost::source_location& where);

// Documents larger than this are refused before yaml-cpp sees them: a
// million-prefix blocklist is ~25 MiB of YAML, so this leaves headroom
// without letting one request pin unbounded memory.
inline constexpr std::size_t kMaxDocumentBytes = 64u << 20;
// Upper bound on YAML nodes visited while converting. YAML aliases share
// nodes, so a tiny document can name billions of them ("billion laughs");
// the budget turns that into an error instead of a hang.
inline constexpr std::size_t kMaxVisitedNodes = 8u << 20;

struct InterfaceSpec {
  std::string name;
  dataplane::AttachMode mode = dataplane::AttachMode::Native;
  bool operator==(const InterfaceSpec&) const = default;
};

// Verdicts here are SLUICE_VERDICT_PASS or SLUICE_VERDICT_DROP only; stages
// a SLUICE_STAGE_BIT() mask — the same values the data plane's config holds.
struct Defaults {
  // What the box does with a packet that no enabled stage consumed (dropped,
  // transmitted, redirected): pass it to the kernel, normally. A packet the
  // filter passed goes on down the pipeline and meets this at its end, so
  // drop here makes a box that only balances or routes. The filter's policy
  // for what its rules leave undecided is FilterSection::default_policy.
  std::optional<sluice_verdict> end_verdict;
  std::optional<sluice_verdict> tail_call_fail_verdict;
  std::optional<sluice_verdict> malformed_verdict;
  std::optional<sluice_verdict> non_ip_verdict;
  std::optional<bool> drop_fragments;
  std::optional<std::uint32_t> stages;
  // 1 in N filter drops is sampled into the drop_events ring; 0 = off.
  std::optional<std::uint32_t> drop_sample_every;
  bool operator==(const Defaults&) const = default;
};

// --- filter sections. The filter library (control/filter) owns what a rule
// means: its value types (PortRange, TcpFlagMatch, Action), its parsers and
// its validate() are used here. What stays here is the operator's spelling:
// interface and rate-class *names*, canonical CIDR text, block/allow lists.
// to_filter_rule_set() turns a state into the filter's RuleSet.

using PortRange = filter::PortRange;
using TcpFlagMatch = filter::TcpFlagMatch;

struct PrefixEntry {
  std::string prefix;                         // canonical CIDR (maps::to_string of maps::parse_prefix)
  std::optional<filter::Action> action;       // absent: the list's own (block: drop, allow: pass)
  std::optional<std::string> rate_class;      // action rate-limit only: a limits[].class
  bool operator==(const PrefixEntry&) const = default;
};

struct PrefixLists {
  std::vector<PrefixEntry> block;
  std::vector<PrefixEntry> allow;
  bool operator==(const PrefixLists&) const = default;
};

struct RuleSpec {
  std::uint32_t priority = 0;  // unique; lower matches first
  std::optional<std::string> src;  // canonical CIDR
  std::optional<std::string> dst;  // canonical CIDR
  std::optional<std::uint8_t> proto;  // IP protocol number
  std::optional<PortRange> sport;
  std::optional<PortRange> dport;
  std::optional<TcpFlagMatch> tcp_flags;
  std::optional<std::uint8_t> icmp_type;
  std::optional<std::string> iface;
  filter::Action action = filter::Action::Drop;
  std::optional<std::string> rate_class;  // action rate-limit only: a limits[].class
  bool operator==(const RuleSpec&) const = default;
};

// A rate class, per source prefix. burst (packets) defaults to one second
// of pps; bps is bytes per second, its burst one second of bps. A source is
// the address cut to v4_prefix_len / v6_prefix_len (absent: 32 and 64).
// aggregate_pps / aggregate_bps (with aggregate_burst, one second of
// aggregate_pps by default) add one bucket that all sources of the class
// share: a packet passes only when its source's bucket and the aggregate
// both have tokens. Absent fields keep states written before they existed
// meaning what they meant, with the defaults.
struct LimitSpec {
  std::string class_name;  // YAML key "class"
  std::uint64_t pps = 0;
  std::optional<std::uint64_t> bps;
  std::optional<std::uint64_t> burst;
  bool syn_only = false;  // only TCP SYN (without ACK) spends tokens: a SYN-flood limit
  std::optional<std::uint32_t> v4_prefix_len;  // 0..32
  std::optional<std::uint32_t> v6_prefix_len;  // 0..128
  std::optional<std::uint64_t> aggregate_pps;
  std::optional<std::uint64_t> aggregate_bps;
  std::optional<std::uint64_t> aggregate_burst;  // needs aggregate_pps
  bool operator==(const LimitSpec&) const = default;
};

// The filter's own settings (YAML `filter:`), per key like defaults.
struct FilterSection {
  // What happens to a packet no prefix-list entry, tracked flow or rule
  // decided: a default-drop firewall is `drop` plus a few pass rules.
  std::optional<filter::DefaultPolicy> default_policy;
  bool operator==(const FilterSection&) const = default;
};

// A new section must also be copied by without_prefix_lists (control/daemon/state_store.cpp),
// which writes state.yaml without the prefix lists.
struct DesiredState {
  std::optional<std::vector<InterfaceSpec>> interfaces;
  std::optional<Defaults> defaults;
  std::optional<FilterSection> filter;
  std::optional<PrefixLists> prefix_lists;
  std::optional<std::vector<RuleSpec>> rules;
  std::optional<std::vector<LimitSpec>> limits;
  // The load balancer (YAML `lb:`, control/config/lb_config.hpp): settings and VIPs, one section.
  std::optional<lb::LbConfig> lb;
  // The forward stage (YAML `forward:`, control/config/forward_config.hpp): settings, groups, routes.
  std::optional<ForwardConfig> forward;
  bool operator==(const DesiredState&) const = default;
};

// Documents written before the filter policy and the end-of-pipeline
// verdict were two settings carry one key for both, defaults.default_verdict.
// Its operators meant a firewall policy (the end-of-pipeline half dropped
// what their rules allowed), so it is read as filter.default_policy with
// defaults.end_verdict pass, unless the document also gives a new key for
// the same thing (then it is refused as ambiguous).
inline constexpr std::string_view kLegacyDefaultVerdictKey = "default_verdict";

[[nodiscard]] Result<DesiredState> parse_desired_state(std::string_view yaml);

// Canonical YAML: parse_desired_state(to_yaml(x)) == x for every valid x.
std::string to_yaml(const DesiredState& state);

// What applying `wanted` on top of `live` changes, one human line each:
// "+ rule 10: tcp dport 22 drop", "- interface veth0",
// "~ filter.default_policy: pass -> drop". Sections `wanted` does not
// manage produce no lines. Empty: nothing to do.
std::vector<std::string> diff(const DesiredState& live, const DesiredState& wanted);

// --- value vocabulary shared with sluicectl (one spelling everywhere) ---
// Verdict names are dataplane::verdict_name (names.hpp); config accepts two.
std::optional<sluice_verdict> parse_pass_or_drop(std::string_view text);
std::optional<filter::DefaultPolicy> parse_policy(std::string_view text);  // "pass", "drop"
std::string_view policy_name(filter::DefaultPolicy policy);
std::string_view stage_name(sluice_stage stage);                   // "filter", "lb", "forward"
std::optional<sluice_stage> parse_stage(std::string_view text);
std::string stages_text(std::uint32_t mask);                       // "[filter, lb]"
std::string protocol_name(std::uint8_t proto);                     // "tcp", or the number
// Ports and protocols are parsed by filter::parse_port_range / filter::parse_protocol.
std::string to_string(const PortRange& range);
// "syn,!ack"; names fin syn rst psh ack urg ece cwr, '!' = must be clear.
boost::system::result<TcpFlagMatch, std::string> parse_tcp_flags(std::string_view text);
std::string to_string(const TcpFlagMatch& flags);
// Linux interface name rules, shared with the control protocol.
using protocol::interface_name_problem;
// One-line summary of a rule's match and action: "src 10.0.0.0/8 tcp dport 22 drop".
std::string describe(const RuleSpec& rule);
// Rate-limit class names (limits[].class, limit.set's class, sluicectl's
// limit:CLASS): short and plain, as they are typed on command lines and
// printed in tables.
inline constexpr std::size_t kMaxClassNameBytes = 32;
bool is_class_name(std::string_view name);
std::string class_name_rule();  // "1..32 of A-Z a-z 0-9 _ - .", for errors
// The filter library's errors read "validate filter: <what>: <reason>
// (EINVAL)"; next to a YAML path or an option name only "<what>: <reason>"
// says something.
std::string filter_reason(const maps::Error& error);

// The filter sections as the filter's RuleSet: block entries act drop, allow
// entries pass (unless an entry says otherwise), rate classes get ids in
// limits order, rule interfaces resolve through ifindex_of (nullopt: unknown
// interface, reported as an error naming the rule). default_policy comes
// from filter.default_policy (pass if unset).
Result<filter::RuleSet> to_filter_rule_set(
    const DesiredState& state, const std::function<std::optional<std::uint32_t>(const std::string&)>& ifindex_of);

}  // namespace sluice::config
