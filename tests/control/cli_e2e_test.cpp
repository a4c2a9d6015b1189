// sluicectl end to end over a real Unix socket: a tiny Asio server in the
// test plays sluiced, records every request line and answers canned lines.
// Asserts the exact request JSON each command puts on the wire, and that
// framing, streaming, timeouts and a vanishing daemon behave.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <istream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sluicectl.hpp"

namespace sluice::cli {
namespace {

namespace asio = boost::asio;
using asio::local::stream_protocol;

// One scripted connection: for the n-th request line, write script[n] (each
// string one reply line, sent in its own write to exercise framing), then
// read the next request. After the script: close, as a crashed daemon would.
class FakeDaemon {
 public:
  struct Step {
    std::vector<std::string> lines;
    std::chrono::milliseconds delay{0};  // before answering
  };

  explicit FakeDaemon(std::vector<Step> script)
      : dir_(make_dir()), path_(dir_ + "/sluice.sock"), acceptor_(io_, stream_protocol::endpoint(path_)),
        script_(std::move(script)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeDaemon() {
    if (thread_.joinable()) thread_.join();
    std::filesystem::remove_all(dir_);
  }

  const std::string& path() const { return path_; }
  std::vector<std::string> requests() {
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  static std::string make_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "sluicectl-e2e-XXXXXX").string();
    return ::mkdtemp(pattern.data());
  }

  void serve() {
    boost::system::error_code ec;
    stream_protocol::socket socket(io_);
    acceptor_.accept(socket, ec);
    if (ec) return;
    asio::streambuf buffer;
    for (const Step& step : script_) {
      asio::read_until(socket, buffer, '\n', ec);
      if (ec) return;
      std::istream in(&buffer);
      std::string line;
      std::getline(in, line);
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(line);
      }
      std::this_thread::sleep_for(step.delay);
      for (const auto& reply : step.lines) {
        asio::write(socket, asio::buffer(reply + "\n"), ec);
        if (ec) return;
      }
    }
    // End of script: hang up, as a daemon that exits would. A client still
    // waiting for lines sees end-of-file.
    socket.shutdown(stream_protocol::socket::shutdown_both, ec);
  }

  std::string dir_;
  std::string path_;
  asio::io_context io_;
  stream_protocol::acceptor acceptor_;
  std::vector<Step> script_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> requests_;
};

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

Outcome run_cli(const std::string& socket, std::vector<std::string> args) {
  std::ostringstream out, err;
  std::istringstream in;
  Env env(out, err, in);
  env.interface_name = [](std::uint32_t ifindex) { return "if" + std::to_string(ifindex); };
  env.monotonic_to_realtime_ns = [] { return std::int64_t{0}; };
  args.insert(args.begin(), {"--socket", socket});
  const int code = run(args, env);
  return {code, out.str(), err.str()};
}

TEST(CliEndToEnd, StatusOverTheSocket) {
  FakeDaemon daemon({{{R"({"id":1,"ok":true,"result":{"version":"0.1.0","pid":7,"uptime_seconds":59,"pin_dir":"/p",)"
                       R"("interfaces":[],"stages":{"filter":true,"lb":true,"forward":true},"reused_maps":[]}})"}}});
  const Outcome r = run_cli(daemon.path(), {"status"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(daemon.requests(), (std::vector<std::string>{R"({"id":1,"op":"status","args":{}})"}));
  EXPECT_NE(r.out.find("uptime       59s\n"), std::string::npos) << r.out;
}

TEST(CliEndToEnd, EachCommandsExactRequest) {
  struct Case {
    std::vector<std::string> args;
    std::string request;
  };
  const std::vector<Case> cases{
      {{"attach", "veth0", "--mode", "skb"}, R"({"id":1,"op":"attach","args":{"iface":"veth0","mode":"skb"}})"},
      {{"detach", "veth0"}, R"({"id":1,"op":"detach","args":{"iface":"veth0"}})"},
      {{"config", "get"}, R"({"id":1,"op":"config.get","args":{}})"},
      {{"config", "set", "--non-ip", "drop", "--stages", "filter"},
       R"({"id":1,"op":"config.set","args":{"non_ip_verdict":"drop","stages":{"filter":true,"lb":false,"forward":false}}})"},
      {{"config", "show"}, R"({"id":1,"op":"config.show","args":{}})"},
      {{"stats"}, R"({"id":1,"op":"stats","args":{}})"},
      {{"shutdown", "--detach"}, R"({"id":1,"op":"shutdown","args":{"detach":true}})"},
      {{"block", "add", "198.18.0.0/15", "2001:db8::/32", "--action", "limit:edge"},
       R"({"id":1,"op":"block.add","args":{"prefixes":["198.18.0.0/15","2001:db8::/32"],"action":"rate-limit","rate_class":"edge"}})"},
      {{"block", "del", "198.18.0.0/15"}, R"({"id":1,"op":"block.del","args":{"prefixes":["198.18.0.0/15"]}})"},
      {{"block", "list"}, R"({"id":1,"op":"block.list","args":{}})"},
      {{"rule", "add", "--priority", "5", "--src", "198.18.0.1", "--proto", "tcp", "--dport", "80-88", "--tcp-flags",
        "syn", "--action", "track"},
       R"({"id":1,"op":"rule.add","args":{"priority":5,"src":"198.18.0.1/32","proto":"tcp","dport":"80-88","tcp_flags":"syn","action":"pass-track"}})"},
      {{"rule", "add", "--dst", "2001:db8::/48", "--proto", "icmpv6", "--icmp-type", "128", "--iface", "veth0", "--action",
        "drop"},
       R"({"id":1,"op":"rule.add","args":{"dst":"2001:db8::/48","proto":"icmpv6","icmp_type":128,"iface":"veth0","action":"drop"}})"},
      {{"rule", "del", "5"}, R"({"id":1,"op":"rule.del","args":{"id":5}})"},
      {{"rule", "list"}, R"({"id":1,"op":"rule.list","args":{}})"},
      {{"limit", "set", "edge", "--pps", "100", "--bps", "1000000", "--burst", "10", "--syn-only"},
       R"({"id":1,"op":"limit.set","args":{"class":"edge","pps":100,"bps":1000000,"burst":10,"syn_only":true}})"},
      {{"limit", "del", "edge"}, R"({"id":1,"op":"limit.del","args":{"class":"edge"}})"},
      {{"limit", "list"}, R"({"id":1,"op":"limit.list","args":{}})"},
      {{"conn", "list", "--limit", "10"}, R"({"id":1,"op":"conn.list","args":{"limit":10}})"},
  };
  for (const auto& c : cases) {
    // --json: the canned result need not fit each command's table.
    FakeDaemon daemon({{{R"({"id":1,"ok":true,"result":{"yaml":"{}\n","counters":[]}})"}}});
    std::vector<std::string> args = c.args;
    args.push_back("--json");
    const Outcome r = run_cli(daemon.path(), args);
    EXPECT_EQ(r.code, kExitOk) << c.request << "\n" << r.err;
    EXPECT_EQ(daemon.requests(), std::vector<std::string>{c.request});
  }
}

// A blocklist near the request limit crosses the socket whole; the tables
// come back from the socket as they do from the fake transport.
TEST(CliEndToEnd, FilterCommandsOverTheSocket) {
  const std::string dir = (std::filesystem::temp_directory_path() / ("sluicectl-e2e-list-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/blocklist.txt";
  std::string content;
  for (int i = 0; content.size() < 900'000; ++i)
    content += "198.18." + std::to_string(i >> 8 & 0xff) + "." + std::to_string(i & 0xff) + "/32\n";
  {
    std::ofstream file(path);
    file << content;
  }
  // Streamed in chunks of whole lines over one connection: begin, chunks, commit.
  const std::size_t chunks = content.size() / (128 * 1024) + 1;
  std::vector<FakeDaemon::Step> script{{{R"({"id":1,"ok":true,"result":{"load":1}})"}}};
  for (std::size_t i = 0; i < chunks; ++i)
    script.push_back({{R"({"id":)" + std::to_string(i + 2) + R"(,"ok":true,"result":{"lines":1,"prefixes":1}})"}});
  script.push_back({{R"({"id":)" + std::to_string(chunks + 2) + R"(,"ok":true,"result":{"loaded":55000}})"}});
  FakeDaemon daemon(script);
  Outcome r = run_cli(daemon.path(), {"block", "load", path});
  std::filesystem::remove_all(dir);
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "loaded 55000 prefixes from " + path + "\n");
  const auto requests = daemon.requests();
  ASSERT_EQ(requests.size(), chunks + 2);
  std::string joined;
  for (const auto& line : requests) {
    auto request = boost::json::parse(line).as_object();
    if (request.at("op") == "block.load.chunk") joined += request.at("args").at("data").as_string();
  }
  EXPECT_EQ(boost::json::parse(requests.back()).at("op"), "block.load.commit");
  EXPECT_EQ(joined, content);

  FakeDaemon lists({{{R"({"id":1,"ok":true,"result":{"rules":[{"id":10,"priority":10,"proto":1,"action":"drop",)"
                      R"("packets":4,"bytes":336,"description":"icmp drop"}]}})"}}});
  r = run_cli(lists.path(), {"rule", "list"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "ID  ACTION  PACKETS  BYTES  MATCH\n"
            "10  drop          4    336  icmp\n");
}

TEST(CliEndToEnd, EventsStreamAcrossManyWrites) {
  const std::string head =
      "020000000002020000000001080045000028000000004006000ac6120001c612010109c40016000000000000000050020000"
      "00000000";
  std::vector<std::string> lines;
  for (int i = 0; i < 50; ++i)
    lines.push_back(R"({"id":1,"ok":true,"event":{"timestamp_ns":)" + std::to_string(1000000000 + i) +
                    R"(,"ifindex":3,"reason":"trunc_tcp","verdict":"drop","pkt_len":60,"head_hex":")" + head + "\"}}");
  lines.push_back(R"({"id":1,"ok":true,"result":{"events":50}})");
  FakeDaemon daemon({{lines}});
  const Outcome r = run_cli(daemon.path(), {"events", "--follow", "-c", "50"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(daemon.requests(), (std::vector<std::string>{R"({"id":1,"op":"events","args":{"follow":true,"max":50}})"}));
  std::size_t rows = 0;
  for (std::size_t at = r.out.find("198.18.0.1:2500 > 198.18.1.1:22 tcp [S]"); at != std::string::npos;
       at = r.out.find("198.18.0.1:2500 > 198.18.1.1:22 tcp [S]", at + 1))
    ++rows;
  EXPECT_EQ(rows, 50u) << r.out;
  EXPECT_NE(r.out.find("00:00:01.000000  if3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("50 events\n"), std::string::npos);
}

TEST(CliEndToEnd, WatchUsesOneConnectionForManyRequests) {
  const std::string stats = R"({"ok":true,"result":{"counters":[]},"id":)";
  FakeDaemon daemon({{{stats + "1}"}}, {{stats + "2}"}}});
  std::ostringstream out, err;
  std::istringstream in;
  Env env(out, err, in);
  int sleeps = 0;
  env.sleep = [&](std::chrono::milliseconds) { ++sleeps; };
  // 1 s in 100 ms slices: Ctrl-C halfway through the sleep after the second table.
  env.interrupted = [&] { return sleeps >= 15; };
  const int code = run({"--socket", daemon.path(), "stats", "--watch", "1"}, env);
  EXPECT_EQ(code, kExitOk) << err.str();
  EXPECT_EQ(daemon.requests(), (std::vector<std::string>{R"({"id":1,"op":"stats","args":{}})",
                                                         R"({"id":2,"op":"stats","args":{}})"}));
}

TEST(CliEndToEnd, DaemonVanishingMidStreamIsAnError) {
  FakeDaemon daemon({{{R"({"id":1,"ok":true,"event":{"timestamp_ns":1,"ifindex":1,"reason":"x","verdict":"drop",)"
                       R"("pkt_len":0,"head_hex":""}})"}}});
  const Outcome r = run_cli(daemon.path(), {"events", "--follow"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_EQ(r.err, "sluicectl: daemon closed the connection on " + daemon.path() + " before replying\n");
}

TEST(CliEndToEnd, SilentDaemonTimesOut) {
  FakeDaemon daemon({{{R"({"id":1,"ok":true,"result":{}})"}, std::chrono::milliseconds(1500)}});
  const auto start = std::chrono::steady_clock::now();
  const Outcome r = run_cli(daemon.path(), {"--timeout", "0.2", "config", "get"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_EQ(r.err, "sluicectl: no reply from " + daemon.path() + " within the timeout\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1400));
}

TEST(CliEndToEnd, NoDaemonExplainsItself) {
  // A path in a directory this test made and nobody listens in: no host state decides the outcome.
  std::string dir = (std::filesystem::temp_directory_path() / "sluicectl-e2e-absent-XXXXXX").string();
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  struct RemoveDir {
    std::string path;
    ~RemoveDir() { std::filesystem::remove_all(path); }
  } remove_dir{dir};
  const std::string absent = dir + "/sluice.sock";
  const Outcome r = run_cli(absent, {"status"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_NE(r.err.find("cannot connect to " + absent), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is sluiced running?"), std::string::npos) << r.err;
}

// The real executable: exit status and streams as a shell sees them.
TEST(CliEndToEnd, ExecutableExitStatus) {
  FakeDaemon daemon({{{R"({"id":1,"ok":false,"error":{"code":"forbidden","message":"attach needs root or group sluice"}})"}}});
  const std::string command =
      std::string(SLUICECTL_PATH) + " --socket " + daemon.path() + " attach eth0 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  std::array<char, 256> chunk{};
  while (std::fgets(chunk.data(), chunk.size(), pipe)) output += chunk.data();
  const int status = ::pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kExitFailed);
  EXPECT_EQ(output, "sluicectl: attach: attach needs root or group sluice [forbidden]\n");
  EXPECT_EQ(daemon.requests(), (std::vector<std::string>{R"({"id":1,"op":"attach","args":{"iface":"eth0","mode":"native"}})"}));
}

// rule add prints only the id, so a script can keep it: ID=$(sluicectl rule add ...).
TEST(CliEndToEnd, ExecutableRuleAddPrintsTheIdForScripts) {
  FakeDaemon daemon({{{R"({"id":1,"ok":true,"result":{"id":20}})"}}});
  const std::string command = std::string(SLUICECTL_PATH) + " --socket " + daemon.path() +
                              " rule add --proto icmp --action drop 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  std::array<char, 256> chunk{};
  while (std::fgets(chunk.data(), chunk.size(), pipe)) output += chunk.data();
  const int status = ::pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kExitOk);
  EXPECT_EQ(output, "20\n");
  EXPECT_EQ(daemon.requests(), (std::vector<std::string>{R"({"id":1,"op":"rule.add","args":{"proto":"icmp","action":"drop"}})"}));
}

// A local check fails before anything connects: exit 2, and the daemon never hears of it.
TEST(CliEndToEnd, ExecutableUsageErrorExitsTwo) {
  const std::string command = std::string(SLUICECTL_PATH) + " --socket /nonexistent/sluice.sock rule add --dport 9-3 --action drop 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  std::array<char, 256> chunk{};
  while (std::fgets(chunk.data(), chunk.size(), pipe)) output += chunk.data();
  const int status = ::pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kExitUsage);
  EXPECT_NE(output.find("--dport: port range '9-3'"), std::string::npos) << output;
}

}  // namespace
}  // namespace sluice::cli
