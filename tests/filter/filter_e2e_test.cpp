// The filter stage end to end: the data plane attached through libxdp to the
// box's veth in a two-host namespace lab, a FilterTable on it, and real
// clients (ping, nc) whose traffic crosses it while the rules change.
//
// XDP sees only what arrives on the box's veth: the client's packets. The
// box's answers leave through the same veth's transmit path and are never
// judged. So "blocked" here means the client's packets are dropped on the way
// in, and conntrack is proven by the client's half of an established flow
// surviving the removal of the rule that admitted it. The answers are seen
// by the TC egress observer beside the XDP program (as sluiced attaches
// it), which marks the flows replied.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "filter_fixture.hpp"
#include "filter_table.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"
#include "tc_attachment.hpp"
#include "xdp_attachment.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using filter::Action;
using filter::FilterRule;
using filter::PortRange;
using filter::RuleSet;

constexpr int kPingCount = 80;  // at -i 0.05: 4 s of traffic

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Polls pred every 20 ms until it holds or the timeout passes.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

// What one ping run printed: the icmp_seq of every reply, and its statistics line.
struct PingReport {
  std::vector<int> replies;  // sorted, unique
  int transmitted = -1;
  int received = -1;
};

PingReport parse_ping(const std::string& output) {
  PingReport report;
  static const std::regex reply(R"(bytes from .*icmp_seq=(\d+))");
  static const std::regex stats(R"((\d+) packets transmitted, (\d+) received)");
  std::set<int> seqs;
  std::istringstream lines(output);
  std::string line;
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_search(line, m, reply)) seqs.insert(std::stoi(m[1]));
    if (std::regex_search(line, m, stats)) {
      report.transmitted = std::stoi(m[1]);
      report.received = std::stoi(m[2]);
    }
  }
  report.replies.assign(seqs.begin(), seqs.end());
  return report;
}

// The widest run of missing icmp_seq between two replies: [first, last] inclusive.
struct Gap {
  int first = 0;
  int last = -1;
  int size() const { return last - first + 1; }
};

Gap widest_gap(const std::vector<int>& replies) {
  Gap best;
  for (std::size_t i = 1; i < replies.size(); ++i)
    if (replies[i] - replies[i - 1] - 1 > best.size()) best = {replies[i - 1] + 1, replies[i] - 1};
  return best;
}

// A scratch directory for client/server output and FIFOs, removed at the end.
class ScratchDir {
 public:
  ScratchDir() {
    char name[] = "/tmp/sluice-fe2e-XXXXXX";
    if (!mkdtemp(name)) throw std::runtime_error("mkdtemp failed");
    path_ = name;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// A FIFO the test writes into and a client reads as its stdin. The test holds
// it open read-write, so the client's open never blocks and its stdin ends
// (EOF) only when the test closes it.
class Feed {
 public:
  explicit Feed(const std::filesystem::path& path) : path_(path) {
    if (mkfifo(path.c_str(), 0600) != 0) throw std::runtime_error("mkfifo " + path.string());
    fd_ = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error("open " + path.string());
  }
  ~Feed() { close_input(); }
  bool write_line(const std::string& line) {
    const std::string text = line + "\n";
    return fd_ >= 0 && ::write(fd_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  }
  void close_input() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

// Runs a client command in ns; returns its result and how long it took.
struct Timed {
  CommandResult result;
  std::chrono::milliseconds elapsed{};
};
Timed timed_exec(const Netns& ns, const std::string& command, std::chrono::seconds timeout) {
  const auto start = Clock::now();
  Timed t;
  t.result = ns.exec(command, timeout);
  t.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return t;
}

FilterRule tcp_dport_rule(std::uint32_t priority, std::uint16_t first, std::uint16_t last, Action action) {
  FilterRule rule;
  rule.priority = priority;
  rule.protocol = IPPROTO_TCP;
  rule.dst_ports = PortRange{first, last};
  rule.action = action;
  return rule;
}

// Declared in order of destruction last-to-first: the lab (and every process
// spawned in it) goes before the scratch directory; the table and the plane
// hold only map/program fds and are closed after the namespaces are gone.
class FilterE2E : public ::testing::Test {
 protected:
  // Call right after SLUICE_REQUIRE_NETNS().
  void start() {
    auto loaded = dataplane::Dataplane::load({});
    ASSERT_TRUE(loaded) << loaded.error().message;
    plane_.emplace(std::move(*loaded));
    ASSERT_TRUE(plane_->install_stages());
    auto table = filter::FilterTable::open(*plane_);
    ASSERT_TRUE(table) << table.error().message;
    table_.emplace(std::move(*table));
    scratch_.emplace();
    lab_.emplace();
    EnterNetns in_box(lab_->box);
    auto attached = dataplane::attach_xdp(plane_->entry_prog_fd(), lab_->box_if, dataplane::AttachMode::Native);
    ASSERT_TRUE(attached) << attached.error().message;
    auto observer = dataplane::attach_egress_observer(plane_->egress_observer_prog_fd(), lab_->box_if);
    ASSERT_TRUE(observer) << observer.error().message;
  }

  // The tracked TCP flow to `port`, if any (either table).
  std::optional<filter::TrackedFlow> tcp_flow_to(std::uint16_t port) const {
    auto flows = table_->tracked_flows();
    EXPECT_TRUE(flows) << flows.error().message;
    if (!flows) return std::nullopt;
    for (const auto& f : *flows)
      if (f.key.proto == IPPROTO_TCP && f.key.port_b == port) return f;
    return std::nullopt;
  }

  std::uint64_t packets(sluice_verdict verdict, std::uint32_t reason) const {
    auto c = plane_->verdict_count(verdict, static_cast<sluice_reason>(reason));
    EXPECT_TRUE(c) << c.error().message;
    return c ? c->packets : 0;
  }
  // The same counter as the FilterTable reports it (what an operator reads).
  std::uint64_t table_reason(sluice_verdict verdict, std::uint32_t reason) const {
    auto all = table_->reason_counters();
    EXPECT_TRUE(all) << all.error().message;
    if (!all) return 0;
    for (const auto& r : *all)
      if (r.verdict == verdict && r.reason == reason) return r.total.packets;
    ADD_FAILURE() << "reason " << reason << " missing from reason_counters()";
    return 0;
  }
  std::uint64_t rule_hits(std::uint32_t priority) const {
    auto all = table_->rule_counters();
    EXPECT_TRUE(all) << all.error().message;
    if (!all) return 0;
    for (const auto& r : *all)
      if (r.priority == priority) return r.total.packets;
    ADD_FAILURE() << "no rule with priority " << priority << " is live";
    return 0;
  }

  // True once `port` is listening (TCP) in the box.
  bool box_listens(int port) const {
    return wait_until([&] { return lab_->box.exec("ss -Hltn 'sport = :" + std::to_string(port) + "'").output.find(
                                       std::to_string(port)) != std::string::npos; },
                      5s);
  }

  // A continuous ping from the client to `target` (one run of kPingCount at
  // 50 ms). After 10 replies `block()`; once the drop counter `drops()` has
  // grown by 15 (the client is really cut off) `unblock()`; then the same
  // run must resume. Returns the parsed output.
  void ping_through_block(const std::string& family_flag, const std::string& target, const std::function<void()>& block,
                          const std::function<void()>& unblock, const std::function<std::uint64_t()>& drops,
                          PingReport& report, std::uint64_t& dropped) {
    const auto out = *scratch_ / ("ping" + family_flag + ".txt");
    // stdbuf: ping's stdout is a file, line-buffer it so replies can be watched as they come.
    const pid_t ping = lab_->client.spawn("exec stdbuf -oL ping -n " + family_flag + " -c " + std::to_string(kPingCount) +
                                          " -i 0.05 -W 1 " + target + " > " + out.string() + " 2>&1");
    ASSERT_TRUE(wait_until([&] { return parse_ping(slurp(out)).replies.size() >= 10; }, 5s))
        << "no replies before the block:\n" << slurp(out);
    const std::uint64_t drops_before = drops();
    block();
    if (HasFatalFailure()) return;  // the destructor stops the ping
    const bool cut_off = wait_until([&] { return drops() - drops_before >= 15; }, 3s);
    unblock();  // also when the assertion below fails: the run must not stay blocked
    ASSERT_TRUE(cut_off) << "the block dropped only " << drops() - drops_before << " packets:\n" << slurp(out);
    const int status = lab_->client.wait(ping, 15s);
    ASSERT_NE(status, -1) << "ping did not finish:\n" << slurp(out);
    dropped = drops() - drops_before;
    const std::string text = slurp(out);
    report = parse_ping(text);
    SCOPED_TRACE(text);

    ASSERT_EQ(report.transmitted, kPingCount);
    EXPECT_EQ(status, 0) << "iputils ping exits 0 once any reply came back (no -w deadline)";
    ASSERT_EQ(static_cast<int>(report.replies.size()), report.received);
    const Gap gap = widest_gap(report.replies);
    // A gap while blocked, with replies on both sides of it in the same run.
    EXPECT_GE(gap.size(), 15);
    EXPECT_GE(static_cast<int>(std::count_if(report.replies.begin(), report.replies.end(), [&](int s) { return s < gap.first; })), 10);
    EXPECT_GE(static_cast<int>(std::count_if(report.replies.begin(), report.replies.end(), [&](int s) { return s > gap.last; })), 10)
        << "replies did not resume after the block was removed";
    EXPECT_EQ(report.replies.back(), kPingCount) << "the last echo was not answered";
    // Nothing was lost except while blocked, and every missing reply is a counted drop.
    EXPECT_EQ(report.transmitted - report.received, gap.size());
    EXPECT_GE(dropped, static_cast<std::uint64_t>(gap.size()));
  }

  std::optional<dataplane::Dataplane> plane_;
  std::optional<filter::FilterTable> table_;
  std::optional<ScratchDir> scratch_;
  std::optional<TwoHostLab> lab_;  // destroyed first: kills the clients and servers, deletes the namespaces
};

// 1. A live ping; the client's /32 goes onto the blocklist and comes off again.
TEST_F(FilterE2E, BlocklistPrefixCutsALivePingAndRemovingItResumesIt) {
  SLUICE_REQUIRE_NETNS();
  ASSERT_NO_FATAL_FAILURE(start());
  const auto client = cidr(std::string(TwoHostLab::client_v4) + "/32");
  PingReport report;
  std::uint64_t dropped = 0;
  ASSERT_NO_FATAL_FAILURE(ping_through_block(
      "-4", TwoHostLab::box_v4,
      [&] {
        auto added = table_->add_prefix({client, Action::Drop, 0});
        ASSERT_TRUE(added) << added.error().message;
      },
      [&] {
        auto removed = table_->remove_prefix(client);
        ASSERT_TRUE(removed) << removed.error().message;
      },
      [&] { return packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_BLOCKLIST); }, report, dropped));
  // The operator's view agrees, and nothing else dropped the client.
  EXPECT_EQ(table_reason(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_BLOCKLIST), dropped);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RULE_DROP), 0u);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_DEFAULT_DROP), 0u);
  EXPECT_TRUE(table_->list_prefixes().empty());
}

// 2. TCP: a --dport drop rule makes an nc connect time out; an atomic
// whole-set replace lets the next one through, and bytes flow both ways.
TEST_F(FilterE2E, DportRuleBlocksNcUntilTheSetIsReplaced) {
  SLUICE_REQUIRE_NETNS();
  ASSERT_NO_FATAL_FAILURE(start());
  constexpr std::uint16_t port = 7100;
  const std::string box = TwoHostLab::box_v4;
  RuleSet blocking;
  blocking.rules = {tcp_dport_rule(10, port, port, Action::Drop)};
  auto replaced = table_->replace(blocking);
  ASSERT_TRUE(replaced) << replaced.error().message;
  const std::uint32_t blocking_gen = table_->live_generation();

  {
    std::ofstream greeting(*scratch_ / "greeting.txt");
    greeting << "greeting-from-box\n";
  }
  const auto server_out = *scratch_ / "server.out";
  // -N: shut the socket down after sending the greeting, so both ends finish.
  const pid_t server = lab_->box.spawn("exec nc -N -l " + std::to_string(port) + " < " + (*scratch_ / "greeting.txt").string() +
                                       " > " + server_out.string() + " 2>&1");
  ASSERT_TRUE(box_listens(port));

  // Blocked: the SYN (and its retransmission) never reach the box; -w 2 ends the attempt.
  const std::string connect = "printf 'hello-from-client\\n' | nc -N -w 2 " + box + " " + std::to_string(port);
  const auto blocked = timed_exec(lab_->client, connect, 10s);
  EXPECT_NE(blocked.result.exit_code, 0) << blocked.result.output;
  EXPECT_GE(blocked.elapsed, 1800ms) << "refused rather than timed out: " << blocked.result.output;
  EXPECT_EQ(blocked.result.output.find("greeting-from-box"), std::string::npos);
  const std::uint64_t rule_drops = packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RULE_DROP);
  EXPECT_GE(rule_drops, 2u) << "SYN and at least one retransmission";
  EXPECT_EQ(rule_hits(10), rule_drops);
  EXPECT_EQ(table_reason(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RULE_DROP), rule_drops);

  // One atomic replace: the drop rule becomes a pass rule, another port is closed instead.
  RuleSet open;
  open.rules = {tcp_dport_rule(10, port, port, Action::Pass), tcp_dport_rule(20, 7200, 7299, Action::Drop)};
  replaced = table_->replace(open);
  ASSERT_TRUE(replaced) << replaced.error().message;
  EXPECT_NE(table_->live_generation(), blocking_gen);
  EXPECT_EQ(table_->list_rules().size(), 2u);

  const auto allowed = timed_exec(lab_->client, connect, 10s);
  EXPECT_EQ(allowed.result.exit_code, 0) << allowed.result.output;
  EXPECT_NE(allowed.result.output.find("greeting-from-box"), std::string::npos)
      << "the client did not receive the server's bytes: " << allowed.result.output;
  EXPECT_EQ(lab_->box.wait(server, 5s), 0) << slurp(server_out);
  EXPECT_NE(slurp(server_out).find("hello-from-client"), std::string::npos) << slurp(server_out);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RULE_DROP), rule_drops) << "nothing dropped once open";
  EXPECT_GE(rule_hits(10), 3u) << "SYN, ACK, data, FIN of the client all match the pass rule";
  EXPECT_EQ(rule_hits(20), 0u);
}

// 3. IPv6: a rule on 2001:db8:: addresses cuts a live ping -6 and its removal restores it.
TEST_F(FilterE2E, Ipv6RuleCutsALivePing6AndRemovingItResumesIt) {
  SLUICE_REQUIRE_NETNS();
  ASSERT_NO_FATAL_FAILURE(start());
  FilterRule rule;
  rule.priority = 5;
  rule.src = cidr(std::string(TwoHostLab::client_v6) + "/128");
  rule.dst = cidr(std::string(TwoHostLab::box_v6) + "/128");
  rule.protocol = IPPROTO_ICMPV6;
  rule.icmp_type = 128;  // echo request only: neighbour discovery keeps working
  rule.action = Action::Drop;
  PingReport report;
  std::uint64_t dropped = 0;
  ASSERT_NO_FATAL_FAILURE(ping_through_block(
      "-6", TwoHostLab::box_v6,
      [&] {
        auto added = table_->add_rule(rule);
        ASSERT_TRUE(added) << added.error().message;
      },
      [&] {
        // The counters of a set are read while it is live: once removed, they are reset.
        EXPECT_GE(rule_hits(5), 15u);
        auto removed = table_->remove_rule(5);
        ASSERT_TRUE(removed) << removed.error().message;
      },
      [&] { return packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RULE_DROP); }, report, dropped));
  EXPECT_EQ(table_reason(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RULE_DROP), dropped);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_BLOCKLIST), 0u);
  EXPECT_TRUE(table_->list_rules().empty());
}

// 4. Default drop plus a pass-and-track rule: an established flow outlives the
// rule (tracked flows skip the rules), a new connection does not.
TEST_F(FilterE2E, TrackedFlowOutlivesItsRuleWhileNewConnectionsAreDropped) {
  SLUICE_REQUIRE_NETNS();
  ASSERT_NO_FATAL_FAILURE(start());
  auto settings = table_->settings();
  ASSERT_TRUE(settings) << settings.error().message;
  ASSERT_TRUE(settings->conntrack);
  constexpr std::uint16_t port = 7000, probe_port = 7001;
  const std::string box = TwoHostLab::box_v4;
  RuleSet tracked;
  FilterRule track = tcp_dport_rule(10, port, probe_port, Action::PassTrack);
  track.src = cidr(std::string(TwoHostLab::client_v4) + "/32");
  tracked.rules = {track};
  tracked.default_policy = filter::DefaultPolicy::Drop;
  auto replaced = table_->replace(tracked);
  ASSERT_TRUE(replaced) << replaced.error().message;

  // The long-lived flow's server, and a second listener that only ever sees probes.
  const auto server_out = *scratch_ / "server.out";
  const pid_t server = lab_->box.spawn("exec nc -l " + std::to_string(port) + " < /dev/null > " + server_out.string() + " 2>&1");
  lab_->box.spawn("exec nc -k -l " + std::to_string(probe_port) + " < /dev/null > /dev/null 2>&1");
  ASSERT_TRUE(box_listens(port));
  ASSERT_TRUE(box_listens(probe_port));

  // The client's stdin is a FIFO the test feeds line by line: one connection, held open.
  Feed feed(*scratch_ / "client.in");
  const auto client_out = *scratch_ / "client.out";
  const pid_t client = lab_->client.spawn("exec nc -N " + box + " " + std::to_string(port) + " < " + feed.path().string() +
                                          " > " + client_out.string() + " 2>&1");
  ASSERT_TRUE(feed.write_line("one"));
  ASSERT_TRUE(wait_until([&] { return slurp(server_out).find("one") != std::string::npos; }, 5s))
      << "server: " << slurp(server_out) << "\nclient: " << slurp(client_out);
  EXPECT_EQ(rule_hits(10), 1u) << "only the SYN meets the rules; the rest of the flow is tracked";

  // The flow is in the table (client 198.18.0.1 sorts first: it is side a).
  auto flows = table_->tracked_flows();
  ASSERT_TRUE(flows) << flows.error().message;
  const auto ours = std::find_if(flows->begin(), flows->end(), [&](const filter::TrackedFlow& f) {
    return f.key.proto == IPPROTO_TCP && f.key.port_b == port;
  });
  ASSERT_NE(ours, flows->end());
  EXPECT_GE(ours->entry.packets[SLUICE_CT_DIR_A_TO_B], 3u);  // SYN, ACK, "one"

  // Control: while the rule is live, a new connection (to a listener that is really there) gets in.
  auto probe = timed_exec(lab_->client, "nc -z -w 2 " + box + " " + std::to_string(probe_port), 10s);
  ASSERT_EQ(probe.result.exit_code, 0) << probe.result.output;

  // The rule goes; only the default drop is left.
  auto removed = table_->remove_rule(10);
  ASSERT_TRUE(removed) << removed.error().message;
  ASSERT_TRUE(table_->list_rules().empty());
  EXPECT_EQ(table_->rule_set().default_policy, filter::DefaultPolicy::Drop);
  const std::uint64_t tracked_before = packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_CONNTRACK);
  const std::uint64_t default_before = packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_DEFAULT_DROP);

  // The established flow continues...
  ASSERT_TRUE(feed.write_line("two"));
  EXPECT_TRUE(wait_until([&] { return slurp(server_out).find("two") != std::string::npos; }, 5s))
      << "the established flow was cut: " << slurp(server_out);
  EXPECT_GT(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_CONNTRACK), tracked_before);

  // ...while a new connection is dropped: its SYN times out (no RST: it never reached the box).
  probe = timed_exec(lab_->client, "nc -z -w 2 " + box + " " + std::to_string(probe_port), 10s);
  EXPECT_NE(probe.result.exit_code, 0) << probe.result.output;
  EXPECT_GE(probe.elapsed, 1800ms) << "refused rather than timed out: " << probe.result.output;
  EXPECT_GT(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_DEFAULT_DROP), default_before);
  EXPECT_EQ(table_reason(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_DEFAULT_DROP),
            packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_DEFAULT_DROP));

  // The tracked flow still closes cleanly: the client's FIN passes on its conntrack entry.
  feed.close_input();
  EXPECT_EQ(lab_->box.wait(server, 5s), 0) << slurp(server_out);
  EXPECT_EQ(lab_->client.wait(client, 5s), 0) << slurp(client_out);
  const std::string received = slurp(server_out);
  EXPECT_EQ(received, "one\ntwo\n");
}

// 5. The box is the server (a host firewall): its SYN-ACKs and echo replies
// leave through the veth's transmit path, which XDP never sees. The TC
// egress observer does: under default drop, with only SYNs and echo
// requests tracked, the flows are replied and established and work; without
// the observer the same connection stays unreplied.
TEST_F(FilterE2E, EgressObserverMarksFlowsRepliedWhenTheRepliesBypassXdp) {
  SLUICE_REQUIRE_NETNS();
  ASSERT_NO_FATAL_FAILURE(start());
  constexpr std::uint16_t port = 7100, unobserved_port = 7101;
  const std::string box = TwoHostLab::box_v4;
  RuleSet tracked;
  FilterRule syns = tcp_dport_rule(10, port, unobserved_port, Action::PassTrack);
  syns.tcp_flags = filter::TcpFlagMatch{0x12, 0x02};  // SYN without ACK: nothing else opens a flow
  FilterRule pings;
  pings.priority = 20;
  pings.protocol = IPPROTO_ICMP;
  pings.icmp_type = 8;
  pings.action = Action::PassTrack;
  tracked.rules = {syns, pings};
  tracked.default_policy = filter::DefaultPolicy::Drop;
  auto replaced = table_->replace(tracked);
  ASSERT_TRUE(replaced) << replaced.error().message;

  // TCP: one connection, held open, data both ways.
  const auto server_out = *scratch_ / "server.out";
  const pid_t server = lab_->box.spawn("exec nc -l " + std::to_string(port) + " < /dev/null > " + server_out.string() + " 2>&1");
  ASSERT_TRUE(box_listens(port));
  Feed feed(*scratch_ / "client.in");
  const auto client_out = *scratch_ / "client.out";
  const pid_t client = lab_->client.spawn("exec nc -N " + box + " " + std::to_string(port) + " < " + feed.path().string() +
                                          " > " + client_out.string() + " 2>&1");
  ASSERT_TRUE(feed.write_line("one"));
  ASSERT_TRUE(wait_until([&] { return slurp(server_out).find("one") != std::string::npos; }, 5s))
      << "server: " << slurp(server_out) << "\nclient: " << slurp(client_out);
  auto flow = tcp_flow_to(port);
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.replied, 1u) << "the observer saw the SYN-ACK leave";
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_ESTABLISHED));
  EXPECT_EQ(flow->entry.packets[SLUICE_CT_DIR_B_TO_A], 0u) << "XDP never saw a packet of the box's direction";
  EXPECT_GE(flow->entry.packets[SLUICE_CT_DIR_A_TO_B], 3u);
  ASSERT_TRUE(feed.write_line("two"));
  EXPECT_TRUE(wait_until([&] { return slurp(server_out).find("two") != std::string::npos; }, 5s));
  feed.close_input();
  EXPECT_EQ(lab_->box.wait(server, 5s), 0) << slurp(server_out);
  EXPECT_EQ(lab_->client.wait(client, 5s), 0) << slurp(client_out);
  EXPECT_EQ(slurp(server_out), "one\ntwo\n");

  // ICMP echo: the replies leave the same way; the echo entry (by identifier) is replied.
  auto ping = timed_exec(lab_->client, "ping -n -c 3 -i 0.2 -W 1 " + box, 10s);
  EXPECT_EQ(ping.result.exit_code, 0) << ping.result.output;
  auto flows = table_->tracked_flows();
  ASSERT_TRUE(flows) << flows.error().message;
  const auto echo = std::find_if(flows->begin(), flows->end(), [](const auto& f) { return f.key.proto == IPPROTO_ICMP; });
  ASSERT_NE(echo, flows->end());
  EXPECT_EQ(echo->entry.replied, 1u);
  EXPECT_EQ(echo->entry.packets[SLUICE_CT_DIR_A_TO_B], 3u);

  // Control: without the observer nothing sees the SYN-ACK, and the next connection stays unreplied.
  {
    EnterNetns in_box(lab_->box);
    auto detached = dataplane::detach_egress_observer(lab_->box_if);
    ASSERT_TRUE(detached) << detached.error().message;
    EXPECT_TRUE(*detached);
    auto id = dataplane::egress_observer_id(lab_->box_if);
    ASSERT_TRUE(id) << id.error().message;
    EXPECT_EQ(*id, 0u);
  }
  const pid_t second = lab_->box.spawn("exec nc -l " + std::to_string(unobserved_port) + " < /dev/null > /dev/null 2>&1");
  ASSERT_TRUE(box_listens(unobserved_port));
  auto probe = timed_exec(lab_->client, "nc -z -w 2 " + box + " " + std::to_string(unobserved_port), 10s);
  EXPECT_EQ(probe.result.exit_code, 0) << probe.result.output;
  flow = tcp_flow_to(unobserved_port);
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.replied, 0u);
  EXPECT_NE(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_ESTABLISHED))
      << "the client's ACK alone does not establish (TCP_SYN, or CLOSING after its FIN)";
  lab_->box.wait(second, 5s);
}

// 6. The box routes: client -- [box_if: XDP + observer] box [unowned] -- server.
// The server's replies come in through the interface sluice does not own and
// leave through box_if: XDP never sees them, the egress observer does. Under
// default drop with only the client's SYNs tracked the connection works and
// its entry is replied and established.
TEST_F(FilterE2E, RoutedRepliesFromAnUnownedInterfaceAreSeenLeavingByTheObserver) {
  SLUICE_REQUIRE_NETNS();
  ASSERT_NO_FATAL_FAILURE(start());
  Netns server_ns("sl-server");  // destroyed before the lab: its processes and its veth go first
  const std::string box_far = "vf" + std::to_string(getpid()), server_if = "vs" + std::to_string(getpid());
  constexpr const char* server_v4 = "198.18.1.1";
  constexpr const char* box_far_v4 = "198.18.1.2";
  ASSERT_EQ(run_command("ip link add " + box_far + " netns " + lab_->box.name() + " type veth peer name " + server_if +
                        " netns " + server_ns.name())
                .exit_code,
            0);
  ASSERT_EQ(lab_->box.exec("ip addr add " + std::string(box_far_v4) + "/24 dev " + box_far + " && ip link set " + box_far +
                           " up && sysctl -qw net.ipv4.ip_forward=1")
                .exit_code,
            0);
  ASSERT_EQ(server_ns.exec("ip addr add " + std::string(server_v4) + "/24 dev " + server_if + " && ip link set " +
                           server_if + " up && ip route add default via " + box_far_v4)
                .exit_code,
            0);
  ASSERT_EQ(lab_->client.exec("ip route add 198.18.1.0/24 via " + std::string(TwoHostLab::box_v4)).exit_code, 0);

  constexpr std::uint16_t port = 7200;
  RuleSet tracked;
  FilterRule syns = tcp_dport_rule(10, port, port, Action::PassTrack);
  syns.tcp_flags = filter::TcpFlagMatch{0x12, 0x02};  // SYN without ACK
  tracked.rules = {syns};
  tracked.default_policy = filter::DefaultPolicy::Drop;
  auto replaced = table_->replace(tracked);
  ASSERT_TRUE(replaced) << replaced.error().message;

  const auto server_out = *scratch_ / "routed-server.out";
  const pid_t server = server_ns.spawn("exec nc -l " + std::to_string(port) + " < /dev/null > " + server_out.string() + " 2>&1");
  ASSERT_TRUE(wait_until([&] { return server_ns.exec("ss -Hltn 'sport = :" + std::to_string(port) + "'").output.find(
                                          std::to_string(port)) != std::string::npos; },
                         5s));
  Feed feed(*scratch_ / "routed-client.in");
  const auto client_out = *scratch_ / "routed-client.out";
  const pid_t client = lab_->client.spawn("exec nc -N " + std::string(server_v4) + " " + std::to_string(port) + " < " +
                                          feed.path().string() + " > " + client_out.string() + " 2>&1");
  ASSERT_TRUE(feed.write_line("through"));
  ASSERT_TRUE(wait_until([&] { return slurp(server_out).find("through") != std::string::npos; }, 5s))
      << "server: " << slurp(server_out) << "\nclient: " << slurp(client_out);
  auto flow = tcp_flow_to(port);
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.replied, 1u) << "the observer saw the routed SYN-ACK leave through box_if";
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_ESTABLISHED));
  EXPECT_EQ(flow->entry.packets[SLUICE_CT_DIR_B_TO_A], 0u) << "no packet of the server's direction crossed XDP";
  feed.close_input();
  EXPECT_EQ(server_ns.wait(server, 5s), 0) << slurp(server_out);
  EXPECT_EQ(lab_->client.wait(client, 5s), 0) << slurp(client_out);
  EXPECT_EQ(slurp(server_out), "through\n");
}

}  // namespace
}  // namespace sluice::test
