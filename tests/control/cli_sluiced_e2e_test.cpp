// sluicectl's filter commands against a real sluiced attached to the box of a
// namespace lab, with real pings from the client: a rule drops them, a
// deleted rule lets them through, a blocked /32 loses them, a rate class
// thins them, a track rule puts the flow in `conn list`. Every command runs
// as an operator types it (sluice::cli::run with --socket), tables and all.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"
#include "sluicectl.hpp"

namespace sluice::test {
namespace {

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

class Sluicectl {
 public:
  explicit Sluicectl(std::string socket) : socket_(std::move(socket)) {}
  Outcome operator()(std::vector<std::string> args) const {
    std::ostringstream out, err;
    std::istringstream in;
    cli::Env env(out, err, in);
    args.insert(args.begin(), {"--socket", socket_});
    const int code = cli::run(args, env);
    return {code, out.str(), err.str()};
  }

 private:
  std::string socket_;
};

std::string joined(const Outcome& r) { return "exit " + std::to_string(r.code) + "\nstdout:\n" + r.out + "stderr:\n" + r.err; }

// Replies the client got out of `count` pings (bounded: -W 1, -i 0.05..0.2).
int pings_answered(const TwoHostLab& lab, int count, const char* interval = "0.2") {
  const auto ping = lab.client.exec("ping -n -c " + std::to_string(count) + " -i " + interval + " -W 1 " +
                                    std::string(TwoHostLab::box_v4));
  std::smatch match;
  static const std::regex received(R"((\d+) received)");
  if (!std::regex_search(ping.output, match, received)) return -1;
  return std::stoi(match[1]);
}

TEST(SluicectlE2E, FilterCommandsJudgeRealPings) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  const Sluicectl sluicectl(daemon.socket_path());

  Outcome r = sluicectl({"attach", lab.box_if});
  ASSERT_EQ(r.code, cli::kExitOk) << joined(r);
  ASSERT_EQ(pings_answered(lab, 3), 3) << "the lab must pass pings before any rule";

  // An ordered rule: icmp dropped, then deleted by the id rule add printed.
  r = sluicectl({"rule", "add", "--proto", "icmp", "--action", "drop"});
  ASSERT_EQ(r.code, cli::kExitOk) << joined(r);
  const std::string id = r.out.substr(0, r.out.find('\n'));
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(r.out, id + "\n") << "only the id: scripts keep it";
  EXPECT_EQ(pings_answered(lab, 3), 0);
  r = sluicectl({"rule", "list"});
  EXPECT_EQ(r.code, cli::kExitOk) << joined(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\\n *" + id + "  drop +[1-9][0-9]* +[1-9][0-9]*  icmp\\n")))
      << "the rule with its hits:\n" << r.out;
  r = sluicectl({"rule", "del", id});
  EXPECT_EQ(r.code, cli::kExitOk) << joined(r);
  EXPECT_EQ(r.out, "deleted rule " + id + "\n");
  EXPECT_EQ(pings_answered(lab, 3), 3);
  EXPECT_EQ(sluicectl({"rule", "list"}).out, "no rules\ndefault policy: pass\n");

  // The prefix list: the client's /32 blocked, listed, removed.
  const std::string client = std::string(TwoHostLab::client_v4) + "/32";
  r = sluicectl({"block", "add", TwoHostLab::client_v4});
  EXPECT_EQ(r.code, cli::kExitOk) << joined(r);
  EXPECT_EQ(r.out, "added 1 prefix\n");
  EXPECT_EQ(pings_answered(lab, 3), 0);
  r = sluicectl({"block", "list"});
  EXPECT_EQ(r.out, "PREFIX         ACTION\n" + client + "  drop\n") << joined(r);
  r = sluicectl({"block", "del", client});
  EXPECT_EQ(r.code, cli::kExitOk) << joined(r);
  EXPECT_EQ(pings_answered(lab, 3), 3);

  // block load: a bad line is refused whole (the daemon names it), a good file adds.
  struct ListDir {
    std::string path = (std::filesystem::temp_directory_path() / ("sluicectl-lists-" + std::to_string(::getpid()))).string();
    ListDir() { std::filesystem::create_directories(path); }
    ~ListDir() { std::filesystem::remove_all(path); }  // also when an ASSERT returns early
  } lists;
  const std::string& dir = lists.path;
  std::ofstream(dir + "/bad.txt") << "198.19.0.0/16\nnot-a-prefix\n";
  r = sluicectl({"block", "load", dir + "/bad.txt"});
  EXPECT_EQ(r.code, cli::kExitFailed) << joined(r);
  EXPECT_NE(r.err.find("not-a-prefix"), std::string::npos) << joined(r);
  EXPECT_NE(r.err.find("sluicectl: block.load.chunk: " + dir + "/bad.txt:2: bad prefix 'not-a-prefix'"), std::string::npos)
      << "the line number of the operator's file, said once:\n" << joined(r);
  EXPECT_EQ(r.err.find("/.block-load"), std::string::npos) << "no daemon-private path:\n" << joined(r);
  EXPECT_EQ(sluicectl({"block", "list"}).out, "no prefixes listed\n");
  std::ofstream(dir + "/good.txt") << "# lab\n198.19.0.0/16\n2001:db8:ffff::/48 pass\n";
  r = sluicectl({"block", "load", dir + "/good.txt"});
  EXPECT_EQ(r.code, cli::kExitOk) << joined(r);
  EXPECT_EQ(r.out, "loaded 2 prefixes from " + dir + "/good.txt\n");
  r = sluicectl({"block", "del", "198.19.0.0/16", "2001:db8:ffff::/48"});
  EXPECT_EQ(r.code, cli::kExitOk) << joined(r);

  // A rate class and a rule that uses it: 1 packet per second gets one or
  // two of ten quick pings through.
  r = sluicectl({"limit", "set", "pings", "--pps", "1", "--burst", "1"});
  EXPECT_EQ(r.code, cli::kExitOk) << joined(r);
  EXPECT_EQ(r.out, "rate class pings created\n");
  r = sluicectl({"limit", "list"});
  EXPECT_EQ(r.out,
            "CLASS  PPS  BURST  BPS  SYN ONLY  SOURCE   AGGREGATE\n"
            "pings    1      1    -  no        /32 /64  -\n")
      << joined(r);
  r = sluicectl({"rule", "add", "--proto", "icmp", "--action", "limit:pings"});
  ASSERT_EQ(r.code, cli::kExitOk) << joined(r);
  const std::string limit_rule = r.out.substr(0, r.out.find('\n'));
  const int answered = pings_answered(lab, 10, "0.05");
  EXPECT_GE(answered, 1);
  EXPECT_LE(answered, 3);
  r = sluicectl({"limit", "del", "pings"});
  EXPECT_EQ(r.code, cli::kExitFailed) << "in use by the rule:\n" << joined(r);
  EXPECT_NE(r.err.find("in use"), std::string::npos) << joined(r);
  EXPECT_EQ(sluicectl({"rule", "del", limit_rule}).code, cli::kExitOk);
  r = sluicectl({"limit", "del", "pings"});
  EXPECT_EQ(r.code, cli::kExitOk) << joined(r);
  EXPECT_EQ(pings_answered(lab, 3), 3);

  // A track rule: the ping flow shows in conn list.
  r = sluicectl({"rule", "add", "--proto", "icmp", "--action", "track"});
  ASSERT_EQ(r.code, cli::kExitOk) << joined(r);
  const std::string track_rule = r.out.substr(0, r.out.find('\n'));
  EXPECT_EQ(pings_answered(lab, 2), 2);
  r = sluicectl({"conn", "list"});
  EXPECT_EQ(r.code, cli::kExitOk) << joined(r);
  EXPECT_NE(r.out.find("PROTO"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\\nicmp +198\\.18\\.0\\.[12] +198\\.18\\.0\\.[12] +icmp +[1-9]")))
      << r.out;
  r = sluicectl({"--json", "conn", "list", "--limit", "1"});
  EXPECT_EQ(r.code, cli::kExitOk) << joined(r);
  EXPECT_NE(r.out.find("\"flows\":[{"), std::string::npos) << r.out;
  EXPECT_EQ(sluicectl({"rule", "del", track_rule}).code, cli::kExitOk);

  // A local error never reaches the daemon; a daemon error is exit 1 with its words.
  r = sluicectl({"rule", "add", "--dport", "9-3", "--action", "drop"});
  EXPECT_EQ(r.code, cli::kExitUsage) << joined(r);
  r = sluicectl({"rule", "add", "--iface", "sl-nosuch0", "--action", "drop"});
  EXPECT_EQ(r.code, cli::kExitFailed) << joined(r);
  EXPECT_NE(r.err.find("sl-nosuch0"), std::string::npos) << joined(r);
  EXPECT_EQ(sluicectl({"rule", "list"}).out, "no rules\ndefault policy: pass\n");
}

}  // namespace
}  // namespace sluice::test
