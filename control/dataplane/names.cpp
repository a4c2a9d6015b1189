#include "names.hpp"

#include <array>
#include <utility>

namespace sluice::dataplane {
namespace {

constexpr std::array<std::pair<sluice_verdict, std::string_view>, SLUICE_VERDICT_COUNT> verdict_names{{
    {SLUICE_VERDICT_ABORTED, "aborted"},
    {SLUICE_VERDICT_DROP, "drop"},
    {SLUICE_VERDICT_PASS, "pass"},
    {SLUICE_VERDICT_TX, "tx"},
    {SLUICE_VERDICT_REDIRECT, "redirect"},
}};

// Every named constant of enum sluice_reason, and every stage reason
// #defined in a stage's range, except the range markers (FIRST_*, *_LAST,
// MAX), which are boundaries, not reasons.
constexpr std::pair<sluice_reason, std::string_view> reason_names[] = {
    {SLUICE_REASON_PIPELINE_END, "pipeline_end"},
    {SLUICE_REASON_NON_IP, "non_ip"},
    {SLUICE_REASON_TRUNC_ETH, "trunc_eth"},
    {SLUICE_REASON_TRUNC_VLAN, "trunc_vlan"},
    {SLUICE_REASON_VLAN_TOO_DEEP, "vlan_too_deep"},
    {SLUICE_REASON_TRUNC_IPV4, "trunc_ipv4"},
    {SLUICE_REASON_IPV4_BAD_VERSION, "ipv4_bad_version"},
    {SLUICE_REASON_IPV4_BAD_IHL, "ipv4_bad_ihl"},
    {SLUICE_REASON_IPV4_BAD_TOTLEN, "ipv4_bad_totlen"},
    {SLUICE_REASON_TRUNC_IPV6, "trunc_ipv6"},
    {SLUICE_REASON_IPV6_BAD_VERSION, "ipv6_bad_version"},
    {SLUICE_REASON_IPV6_BAD_PAYLOAD_LEN, "ipv6_bad_payload_len"},
    {SLUICE_REASON_IPV6_EXTHDR_CHAIN_TOO_LONG, "ipv6_exthdr_chain_too_long"},
    {SLUICE_REASON_TRUNC_IPV6_EXTHDR, "trunc_ipv6_exthdr"},
    {SLUICE_REASON_FRAGMENT, "fragment"},
    {SLUICE_REASON_TRUNC_TCP, "trunc_tcp"},
    {SLUICE_REASON_TCP_BAD_DOFF, "tcp_bad_doff"},
    {SLUICE_REASON_TRUNC_UDP, "trunc_udp"},
    {SLUICE_REASON_TRUNC_ICMP, "trunc_icmp"},
    {SLUICE_REASON_TRUNC_ICMPV6, "trunc_icmpv6"},
    {SLUICE_REASON_FRAGMENT_DROPPED, "fragment_dropped"},
    {SLUICE_REASON_TAIL_CALL_FAILED, "tail_call_failed"},
    {SLUICE_REASON_NO_SCRATCH, "no_scratch"},
    {SLUICE_REASON_BAD_VERDICT, "bad_verdict"},
    {SLUICE_REASON_IPV4_BAD_FRAGMENT, "ipv4_bad_fragment"},
    {SLUICE_REASON_BAD_STAGE_BANK, "bad_stage_bank"},
    {SLUICE_REASON_CORRUPT_STATE, "corrupt_state"},
#ifdef SLUICE_REASON_FILTER_LAST  // the filter stage's reasons are #defines in its range
    {static_cast<sluice_reason>(SLUICE_REASON_FILTER_BLOCKLIST), "filter_blocklist"},
    {static_cast<sluice_reason>(SLUICE_REASON_FILTER_ALLOWLIST), "filter_allowlist"},
    {static_cast<sluice_reason>(SLUICE_REASON_FILTER_RULE_DROP), "filter_rule_drop"},
    {static_cast<sluice_reason>(SLUICE_REASON_FILTER_RULE_PASS), "filter_rule_pass"},
    {static_cast<sluice_reason>(SLUICE_REASON_FILTER_DEFAULT_DROP), "filter_default_drop"},
    {static_cast<sluice_reason>(SLUICE_REASON_FILTER_CONNTRACK), "filter_conntrack"},
    {static_cast<sluice_reason>(SLUICE_REASON_FILTER_RATE_LIMITED), "filter_rate_limited"},
    {static_cast<sluice_reason>(SLUICE_REASON_FILTER_SYN_RATE_LIMITED), "filter_syn_rate_limited"},
    {static_cast<sluice_reason>(SLUICE_REASON_FILTER_AGGREGATE_RATE_LIMITED), "filter_aggregate_rate_limited"},
    {static_cast<sluice_reason>(SLUICE_REASON_FILTER_TCP_INVALID_FLAGS), "filter_tcp_invalid_flags"},
    {static_cast<sluice_reason>(SLUICE_REASON_FILTER_CT_RELATED), "filter_ct_related"},
#endif
#ifdef SLUICE_REASON_LB_LAST  // the lb stage's reasons are #defines in its range
    {static_cast<sluice_reason>(SLUICE_REASON_LB_ENCAP), "lb_encap"},
    {static_cast<sluice_reason>(SLUICE_REASON_LB_L2_DSR), "lb_l2_dsr"},
    {static_cast<sluice_reason>(SLUICE_REASON_LB_NO_BACKEND), "lb_no_backend"},
    {static_cast<sluice_reason>(SLUICE_REASON_LB_TOO_BIG), "lb_too_big"},
    {static_cast<sluice_reason>(SLUICE_REASON_LB_ENCAP_FAILED), "lb_encap_failed"},
    {static_cast<sluice_reason>(SLUICE_REASON_LB_FRAGMENT), "lb_fragment"},
    {static_cast<sluice_reason>(SLUICE_REASON_LB_FORWARD), "lb_forward"},
#endif
    {static_cast<sluice_reason>(SLUICE_REASON_FWD_ROUTED), "fwd_routed"},
    {static_cast<sluice_reason>(SLUICE_REASON_FWD_NO_ROUTE), "fwd_no_route"},
    {static_cast<sluice_reason>(SLUICE_REASON_FWD_TTL_EXCEEDED), "fwd_ttl_exceeded"},
    {static_cast<sluice_reason>(SLUICE_REASON_FWD_REDIRECT_FAILED), "fwd_redirect_failed"},
    {static_cast<sluice_reason>(SLUICE_REASON_FWD_TO_STACK), "fwd_to_stack"},
    {static_cast<sluice_reason>(SLUICE_REASON_FWD_NOT_ROUTABLE), "fwd_not_routable"},
};

// Name of a reason value that has no constant of its own.
std::string unnamed_reason(unsigned value) {
  std::string_view range = "reason_";
  if (value >= SLUICE_REASON_FIRST_FORWARD) range = "forward_reason_";
  else if (value >= SLUICE_REASON_FIRST_LB) range = "lb_reason_";
  else if (value >= SLUICE_REASON_FIRST_FILTER) range = "filter_reason_";
  return std::string(range) + std::to_string(value);
}

}  // namespace

std::string_view verdict_name(sluice_verdict verdict) {
  for (const auto& [value, name] : verdict_names)
    if (value == verdict) return name;
  return "unknown";
}

std::optional<sluice_verdict> parse_verdict_name(std::string_view name) {
  for (const auto& [value, known] : verdict_names)
    if (known == name) return value;
  return std::nullopt;
}

std::string reason_name(sluice_reason reason) {
  for (const auto& [value, name] : reason_names)
    if (value == reason) return std::string(name);
  return unnamed_reason(static_cast<unsigned>(reason));
}

std::optional<sluice_reason> parse_reason_name(std::string_view name) {
  for (unsigned value = 0; value < SLUICE_REASON_MAX; ++value) {
    const auto reason = static_cast<sluice_reason>(value);
    if (reason_name(reason) == name) return reason;
  }
  return std::nullopt;
}

}  // namespace sluice::dataplane
