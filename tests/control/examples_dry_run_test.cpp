// examples/*.yaml through a real sluiced's `apply --dry-run`, as an operator
// checks a config before applying it: in a namespace of the test's own that
// has the interfaces the examples name (eth1, eth2: a veth pair), every example
// is accepted and changes nothing; a copy with a typo is refused naming it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

TEST(ExamplesDryRun, EveryExampleIsAcceptedByARealSluicedAndChangesNothing) {
  SLUICE_REQUIRE_NETNS();
  Netns box("sl-examples");
  // Only inside this namespace: the names the examples use, on a veth pair
  // (no dummy module on every kernel).
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
  int examples = 0;
  for (const auto& entry : std::filesystem::directory_iterator(SLUICE_EXAMPLES_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    ++examples;
    SCOPED_TRACE(entry.path().filename().string());
    const auto checked = sluicectl("apply --dry-run -f " + entry.path().string());
    EXPECT_EQ(checked.exit_code, 0) << checked.output;
  }
  EXPECT_GE(examples, 3);
  EXPECT_EQ(sluicectl("config show").output, before) << "a dry run changed the desired state";
  EXPECT_TRUE(ControlClient(daemon.socket_path()).result("status").at("interfaces").as_array().empty());

  // A typo in a copy: refused, naming the field.
  std::ifstream in(std::string(SLUICE_EXAMPLES_DIR) + "/l4-balancer.yaml");
  std::stringstream text;
  text << in.rdbuf();
  std::string broken = text.str();
  const auto at = broken.find("backends:");
  ASSERT_NE(at, std::string::npos);
  broken.replace(at, 9, "backendz:");
  const auto path = std::filesystem::temp_directory_path() / ("sluice-broken-example." + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << broken;
  const auto refused = sluicectl("apply --dry-run -f " + path.string());
  std::filesystem::remove(path);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("backendz"), std::string::npos) << refused.output;
}

}  // namespace
}  // namespace sluice::test
