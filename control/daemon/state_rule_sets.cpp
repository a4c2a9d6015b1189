// The rule-set comparison and the prefix-list spelling of StateOps
// (state_ops.hpp), apart from the ops so state_ops.cpp stays readable.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <variant>
#include <string>
#include <tuple>
#include <unordered_map>

#include "state_ops.hpp"

namespace sluice::daemon {
namespace {

// As state_ops.cpp keys prefixes: the canonical text of the address and length.
std::string canonical_prefix_key(const maps::Prefix& prefix) { return maps::to_string(prefix); }

template <class T>
bool sorted_equal(std::vector<T> a, std::vector<T> b, auto less) {
  if (a.size() != b.size()) return false;
  std::sort(a.begin(), a.end(), less);
  std::sort(b.begin(), b.end(), less);
  return a == b;
}

}  // namespace

bool same_rule_set(const filter::RuleSet& a, const filter::RuleSet& b) {
  if (a.default_policy != b.default_policy) return false;
  // Only an order for the equality below, so the keys' bytes do: spelling each prefix as text on every
  // comparison made one rule.add on a million-prefix set take minutes.
  auto by_prefix = [](const filter::PrefixEntry& x, const filter::PrefixEntry& y) {
    if (x.prefix.index() != y.prefix.index()) return x.prefix.index() < y.prefix.index();
    return std::visit(
        [&](const auto& key) {
          using Key = std::decay_t<decltype(key)>;
          static_assert(std::has_unique_object_representations_v<Key>, "an LPM key compares by its bytes");
          return std::memcmp(&key, &std::get<Key>(y.prefix), sizeof(Key)) < 0;
        },
        x.prefix);
  };
  auto by_priority = [](const filter::FilterRule& x, const filter::FilterRule& y) { return x.priority < y.priority; };
  auto by_id = [](const filter::RateClass& x, const filter::RateClass& y) { return x.id < y.id; };
  return sorted_equal(a.prefixes, b.prefixes, by_prefix) && sorted_equal(a.rules, b.rules, by_priority) &&
         sorted_equal(a.rate_classes, b.rate_classes, by_id);
}

config::PrefixLists prefix_lists_for(const config::PrefixLists& old, const std::vector<filter::PrefixEntry>& entries,
                                     const std::vector<config::LimitSpec>& limits) {
  auto class_name = [&](std::uint32_t id) {
    return id < limits.size() ? limits[id].class_name : std::to_string(id);  // validation keeps ids in range
  };
  // What each table entry means, keyed by canonical prefix (hashed: a start with a million prefixes runs this).
  std::unordered_map<std::string, const filter::PrefixEntry*> wanted;
  wanted.reserve(entries.size());
  for (const auto& entry : entries) wanted.emplace(canonical_prefix_key(entry.prefix), &entry);
  auto same_meaning = [&](const config::PrefixEntry& spec, filter::Action list_action, const filter::PrefixEntry& entry) {
    const filter::Action action = spec.action.value_or(list_action);
    if (action != entry.action) return false;
    if (action != filter::Action::RateLimit) return true;
    return spec.rate_class && *spec.rate_class == class_name(entry.rate_class);
  };
  config::PrefixLists out;
  std::unordered_map<std::string, bool> placed;
  for (auto [list, into, action] : {std::tuple{&old.block, &out.block, filter::Action::Drop},
                                    std::tuple{&old.allow, &out.allow, filter::Action::Pass}}) {
    for (const auto& spec : *list) {
      auto it = wanted.find(spec.prefix);
      if (it == wanted.end() || !same_meaning(spec, action, *it->second)) continue;
      into->push_back(spec);
      placed[spec.prefix] = true;
    }
  }
  for (const auto& entry : entries) {
    const std::string key = canonical_prefix_key(entry.prefix);
    if (placed.contains(key)) continue;
    switch (entry.action) {
      case filter::Action::Drop: out.block.push_back({key, std::nullopt, std::nullopt}); break;
      case filter::Action::Pass: out.allow.push_back({key, std::nullopt, std::nullopt}); break;
      case filter::Action::RateLimit:
        out.block.push_back({key, filter::Action::RateLimit, class_name(entry.rate_class)});
        break;
      case filter::Action::PassTrack: out.allow.push_back({key, filter::Action::PassTrack, std::nullopt}); break;
    }
  }
  return out;
}

}  // namespace sluice::daemon
