// StateParts (route_ops.hpp): the lb and forward sections as the one StatePart of StateOps.
#include <algorithm>
#include <iterator>

#include "route_ops.hpp"

namespace sluice::daemon {

// ---- StateParts ----

protocol::ArgsResult<void> StateParts::check(std::string_view op, const config::DesiredState& next,
                                             filter::RuleSet& set) const {
  for (const auto& [name, part] : parts_)
    if (auto valid = part->check(op, next, set); !valid) return valid;
  return {};
}

std::uint32_t StateParts::effective_stages(const config::DesiredState& next, std::uint32_t stages) const {
  for (const auto& [name, part] : parts_) stages = part->effective_stages(next, stages);
  return stages;
}

bool StateParts::changes(const config::DesiredState& next) const {
  return std::any_of(parts_.begin(), parts_.end(), [&](const Named& named) { return named.part->changes(next); });
}

Result<void> StateParts::make_live(const config::DesiredState& state) {
  std::vector<std::pair<StatePart*, config::DesiredState>> done;  // each with what its maps held before
  for (const auto& [name, part] : parts_) {
    if (part_hook_) part_hook_(name);
    if (!part->changes(state)) continue;
    config::DesiredState before;
    part->add_baseline(before);
    if (auto made = part->make_live(state); !made) {
      for (auto it = done.rbegin(); it != done.rend(); ++it)
        if (auto undone = it->first->make_live(it->second); !undone)
          return maps::make_error_because("make live", "state parts",
                                          made.error().message + "; undoing an earlier part failed: " + undone.error().message,
                                          made.error().errnum);
      return made.error();
    }
    done.emplace_back(part, std::move(before));
  }
  return {};
}

void StateParts::settle_start() {
  for (const auto& [name, part] : parts_) part->settle_start();
}

void StateParts::add_baseline(config::DesiredState& baseline) const {
  for (const auto& [name, part] : parts_) part->add_baseline(baseline);
}

std::vector<std::pair<config::RuleSpec, std::string>> StateParts::owned_rules(const config::DesiredState& state) const {
  std::vector<std::pair<config::RuleSpec, std::string>> out;
  for (const auto& [name, part] : parts_) {
    auto rules = part->owned_rules(state);
    out.insert(out.end(), std::make_move_iterator(rules.begin()), std::make_move_iterator(rules.end()));
  }
  return out;
}

}  // namespace sluice::daemon
