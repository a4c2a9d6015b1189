// The full example of docs/config-reference.md through a real sluiced's
// `apply --dry-run`, as an operator checks a config before applying it: in a
// namespace of the test's own with the interfaces the example names (eth1,
// eth2: a veth pair), it is accepted and changes nothing. docs_test checks
// the same block offline; this adds what only the daemon checks (interfaces,
// possible CPUs, the lb/forward composition).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "daemon_test_support.hpp"
#include "markdown.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

TEST(DocsDryRun, TheConfigReferenceExampleIsAcceptedByARealSluicedAndChangesNothing) {
  SLUICE_REQUIRE_NETNS();
  const auto blocks = markdown::yaml_blocks(std::string(SLUICE_SOURCE_DIR) + "/docs/config-reference.md");
  ASSERT_FALSE(blocks.empty()) << "docs/config-reference.md has no ```yaml block";
  Netns box("sl-docs-dry");
  const auto made = box.exec("ip link add eth1 type veth peer name eth2 && ip link set eth1 up && ip link set eth2 up");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  SluicedOptions options;
  options.netns = box.name();
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  auto sluicectl = [&](const std::string& args) {
    return run_command("nsenter --net=/run/netns/" + box.name() + " " + SLUICECTL_PATH + " --socket " +
                       daemon.socket_path() + " " + args);
  };
  const std::string before = sluicectl("config show").output;
  const auto path = std::filesystem::temp_directory_path() / ("sluice-docs-example." + std::to_string(::getpid()) + ".yaml");
  auto dry_run = [&](const std::string& yaml) {
    std::ofstream(path) << yaml;
    auto result = sluicectl("apply --dry-run -f " + path.string());
    std::filesystem::remove(path);
    return result;
  };
  const auto checked = dry_run(blocks.front());
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_NE(checked.output.find("198.18.0.10:443/tcp"), std::string::npos) << "the diff names the VIP: " << checked.output;
  EXPECT_EQ(sluicectl("config show").output, before) << "a dry run changed the desired state";

  // The same document naming an interface this box does not have: refused, naming it.
  std::string elsewhere = blocks.front();
  for (std::size_t at = elsewhere.find("eth2"); at != std::string::npos; at = elsewhere.find("eth2", at))
    elsewhere.replace(at, 4, "eth9");
  const auto refused = dry_run(elsewhere);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("eth9"), std::string::npos) << refused.output;
}

}  // namespace
}  // namespace sluice::test
