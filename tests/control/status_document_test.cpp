// compose_status: the one document the status page and `sluicectl top`
// read. Fed canned op results (and failures), it must put every row where
// the page looks for it, keep what it was given and nothing more, and never
// let one failing op hide the rest.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "status_document.hpp"

namespace sluice::protocol {
namespace {

namespace json = boost::json;

// Canned answers by op; an op missing from the map fails with a message naming it.
struct FakeOps {
  std::map<std::string, json::value, std::less<>> answers;
  std::vector<std::pair<std::string, json::object>> calls;

  StatusCall call() {
    return [this](std::string_view op, const json::object& args) -> std::variant<json::value, std::string> {
      calls.emplace_back(std::string(op), args);
      auto found = answers.find(op);
      if (found == answers.end()) return std::string("no answer for ") + std::string(op);
      return found->second;
    };
  }
};

FakeOps a_busy_box() {
  FakeOps ops;
  ops.answers["status"] = json::parse(R"({
    "version": "1.2.3", "pid": 42, "uptime_seconds": 7, "degraded": false, "pin_dir": "/sys/fs/bpf/sluice",
    "interfaces": [{"name": "veth0", "ifindex": 3, "mode": "native", "attached": true, "prog_id": 9}],
    "filter": {"generation": 2, "rules": 1},
    "tables": [{"name": "filter_conntrack", "max_entries": 1000, "sized_by": "conntrack_entries"},
               {"name": "filter_conntrack_v4", "max_entries": 3000, "sized_by": "conntrack_entries"},
               {"name": "lb_conns", "max_entries": 500, "sized_by": "lb_conn_entries"},
               {"name": "verdict_counters", "max_entries": 64}]})");
  ops.answers["config.get"] =
      json::parse(R"({"stages": {"filter": true, "lb": true, "forward": false}, "drop_sample_every": 0})");
  ops.answers["stats"] =
      json::parse(R"({"counters": [{"verdict": "pass", "reason": "pipeline_end", "packets": 5, "bytes": 420}]})");
  ops.answers["conn.list"] = json::parse(R"({"flows": [{"src": "198.18.0.1"}], "total": 17, "truncated": true})");
  ops.answers["rule.list"] = json::parse(R"({"default_policy": "drop",
    "rules": [{"id": 4, "action": "pass", "description": "tcp dport 22", "packets": 3, "bytes": 180,
               "match": {"internal": "not shown"}}]})");
  ops.answers["vip.list"] = json::parse(R"({"vips": [
    {"vip": "198.18.1.10:80/tcp", "table_size": 251, "check": "tcp:80", "packets": 9, "bytes": 900, "new_conns": 2},
    {"vip": "198.18.1.11:53/udp", "table_size": 251, "check": "none", "packets": 0, "bytes": 0, "new_conns": 0}]})");
  ops.answers["backend.list"] = json::parse(R"({"backends": [
    {"vip": "198.18.1.10:80/tcp", "address": "198.18.0.2", "weight": 1, "state": "active", "health": "up",
     "share": 0.5, "table_entries": 125, "packets": 4, "bytes": 400, "new_conns": 1},
    {"vip": "198.18.1.10:80/tcp", "address": "198.18.0.3", "weight": 1, "state": "draining", "health": "up",
     "share": 0.5, "table_entries": 126, "packets": 5, "bytes": 500, "new_conns": 1},
    {"vip": "198.18.9.9:1/tcp", "address": "198.18.0.4", "weight": 1}]})");
  ops.answers["lb.show"] = json::parse(R"({"conns": {"v4": 2, "v6": 0, "v4_capacity": 500, "v6_capacity": 500}})");
  ops.answers["forward.show"] = json::parse(R"({"stage_enabled": false, "routes": 0, "next_hops": 0, "cpumap": []})");
  ops.answers["route.list"] = json::parse(R"({"routes": []})");
  ops.answers["nexthop.list"] = json::parse(R"({"next_hops": []})");
  return ops;
}

TEST(StatusDocument, EveryPartComesFromItsOpAndBackendsSitUnderTheirVip) {
  FakeOps ops = a_busy_box();
  const json::object doc = compose_status(ops.call());

  EXPECT_EQ(doc.at("daemon"), json::parse(R"({"version": "1.2.3", "pid": 42, "uptime_seconds": 7, "degraded": false})"))
      << "only the daemon's own fields, not the pin dir";
  ASSERT_EQ(doc.at("interfaces").as_array().size(), 1u);
  EXPECT_EQ(doc.at("interfaces").at(0).at("name"), json::value("veth0"));
  EXPECT_EQ(doc.at("stages").at("lb"), json::value(true));
  EXPECT_EQ(doc.at("filter").at("default_policy"), json::value("drop"));
  EXPECT_EQ(doc.at("filter").at("generation"), json::value(2));
  EXPECT_EQ(doc.at("counters").at(0).at("packets"), json::value(5));
  // Capacity: the four conntrack tables' sum (two listed here), not the lb's nor the fixed ones.
  EXPECT_EQ(doc.at("conntrack"), json::parse(R"({"entries": 17, "capacity": 4000})"));

  const auto& rules = doc.at("rules").as_array();
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules.at(0).at("description"), json::value("tcp dport 22"));
  EXPECT_FALSE(rules.at(0).as_object().contains("match")) << "a rule row carries only the fields the page shows";

  const auto& vips = doc.at("vips").as_array();
  ASSERT_EQ(vips.size(), 2u);
  const auto& backends = vips.at(0).at("backends").as_array();
  ASSERT_EQ(backends.size(), 2u);
  EXPECT_EQ(backends.at(1).at("state"), json::value("draining"));
  EXPECT_EQ(backends.at(1).at("table_entries"), json::value(126));
  EXPECT_FALSE(backends.at(0).as_object().contains("vip")) << "the VIP is the row above, not repeated";
  EXPECT_TRUE(vips.at(1).at("backends").as_array().empty());
  // A backend whose VIP vip.list does not show is not invented into a row.
  EXPECT_EQ(json::serialize(doc).find("198.18.0.4"), std::string::npos);
  EXPECT_EQ(doc.at("lb_connections").at("v4_capacity"), json::value(500));
  EXPECT_EQ(doc.at("forward"), json::parse(R"({"stage_enabled": false, "routes": 0, "next_hops": 0})"));
  EXPECT_TRUE(doc.at("errors").as_array().empty()) << json::serialize(doc.at("errors"));

  // Every op read-only and called once; conn.list asks for one flow (only its total is shown).
  std::set<std::string> called;
  for (const auto& [op, args] : ops.calls) {
    EXPECT_TRUE(called.insert(op).second) << op << " called twice";
    if (op == "conn.list") EXPECT_EQ(args, json::parse(R"({"limit": 1})").as_object());
  }
  const std::set<std::string> expected(std::begin(status_document_ops), std::end(status_document_ops));
  EXPECT_EQ(called, expected);
}

TEST(StatusDocument, AFailingOpLeavesItsPartOutAndSaysWhyTheRestIsShown) {
  FakeOps ops = a_busy_box();
  ops.answers.erase("backend.list");
  ops.answers["stats"] = json::value("not an object");
  const json::object doc = compose_status(ops.call());

  const auto& errors = doc.at("errors").as_array();
  ASSERT_EQ(errors.size(), 2u) << json::serialize(errors);
  EXPECT_EQ(errors.at(0), json::value("stats: the result is not an object"));
  EXPECT_EQ(errors.at(1), json::value("backend.list: no answer for backend.list"));
  EXPECT_TRUE(doc.at("counters").as_array().empty());
  // The VIPs are still listed, with no backends rather than made-up ones.
  ASSERT_EQ(doc.at("vips").as_array().size(), 2u);
  EXPECT_TRUE(doc.at("vips").at(0).at("backends").as_array().empty());
  EXPECT_EQ(doc.at("daemon").at("pid"), json::value(42));
}

TEST(StatusDocument, NothingAnsweringGivesAnEmptyDocumentWithEveryError) {
  FakeOps ops;
  const json::object doc = compose_status(ops.call());
  EXPECT_EQ(doc.at("errors").as_array().size(), std::size(status_document_ops));
  EXPECT_TRUE(doc.at("interfaces").as_array().empty());
  EXPECT_TRUE(doc.at("vips").as_array().empty());
  EXPECT_EQ(doc.at("conntrack"), json::parse(R"({"entries": 0, "capacity": 0})"));
  EXPECT_FALSE(doc.contains("lb_connections"));
}

// Hostile shapes (a negative count, a string where a number goes, a table
// without sized_by) neither throw nor count.
TEST(StatusDocument, WrongTypesInAnswersAreSkippedNotThrown) {
  FakeOps ops = a_busy_box();
  ops.answers["conn.list"] = json::parse(R"({"total": -5})");
  ops.answers["status"].as_object()["tables"] =
      json::parse(R"([{"sized_by": "conntrack_entries", "max_entries": "many"}, 7, {"max_entries": 9}])");
  ops.answers["vip.list"] = json::parse(R"({"vips": [3, {"vip": 5, "table_size": 251}]})");
  ops.answers["rule.list"] = json::parse(R"({"rules": "none"})");
  json::object doc;
  ASSERT_NO_THROW(doc = compose_status(ops.call()));
  EXPECT_EQ(doc.at("conntrack"), json::parse(R"({"entries": 0, "capacity": 0})"));
  ASSERT_EQ(doc.at("vips").as_array().size(), 1u);
  EXPECT_TRUE(doc.at("vips").at(0).at("backends").as_array().empty());
  EXPECT_TRUE(doc.at("rules").as_array().empty());
}

}  // namespace
}  // namespace sluice::protocol
