// examples/*.yaml are configs operators copy: each must parse, and pass every
// check that does not depend on this host (the filter's RuleSet validation,
// the lb model, the forward section's cross-checks), with interfaces named
// in it given made-up ifindexes. A broken copy is refused naming the field.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "desired_state.hpp"
#include "filter_rules.hpp"
#include "forward_model.hpp"
#include "lb_model.hpp"

namespace sluice::config {
namespace {

std::string read_example(const std::string& name) {
  std::ifstream in(std::string(SLUICE_EXAMPLES_DIR) + "/" + name);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Everything apply --dry-run checks that is not about this host's interfaces.
void expect_valid(const std::string& name) {
  const std::string text = read_example(name);
  ASSERT_FALSE(text.empty()) << name << " is missing or empty";
  auto parsed = parse_desired_state(text);
  ASSERT_TRUE(parsed) << name << ": " << parsed.error().to_string();
  std::uint32_t next_ifindex = 100;
  auto rules = to_filter_rule_set(*parsed, [&](const std::string&) -> std::optional<std::uint32_t> {
    return next_ifindex++;
  });
  ASSERT_TRUE(rules) << name << ": " << rules.error().message;
  auto valid = filter::validate(*rules);
  EXPECT_TRUE(valid) << name << ": " << (valid ? "" : valid.error().message);
  if (parsed->lb) {
    auto lb_valid = lb::validate(*parsed->lb);
    EXPECT_TRUE(lb_valid) << name << ": " << (lb_valid ? "" : lb_valid.error().message);
  }
  if (parsed->forward) {
    auto problem = validate_forward(*parsed->forward);
    EXPECT_FALSE(problem) << name << ": " << problem.value_or("");
  }
  // What `config show` prints of it is accepted back unchanged.
  auto again = parse_desired_state(to_yaml(*parsed));
  ASSERT_TRUE(again) << name << ": " << again.error().to_string();
  EXPECT_EQ(to_yaml(*again), to_yaml(*parsed)) << name;
}

TEST(Examples, EdgeFirewallIsADefaultDropFirewallWithRulesAListAndALimit) {
  expect_valid("edge-firewall.yaml");
  auto state = parse_desired_state(read_example("edge-firewall.yaml"));
  ASSERT_TRUE(state);
  ASSERT_TRUE(state->filter);
  EXPECT_EQ(state->filter->default_policy, filter::DefaultPolicy::Drop);
  ASSERT_TRUE(state->rules && state->prefix_lists && state->limits);
  EXPECT_GE(state->rules->size(), 5u);
  EXPECT_FALSE(state->prefix_lists->block.empty());
  EXPECT_FALSE(state->limits->empty());
  EXPECT_FALSE(state->lb);
}

TEST(Examples, L4BalancerHasVipsWithBackendsAndChecks) {
  expect_valid("l4-balancer.yaml");
  auto state = parse_desired_state(read_example("l4-balancer.yaml"));
  ASSERT_TRUE(state && state->lb);
  ASSERT_EQ(state->lb->vips.size(), 2u);
  for (const auto& vip : state->lb->vips) {
    EXPECT_TRUE(vip.check) << lb::to_string(vip.key);
    EXPECT_GE(vip.backends.size(), 2u) << lb::to_string(vip.key);
  }
}

TEST(Examples, FirewallAndBalancerComposeThroughTheForwardStage) {
  expect_valid("edge-firewall-and-balancer.yaml");
  auto state = parse_desired_state(read_example("edge-firewall-and-balancer.yaml"));
  ASSERT_TRUE(state && state->lb && state->forward && state->rules);
  EXPECT_EQ(state->lb->settings.egress, SLUICE_LB_EGRESS_FORWARD);
  EXPECT_FALSE(state->forward->routes.empty()) << "egress forward needs a route (sluiced refuses it otherwise)";
  EXPECT_EQ(state->filter->default_policy, filter::DefaultPolicy::Drop);
}

TEST(Examples, ABrokenCopyIsRefusedNamingTheField) {
  std::string text = read_example("l4-balancer.yaml");
  const std::string good = "weight: 50";
  const auto at = text.find(good);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, good.size(), "weight: heavy");
  auto parsed = parse_desired_state(text);
  ASSERT_FALSE(parsed) << "a non-numeric weight was accepted";
  const std::string error = parsed.error().to_string();
  EXPECT_NE(error.find("weight"), std::string::npos) << error;
  EXPECT_NE(error.find("heavy"), std::string::npos) << error;
}

}  // namespace
}  // namespace sluice::config
