// `sluicectl top`'s frame from a status document: it fits the terminal
// whatever the box holds, rates come from two refreshes, what did not fit is
// counted, and daemon text cannot reach the terminal as control bytes.
#include <gtest/gtest.h>

#include "packet_builder.hpp"
#include "packet_head.hpp"
#include "top_frame.hpp"

namespace sluice::cli {
namespace {

namespace json = boost::json;
using test::PacketBuilder;

json::object busy_document(std::uint64_t packets, int vips, int backends_per_vip) {
  json::object doc = json::parse(R"({
    "daemon": {"version": "0.1.0", "pid": 4242, "uptime_seconds": 3725, "degraded": false},
    "interfaces": [{"name": "veth-box", "ifindex": 3, "mode": "native", "attached": true}],
    "stages": {"filter": true, "lb": true, "forward": false},
    "conntrack": {"entries": 250, "capacity": 1000},
    "lb_connections": {"v4": 10, "v6": 0, "v4_capacity": 100, "v6_capacity": 100},
    "errors": []})").as_object();
  doc["counters"] = json::array{
      json::object{{"verdict", "pass"}, {"reason", "pipeline_end"}, {"packets", packets}, {"bytes", packets * 60}},
      json::object{{"verdict", "drop"}, {"reason", "filter_rule_drop"}, {"packets", packets * 3}, {"bytes", 0}},
      json::object{{"verdict", "drop"}, {"reason", "filter_default_drop"}, {"packets", 0}, {"bytes", 0}}};
  json::array vip_rows;
  for (int v = 0; v < vips; ++v) {
    json::array backends;
    for (int b = 0; b < backends_per_vip; ++b)
      backends.push_back(json::object{{"address", "198.18.2." + std::to_string(b + 1)},
                                      {"weight", 1},
                                      {"state", b == 0 ? "draining" : "active"},
                                      {"health", "up"},
                                      {"share", 1.0 / backends_per_vip},
                                      {"packets", packets * (b + 1)}});
    vip_rows.push_back(json::object{{"vip", "198.18.1." + std::to_string(v + 1) + ":80/tcp"},
                                    {"check", "tcp:80"},
                                    {"packets", packets * 2},
                                    {"backends", std::move(backends)}});
  }
  doc["vips"] = std::move(vip_rows);
  return doc;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

TEST(TopFrame, FitsEightyByTwentyFourAndCountsWhatDidNotFit) {
  const json::object doc = busy_document(100, 20, 8);
  TopInput input{.now = &doc, .clock = "07:12:01"};
  const auto lines = render_top_frame(input, 80, 24);
  EXPECT_LE(lines.size(), 24u);
  for (const auto& line : lines) EXPECT_LE(line.size(), 80u) << line;
  const std::string text = joined(lines);
  EXPECT_NE(text.find("pid 4242"), std::string::npos) << text;
  EXPECT_NE(text.find("up 1h02m"), std::string::npos) << text;
  EXPECT_NE(text.find("veth-box native"), std::string::npos) << text;
  EXPECT_NE(text.find("conntrack 250/1000 (25.0%)"), std::string::npos) << text;
  EXPECT_NE(text.find("more VIP and backend rows"), std::string::npos) << "180 rows cannot fit in 24 lines:\n" << text;
  EXPECT_NE(text.find("198.18.1.1:80/tcp"), std::string::npos);
  EXPECT_EQ(text.find("filter_default_drop"), std::string::npos) << "a reason that never counted is left out";
  // First frame: no rates yet.
  EXPECT_NE(text.find("pass    pipeline_end"), std::string::npos) << text;
  // A bigger terminal shows more rows, and still no line past its width.
  const auto tall = render_top_frame(input, 120, 60);
  EXPECT_GT(tall.size(), lines.size());
  for (const auto& line : tall) EXPECT_LE(line.size(), 120u);
  // Smaller than 80x24 is drawn as 80x24 (the terminal clips it).
  EXPECT_EQ(render_top_frame(input, 10, 5).size(), lines.size());
}

TEST(TopFrame, RatesAreDeltasBetweenRefreshesBusiestFirst) {
  const json::object before = busy_document(100, 1, 2);
  const json::object after = busy_document(300, 1, 2);
  TopInput input{.now = &after, .previous = &before, .seconds = 2.0, .clock = "07:12:03"};
  const std::string text = joined(render_top_frame(input, 80, 24));
  // drop/filter_rule_drop: (900-300)/2 = 300 pps, above pass/pipeline_end's 100.
  const auto drop = text.find("drop    filter_rule_drop");
  const auto pass = text.find("pass    pipeline_end");
  ASSERT_NE(drop, std::string::npos) << text;
  ASSERT_NE(pass, std::string::npos) << text;
  EXPECT_LT(drop, pass) << "the busiest reason comes first";
  EXPECT_NE(text.find("300"), std::string::npos);
  // The second backend: (600-200)/2 = 200 pps; the VIP: (600-200)/2 = 200 pps.
  EXPECT_NE(text.find("  198.18.2.2"), std::string::npos) << text;
  EXPECT_NE(text.find("draining"), std::string::npos);
  // A counter that went down (the daemon restarted) shows no rate, not a negative one.
  TopInput reset{.now = &before, .previous = &after, .seconds = 1.0};
  EXPECT_EQ(joined(render_top_frame(reset, 80, 24)).find("-200"), std::string::npos);
}

TEST(TopFrame, DaemonTextCannotReachTheTerminalAsControlBytes) {
  json::object doc = busy_document(1, 1, 1);
  doc["interfaces"] = json::parse(R"([{"name": "ev\u001b]0;owned\u0007il", "mode": "skb", "attached": false}])");
  doc["daemon"].as_object()["degraded"] = true;
  doc["daemon"].as_object()["restore_error"] = "forward: interface \u001b[2J gone";
  doc["errors"] = json::array{"vip.list: \u009b31m"};
  TopInput input{.now = &doc, .drop_sources_unavailable = "events: forbidden \u001b[H"};
  const std::string text = joined(render_top_frame(input, 80, 24));
  for (char c : text) EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7f)) << "byte " << int(static_cast<unsigned char>(c));
  EXPECT_NE(text.find("ev?]0;owned?il skb (NOT ATTACHED)"), std::string::npos) << text;
  EXPECT_NE(text.find("DEGRADED: forward: interface ?[2J gone"), std::string::npos) << text;
  EXPECT_NE(text.find("errors: vip.list:"), std::string::npos) << text;
}

TEST(TopFrame, DroppedSourcesMostFirstOrWhyThereAreNone) {
  const json::object doc = busy_document(1, 0, 0);
  TopInput input{.now = &doc, .drop_sources = {{"198.18.0.66", 40}, {"2001:db8::bad", 3}}, .sampled_drops = 43};
  std::string text = joined(render_top_frame(input, 80, 24));
  EXPECT_NE(text.find("of the last 43 sampled drops"), std::string::npos) << text;
  EXPECT_LT(text.find("198.18.0.66"), text.find("2001:db8::bad"));
  EXPECT_NE(text.find("no VIPs"), std::string::npos);
  input = TopInput{.now = &doc, .drop_sources_unavailable = "events: forbidden (needs uid 0 or the admin group)"};
  text = joined(render_top_frame(input, 80, 24));
  EXPECT_NE(text.find("needs uid 0 or the admin group"), std::string::npos) << text;
  // A document with nothing in it (every op failed) still draws.
  const json::object empty;
  input = TopInput{.now = &empty};
  EXPECT_NO_THROW(render_top_frame(input, 80, 24));
}

TEST(PacketSource, TheSourceOfIpHeadsAndNothingForTheRest) {
  const auto eth = [] { return PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02"); };
  EXPECT_EQ(packet_source_address(eth().ipv4("198.18.0.66", "198.18.1.1").tcp(1, 2).build()), "198.18.0.66");
  EXPECT_EQ(packet_source_address(eth().vlan(5).ipv6("2001:db8::66", "2001:db8::1").udp(1, 2).build()),
            "2001:db8::66");
  EXPECT_EQ(packet_source_address(PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02", 0x88cc).payload("lldp").build()),
            std::nullopt);
  auto cut = eth().ipv4("198.18.0.66", "198.18.1.1").tcp(1, 2).build();
  cut.resize(14 + 15);  // ends inside the IPv4 header, before the source
  EXPECT_EQ(packet_source_address(cut), std::nullopt);
  cut.resize(10);
  EXPECT_EQ(packet_source_address(cut), std::nullopt);
}

}  // namespace
}  // namespace sluice::cli
