// sluiced as a process: spoken to over its socket, attached to the box of a
// namespace lab with real pings crossing it, killed with -9 under traffic and
// restarted without losing a ping, and refusing unprivileged state changes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* ping_three = "ping -c 3 -i 0.2 -W 1 ";
// The kill -9 test: 120 pings 50 ms apart span the kill and the restart.
constexpr int continuous_pings = 120;
constexpr gid_t nobody_gid = 65534;
constexpr uid_t nobody_uid = 65534;

std::uint64_t counter(const json::value& stats, std::string_view verdict, std::string_view reason) {
  for (const auto& entry : stats.at("counters").as_array())
    if (entry.at("verdict") == json::value(verdict) && entry.at("reason") == json::value(reason))
      return entry.at("packets").to_number<std::uint64_t>();
  return 0;
}

std::string error_code(const protocol::Reply& reply) {
  return reply.error ? std::string(protocol::to_string(reply.error->code)) : std::string("(ok)");
}

TEST(DaemonE2E, AttachPingStatsConfigMetricsAndStop) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  options.metrics = "127.0.0.1:9630";
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  ASSERT_TRUE(client.connected()) << client.connect_error();

  auto status = client.result("status");
  EXPECT_EQ(status.at("pin_dir"), json::value(daemon.pin_dir()));
  EXPECT_TRUE(status.at("reused_maps").as_array().empty()) << "fresh pins";
  EXPECT_EQ(status.at("stages").at("filter"), json::value(true));
  struct stat socket_info {};
  ASSERT_EQ(::stat(daemon.socket_path().c_str(), &socket_info), 0);
  EXPECT_EQ(socket_info.st_mode & 0777, 0660u);

  auto attached = client.result("attach", {{"iface", lab.box_if}});
  EXPECT_EQ(attached.at("name"), json::value(lab.box_if));
  EXPECT_NE(attached.at("prog_id"), json::value(0));
  EXPECT_TRUE(std::filesystem::exists(daemon.pin_dir() + "/prog_entry"));
  EXPECT_TRUE(std::filesystem::exists(daemon.state_dir() + "/state.yaml"));
  status = client.result("status");
  ASSERT_EQ(status.at("interfaces").as_array().size(), 1u);
  EXPECT_EQ(status.at("interfaces").at(0).at("mode"), json::value("native"));
  // Attaching again is idempotent; another mode is refused with the reason.
  EXPECT_TRUE(client.call("attach", {{"iface", lab.box_if}}).ok);
  auto other_mode = client.call("attach", {{"iface", lab.box_if}, {"mode", "skb"}});
  EXPECT_EQ(error_code(other_mode), "bad_args");
  auto missing = client.call("attach", {{"iface", "sl-nosuch0"}});
  EXPECT_EQ(error_code(missing), "bad_args");
  EXPECT_NE(missing.error->message.find("sl-nosuch0"), std::string::npos);

  const auto before = counter(client.result("stats"), "pass", "pipeline_end");
  auto ping = lab.client.exec(ping_three + std::string(TwoHostLab::box_v4));
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  EXPECT_GE(counter(client.result("stats"), "pass", "pipeline_end") - before, 3u);

  auto set = client.result("config.set", {{"end_verdict", "drop"}});
  EXPECT_EQ(set.at("end_verdict"), json::value("drop"));
  EXPECT_EQ(client.result("config.get").at("end_verdict"), json::value("drop"));
  ping = lab.client.exec(ping_three + std::string(TwoHostLab::box_v4));
  EXPECT_NE(ping.exit_code, 0) << ping.output;
  // The filter (no rules, policy pass) hands them on; the end of the pipeline drops them.
  EXPECT_GE(counter(client.result("stats"), "drop", "pipeline_end"), 3u);
  EXPECT_EQ(counter(client.result("stats"), "drop", "filter_default_drop"), 0u);
  // A bad key makes the whole request fail and changes nothing.
  auto bad = client.call("config.set", {{"end_verdict", "pass"}, {"non_ip_verdict", "maybe"}});
  EXPECT_EQ(error_code(bad), "bad_args");
  EXPECT_NE(bad.error->message.find("non_ip_verdict"), std::string::npos);
  EXPECT_EQ(client.result("config.get").at("end_verdict"), json::value("drop"));
  client.result("config.set", {{"end_verdict", "pass"}});
  ping = lab.client.exec(ping_three + std::string(TwoHostLab::box_v4));
  EXPECT_EQ(ping.exit_code, 0) << ping.output;

  // events without follow: the recent ones, then the final result line.
  auto events = client.call("events", {{"max", 5}});
  ASSERT_TRUE(events.ok) << error_code(events);
  EXPECT_TRUE(events.result.has_value());

  // /metrics inside the box namespace, judged by promtool.
  const auto scrape = lab.box.exec("curl -sf http://127.0.0.1:9630/metrics");
  ASSERT_EQ(scrape.exit_code, 0) << scrape.output;
  EXPECT_NE(scrape.output.find("sluice_packets_total{verdict=\"pass\",reason=\"pipeline_end\"}"), std::string::npos)
      << scrape.output;
  EXPECT_NE(scrape.output.find("sluice_control_requests_total{op=\"config.set\",result=\"bad_args\"} 1"),
            std::string::npos)
      << scrape.output;
  // Without promtool the lint is missing proof: the end of the test skips (fails under CI).
  const bool have_promtool = run_command("command -v promtool").exit_code == 0;
  if (have_promtool) {
    const auto checked = lab.box.exec("curl -sf http://127.0.0.1:9630/metrics | promtool check metrics");
    EXPECT_EQ(checked.exit_code, 0) << checked.output;
    EXPECT_EQ(checked.output, "") << "promtool lint findings";
  }

  // SIGTERM: exit 0, traffic still judged by the attached program, pins kept.
  client.close();
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  EXPECT_TRUE(std::filesystem::exists(daemon.pin_dir() + "/verdict_counters"));
  const auto link = lab.box.exec("ip link show " + lab.box_if);
  EXPECT_NE(link.output.find("xdp"), std::string::npos) << link.output;
  ping = lab.client.exec(ping_three + std::string(TwoHostLab::box_v4));
  EXPECT_EQ(ping.exit_code, 0) << ping.output;

  // A new daemon finds everything; shutdown with detach removes it all.
  ASSERT_EQ(daemon.start(), "");
  ControlClient again(daemon.socket_path());
  status = again.result("status");
  EXPECT_FALSE(status.at("reused_maps").as_array().empty());
  ASSERT_EQ(status.at("interfaces").as_array().size(), 1u);
  EXPECT_EQ(status.at("interfaces").at(0).at("attached"), json::value(true));
  auto shutdown = again.result("shutdown", {{"detach", true}});
  EXPECT_EQ(shutdown.at("detach").at("detached").as_array().size(), 1u) << json::serialize(shutdown);
  EXPECT_EQ(daemon.wait_exit(), 0) << daemon.log();
  EXPECT_FALSE(std::filesystem::exists(daemon.pin_dir()));
  EXPECT_FALSE(std::filesystem::exists(daemon.socket_path()));
  const auto detached = lab.box.exec("ip link show " + lab.box_if);
  EXPECT_EQ(detached.output.find("xdp"), std::string::npos) << detached.output;
  if (!have_promtool) SLUICE_SKIP_OR_FAIL("promtool not found: /metrics was not linted");
}

TEST(DaemonE2E, KillNineUnderTrafficLosesNoPingAndKeepsCountersAndConfig) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  std::uint32_t prog_id = 0;
  {
    ControlClient client(daemon.socket_path());
    prog_id = client.result("attach", {{"iface", lab.box_if}}).at("prog_id").to_number<std::uint32_t>();
    client.result("config.set", {{"drop_fragments", true}, {"non_ip_verdict", "pass"}});
  }
  const pid_t pinger = lab.client.spawn("ping -c " + std::to_string(continuous_pings) + " -i 0.05 -W 1 " +
                                        std::string(TwoHostLab::box_v4) + " > " + daemon.state_dir() + "/../ping.log 2>&1");
  std::this_thread::sleep_for(1500ms);
  std::uint64_t before_kill = 0;
  {
    ControlClient client(daemon.socket_path());
    before_kill = counter(client.result("stats"), "pass", "pipeline_end");
  }
  EXPECT_GT(before_kill, 0u);
  daemon.kill_hard();
  std::this_thread::sleep_for(500ms);  // traffic flows with no daemon at all
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  const auto status = client.result("status");
  EXPECT_FALSE(status.at("reused_maps").as_array().empty());
  ASSERT_EQ(status.at("interfaces").as_array().size(), 1u);
  // Same build: the attached entry program is kept, nothing was re-attached.
  EXPECT_EQ(status.at("interfaces").at(0).at("prog_id").to_number<std::uint32_t>(), prog_id);
  const auto config = client.result("config.get");
  EXPECT_EQ(config.at("drop_fragments"), json::value(true)) << "config survives the restart";

  EXPECT_EQ(lab.client.wait(pinger, std::chrono::seconds(30)), 0) << "some pings were lost";
  const auto ping_log = run_command("cat " + daemon.state_dir() + "/../ping.log").output;
  EXPECT_NE(ping_log.find(std::to_string(continuous_pings) + " packets transmitted, " + std::to_string(continuous_pings) +
                          " received"),
            std::string::npos)
      << ping_log;
  const auto after = counter(client.result("stats"), "pass", "pipeline_end");
  EXPECT_GE(after, before_kill + continuous_pings / 2) << "counters were not reset";
}

TEST(DaemonE2E, UnprivilegedPeersMayReadButNotChangeState) {
  // Inside a lab: the admin's attach and shutdown really happen, so they must
  // reach only interfaces of a namespace this test created.
  SLUICE_REQUIRE_NETNS();
  // The socket belongs to group nogroup (so uid 65534 can connect); state
  // changes need root or the admin group ("users", gid 100 on Debian).
  if (run_command("getent group users && getent group nogroup").exit_code != 0)
    SLUICE_SKIP_OR_FAIL("skipped: groups users and nogroup are needed");
  const gid_t admin_gid = static_cast<gid_t>(std::stoul(run_command("getent group users | cut -d: -f3").output));
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  options.extra_args = {"--admin-group", "users", "--socket-group", "nogroup"};
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  const std::string socket = daemon.socket_path();

  // The Unix socket is a file: a child in the host namespace reaches the daemon in the box.
  auto as_nobody = [&](std::vector<gid_t> groups) {
    return run_as(nobody_uid, nobody_gid, groups, [&] {
      ControlClient client(socket);
      if (!client.connected()) return "connect failed: " + client.connect_error();
      std::string out;
      for (const auto& [op, args] : std::vector<std::pair<std::string, json::object>>{
               {"status", {}}, {"config.get", {}}, {"stats", {}}, {"events", {}},
               {"config.set", {{"end_verdict", "pass"}}},
               {"attach", {{"iface", lab.box_if}}}, {"shutdown", {}}}) {
        auto reply = client.call(op, args);
        out += op + "=" + error_code(reply) + ";";
      }
      return out;
    });
  };
  // Packet heads (events, and so sluicectl capture) are for the admin group, like state changes.
  EXPECT_EQ(as_nobody({}),
            "status=(ok);config.get=(ok);stats=(ok);events=forbidden;config.set=forbidden;attach=forbidden;"
            "shutdown=forbidden;");
  // The refused shutdown changed nothing: the daemon still answers, nothing is attached.
  {
    ControlClient root(socket);
    const auto status = root.result("status");
    EXPECT_TRUE(status.at("interfaces").as_array().empty()) << json::serialize(status);
  }
  // A member of the admin group may change state, the box's interface and the shutdown included.
  EXPECT_EQ(as_nobody({admin_gid}),
            "status=(ok);config.get=(ok);stats=(ok);events=(ok);config.set=(ok);attach=(ok);shutdown=(ok);");
  // The shutdown op promises an exit after its reply: bounded wait, exit code 0.
  EXPECT_EQ(daemon.wait_exit(std::chrono::seconds(10)), 0) << daemon.log();
  const auto link = lab.box.exec("ip link show " + lab.box_if);
  EXPECT_NE(link.output.find("xdp"), std::string::npos) << "shutdown without detach keeps the program: " << link.output;
}

TEST(DaemonE2E, HostileClientsGetErrorsAndTheConnectionCarriesOn) {
  SLUICE_REQUIRE_PRIVILEGES();
  SluicedProcess daemon;
  ASSERT_EQ(daemon.start(), "");
  // A client that sends half a line and never reads must not block anyone.
  ControlClient stalled(daemon.socket_path());
  ASSERT_TRUE(stalled.send_raw(R"({"id":1,"op":"sta)"));
  ControlClient follower(daemon.socket_path());
  ASSERT_TRUE(follower.send_raw(R"({"id":101,"op":"events","args":{"follow":true}})" "\n"));

  ControlClient client(daemon.socket_path());
  ASSERT_TRUE(client.send_raw("this is not json\n"));
  auto line = client.read_line();
  ASSERT_TRUE(line);
  auto reply = std::get<protocol::Reply>(protocol::parse_reply(*line));
  EXPECT_EQ(error_code(reply), "bad_json");
  EXPECT_TRUE(reply.id.is_null());

  // Over 1 MiB: too_large, and the very same connection goes on.
  ASSERT_TRUE(client.send_raw(R"({"id":2,"op":"status","args":{"x":")" + std::string(protocol::max_request_bytes, 'a') +
                              "\"}}\n"));
  line = client.read_line();
  ASSERT_TRUE(line);
  EXPECT_EQ(error_code(std::get<protocol::Reply>(protocol::parse_reply(*line))), "too_large");

  auto unknown = client.call("nat.add", {{"vip", "10.0.0.1"}});  // vip.add exists now (lb)
  EXPECT_EQ(error_code(unknown), "unknown_op");
  EXPECT_NE(unknown.error->message.find("nat.add"), std::string::npos);
  auto bad_args = client.call("detach", {{"iface", 42}});
  EXPECT_EQ(error_code(bad_args), "bad_args");
  EXPECT_NE(bad_args.error->message.find("iface"), std::string::npos);
  auto not_attached = client.call("detach", {{"iface", "lo"}});
  EXPECT_EQ(error_code(not_attached), "bad_args");
  // Ids come back verbatim, pipelined requests in order.
  ASSERT_TRUE(client.send_raw(R"({"id":-3,"op":"status"})" "\n" R"({"id":18446744073709551615,"op":"config.get"})" "\n"));
  for (const json::value& id : {json::value(-3), json::value(std::uint64_t{18446744073709551615u})}) {
    line = client.read_line();
    ASSERT_TRUE(line);
    auto r = std::get<protocol::Reply>(protocol::parse_reply(*line));
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.id, json::value(id));
  }
  // A follower that writes while it should only read: past one request's
  // worth (1 MiB) the daemon ends its connection instead of buffering it.
  ControlClient flooder(daemon.socket_path());
  ASSERT_TRUE(flooder.send_raw(R"({"id":102,"op":"events","args":{"follow":true}})" "\n"));
  flooder.send_raw(std::string(2 * protocol::max_request_bytes + 4096, '\n'));  // fails once the daemon hangs up
  EXPECT_FALSE(flooder.read_line(std::chrono::seconds(10)).has_value());
  EXPECT_TRUE(flooder.peer_closed()) << "the flooding follower was not disconnected";
  EXPECT_TRUE(client.call("status").ok) << "other clients carry on";

  // The follower closes mid-stream; the daemon carries on.
  follower.close();
  EXPECT_TRUE(client.call("status").ok);
  EXPECT_TRUE(daemon.running());
  EXPECT_EQ(daemon.stop(SIGINT), 0) << daemon.log();
}

// Before: 256 idle connections (max_connections, no deadline) locked every
// client out, root included, for as long as they stayed. Now: a per-uid cap,
// slots only root and the admin group may take, and idle and partial-line
// deadlines (short here through the options, so the test is quick).
TEST(DaemonE2E, AThousandHostileClientsCannotHoldTheSocketAndRootIsServedThroughout) {
  SLUICE_REQUIRE_PRIVILEGES();
  if (run_command("getent group users && getent group nogroup").exit_code != 0)
    SLUICE_SKIP_OR_FAIL("skipped: groups users and nogroup are needed");
  constexpr int hostile_uids = 4;
  constexpr int clients_per_uid = 250;  // 1,000 in all
  constexpr std::size_t max_connections = 64, reserved = 8, per_uid = 16;
  constexpr auto idle = 2000ms, partial = 1500ms;
  SluicedOptions options;
  options.extra_args = {"--admin-group", "users", "--socket-group", "nogroup",
                        "--max-connections", std::to_string(max_connections),
                        "--admin-reserved-connections", std::to_string(reserved),
                        "--max-connections-per-uid", std::to_string(per_uid),
                        "--idle-timeout-ms", std::to_string(idle.count()),
                        "--partial-line-timeout-ms", std::to_string(partial.count())};
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  const std::string socket = daemon.socket_path();

  // Each hostile uid (nobody and three more, all of group nogroup, none
  // admin) opens 250 connections: idle ones, half request lines, garbage
  // without a newline. It reports how many the daemon kept once all were
  // made, and how many were still open after both deadlines.
  auto hostile = [&](uid_t uid) {
    return run_as(
        uid, nobody_gid, {},
        [&] {
          std::vector<std::unique_ptr<ControlClient>> clients;
          for (int i = 0; i < clients_per_uid; ++i) {
            auto client = std::make_unique<ControlClient>(socket);
            if (!client->connected()) continue;
            if (i % 3 == 1) client->send_raw(R"({"id":1,"op":"sta)");
            if (i % 3 == 2) client->send_raw(std::string("\x01\xff garbage \x7f{{{", 16));
            clients.push_back(std::move(client));
          }
          auto still_open = [&] {
            std::size_t open = 0;
            for (auto& client : clients) {
              if (client->peer_closed()) continue;
              if (!client->read_line(5ms) && !client->peer_closed()) ++open;  // under 2 ms would not look
            }
            return open;
          };
          std::this_thread::sleep_for(300ms);  // the daemon accepts (and refuses) what is queued
          const std::size_t kept = still_open();
          std::this_thread::sleep_for(idle + 1000ms);
          return std::to_string(kept) + " " + std::to_string(still_open());
        },
        std::chrono::seconds(30));
  };
  std::vector<std::string> reports(hostile_uids);
  std::vector<std::thread> attackers;
  for (int i = 0; i < hostile_uids; ++i)
    attackers.emplace_back([&, i] { reports[i] = hostile(nobody_uid - static_cast<uid_t>(i)); });

  // Root asks for status over a fresh connection again and again while the
  // flood lasts, and over one connection kept busy: every answer in time.
  ControlClient kept(socket);
  ASSERT_TRUE(kept.connected());
  const auto until = std::chrono::steady_clock::now() + idle + 1500ms;
  int answered = 0, late = 0;
  while (std::chrono::steady_clock::now() < until) {
    const auto asked = std::chrono::steady_clock::now();
    ControlClient root(socket);
    const auto fresh = root.call("status", {}, 2000ms);
    const auto busy = kept.call("status", {}, 2000ms);
    if (fresh.ok && busy.ok) ++answered;
    else ADD_FAILURE() << "root status: " << error_code(fresh) << " / " << error_code(busy)
                       << (fresh.error ? " " + fresh.error->message : std::string());
    if (std::chrono::steady_clock::now() - asked > 1000ms) ++late;
    std::this_thread::sleep_for(100ms);
  }
  for (auto& attacker : attackers) attacker.join();
  EXPECT_GT(answered, 10);
  EXPECT_EQ(late, 0) << "root's status took over a second";

  std::size_t kept_total = 0;
  for (int i = 0; i < hostile_uids; ++i) {
    std::istringstream words(reports[i]);
    std::size_t kept_by_uid = 0, open_after_deadlines = 0;
    ASSERT_TRUE(words >> kept_by_uid >> open_after_deadlines) << "uid " << nobody_uid - i << ": " << reports[i];
    EXPECT_GE(kept_by_uid, 1u) << "uid " << nobody_uid - i << " got no connection at all";
    EXPECT_LE(kept_by_uid, per_uid) << "the per-uid cap";
    EXPECT_EQ(open_after_deadlines, 0u) << "idle and partial-line connections outlived their deadlines";
    kept_total += kept_by_uid;
  }
  EXPECT_LE(kept_total, max_connections - reserved) << "non-admin peers took reserved slots\n" << daemon.log();

  // An idle root connection is closed after the deadline too; a busy one was not (above).
  ControlClient idle_root(socket);
  ASSERT_TRUE(idle_root.connected());
  EXPECT_FALSE(idle_root.read_line(idle + 1500ms).has_value());
  EXPECT_TRUE(idle_root.peer_closed()) << "an idle connection was not closed after --idle-timeout-ms";
  EXPECT_TRUE(ControlClient(socket).call("status").ok);
  // Hundreds of refusals and deadline closes, a handful of log lines (5 per 10 s).
  const std::string log = daemon.log();
  std::size_t refusal_lines = 0;
  for (const char* needle : {"refused a connection", "closing the connection of uid"})
    for (auto at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++refusal_lines;
  EXPECT_GE(refusal_lines, 1u) << log;
  EXPECT_LE(refusal_lines, 5u) << "refusals are logged rate-limited:\n" << log;
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
}

// The partial-line deadline on its own: with the idle deadline far away,
// connections each holding a started line of almost 1 MiB (the memory
// attack: each pins its buffer) are closed at the partial-line deadline, and
// root is served meanwhile. And refusals of forbidden ops are logged
// rate-limited: a socket-group member looping `shutdown` writes a handful of
// lines, not one per request.
TEST(DaemonE2E, PartialLinesCloseAtTheirOwnDeadlineAndForbiddenOpsLogRateLimited) {
  SLUICE_REQUIRE_PRIVILEGES();
  if (run_command("getent group nogroup").exit_code != 0) SLUICE_SKIP_OR_FAIL("skipped: group nogroup is needed");
  constexpr auto idle = 20000ms, partial = 400ms;
  constexpr int holders = 40;
  SluicedOptions options;
  options.extra_args = {"--socket-group", "nogroup", "--idle-timeout-ms", std::to_string(idle.count()),
                        "--partial-line-timeout-ms", std::to_string(partial.count())};
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  const std::string socket = daemon.socket_path();

  const std::string almost_a_line = R"({"id":1,"op":"status","args":{"pad":")" +
                                    std::string(protocol::max_request_bytes - 64, 'a');
  std::vector<std::unique_ptr<ControlClient>> clients;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < holders; ++i) {
    auto client = std::make_unique<ControlClient>(socket);
    ASSERT_TRUE(client->connected()) << client->connect_error();
    ASSERT_TRUE(client->send_raw(almost_a_line));
    clients.push_back(std::move(client));
  }
  EXPECT_TRUE(ControlClient(socket).call("status", {}, 2000ms).ok) << "root is served while the lines are held";
  std::size_t closed = 0;
  for (auto& client : clients) {
    EXPECT_FALSE(client->read_line(idle / 4).has_value());
    if (client->peer_closed()) ++closed;
  }
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(closed, static_cast<std::size_t>(holders)) << "partial lines outlived their deadline";
  // Well before the idle deadline: the partial-line deadline closed them.
  EXPECT_LT(took, idle / 2) << "closed after "
                            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  EXPECT_NE(daemon.log().find("a request line unfinished after"), std::string::npos) << daemon.log();

  constexpr int forbidden_requests = 60;
  const std::string report = run_as(nobody_uid, nobody_gid, {}, [&] {
    ControlClient client(socket);
    if (!client.connected()) return "connect failed: " + client.connect_error();
    int refused = 0;
    for (int i = 0; i < forbidden_requests; ++i)
      if (error_code(client.call("shutdown")) == "forbidden") ++refused;
    return std::to_string(refused);
  });
  EXPECT_EQ(report, std::to_string(forbidden_requests));
  EXPECT_TRUE(ControlClient(socket).call("status").ok) << "the refused shutdowns changed nothing";
  const std::string log = daemon.log();
  std::size_t refusal_lines = 0;
  for (auto at = log.find("refused shutdown from uid"); at != std::string::npos;
       at = log.find("refused shutdown from uid", at + 1))
    ++refusal_lines;
  EXPECT_GE(refusal_lines, 1u) << log;
  EXPECT_LE(refusal_lines, 5u) << "forbidden ops are logged rate-limited:\n" << log;
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
}

TEST(DaemonE2E, ConnectionLimitOptionsAreValidated) {
  SLUICE_REQUIRE_PRIVILEGES();
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  for (const auto& c : std::vector<Case>{
           {{"--max-connections", "0"}, "--max-connections 0: expected 1..4096"},
           {{"--max-connections", "010"}, "--max-connections: '010': a leading zero is not allowed"},
           {{"--admin-reserved-connections", "256"}, "--admin-reserved-connections 256: expected 0..255"},
           {{"--max-connections-per-uid", "0"}, "--max-connections-per-uid 0: expected 1..256"},
           {{"--idle-timeout-ms", "10"}, "--idle-timeout-ms 10: expected 100..86400000 ms"},
           {{"--partial-line-timeout-ms", "0x10"}, "--partial-line-timeout-ms: '0x10': a base prefix is not allowed"},
       }) {
    std::string command = std::string(sluiced_path()) + " --metrics off --socket /nonexistent/s.sock";
    for (const auto& arg : c.args) command += " " + arg;
    const auto ran = run_command(command + " 2>&1");
    EXPECT_EQ(ran.exit_code, 2) << command << "\n" << ran.output;
    EXPECT_NE(ran.output.find(c.error), std::string::npos) << command << "\n" << ran.output;
  }
}

TEST(DaemonE2E, RefusesToStartOverALiveDaemonOrOverANonSocket) {
  SLUICE_REQUIRE_PRIVILEGES();
  SluicedProcess first;
  ASSERT_EQ(first.start(), "");
  SluicedOptions options;
  options.socket_path = first.socket_path();
  SluicedProcess second(options);
  const std::string why = second.start(std::chrono::seconds(60));
  EXPECT_NE(why.find("another daemon is answering"), std::string::npos) << why;
  EXPECT_TRUE(ControlClient(first.socket_path()).call("status").ok);

  // A regular file where the socket should be is the operator's, not ours to delete.
  SluicedProcess third;
  const std::string not_a_socket = std::filesystem::path(third.socket_path()).parent_path() / "not-a-socket";
  ASSERT_EQ(run_command("echo keep > " + not_a_socket).exit_code, 0);
  SluicedOptions on_file;
  on_file.socket_path = not_a_socket;
  SluicedProcess fourth(on_file);
  const std::string refused = fourth.start(std::chrono::seconds(60));
  EXPECT_NE(refused.find("is not a socket"), std::string::npos) << refused;
  EXPECT_EQ(run_command("cat " + not_a_socket).output, "keep\n");
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {
namespace {

// The prefix lists through the socket: a blocked source loses its pings, a
// bad entry changes nothing, and the list survives a daemon restart.
TEST(DaemonE2E, BlocklistOpsJudgeRealTrafficAndSurviveARestart) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  {
    ControlClient client(daemon.socket_path());
    client.result("attach", {{"iface", lab.box_if}});
    auto bad = client.call("block.add", {{"prefixes", json::array{"198.18.0.1/32", "10.0.0.1/8"}}});
    ASSERT_FALSE(bad.ok);
    EXPECT_EQ(protocol::to_string(bad.error->code), "bad_args");
    EXPECT_NE(bad.error->message.find("10.0.0.1/8"), std::string::npos) << bad.error->message;
    EXPECT_TRUE(client.result("block.list").at("prefixes").as_array().empty()) << "nothing written on error";
    client.result("block.add", {{"prefixes", json::array{std::string(TwoHostLab::client_v4) + "/32"}}});
    auto ping = lab.client.exec(std::string("ping -c 3 -i 0.2 -W 1 ") + TwoHostLab::box_v4);
    EXPECT_NE(ping.exit_code, 0) << ping.output;
  }
  daemon.kill_hard();
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  const auto listed = client.result("block.list").at("prefixes");
  ASSERT_EQ(listed.as_array().size(), 1u) << json::serialize(listed);
  EXPECT_EQ(listed.at(0).at("prefix"), json::value(std::string(TwoHostLab::client_v4) + "/32"));
  client.result("block.del", {{"prefixes", json::array{std::string(TwoHostLab::client_v4) + "/32"}}});
  auto ping = lab.client.exec(std::string("ping -c 3 -i 0.2 -W 1 ") + TwoHostLab::box_v4);
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  auto loaded = client.result("block.load", {{"content", "# comment\n203.0.113.0/24\n2001:db8:ffff::/48\n"}});
  EXPECT_EQ(loaded.at("loaded"), json::value(2));
  auto bad_file = client.call("block.load", {{"content", "203.0.113.0/24\nnot-a-prefix\n"}});
  EXPECT_FALSE(bad_file.ok);
  EXPECT_NE(bad_file.error->message.find("not-a-prefix"), std::string::npos) << bad_file.error->message;
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {
namespace {

// --blocklist-tbl8-groups: a bad value is refused naming the option and the
// value. --conntrack-entries sizes the pinned conntrack tables: pins made
// with one size refuse another with a way out (the tbl8 groups are no pinned
// size: the prefix lists' DIR-24-8 copies are made per start). And a start
// whose state.yaml cannot be made live runs, says degraded, and commits only
// what is live.
TEST(DaemonE2E, BlocklistSizeOptionAndAStateFileThatCannotBeMadeLive) {
  SLUICE_REQUIRE_NETNS();
  Netns ns("sl-start");  // the rule's interface is looked up here, where it surely is not
  {
    SluicedOptions zero;
    zero.netns = ns.name();
    zero.extra_args = {"--blocklist-tbl8-groups", "0"};
    SluicedProcess refused(zero);
    const std::string why = refused.start(std::chrono::seconds(30));
    EXPECT_NE(why.find("--blocklist-tbl8-groups '0'"), std::string::npos) << why;
    EXPECT_NE(why.find("expected a decimal integer in 1.."), std::string::npos) << why;
  }
  SluicedOptions options;
  options.netns = ns.name();
  options.extra_args = {"--blocklist-tbl8-groups", "1024", "--conntrack-entries", "1024"};
  SluicedProcess daemon(options);
  std::filesystem::create_directories(daemon.state_dir());
  const std::string wanted = "defaults: {drop_sample_every: 5}\n"
                             "rules:\n  - {priority: 10, iface: sl-nosuch0, proto: icmp, action: drop}\n";
  std::ofstream(daemon.state_dir() + "/state.yaml") << wanted;
  ASSERT_EQ(daemon.start(), "");
  {
    ControlClient client(daemon.socket_path());
    const auto status = client.result("status");
    EXPECT_EQ(status.at("degraded"), json::value(true)) << json::serialize(status);
    const std::string why(status.at("restore_error").as_string());
    EXPECT_NE(why.find("rules[0].iface"), std::string::npos) << why;
    EXPECT_NE(why.find("sl-nosuch0"), std::string::npos) << why;
    EXPECT_EQ(status.at("filter").at("rules"), json::value(0));
    const std::string shown(client.result("config.show").at("yaml").as_string());
    EXPECT_EQ(shown.find("sl-nosuch0"), std::string::npos) << "config.show describes what runs: " << shown;
    EXPECT_NE(shown.find("drop_sample_every: 5"), std::string::npos) << shown;
    EXPECT_EQ(run_command("cat " + daemon.state_dir() + "/state.yaml.rejected").output, wanted);
  }
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();

  // The pins hold 1024 conntrack entries: the default size is refused with the way out.
  daemon.set_extra_args({});
  const std::string why = daemon.start(std::chrono::seconds(30));
  EXPECT_NE(why.find("created with 1024 entries"), std::string::npos) << why;
  EXPECT_NE(why.find("restart with --conntrack-entries 1024"), std::string::npos) << why;
  EXPECT_NE(why.find("shutdown --detach"), std::string::npos) << why;
  // The old value reuses the pins (another tbl8 bound is fine); the state committed at the last start has
  // nothing it cannot run.
  daemon.set_extra_args({"--conntrack-entries", "1024"});
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  const auto status = client.result("status");
  EXPECT_FALSE(status.at("reused_maps").as_array().empty());
  EXPECT_EQ(status.at("degraded"), json::value(false)) << json::serialize(status);
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
}

}  // namespace
}  // namespace sluice::test
