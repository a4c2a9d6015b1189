// sluiced's status page over real HTTP in the box namespace: /status.json
// says what the control socket says (interfaces, VIPs with their backends,
// counters moved by a real ping), the page at / is self-contained, and the
// endpoint answers nothing but GET/HEAD of its three pages.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;

constexpr const char* metrics_address = "127.0.0.1:9632";
const std::string base_url = std::string("http://") + metrics_address;

std::uint64_t packets_of(const json::value& counters, std::string_view verdict, std::string_view reason) {
  for (const auto& entry : counters.as_array())
    if (entry.at("verdict") == json::value(verdict) && entry.at("reason") == json::value(reason))
      return entry.at("packets").to_number<std::uint64_t>();
  return 0;
}

TEST(DaemonStatusPage, StatusJsonShowsWhatTheSocketReportsAndThePageIsSelfContained) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  options.metrics = metrics_address;
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  ASSERT_TRUE(client.connected()) << client.connect_error();
  client.result("attach", {{"iface", lab.box_if}});
  const std::string vip = "198.18.1.10:80/tcp";
  client.result("vip.add", {{"vip", vip}, {"table_size", 251}});
  client.result("backend.add", {{"vip", vip}, {"address", TwoHostLab::client_v4}});
  client.result("rule.add", {{"proto", "tcp"}, {"dport", 2222}, {"action", "drop"}});
  const auto ping = lab.client.exec("ping -c 3 -i 0.2 -W 1 " + std::string(TwoHostLab::box_v4));
  ASSERT_EQ(ping.exit_code, 0) << ping.output;

  const auto fetched = lab.box.exec("curl -sf " + base_url + "/status.json");
  ASSERT_EQ(fetched.exit_code, 0) << fetched.output;
  json::value doc;
  ASSERT_NO_THROW(doc = json::parse(fetched.output)) << fetched.output;
  EXPECT_TRUE(doc.at("errors").as_array().empty()) << json::serialize(doc.at("errors"));

  const json::value status = client.result("status");
  EXPECT_EQ(doc.at("daemon").at("pid"), status.at("pid"));
  EXPECT_EQ(doc.at("daemon").at("degraded"), json::value(false));
  ASSERT_EQ(doc.at("interfaces").as_array().size(), 1u);
  EXPECT_EQ(doc.at("interfaces").at(0).at("name"), json::value(lab.box_if));
  EXPECT_EQ(doc.at("interfaces").at(0).at("prog_id"), status.at("interfaces").at(0).at("prog_id"));
  EXPECT_EQ(doc.at("stages").at("lb"), json::value(true)) << "a VIP is configured: lb runs";

  ASSERT_EQ(doc.at("vips").as_array().size(), 1u);
  const auto& row = doc.at("vips").at(0);
  EXPECT_EQ(row.at("vip"), json::value(vip));
  EXPECT_EQ(row.at("table_size"), json::value(251));
  ASSERT_EQ(row.at("backends").as_array().size(), 1u);
  EXPECT_EQ(row.at("backends").at(0).at("address"), json::value(TwoHostLab::client_v4));
  EXPECT_EQ(row.at("backends").at(0).at("table_entries"), json::value(251)) << "the one backend holds the table";

  // The operator's rule and the VIP's own pass rule, as rule.list has them.
  const json::value listed = client.result("rule.list");
  ASSERT_EQ(doc.at("rules").as_array().size(), listed.at("rules").as_array().size());
  ASSERT_EQ(doc.at("rules").as_array().size(), 2u);
  int drops = 0, owned = 0;
  for (const auto& rule : doc.at("rules").as_array()) {
    drops += rule.at("action") == json::value("drop");
    owned += rule.as_object().contains("owner");
  }
  EXPECT_EQ(drops, 1);
  EXPECT_EQ(owned, 1) << "the VIP's rule carries its owner";
  EXPECT_GE(doc.at("conntrack").at("capacity").to_number<std::uint64_t>(), 1u);
  // The pings moved the same counter the socket reports (the page's read came first, so <=).
  const auto page_passed = packets_of(doc.at("counters"), "pass", "pipeline_end");
  EXPECT_GE(page_passed, 3u);
  EXPECT_LE(page_passed, packets_of(client.result("stats").at("counters"), "pass", "pipeline_end"));

  // The page: HTML that loads nothing from elsewhere and reads its data relatively.
  const auto page = lab.box.exec("curl -sf -D - " + base_url + "/");
  ASSERT_EQ(page.exit_code, 0) << page.output;
  EXPECT_NE(page.output.find("Content-Type: text/html"), std::string::npos) << page.output.substr(0, 400);
  EXPECT_NE(page.output.find("Cache-Control: no-store"), std::string::npos);
  // Nothing but the page itself runs or loads; it talks only to its own origin (the Chromium test renders it so).
  EXPECT_NE(page.output.find("Content-Security-Policy: default-src 'none'; "), std::string::npos)
      << page.output.substr(0, 600);
  EXPECT_NE(page.output.find("connect-src 'self'"), std::string::npos);
  EXPECT_NE(page.output.find("X-Content-Type-Options: nosniff"), std::string::npos);
  EXPECT_NE(page.output.find("status.json"), std::string::npos);
  EXPECT_FALSE(std::regex_search(page.output, std::regex(R"((src|href)\s*=\s*["']?(https?:)?//)")))
      << "the page references an external asset";
  EXPECT_EQ(page.output.find(".innerHTML"), std::string::npos) << "data must be drawn as text, never as markup";
  // A browser's cache buster is ignored, not a 404.
  EXPECT_EQ(lab.box.exec("curl -sf -o /dev/null " + base_url + "/status.json?t=12345").exit_code, 0);

  // Nothing else is served, and nothing but GET/HEAD is accepted.
  auto code_of = [&](const std::string& args) {
    return lab.box.exec("curl -s -o /dev/null -w '%{http_code}' " + args).output;
  };
  EXPECT_EQ(code_of(base_url + "/nope"), "404");
  EXPECT_EQ(code_of(base_url + "/status.json/"), "404");
  EXPECT_EQ(code_of("-X POST --data x " + base_url + "/status.json"), "405");
  EXPECT_EQ(code_of("-X DELETE " + base_url + "/"), "405");
  EXPECT_EQ(code_of("-X GET --data-binary @/etc/services " + base_url + "/status.json"), "400") << "a body is refused";
  EXPECT_EQ(code_of("-I " + base_url + "/status.json"), "200");
  // DNS rebinding: a name other than an address literal or localhost is refused.
  EXPECT_EQ(code_of("-H 'Host: rebind.example:9632' " + base_url + "/status.json"), "421");
  EXPECT_EQ(code_of("-H 'Host: rebind.example' " + base_url + "/metrics"), "421");
  EXPECT_EQ(code_of("-H 'Host: localhost:9632' " + base_url + "/status.json"), "200");
  // The refused requests changed nothing.
  EXPECT_EQ(client.result("vip.list").at("vips").as_array().size(), 1u);
  EXPECT_EQ(client.result("rule.list").at("rules").as_array().size(), 2u);
}

// An idle daemon: every part of the document is there and empty, and no op fails.
TEST(DaemonStatusPage, ADaemonWithoutVipsOrRoutesShowsEmptyTablesNotErrors) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  options.metrics = metrics_address;
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  const auto fetched = lab.box.exec("curl -sf " + base_url + "/status.json");
  ASSERT_EQ(fetched.exit_code, 0) << fetched.output;
  const json::value doc = json::parse(fetched.output);
  EXPECT_TRUE(doc.at("errors").as_array().empty()) << json::serialize(doc.at("errors"));
  EXPECT_TRUE(doc.at("interfaces").as_array().empty());
  EXPECT_TRUE(doc.at("vips").as_array().empty());
  EXPECT_TRUE(doc.at("routes").as_array().empty());
  EXPECT_EQ(doc.at("stages").at("lb"), json::value(false));
  EXPECT_EQ(doc.at("stages").at("forward"), json::value(false));
}

// A metrics listener on a management address serves /metrics but not the
// status page unless asked (--status-page on); --status-page off turns it
// off on loopback too; a bad value is refused naming it.
TEST(DaemonStatusPage, ANonLoopbackListenerServesThePageOnlyWhenAskedAndMetricsAlways) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  const std::string management = std::string(TwoHostLab::box_v4) + ":9632";
  auto code_of = [&](const std::string& at) {
    return lab.box.exec("curl -s -o /dev/null -w '%{http_code}' " + at).output;
  };
  struct Case {
    std::string metrics;
    std::vector<std::string> args;
    std::string page_code;
  };
  const std::vector<Case> cases = {
      {management, {}, "404"},
      {management, {"--status-page", "on"}, "200"},
      {metrics_address, {"--status-page", "off"}, "404"},
      {metrics_address, {}, "200"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.metrics + (c.args.empty() ? "" : " " + c.args[1]));
    SluicedOptions options;
    options.netns = lab.box.name();
    options.metrics = c.metrics;
    options.extra_args = c.args;
    SluicedProcess daemon(options);
    ASSERT_EQ(daemon.start(), "");
    const std::string at = "http://" + c.metrics;
    EXPECT_EQ(code_of(at + "/"), c.page_code);
    EXPECT_EQ(code_of(at + "/status.json"), c.page_code);
    EXPECT_EQ(code_of(at + "/metrics"), "200") << "metrics are served whatever the page";
    if (c.page_code == "404") {
      EXPECT_EQ(lab.box.exec("curl -s " + at + "/status.json").output.find("interfaces"), std::string::npos);
    }
  }
  const auto refused = lab.box.exec(std::string(sluiced_path()) + " --metrics " + management +
                                    " --status-page yes --socket /nonexistent/s --state-dir /nonexistent 2>&1");
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_NE(refused.output.find("--status-page 'yes'"), std::string::npos) << refused.output;
}

// The page in a real browser: headless Chromium (Debian's) loads it from the
// box, runs its script for a few polls, and the rendered DOM shows the lab's
// interface, VIP, backend and verdicts; a screenshot is kept as an artifact.
TEST(DaemonStatusPage, HeadlessChromiumRendersTheBoxAsTheSocketReportsIt) {
  SLUICE_REQUIRE_NETNS();
  if (run_command("command -v chromium").exit_code != 0)
    GTEST_SKIP() << "chromium is not installed (scripts/setup.sh installs it)";
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  options.metrics = metrics_address;
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  client.result("attach", {{"iface", lab.box_if}});
  const std::string vip = "198.18.1.10:80/tcp";
  client.result("vip.add", {{"vip", vip}, {"table_size", 251}});
  client.result("backend.add", {{"vip", vip}, {"address", TwoHostLab::client_v4}});
  client.result("backend.add", {{"vip", vip}, {"address", "198.18.0.3"}});
  client.result("backend.drain", {{"vip", vip}, {"address", "198.18.0.3"}});
  ASSERT_EQ(lab.client.exec("ping -c 2 -i 0.2 -W 1 " + std::string(TwoHostLab::box_v4)).exit_code, 0);

  const std::string profile = "/tmp/sluice-chromium." + std::to_string(::getpid());
  const std::string chromium = "chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=" +
                               profile + " --virtual-time-budget=4000 ";
  const auto dom = lab.box.exec(chromium + "--dump-dom " + base_url + "/ 2>/dev/null", std::chrono::seconds(90));
  const std::filesystem::path artifacts = SLUICE_TEST_ARTIFACT_DIR;
  std::filesystem::create_directories(artifacts);
  const std::filesystem::path screenshot = artifacts / "status_page.png";
  std::filesystem::remove(screenshot);
  const auto shot = lab.box.exec(chromium + "--window-size=1280,1000 --screenshot=" + screenshot.string() + " " +
                                     base_url + "/ 2>/dev/null",
                                 std::chrono::seconds(90));
  std::filesystem::remove_all(profile);
  ASSERT_EQ(dom.exit_code, 0) << dom.output;

  // What the script drew (every cell is a text node: td>TEXT</td>).
  auto drew = [&](const std::string& text) { return dom.output.find(">" + text + "<") != std::string::npos; };
  const std::string pid = json::serialize(client.result("status").at("pid"));
  EXPECT_NE(dom.output.find("pid " + pid), std::string::npos) << "the header names the daemon";
  // The script's own text is in the dump too: judge the elements it filled.
  EXPECT_TRUE(std::regex_search(dom.output, std::regex(R"re(id="updated"[^>]*>updated )re")))
      << "the page never rendered a /status.json";
  EXPECT_TRUE(std::regex_search(dom.output, std::regex(R"re(id="errors"[^>]*></div>)re"))) << "an op failed";
  EXPECT_TRUE(drew(lab.box_if)) << "interface row";
  EXPECT_TRUE(drew("native"));
  EXPECT_TRUE(drew(vip)) << "VIP row";
  EXPECT_TRUE(drew(TwoHostLab::client_v4)) << "backend row";
  EXPECT_TRUE(drew("draining")) << "the drained backend's state";
  EXPECT_TRUE(drew("pipeline_end")) << "the pings' verdict row";
  EXPECT_NE(dom.output.find("VIP " + vip + ": "), std::string::npos) << "the VIP's rate chart";

  ASSERT_EQ(shot.exit_code, 0) << shot.output;
  std::ifstream png(screenshot, std::ios::binary);
  char magic[8] = {};
  png.read(magic, sizeof magic);
  EXPECT_EQ(std::string(magic, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << screenshot;
  EXPECT_GT(std::filesystem::file_size(screenshot), 10'000u) << "a blank screenshot";
}

}  // namespace
}  // namespace sluice::test
