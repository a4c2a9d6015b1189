// The entry program attached through libxdp to a veth in a namespace lab:
// real pings cross it, the tail-call pipeline runs on them, and config
// changes take effect on live traffic.
#include <gtest/gtest.h>

#include "netns_lab.hpp"
#include "privileges.hpp"
#include "xdp_attachment.hpp"
#include "xdp_fixture.hpp"

namespace sluice::test {
namespace {

constexpr const char* ping_three = "ping -c 3 -i 0.2 -W 1 ";

TEST(AttachE2E, PipelineJudgesRealTrafficThroughLibxdp) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  auto loaded = dataplane::Dataplane::load({});
  ASSERT_TRUE(loaded) << loaded.error().message;
  ASSERT_TRUE(loaded->install_stages());

  dataplane::AttachedProgram attached;
  {
    EnterNetns in_box(lab.box);
    auto result = dataplane::attach_xdp(loaded->entry_prog_fd(), lab.box_if, dataplane::AttachMode::Native);
    ASSERT_TRUE(result) << result.error().message;
    attached = *result;
  }
  EXPECT_EQ(attached.prog_name, "sluice_entry");
  EXPECT_NE(attached.prog_id, 0u);
  // xdp-loader sees it too (as the dispatcher or as the program itself).
  const auto status = lab.box.exec("xdp-loader status " + lab.box_if);
  EXPECT_NE(status.output.find(attached.dispatcher ? "xdp_dispatcher" : "sluice_entry"), std::string::npos)
      << status.output;

  const auto before = loaded->verdict_count(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END);
  ASSERT_TRUE(before);
  auto ping = lab.client.exec(ping_three + std::string(TwoHostLab::box_v4));
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  auto ping6 = lab.client.exec(ping_three + std::string(TwoHostLab::box_v6));
  EXPECT_EQ(ping6.exit_code, 0) << ping6.output;
  const auto after = loaded->verdict_count(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END);
  ASSERT_TRUE(after);
  // 3 echo requests per family crossed all three stages (plus ND/ARP, counted elsewhere).
  EXPECT_GE(after->packets - before->packets, 6u);

  // Drop at the pipeline end: the same pings now fail, and the drops are counted.
  auto config = dataplane::default_config();
  config.end_verdict = SLUICE_VERDICT_DROP;
  ASSERT_TRUE(loaded->set_config(config));
  ping = lab.client.exec(ping_three + std::string(TwoHostLab::box_v4));
  EXPECT_NE(ping.exit_code, 0) << ping.output;
  const auto dropped = loaded->verdict_count(SLUICE_VERDICT_DROP, SLUICE_REASON_PIPELINE_END);
  ASSERT_TRUE(dropped);
  EXPECT_GE(dropped->packets, 3u);

  // A missing stage with fail-closed drops; putting it back lets traffic through again.
  config = dataplane::default_config();
  config.tail_call_fail_verdict = SLUICE_VERDICT_DROP;
  ASSERT_TRUE(loaded->set_config(config));
  ASSERT_TRUE(loaded->remove_stage(SLUICE_STAGE_FILTER));
  ping = lab.client.exec(ping_three + std::string(TwoHostLab::box_v4));
  EXPECT_NE(ping.exit_code, 0) << ping.output;
  ASSERT_TRUE(loaded->install_stages());
  ping = lab.client.exec(ping_three + std::string(TwoHostLab::box_v4));
  EXPECT_EQ(ping.exit_code, 0) << ping.output;

  {
    EnterNetns in_box(lab.box);
    auto detached = dataplane::detach_xdp(lab.box_if);
    ASSERT_TRUE(detached) << detached.error().message;
    EXPECT_TRUE(*detached);
    auto gone = dataplane::find_attached(lab.box_if, "sluice_entry");
    ASSERT_TRUE(gone);
    EXPECT_FALSE(gone->has_value());
  }
}

TEST(AttachE2E, UnknownInterfaceIsNamedInTheError) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto loaded = dataplane::Dataplane::load({});
  ASSERT_TRUE(loaded) << loaded.error().message;
  auto result = dataplane::attach_xdp(loaded->entry_prog_fd(), "sl-nosuch0", dataplane::AttachMode::Native);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("sl-nosuch0"), std::string::npos) << result.error().message;
}

TEST(AttachMode, ParsesOnlyKnownModes) {
  EXPECT_EQ(*dataplane::parse_attach_mode("native"), dataplane::AttachMode::Native);
  EXPECT_EQ(*dataplane::parse_attach_mode("skb"), dataplane::AttachMode::Skb);
  auto bad = dataplane::parse_attach_mode("hw");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("'hw'"), std::string::npos);
}

}  // namespace
}  // namespace sluice::test
