// sluiced's start-up as a process: one daemon per state dir and pin dir
// (a second exits and changes nothing), a daemon killed at every step of a
// change restarts running exactly what it reports (judged by packets through
// the daemon's own pinned maps), a degraded start runs what it reports, and
// directories (and the socket) that someone else could swap are refused.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <cstring>
#include <sys/mount.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "daemon.hpp"
#include "daemon_test_support.hpp"
#include "dataplane.hpp"
#include "filter_fixture.hpp"
#include "filter_table.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"
#include "system.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uid_t nobody_uid = 65534;
constexpr gid_t nobody_gid = 65534;
constexpr int exit_startup_failed = 1;
constexpr int exit_sigkill = 128 + SIGKILL;
// The two ports of the kill test: 9 is dropped by the state before the change, 7 by the change.
constexpr std::uint16_t kept_port = 9;
constexpr std::uint16_t changed_port = 7;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string shell_quoted(const std::string& text) { return "'" + text + "'"; }

// sluiced with these paths in the foreground, to its exit (a start that must fail).
CommandResult run_sluiced(const std::string& socket, const std::string& pin_dir, const std::string& state_dir,
                          const std::string& extra = "") {
  return run_command(std::string("timeout 20 ") + sluiced_path() + " --metrics off --socket " + shell_quoted(socket) +
                         " --bpffs " + shell_quoted(pin_dir) + " --state-dir " + shell_quoted(state_dir) + " " + extra + " 2>&1",
                     std::chrono::seconds(40));
}

// A scratch directory (0755, root's) under /tmp and a pin dir path beside the
// host's bpffs root, both removed at the end.
class Scratch {
 public:
  Scratch() {
    const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(++counter_);
    base = "/tmp/sluiced-start-test-" + tag;
    pin_dir = "/sys/fs/bpf/sluiced-start-test-" + tag;
    fs::remove_all(base);
    fs::create_directories(base);
    fs::permissions(base, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(pin_dir, ec);
    fs::remove_all(base, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  std::string base;
  std::string pin_dir;

 private:
  static inline int counter_ = 0;
};

bool empty_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::directory_iterator(path, ec) == fs::directory_iterator();
}

// What the daemon's data plane does with a packet, judged outside the daemon:
// a second load of the data plane reusing the daemon's pins (maps and the
// stage program array, so the daemon's own stage programs run), one frame
// through BPF_PROG_TEST_RUN. Nothing is written.
class PinnedPlane {
 public:
  explicit PinnedPlane(const std::string& pin_dir) {
    dataplane::LoadOptions options;
    options.pin_dir = pin_dir;
    auto loaded = dataplane::Dataplane::load(options);
    if (!loaded) {
      ADD_FAILURE() << "load over the daemon's pins: " << loaded.error().message;
      return;
    }
    plane_.emplace(std::move(*loaded));
    EXPECT_FALSE(plane_->reused_maps().empty()) << "no pins reused: the test would judge its own empty maps";
  }
  bool ok() const { return plane_.has_value(); }
  bool drops_udp(std::uint16_t dport, std::string_view src = "198.18.0.1") {
    const Bytes frame = ether().ipv4(src, "198.19.1.1").udp(40000, dport).build();
    return run_xdp(plane_->entry_prog_fd(), frame).verdict == XDP_DROP;
  }
  sluice_config config() {
    auto config = plane_->config();
    EXPECT_TRUE(config) << config.error().message;
    return config ? *config : sluice_config{};
  }
  // filter_generation as the data plane reads it (not a daemon's cached count).
  std::uint32_t filter_generation() {
    auto table = filter::FilterTable::open(*plane_);
    if (!table) return ADD_FAILURE() << table.error().message, 0;
    return table->rule_set_generation();
  }
  std::uint32_t drop_sample_every() {
    auto table = filter::FilterTable::open(*plane_);
    if (!table) return ADD_FAILURE() << table.error().message, 0;
    auto settings = table->settings();
    if (!settings) return ADD_FAILURE() << settings.error().message, 0;
    return settings->drop_sample_every;
  }

 private:
  std::optional<dataplane::Dataplane> plane_;
};

std::vector<std::uint16_t> reported_udp_drop_ports(ControlClient& client) {
  std::vector<std::uint16_t> ports;
  const json::value listed = client.result("rule.list");  // kept: the loop reads into it
  if (!listed.is_object()) return ports;
  for (const auto& rule : listed.at("rules").as_array()) {
    EXPECT_EQ(rule.at("action"), json::value("drop")) << json::serialize(rule);
    ports.push_back(static_cast<std::uint16_t>(std::stoi(std::string(rule.at("dport").as_string()))));
  }
  return ports;
}

bool contains(const std::vector<std::uint16_t>& ports, std::uint16_t port) {
  return std::find(ports.begin(), ports.end(), port) != ports.end();
}

// ---- the sweep of stale temp files (no privileges needed) ----

TEST(DaemonStartFiles, TheSweepRemovesOnlyTheTempFilesOfTheStateFile) {
  Scratch scratch;
  const std::string dir = scratch.base;
  for (const char* name : {".state.yaml.AbC123", ".state.yaml.zzzzzz", "state.yaml", "state.yaml.rejected",
                           ".state.yaml.rejected", ".state.yaml.abc", ".other.yaml.AbC123", "sluiced.lock"})
    std::ofstream(dir + "/" + name) << "x";
  fs::create_symlink(dir + "/state.yaml", dir + "/.state.yaml.LINK01");
  fs::create_directory(dir + "/.state.yaml.DIR001");
  auto swept = daemon::sweep_temp_files(dir, "state.yaml");
  ASSERT_TRUE(swept) << swept.error().message;
  std::sort(swept->begin(), swept->end());
  EXPECT_EQ(*swept, (std::vector<std::string>{".state.yaml.AbC123", ".state.yaml.zzzzzz"}));
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir)) left.push_back(entry.path().filename());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{".other.yaml.AbC123", ".state.yaml.DIR001", ".state.yaml.LINK01",
                                            ".state.yaml.abc", ".state.yaml.rejected", "sluiced.lock", "state.yaml",
                                            "state.yaml.rejected"}));
}

// ---- item 7: one daemon per state dir and per pin dir ----

TEST(DaemonStart, ASecondDaemonOnTheSameDirsExitsNonZeroAndChangesNothing) {
  SLUICE_REQUIRE_BPFFS();
  SluicedProcess first;
  ASSERT_EQ(first.start(), "");
  ControlClient client(first.socket_path());
  client.result("rule.add", {{"proto", "udp"}, {"dport", kept_port}, {"action", "drop"}});
  const std::string state_path = first.state_dir() + "/state.yaml";
  const std::string state_before = read_text(state_path);
  const json::value filter_before = client.result("status").at("filter");
  const std::string rules_before = json::serialize(client.result("rule.list"));
  ASSERT_NE(state_before.find("dport"), std::string::npos) << state_before;
  PinnedPlane plane(first.pin_dir());
  ASSERT_TRUE(plane.ok());
  const auto live_generation_before = plane.filter_generation();

  Scratch scratch;
  struct Case {
    const char* what;
    std::string pin_dir, state_dir, expected;
  };
  const Case cases[] = {
      {"same state dir and pin dir", first.pin_dir(), first.state_dir(), "another sluiced (pid " + std::to_string(first.pid()) + ")"},
      {"same state dir, other pin dir", scratch.pin_dir, first.state_dir(), "one daemon per state dir"},
      {"same pin dir, other state dir", first.pin_dir(), scratch.base + "/state", "one daemon per pin dir"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const auto second = run_sluiced(scratch.base + "/second.sock", c.pin_dir, c.state_dir);
    EXPECT_EQ(second.exit_code, exit_startup_failed) << second.output;
    EXPECT_NE(second.output.find(c.expected), std::string::npos) << second.output;
    // Nothing of the first changed: its file, its filter generation, its rules; it still answers.
    EXPECT_EQ(read_text(state_path), state_before);
    EXPECT_EQ(plane.filter_generation(), live_generation_before) << "the second daemon swapped the filter";
    ControlClient again(first.socket_path());
    const auto status = again.call("status");
    ASSERT_TRUE(status.ok) << "the first daemon stopped answering";
    EXPECT_EQ(status.result->at("filter"), filter_before);
    EXPECT_EQ(json::serialize(again.result("rule.list")), rules_before);
    EXPECT_FALSE(fs::exists(scratch.base + "/second.sock"));
  }
  // And the data plane still enforces the first's rule.
  EXPECT_TRUE(plane.drops_udp(kept_port));
  EXPECT_FALSE(plane.drops_udp(changed_port));
  EXPECT_EQ(first.stop(SIGTERM), 0) << first.log();
}

// ---- item 8: what runs is what is reported, after a kill at any step ----

TEST(DaemonStart, KilledAtAnyStepOfAChangeItRestartsRunningWhatItReports) {
  SLUICE_REQUIRE_BPFFS();
  // Before the change: prefix lists only, no rules (the case a restart used
  // to leave alone: no rules wanted, and a freshly opened table knows none).
  const std::string before_yaml = "prefix_lists: {block: [198.19.0.0/16]}\nrules: []\n"
                                  "defaults: {drop_sample_every: 0, malformed_verdict: drop}\n";
  // The change touches the filter set, the filter settings and the config array.
  const std::string change_yaml = "rules:\n  - {priority: 10, proto: udp, dport: " + std::to_string(changed_port) +
                                  ", action: drop}\ndefaults: {drop_sample_every: 3, malformed_verdict: pass}\n";
  // One daemon, restarted: its pins (and so the judging plane's view of them) stay.
  SluicedProcess daemon;
  ASSERT_EQ(daemon.start(), "");
  ControlClient(daemon.socket_path()).result("apply", {{"yaml", before_yaml}});
  PinnedPlane plane(daemon.pin_dir());
  ASSERT_TRUE(plane.ok());
  for (std::string_view step : daemon::fault_kill_steps) {
    SCOPED_TRACE("killed before " + std::string(step));
    ASSERT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
    daemon.set_extra_args({"--fault-kill-before", std::string(step)});
    ASSERT_EQ(daemon.start(), "");
    {
      ControlClient client(daemon.socket_path());
      const auto reply = client.call("apply", {{"yaml", change_yaml}});
      EXPECT_FALSE(reply.ok) << "the daemon answered instead of dying";
    }
    ASSERT_EQ(daemon.wait_exit(), exit_sigkill) << daemon.log();
    std::vector<std::string> temps;
    for (const auto& entry : fs::directory_iterator(daemon.state_dir()))
      if (entry.path().filename().string().starts_with(".state.yaml.")) temps.push_back(entry.path().filename());
    // The kill before the rename leaves the synced temp file: the state the restart must not take.
    EXPECT_EQ(temps.size(), step == "rename" ? 1u : 0u);

    daemon.set_extra_args({});
    ASSERT_EQ(daemon.start(), "");
    ControlClient client(daemon.socket_path());
    const json::value status = client.result("status");
    EXPECT_EQ(status.at("degraded"), json::value(false)) << json::serialize(status);
    const auto reported = reported_udp_drop_ports(client);
    const std::string shown(client.result("config.show").at("yaml").as_string());
    // state.yaml was not replaced: the restart reports the state before the change...
    EXPECT_TRUE(reported.empty()) << shown;
    // ...and the data plane runs exactly that: packets, filter settings, config array.
    EXPECT_EQ(plane.drops_udp(changed_port), contains(reported, changed_port)) << shown;
    EXPECT_FALSE(plane.drops_udp(kept_port));
    EXPECT_NE(shown.find("drop_sample_every: " + std::to_string(plane.drop_sample_every())), std::string::npos) << shown;
    const std::string malformed = plane.config().malformed_verdict == SLUICE_VERDICT_DROP ? "drop" : "pass";
    EXPECT_NE(shown.find("malformed_verdict: " + malformed), std::string::npos) << shown;
    // The stale temp file is gone.
    for (const auto& name : temps) EXPECT_FALSE(fs::exists(daemon.state_dir() + "/" + name)) << name;

    // A change after the restart works and is enforced; then back to the state before, for the next step.
    client.result("apply", {{"yaml", change_yaml}});
    EXPECT_TRUE(plane.drops_udp(changed_port));
    EXPECT_EQ(plane.drop_sample_every(), 3u);
    client.result("apply", {{"yaml", before_yaml}});
    EXPECT_FALSE(plane.drops_udp(changed_port));
  }
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
}

TEST(DaemonStart, ADegradedStartRunsWhatItReportsAndSoDoesTheRestartAfterIt) {
  SLUICE_REQUIRE_BPFFS();
  SluicedProcess daemon;
  ASSERT_EQ(daemon.start(), "");
  {
    ControlClient client(daemon.socket_path());
    client.result("rule.add", {{"proto", "udp"}, {"dport", kept_port}, {"action", "drop"}});
  }
  ASSERT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  // The operator's next state: port 7 instead of 9, and a rule on an interface that is not there.
  const std::string missing = "sl-gone" + std::to_string(::getpid() % 100000);
  {
    std::ofstream file(daemon.state_dir() + "/state.yaml");
    file << "rules:\n  - {priority: 10, proto: udp, dport: " << changed_port << ", action: drop}\n"
         << "  - {priority: 20, iface: " << missing << ", proto: udp, dport: 5, action: drop}\n";
  }
  for (int start = 0; start < 2; ++start) {
    SCOPED_TRACE(start == 0 ? "the degraded start" : "the restart after it");
    ASSERT_EQ(daemon.start(), "");
    ControlClient client(daemon.socket_path());
    const json::value status = client.result("status");
    const auto reported = reported_udp_drop_ports(client);
    PinnedPlane plane(daemon.pin_dir());
    ASSERT_TRUE(plane.ok());
    // Reported == enforced: the rule of the previous daemon (port 9) is gone from both.
    EXPECT_EQ(plane.drops_udp(kept_port), contains(reported, kept_port)) << json::serialize(status);
    EXPECT_EQ(plane.drops_udp(changed_port), contains(reported, changed_port)) << json::serialize(status);
    // The rule that can match (port 7) runs; the one on the missing interface is named.
    EXPECT_EQ(reported, std::vector<std::uint16_t>{changed_port});
    if (start == 0) {
      EXPECT_EQ(status.at("degraded"), json::value(true));
      const std::string why(status.at("restore_error").as_string());
      EXPECT_NE(why.find("rule 20"), std::string::npos) << why;
      EXPECT_NE(why.find(missing), std::string::npos) << why;
      EXPECT_NE(read_text(daemon.state_dir() + "/state.yaml.rejected").find(missing), std::string::npos);
    }
    ASSERT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  }
}

// A rule set whose swap fails (more /24s with longer prefixes than the
// tbl8 groups hold) is not reported while the previous one runs: the
// recovered prefix lists go live and are what the state says.
TEST(DaemonStart, ARuleSetThatCannotBeSwappedInFallsBackToWhatIsReported) {
  SLUICE_REQUIRE_BPFFS();
  SluicedOptions options;
  options.extra_args = {"--blocklist-tbl8-groups", "1", "--blocklist-dir-prefixes", "1"};
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  ControlClient(daemon.socket_path())
      .result("apply", {{"yaml", "prefix_lists: {block: [198.18.1.0/25]}\nrules:\n  - {priority: 10, proto: udp, dport: " +
                                     std::to_string(kept_port) + ", action: drop}\n"}});
  ASSERT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  {
    // Two /24s with longer prefixes: two tbl8 groups, one is there.
    std::ofstream file(daemon.state_dir() + "/state.yaml");
    file << "prefix_lists: {block: [198.18.1.0/25, 198.18.2.0/25]}\nrules:\n  - {priority: 10, proto: udp, dport: "
         << changed_port << ", action: drop}\n";
  }
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  const json::value status = client.result("status");
  EXPECT_EQ(status.at("degraded"), json::value(true));
  const std::string why(status.at("restore_error").as_string());
  EXPECT_NE(why.find("filter rule set not made live"), std::string::npos) << why;
  const auto reported = reported_udp_drop_ports(client);
  const std::string shown(client.result("config.show").at("yaml").as_string());
  EXPECT_TRUE(reported.empty()) << shown;
  EXPECT_NE(shown.find("198.18.1.0/25"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("198.18.2.0/25"), std::string::npos) << shown;
  PinnedPlane plane(daemon.pin_dir());
  ASSERT_TRUE(plane.ok());
  // Reported == enforced: no rule drops port 9 (the previous daemon's) or 7; the recovered prefix drops.
  EXPECT_FALSE(plane.drops_udp(kept_port)) << shown;
  EXPECT_FALSE(plane.drops_udp(changed_port)) << shown;
  EXPECT_TRUE(plane.drops_udp(changed_port + 1, "198.18.1.5"));
  EXPECT_FALSE(plane.drops_udp(changed_port + 1, "198.18.2.5"));
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
}

// ---- item 9: paths nobody else can swap ----

class DaemonStartPaths : public ::testing::Test {
 protected:
  void SetUp() override { SLUICE_REQUIRE_BPFFS(); }
  // Refused with `expected` in the output; nothing created anywhere.
  void expect_refused(const std::string& socket, const std::string& pin_dir, const std::string& state_dir,
                      const std::string& expected, const std::string& extra = "") {
    const auto run = run_sluiced(socket, pin_dir, state_dir, extra);
    EXPECT_EQ(run.exit_code, exit_startup_failed) << run.output;
    EXPECT_NE(run.output.find(expected), std::string::npos) << run.output;
    EXPECT_FALSE(fs::exists(socket)) << run.output;
    struct stat info {};
    EXPECT_TRUE(::lstat(pin_dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode) || empty_dir(pin_dir)) << "pins were made";
    EXPECT_TRUE(::lstat(state_dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode) || empty_dir(state_dir))
        << "the state dir got files";
  }
  Scratch scratch_;
};

TEST_F(DaemonStartPaths, AWorldWritablePinDirIsRefused) {
  ASSERT_EQ(::mkdir(scratch_.pin_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(scratch_.pin_dir.c_str(), 0777), 0);
  expect_refused(scratch_.base + "/run/s.sock", scratch_.pin_dir, scratch_.base + "/state",
                 scratch_.pin_dir + ": its mode 0777 lets group or others write into it");
  EXPECT_FALSE(fs::exists(scratch_.base + "/state"));
  EXPECT_FALSE(fs::exists(scratch_.base + "/run"));
  struct stat info {};
  ASSERT_EQ(::stat(scratch_.pin_dir.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0777u) << "the refused dir is not ours to chmod";
}

TEST_F(DaemonStartPaths, AGroupWritablePinDirIsRefused) {
  ASSERT_EQ(::mkdir(scratch_.pin_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(scratch_.pin_dir.c_str(), 0770), 0);
  expect_refused(scratch_.base + "/run/s.sock", scratch_.pin_dir, scratch_.base + "/state",
                 scratch_.pin_dir + ": its mode 0770 lets group or others write into it");
}

// Where no bpffs is mounted, sluiced mounts one only root can enter (mode
// 0700): bpffs defaults to 1777 as setup.sh once mounted it, which let any
// user plant pins. In a private mount namespace of a child, so no mount
// outlives the test whatever happens.
TEST_F(DaemonStartPaths, ABpffsSluicedMountsIsRootsAlone) {
  const std::string mount_point = scratch_.base + "/bpffs";
  const std::string report = run_as(0, 0, {}, [&]() -> std::string {
    if (::unshare(CLONE_NEWNS) != 0) return std::string("unshare: ") + std::strerror(errno);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      return std::string("make / private: ") + std::strerror(errno);
    if (daemon::is_on_bpffs(mount_point)) return "already on a bpffs";
    if (auto ready = daemon::ensure_bpffs(mount_point); !ready) return ready.error().message;
    struct stat info {};
    if (::stat(mount_point.c_str(), &info) != 0) return std::string("stat: ") + std::strerror(errno);
    char mode[8];
    // The permission bits; bpffs sets the sticky bit on its root whatever the mode.
    std::snprintf(mode, sizeof mode, "%04o", info.st_mode & 0777);
    return std::string(daemon::is_on_bpffs(mount_point) ? "bpffs " : "not bpffs ") + mode + " uid " +
           std::to_string(info.st_uid);
  });
  EXPECT_EQ(report, "bpffs 0700 uid 0");
}

TEST_F(DaemonStartPaths, APinDirOwnedByAnotherUidIsRefused) {
  ASSERT_EQ(::mkdir(scratch_.pin_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chown(scratch_.pin_dir.c_str(), nobody_uid, nobody_gid), 0);
  expect_refused(scratch_.base + "/run/s.sock", scratch_.pin_dir, scratch_.base + "/state",
                 scratch_.pin_dir + ": it is owned by uid 65534");
  EXPECT_FALSE(fs::exists(scratch_.base + "/state"));
}

TEST_F(DaemonStartPaths, ASymlinkedStateDirIsRefused) {
  const std::string real = scratch_.base + "/real-state";
  ASSERT_TRUE(fs::create_directory(real));
  fs::permissions(real, fs::perms::owner_all);
  fs::create_directory_symlink(real, scratch_.base + "/state");
  expect_refused(scratch_.base + "/run/s.sock", scratch_.pin_dir, scratch_.base + "/state",
                 scratch_.base + "/state: it is a symlink");
  EXPECT_TRUE(empty_dir(real)) << "no lock file, no state.yaml";
  EXPECT_FALSE(fs::exists(scratch_.pin_dir));
}

TEST_F(DaemonStartPaths, ASymlinkedSocketDirIsRefused) {
  const std::string real = scratch_.base + "/real-run";
  ASSERT_TRUE(fs::create_directory(real));
  fs::create_directory_symlink(real, scratch_.base + "/run");
  expect_refused(scratch_.base + "/run/s.sock", scratch_.pin_dir, scratch_.base + "/state",
                 scratch_.base + "/run: it is a symlink");
  EXPECT_TRUE(empty_dir(real));
  EXPECT_FALSE(fs::exists(scratch_.pin_dir));
  EXPECT_FALSE(fs::exists(scratch_.base + "/state"));
}

TEST_F(DaemonStartPaths, AStateDirUnderAWritableNonStickyDirIsRefusedBeforeItIsCreated) {
  const std::string open_dir = scratch_.base + "/open";
  ASSERT_TRUE(fs::create_directory(open_dir));
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  expect_refused(scratch_.base + "/run/s.sock", scratch_.pin_dir, open_dir + "/state",
                 "its ancestor " + open_dir + ": its mode 0777 lets group or others rename entries in it");
  EXPECT_FALSE(fs::exists(open_dir + "/state"));
}

TEST_F(DaemonStartPaths, APlantedSymlinkAtTheSocketPathIsNotFollowed) {
  // A file of root's where the link points: neither removed nor chowned nor chmodded.
  const std::string target = scratch_.base + "/precious";
  { std::ofstream(target) << "keep\n"; }
  ASSERT_EQ(::chmod(target.c_str(), 0600), 0);
  ASSERT_TRUE(fs::create_directory(scratch_.base + "/run"));
  fs::create_symlink(target, scratch_.base + "/run/s.sock");
  const auto run = run_sluiced(scratch_.base + "/run/s.sock", scratch_.pin_dir, scratch_.base + "/state",
                               "--socket-group nogroup");
  EXPECT_EQ(run.exit_code, exit_startup_failed) << run.output;
  EXPECT_NE(run.output.find("is not a socket"), std::string::npos) << run.output;
  struct stat info {};
  ASSERT_EQ(::stat(target.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0600u);
  EXPECT_EQ(info.st_gid, 0u);
  EXPECT_EQ(read_text(target), "keep\n");
}

// The socket gets its group and mode by calls that never follow a symlink:
// the syscalls of a real start, traced.
TEST_F(DaemonStartPaths, TheSocketIsChownedAndChmoddedWithoutFollowingLinks) {
  if (run_command("command -v strace").exit_code != 0) GTEST_FAIL() << "strace is needed (scripts/setup.sh installs it)";
  const std::string socket = scratch_.base + "/run/s.sock";
  const std::string trace = scratch_.base + "/trace";
  const auto launched = run_command(
      "strace -f -qq -o " + shell_quoted(trace) + " -e trace=chown,lchown,fchown,fchownat,chmod,fchmod,fchmodat " +
      sluiced_path() + " --metrics off --socket " + shell_quoted(socket) + " --bpffs " + shell_quoted(scratch_.pin_dir) +
      " --state-dir " + shell_quoted(scratch_.base + "/state") + " --socket-group nogroup > " +
      shell_quoted(scratch_.base + "/log") + " 2>&1 & echo $!");
  ASSERT_EQ(launched.exit_code, 0) << launched.output;
  const pid_t tracer = static_cast<pid_t>(std::stoi(launched.output));
  bool answered = false;
  for (int i = 0; i < 600 && !answered; ++i) {
    ControlClient client(socket);
    answered = client.connected() && client.call("status").ok;
    if (!answered) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(answered) << read_text(scratch_.base + "/log");
  struct stat info {};
  ASSERT_EQ(::lstat(socket.c_str(), &info), 0);
  EXPECT_EQ(info.st_gid, nobody_gid);
  EXPECT_EQ(info.st_mode & 0777, 0660u);
  ControlClient(socket).call("shutdown");
  for (int i = 0; i < 100 && ::kill(tracer, 0) == 0; ++i) std::this_thread::sleep_for(100ms);
  if (::kill(tracer, 0) == 0) ::kill(tracer, SIGKILL);
  const std::string calls = read_text(trace);
  // chown/chmod/lchown by name follow (or, lchown, would be fine but is not what we use): never on the socket path.
  EXPECT_EQ(calls.find("chown(\"" + socket + "\""), std::string::npos) << calls;
  EXPECT_EQ(calls.find("chmod(\"" + socket + "\""), std::string::npos) << calls;
  EXPECT_NE(calls.find("fchownat(AT_FDCWD, \"" + socket + "\", -1, 65534, AT_SYMLINK_NOFOLLOW)"), std::string::npos)
      << calls;
}

}  // namespace
}  // namespace sluice::test
