#pragma once
// Reference model of the data plane's entry parser and filter stage: plain
// C++, written from the same rule objects, linear rule scan, no bitmaps.
// Differential tests demand that BPF and model agree on the verdict and
// reason of every packet. Stateless: conntrack is not modelled (run the data
// plane with conntrack off; invalid TCP flag sets are dropped as with the
// default settings) and rate-limit actions are modelled as "within
// the limit" (use classes that cannot run dry, or none).
#include <cstdint>
#include <span>

#include "contract.hpp"
#include "filter_rules.hpp"

namespace sluice::filter::model {

inline constexpr int kParseOk = -1;

struct Parsed {
  int reason = kParseOk;  // kParseOk, SLUICE_REASON_NON_IP or the malformed reason
  sluice_pkt pkt{};
};

// The entry program's parser (xdp/parsing.h), byte for byte.
Parsed parse(std::span<const std::uint8_t> frame, std::uint32_t ifindex = 0);

struct Outcome {
  sluice_verdict verdict = SLUICE_VERDICT_PASS;
  std::uint32_t reason = SLUICE_REASON_PIPELINE_END;
  int rule_position = -1;  // position (priority order) of the matching rule, -1 if none
  bool operator==(const Outcome&) const = default;
};

// The filter stage alone on a parsed packet: -1 position when no rule matched.
// The returned verdict is the pipeline's final one with every other stage passing.
Outcome filter(const RuleSet& set, const std::vector<FilterRule>& ordered, const sluice_pkt& pkt,
               sluice_verdict end_verdict = SLUICE_VERDICT_PASS);

// Entry program + filter + pass-through stages, with `config` as the pipeline config.
Outcome classify(const RuleSet& set, const std::vector<FilterRule>& ordered, std::span<const std::uint8_t> frame,
                 const sluice_config& config, std::uint32_t ifindex = 0);

// Does `rule` match `pkt` (the linear semantics the bitmaps must reproduce)?
bool matches(const FilterRule& rule, const sluice_pkt& pkt);

}  // namespace sluice::filter::model
