// route.list and the status document with many routes: route.list answers
// a bounded page (default 1000, at most 100,000; limit/offset/order) with
// the total, refuses bad paging values naming them, and /status.json lists
// at most the busiest 100 routes with routes_total and routes_truncated.
#include <gtest/gtest.h>

#include <string>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"
#include "status_document.hpp"
#include "value_rules.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;

constexpr std::size_t kRoutes = 2500;  // over route.list's default page, far over the document's 100
constexpr const char* kMetrics = "127.0.0.1:9633";

std::string prefix_of(std::size_t i) {
  return "198.19." + std::to_string(i / 256) + "." + std::to_string(i % 256) + "/32";
}

TEST(DaemonRouteList, ManyRoutesAreListedInBoundedPagesAndTheStatusDocumentCountsThem) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  options.metrics = kMetrics;
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  std::string yaml = "forward:\n  routes:\n";
  for (std::size_t i = 0; i < kRoutes; ++i)
    yaml += "    - {prefix: " + prefix_of(i) + ", via: 198.18.0.1, dev: " + lab.box_if + ", mac: '02:5d:00:00:04:01'}\n";
  ControlClient client(daemon.socket_path());
  client.result("apply", {{"yaml", yaml}});

  const json::value first = client.result("route.list");
  EXPECT_EQ(first.at("routes").as_array().size(), protocol::default_route_list_limit);
  EXPECT_EQ(first.at("total"), json::value(kRoutes));
  EXPECT_EQ(first.at("truncated"), json::value(true));
  EXPECT_EQ(first.at("routes").at(0).at("prefix"), json::value(prefix_of(0))) << "table order";

  const json::value last = client.result("route.list", {{"limit", 10}, {"offset", kRoutes - 5}});
  ASSERT_EQ(last.at("routes").as_array().size(), 5u);
  EXPECT_EQ(last.at("routes").at(4).at("prefix"), json::value(prefix_of(kRoutes - 1)));
  EXPECT_EQ(last.at("truncated"), json::value(true)) << "routes before the page are not in it";
  const json::value all = client.result("route.list", {{"limit", kRoutes}});
  EXPECT_EQ(all.at("routes").as_array().size(), kRoutes);
  EXPECT_EQ(all.at("truncated"), json::value(false));
  EXPECT_TRUE(client.result("route.list", {{"offset", kRoutes}}).at("routes").as_array().empty());
  const json::value busiest = client.result("route.list", {{"limit", 3}, {"order", "packets"}});
  EXPECT_EQ(busiest.at("routes").as_array().size(), 3u);

  // Bad paging values: refused naming the field and the value.
  struct Bad {
    json::object args;
    std::string field;
  };
  for (const Bad& bad : {Bad{{{"limit", 0}}, "limit"}, Bad{{{"limit", protocol::max_route_list_limit + 1}}, "limit"},
                         Bad{{{"offset", -1}}, "offset"}, Bad{{{"order", "bytes"}}, "order"},
                         Bad{{{"page", 2}}, "page"}}) {
    const auto reply = client.call("route.list", bad.args);
    ASSERT_FALSE(reply.ok) << json::serialize(bad.args);
    EXPECT_NE(reply.error->message.find(bad.field), std::string::npos) << reply.error->message;
  }

  // The status document: the busiest 100, and how many there are.
  const auto fetched = lab.box.exec(std::string("curl -sf http://") + kMetrics + "/status.json");
  ASSERT_EQ(fetched.exit_code, 0) << fetched.output;
  const json::value doc = json::parse(fetched.output);
  EXPECT_TRUE(doc.at("errors").as_array().empty()) << json::serialize(doc.at("errors"));
  EXPECT_EQ(doc.at("routes").as_array().size(), protocol::status_routes_shown);
  EXPECT_EQ(doc.at("routes_total"), json::value(kRoutes));
  EXPECT_EQ(doc.at("routes_truncated"), json::value(true));
  EXPECT_LT(fetched.output.size(), 100'000u) << "the document grows with the route table";
}

}  // namespace
}  // namespace sluice::test
