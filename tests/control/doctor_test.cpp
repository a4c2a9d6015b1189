// sluicectl doctor's judgement on canned facts: a healthy box has no
// finding, and each broken set-up or telling counter gives exactly its
// finding, naming the subject and a fix.
#include <gtest/gtest.h>

#include <set>

#include "doctor.hpp"

namespace sluice::cli {
namespace {

namespace json = boost::json;

DoctorFacts healthy_box() {
  DoctorFacts facts;
  facts.document = json::parse(R"({
    "daemon": {"version": "0.1.0", "pid": 1, "degraded": false},
    "interfaces": [{"name": "eth1", "mode": "native", "attached": true}],
    "counters": [{"verdict": "pass", "reason": "pipeline_end", "packets": 100},
                 {"verdict": "drop", "reason": "filter_rule_drop", "packets": 7}],
    "vips": [{"vip": "198.18.1.10:80/tcp", "check": "tcp:80",
              "backends": [{"address": "198.18.0.11", "health": "up", "state": "active"},
                           {"address": "198.18.0.12", "health": "unchecked", "state": "active"}]}],
    "next_hops": [{"next_hop": "198.18.2.1@eth1", "via": "198.18.2.1", "dev": "eth1", "resolved": true}],
    "errors": []})").as_object();
  facts.lb = json::parse(R"({"settings": {"mtu": 1480}, "events": {"corrupt_table": 0}})").as_object();
  facts.pin_dir = "/sys/fs/bpf/sluice";
  facts.pin_dir_present = true;
  facts.rp_filter_all = 0;
  facts.interfaces["eth1"] = {1500, 2};
  return facts;
}

std::multiset<std::string> checks_of(const std::vector<Finding>& findings) {
  std::multiset<std::string> out;
  for (const auto& f : findings) out.insert(f.check);
  return out;
}

TEST(Doctor, AHealthyBoxHasNoFinding) {
  const auto findings = diagnose(healthy_box());
  EXPECT_TRUE(findings.empty()) << findings.front().problem;
}

TEST(Doctor, EachBrokenSetUpGivesItsFindingWithSubjectAndFix) {
  struct Case {
    const char* check;
    std::function<void(DoctorFacts&)> breaks;
    std::string subject;
    std::string fix_has;
  };
  const std::vector<Case> cases = {
      {"bpffs", [](DoctorFacts& f) { f.bpffs_mounted = false; }, "/sys/fs/bpf", "mount -t bpf"},
      {"pin_dir", [](DoctorFacts& f) { f.pin_dir_present = false; }, "/sys/fs/bpf/sluice", "restart"},
      {"degraded",
       [](DoctorFacts& f) {
         f.document["daemon"].as_object()["degraded"] = true;
         f.document["daemon"].as_object()["restore_error"] = "forward: interface eth9 gone";
       },
       "sluiced", "apply"},
      {"not_attached", [](DoctorFacts& f) { f.document["interfaces"].at(0).as_object()["attached"] = false; }, "eth1",
       "sluicectl attach eth1"},
      {"attach_mode", [](DoctorFacts& f) { f.document["interfaces"].at(0).as_object()["mode"] = "skb"; }, "eth1",
       "--mode native"},
      {"rp_filter", [](DoctorFacts& f) { f.interfaces["eth1"].rp_filter = 1; }, "eth1", "rp_filter=2"},
      // all=1 makes an interface of rp_filter 0 strict (the kernel takes the max of the two).
      {"rp_filter", [](DoctorFacts& f) { f.rp_filter_all = 1; f.interfaces["eth1"].rp_filter = 0; }, "eth1", "rp_filter=2"},
      {"lb_mtu", [](DoctorFacts& f) { f.lb->at("settings").as_object()["mtu"] = 0; }, "lb settings", "--mtu 1500"},
      {"lb_mtu", [](DoctorFacts& f) { f.lb->at("settings").as_object()["mtu"] = 9000; }, "lb settings", "--mtu 1500"},
      {"next_hop_unresolved", [](DoctorFacts& f) { f.document["next_hops"].at(0).as_object()["resolved"] = false; },
       "198.18.2.1@eth1", "ping -c 1 -I eth1 198.18.2.1 "},
      {"op_failed", [](DoctorFacts& f) { f.document["errors"] = json::array{"vip.list: broken"}; }, "sluiced",
       "journalctl"},
      {"lb_corrupt_table", [](DoctorFacts& f) { f.lb->at("events").as_object()["corrupt_table"] = 3; }, "lb",
       "restart"},
      {"no_interface", [](DoctorFacts& f) { f.document["interfaces"] = json::array{}; }, "sluiced", "sluicectl attach"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.check);
    DoctorFacts facts = healthy_box();
    c.breaks(facts);
    const auto findings = diagnose(facts);
    ASSERT_EQ(findings.size(), 1u) << (findings.empty() ? "none" : findings.front().check + ", " + findings.back().check);
    EXPECT_EQ(findings[0].check, c.check);
    EXPECT_EQ(findings[0].subject, c.subject);
    EXPECT_NE(findings[0].fix.find(c.fix_has), std::string::npos) << findings[0].fix;
    EXPECT_FALSE(findings[0].meaning.empty());
  }
}

TEST(Doctor, ABackendDownAndAVipWithNoneUp) {
  DoctorFacts facts = healthy_box();
  auto& backends = facts.document["vips"].at(0).as_object()["backends"].as_array();
  backends.at(0).as_object()["health"] = "down";
  EXPECT_EQ(checks_of(diagnose(facts)), (std::multiset<std::string>{"backend_down"})) << "one still up: only the one";
  backends.at(1).as_object()["state"] = "draining";
  const auto findings = diagnose(facts);
  EXPECT_EQ(checks_of(findings), (std::multiset<std::string>{"backend_down", "vip_no_backend"}));
  EXPECT_EQ(findings[0].subject, "198.18.1.10:80/tcp 198.18.0.11");
  EXPECT_NE(findings[0].fix.find("backend-setup.sh"), std::string::npos);
  facts.document["vips"].at(0).as_object()["backends"] = json::array{};
  EXPECT_EQ(checks_of(diagnose(facts)), (std::multiset<std::string>{"vip_no_backend"}));
}

TEST(Doctor, CountersThatPointAtACauseAreNamedAndOthersAreNot) {
  for (const char* reason : {"corrupt_state", "tail_call_failed", "bad_stage_bank", "no_scratch", "bad_verdict",
                             "lb_no_backend", "lb_encap_failed", "lb_too_big", "fwd_redirect_failed"}) {
    SCOPED_TRACE(reason);
    DoctorFacts facts = healthy_box();
    facts.document["counters"].as_array().push_back(
        json::object{{"verdict", "drop"}, {"reason", reason}, {"packets", 12}});
    const auto findings = diagnose(facts);
    ASSERT_EQ(findings.size(), 1u);
    EXPECT_EQ(findings[0].check, std::string("counter_") + reason);
    EXPECT_NE(findings[0].problem.find("12 packets"), std::string::npos) << findings[0].problem;
  }
  // A zero count is no finding.
  DoctorFacts facts = healthy_box();
  facts.document["counters"].as_array().push_back(
      json::object{{"verdict", "drop"}, {"reason", "corrupt_state"}, {"packets", 0}});
  EXPECT_TRUE(diagnose(facts).empty());
  // Every check diagnose can name is in the checked list.
  const auto checked = doctor_checks();
  EXPECT_NE(std::find(checked.begin(), checked.end(), "counter_fwd_redirect_failed"), checked.end());
}

TEST(Doctor, HostileShapesDoNotThrow) {
  DoctorFacts facts = healthy_box();
  facts.document["interfaces"] = json::parse(R"([7, {"name": 3}, {"attached": "yes"}])");
  facts.document["vips"] = json::parse(R"([{"backends": "none"}, null])");
  facts.document["counters"] = json::parse(R"([{"reason": "corrupt_state", "packets": -4}])");
  facts.lb = json::parse(R"({"settings": 5})").as_object();
  EXPECT_NO_THROW(diagnose(facts));
}

}  // namespace
}  // namespace sluice::cli
