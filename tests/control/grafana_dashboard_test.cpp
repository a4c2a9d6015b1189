// examples/grafana-dashboard.json against a real sluiced: every query is
// valid PromQL (promtool parses it), names only metric families sluiced
// exports, and uses only labels those families carry (or the ones
// Prometheus adds). A renamed metric breaks this test, not an operator's
// dashboard.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;

constexpr const char* metrics_address = "127.0.0.1:9633";

// Grafana's variables, replaced by what they stand for in a query.
std::string without_grafana_variables(std::string expr) {
  expr = std::regex_replace(expr, std::regex(R"(\$__rate_interval)"), "5m");
  return std::regex_replace(expr, std::regex(R"(\$instance)"), ".*");
}

void collect_exprs(const json::value& value, std::vector<std::string>& out) {
  if (value.is_object()) {
    for (const auto& [key, member] : value.get_object()) {
      if (key == "expr" && member.is_string()) out.emplace_back(member.get_string());
      else collect_exprs(member, out);
    }
  } else if (value.is_array()) {
    for (const auto& member : value.get_array()) collect_exprs(member, out);
  }
}

TEST(GrafanaDashboard, EveryQueryParsesAndNamesOnlyWhatSluicedExports) {
  SLUICE_REQUIRE_NETNS();
  std::ifstream file(std::string(SLUICE_SOURCE_DIR) + "/examples/grafana-dashboard.json");
  ASSERT_TRUE(file) << "examples/grafana-dashboard.json";
  std::stringstream text;
  text << file.rdbuf();
  json::value dashboard;
  ASSERT_NO_THROW(dashboard = json::parse(text.str()));
  std::set<std::int64_t> ids;
  for (const auto& panel : dashboard.at("panels").as_array())
    EXPECT_TRUE(ids.insert(panel.at("id").to_number<std::int64_t>()).second) << "panel ids are unique";
  std::vector<std::string> exprs;
  collect_exprs(dashboard, exprs);
  ASSERT_GE(exprs.size(), 10u);

  // A box with something in every part the dashboard shows, so every family has its labels.
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
  ASSERT_EQ(lab.client.exec("ping -c 2 -i 0.2 -W 1 " + std::string(TwoHostLab::box_v4)).exit_code, 0);
  const auto scrape = lab.box.exec(std::string("curl -sf http://") + metrics_address + "/metrics");
  ASSERT_EQ(scrape.exit_code, 0) << scrape.output;

  std::map<std::string, std::set<std::string>> labels_of;  // family (and its sample names) -> label names
  const std::regex type_line(R"(^# TYPE (\w+) \w+$)");
  const std::regex sample_line(R"(^(\w+)\{([^}]*)\} )");
  const std::regex label_name(R"((\w+)=")");
  std::istringstream lines(scrape.output);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_match(line, m, type_line)) labels_of[m[1]];
    if (std::regex_search(line, m, sample_line)) {
      const std::string labels = m[2];
      for (auto it = std::sregex_iterator(labels.begin(), labels.end(), label_name); it != std::sregex_iterator(); ++it)
        labels_of[m[1]].insert((*it)[1]);
    }
  }
  ASSERT_TRUE(labels_of.count("sluice_packets_total")) << scrape.output.substr(0, 500);

  const std::regex metric_name(R"(\bsluice_[a-z0-9_]+)");
  const std::regex matcher_label(R"(([a-z_]+)\s*(=~|!~|!=|=)\s*")");
  const std::regex grouping(R"(\b(by|without|ignoring|on)\s*\(([^)]*)\))");
  const std::set<std::string> added_by_prometheus{"instance", "job"};
  std::ostringstream rules;
  rules << "groups:\n  - name: grafana-dashboard\n    rules:\n";
  int index = 0;
  for (const std::string& raw : exprs) {
    SCOPED_TRACE(raw);
    const std::string expr = without_grafana_variables(raw);
    std::set<std::string> available(added_by_prometheus);
    int metrics = 0;
    for (auto it = std::sregex_iterator(expr.begin(), expr.end(), metric_name); it != std::sregex_iterator(); ++it) {
      ++metrics;
      const auto found = labels_of.find(it->str());
      EXPECT_NE(found, labels_of.end()) << it->str() << " is not exported by sluiced";
      if (found != labels_of.end()) available.insert(found->second.begin(), found->second.end());
    }
    EXPECT_GE(metrics, 1) << "a query of no sluice metric";
    std::set<std::string> used;
    for (auto it = std::sregex_iterator(expr.begin(), expr.end(), matcher_label); it != std::sregex_iterator(); ++it)
      used.insert((*it)[1]);
    for (auto it = std::sregex_iterator(expr.begin(), expr.end(), grouping); it != std::sregex_iterator(); ++it) {
      std::istringstream names((*it)[2].str());
      for (std::string name; std::getline(names, name, ',');) {
        name.erase(0, name.find_first_not_of(' '));
        name.erase(name.find_last_not_of(' ') + 1);
        if (!name.empty()) used.insert(name);
      }
    }
    for (const std::string& label : used) EXPECT_TRUE(available.count(label)) << "label '" << label << "' is on none of its metrics";
    rules << "      - record: dashboard:query" << index++ << "\n        expr: " << json::serialize(json::value(expr)) << "\n";
  }

  // promtool parses each query as PromQL (a rule file of one recording rule per query).
  if (run_command("command -v promtool").exit_code != 0) GTEST_SKIP() << "promtool not installed (scripts/setup.sh)";
  const std::filesystem::path file_path =
      std::filesystem::temp_directory_path() / ("sluice-dashboard-rules." + std::to_string(::getpid()) + ".yml");
  std::ofstream(file_path) << rules.str();
  const auto checked = run_command("promtool check rules " + file_path.string());
  std::filesystem::remove(file_path);
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
}

}  // namespace
}  // namespace sluice::test
