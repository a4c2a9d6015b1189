// docs/metrics.md against a real sluiced's /metrics: every metric family the
// reference names is exported, and every family sluiced exports is in the
// reference. The box has something in every part (an attached interface, a
// VIP with a backend, a rule, a route, route sync on), so every family shows.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "daemon_test_support.hpp"
#include "markdown.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

constexpr const char* metrics_address = "127.0.0.1:9634";

// The `sluice_*` names the reference gives in code spans.
std::set<std::string> documented_names(const std::string& text) {
  std::set<std::string> out;
  const std::regex span("`([^`]*)`");
  const std::regex name(R"(\bsluice_[a-z0-9_]+)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), span); it != std::sregex_iterator(); ++it) {
    const std::string code = (*it)[1];
    for (auto n = std::sregex_iterator(code.begin(), code.end(), name); n != std::sregex_iterator(); ++n)
      out.insert(n->str());
  }
  return out;
}

std::set<std::string> exported_families(const std::string& scrape) {
  std::set<std::string> out;
  const std::regex type_line(R"(^# TYPE (\w+) \w+$)");
  std::istringstream lines(scrape);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_match(line, m, type_line)) out.insert(m[1]);
  }
  return out;
}

TEST(DocsMetrics, TheReferenceNamesExactlyTheFamiliesSluicedExports) {
  SLUICE_REQUIRE_NETNS();
  const std::string reference = markdown::read_text(std::string(SLUICE_SOURCE_DIR) + "/docs/metrics.md");
  ASSERT_FALSE(reference.empty()) << "docs/metrics.md";
  const auto documented = documented_names(reference);

  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  options.metrics = metrics_address;
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  client.result("attach", {{"iface", lab.box_if}});
  client.result("vip.add", {{"vip", "198.18.1.10:80/tcp"}, {"table_size", 251}});
  client.result("backend.add", {{"vip", "198.18.1.10:80/tcp"}, {"address", TwoHostLab::client_v4}});
  client.result("rule.add", {{"proto", "udp"}, {"dport", 9}, {"action", "drop"}});
  client.result("route.add", {{"prefix", "198.18.7.0/24"}, {"to_stack", true}});
  client.result("route.sync", {{"enabled", true}});
  ASSERT_EQ(lab.client.exec("ping -c 2 -i 0.2 -W 1 " + std::string(TwoHostLab::box_v4)).exit_code, 0);
  const auto scrape = lab.box.exec(std::string("curl -sf http://") + metrics_address + "/metrics");
  ASSERT_EQ(scrape.exit_code, 0) << scrape.output;
  const auto families = exported_families(scrape.output);
  ASSERT_TRUE(families.count("sluice_packets_total")) << scrape.output.substr(0, 500);

  for (const auto& name : documented) EXPECT_TRUE(families.count(name)) << name << " is in docs/metrics.md but sluiced does not export it";
  for (const auto& family : families)
    EXPECT_TRUE(documented.count(family)) << family << " is exported but not in docs/metrics.md";
}

TEST(DocsMetrics, NamesAreReadFromCodeSpansOnly) {
  EXPECT_EQ(documented_names("`sluice_a_total{x}` and sluice_not_code, `rate(sluice_b[5m])`"),
            (std::set<std::string>{"sluice_a_total", "sluice_b"}));
}

}  // namespace
}  // namespace sluice::test
