// The packaged /etc/sluice/sluice.yaml (packaging/sluice.yaml): sluiced must
// accept it, and it must change no traffic: no interface, every verdict
// pass, the filter's policy pass, no rule, list or class.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "desired_state.hpp"

namespace {

using sluice::config::DesiredState;

std::string read_text(const char* path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(PackagedConfig, ParsesAndDropsNothing) {
  const std::string text = read_text(SLUICE_DEFAULT_CONFIG);
  ASSERT_FALSE(text.empty()) << SLUICE_DEFAULT_CONFIG;
  auto parsed = sluice::config::parse_desired_state(text);
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  const DesiredState& state = *parsed;

  ASSERT_TRUE(state.interfaces);
  EXPECT_TRUE(state.interfaces->empty()) << "the package attaches nothing on its own";
  ASSERT_TRUE(state.defaults);
  EXPECT_EQ(state.defaults->end_verdict, SLUICE_VERDICT_PASS);
  EXPECT_EQ(state.defaults->tail_call_fail_verdict, SLUICE_VERDICT_PASS);
  EXPECT_EQ(state.defaults->malformed_verdict, SLUICE_VERDICT_PASS);
  EXPECT_EQ(state.defaults->non_ip_verdict, SLUICE_VERDICT_PASS);
  EXPECT_EQ(state.defaults->drop_fragments, false);
  ASSERT_TRUE(state.filter);
  EXPECT_EQ(state.filter->default_policy, sluice::filter::DefaultPolicy::Pass);
  EXPECT_TRUE(!state.rules || state.rules->empty());
  EXPECT_TRUE(!state.prefix_lists || (state.prefix_lists->block.empty() && state.prefix_lists->allow.empty()));
  EXPECT_TRUE(!state.limits || state.limits->empty());
  EXPECT_FALSE(state.lb);
  EXPECT_FALSE(state.forward);
}

}  // namespace
