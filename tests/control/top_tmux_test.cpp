// The real `sluicectl top` in a real terminal: tmux (a server of the test's
// own, 80x24) runs it against a lab's sluiced; capture-pane shows the lab's
// interface, VIP, backends, the drop reason and the dropped source; q and
// Ctrl-C each end it with exit 0 and the terminal back on its main screen;
// SIGTERM, SIGHUP and SIGQUIT end it with the terminal restored (main screen,
// echo and line mode back), SIGTSTP stops it restored and SIGCONT brings it
// back onto the alternate screen.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <regex>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

// A tmux server of this test alone (-L): killed at the end, whatever happened.
class TmuxServer {
 public:
  TmuxServer() : name_("sluice-top-" + std::to_string(::getpid())) {}
  TmuxServer(const TmuxServer&) = delete;
  TmuxServer& operator=(const TmuxServer&) = delete;
  ~TmuxServer() { run_command("tmux -L " + name_ + " kill-server 2>/dev/null"); }

  CommandResult tmux(const std::string& args) const { return run_command("tmux -L " + name_ + " " + args); }
  std::string pane(const std::string& window) const { return tmux("capture-pane -p -t " + window).output; }

 private:
  std::string name_;
};

// Polls `check` every 100 ms for at most `limit`.
template <class Check>
bool eventually(Check check, std::chrono::milliseconds limit) {
  for (auto waited = 0ms; waited < limit; waited += 100ms) {
    if (check()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return check();
}

std::string read_file_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(SluicectlTop, UnderTmuxItDrawsTheLabAndEndsCleanlyOnQAndOnCtrlC) {
  SLUICE_REQUIRE_NETNS();
  if (run_command("command -v tmux").exit_code != 0) GTEST_SKIP() << "tmux is not installed (scripts/setup.sh)";
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  client.result("attach", {{"iface", lab.box_if}});
  const std::string vip = "198.18.1.10:80/tcp";
  client.result("vip.add", {{"vip", vip}, {"table_size", 251}});
  client.result("backend.add", {{"vip", vip}, {"address", "198.18.0.7"}});
  client.result("backend.add", {{"vip", vip}, {"address", "198.18.0.8"}});
  // Every drop sampled, and the client's pings dropped: its address is the top dropped source.
  client.result("config.set", {{"drop_sample_every", 1}});
  client.result("rule.add", {{"src", std::string(TwoHostLab::client_v4) + "/32"}, {"proto", "icmp"}, {"action", "drop"}});
  EXPECT_NE(lab.client.exec("ping -c 4 -i 0.2 -W 1 " + std::string(TwoHostLab::box_v4)).exit_code, 0);

  TmuxServer tmux;
  const std::filesystem::path exits = std::filesystem::temp_directory_path() / ("sluice-top." + std::to_string(::getpid()));
  std::filesystem::create_directories(exits);
  auto start_top = [&](const std::string& window) {
    // The shell records top's exit status, then keeps the pane for capture-pane.
    const std::string command = std::string(SLUICECTL_PATH) + " --socket " + daemon.socket_path() +
                                " top --interval 0.5; echo exit=$? > " + (exits / window).string() + "; sleep 60";
    const std::string verb = window == "first" ? "new-session -d -s top -x 80 -y 24 -n " : "new-window -t top -n ";
    return tmux.tmux(verb + window + " " + shell_quote(command));
  };
  ASSERT_EQ(start_top("first").exit_code, 0);
  const std::string target = "top:first";
  std::string screen;
  ASSERT_TRUE(eventually([&] { return (screen = tmux.pane(target)).find("198.18.0.8") != std::string::npos; }, 10s))
      << "top never drew the lab:\n" << screen;
  // Two refreshes at least: the rates are filled in.
  std::this_thread::sleep_for(1200ms);
  screen = tmux.pane(target);
  std::istringstream lines(screen);
  int line_count = 0;
  for (std::string line; std::getline(lines, line); ++line_count) EXPECT_LE(line.size(), 80u) << line;
  EXPECT_LE(line_count, 24);
  EXPECT_NE(screen.find("sluice top"), std::string::npos) << screen;
  EXPECT_NE(screen.find(lab.box_if + " native"), std::string::npos) << screen;
  EXPECT_NE(screen.find(vip), std::string::npos) << screen;
  EXPECT_NE(screen.find("198.18.0.7"), std::string::npos) << screen;
  EXPECT_NE(screen.find("filter_rule_drop"), std::string::npos) << screen;
  EXPECT_NE(screen.find("  " + std::string(TwoHostLab::client_v4) + " "), std::string::npos)
      << "the dropped client is a top dropped source:\n" << screen;

  ASSERT_EQ(tmux.tmux("send-keys -t " + target + " q").exit_code, 0);
  EXPECT_TRUE(eventually([&] { return read_file_text(exits / "first") == "exit=0\n"; }, 5s))
      << "q did not end top with 0: '" << read_file_text(exits / "first") << "'";
  screen = tmux.pane(target);
  EXPECT_EQ(screen.find("VIP / BACKEND"), std::string::npos) << "the main screen is back:\n" << screen;

  ASSERT_EQ(start_top("second").exit_code, 0);
  ASSERT_TRUE(eventually([&] { return tmux.pane("top:second").find(vip) != std::string::npos; }, 10s));
  ASSERT_EQ(tmux.tmux("send-keys -t top:second C-c").exit_code, 0);
  EXPECT_TRUE(eventually([&] { return read_file_text(exits / "second") == "exit=0\n"; }, 5s))
      << "Ctrl-C did not end top with 0: '" << read_file_text(exits / "second") << "'";
  std::filesystem::remove_all(exits);
}

// The pane's terminal in line mode with echo (as the shell had it), not top's raw mode.
bool line_mode(const std::string& stty) {
  return std::regex_search(stty, std::regex(R"((^|\s)icanon(\s|$))")) &&
         std::regex_search(stty, std::regex(R"((^|\s)echo(\s|$))"));
}

TEST(SluicectlTop, SignalsEndOrSuspendItWithTheTerminalRestored) {
  SLUICE_REQUIRE_BPFFS();
  if (run_command("command -v tmux").exit_code != 0) GTEST_SKIP() << "tmux is not installed (scripts/setup.sh)";
  SluicedProcess daemon;
  ASSERT_EQ(daemon.start(), "");
  TmuxServer tmux;
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("sluice-top-sig." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  struct Top {
    std::string window;
    pid_t pid = -1;
    std::string tty;
  };
  // top as the pane's foreground process (exec keeps the pid the shell wrote).
  auto start_top = [&](const std::string& window, bool first) {
    Top top{window, -1, {}};
    const std::string inner = "echo $$ > " + (dir / (window + ".pid")).string() + "; exec " + SLUICECTL_PATH +
                              " --socket " + daemon.socket_path() + " top --interval 0.5";
    const std::string command = "sh -c " + shell_quote(inner) + "; echo exit=$? > " + (dir / window).string() + "; sleep 60";
    const std::string verb = first ? "new-session -d -s top -x 80 -y 24 -n " : "new-window -t top -n ";
    EXPECT_EQ(tmux.tmux(verb + window + " " + shell_quote(command)).exit_code, 0);
    const std::string target = "top:" + window;
    EXPECT_TRUE(eventually([&] { return tmux.pane(target).find("sluice top") != std::string::npos; }, 10s))
        << tmux.pane(target);
    top.pid = std::stoi("0" + read_file_text(dir / (window + ".pid")));
    top.tty = tmux.tmux("display -p -t " + target + " '#{pane_tty}'").output;
    top.tty.erase(top.tty.find_last_not_of("\n") + 1);
    return top;
  };
  auto stty = [](const Top& top) { return run_command("stty -a -F " + top.tty).output; };
  auto on_main_screen = [&](const Top& top) { return tmux.pane("top:" + top.window).find("sluice top") == std::string::npos; };

  struct Ending {
    int signal_number;
    const char* exit_line;
  };
  bool first = true;
  for (const Ending& ending : {Ending{SIGTERM, "exit=0\n"}, Ending{SIGHUP, "exit=129\n"}, Ending{SIGQUIT, "exit=131\n"}}) {
    SCOPED_TRACE(::strsignal(ending.signal_number));
    const std::string window = "sig" + std::to_string(ending.signal_number);
    const Top top = start_top(window, first);
    first = false;
    ASSERT_GT(top.pid, 0);
    EXPECT_FALSE(line_mode(stty(top))) << "top runs in raw mode: " << stty(top);
    ASSERT_EQ(::kill(top.pid, ending.signal_number), 0);
    EXPECT_TRUE(eventually([&] { return read_file_text(dir / window) == ending.exit_line; }, 5s))
        << "'" << read_file_text(dir / window) << "'";
    EXPECT_TRUE(on_main_screen(top)) << "the alternate screen is still up:\n" << tmux.pane("top:" + window);
    EXPECT_TRUE(line_mode(stty(top))) << "echo and line mode not restored: " << stty(top);
  }

  // Ctrl-Z under a job-control shell (as an operator runs it; a pane's own
  // command is an orphaned process group, where the kernel discards a stop):
  // restored and stopped; fg: back on top's screen in raw mode; q ends it.
  ASSERT_EQ(tmux.tmux("new-window -t top -n tstp 'bash --norc --noprofile --noediting -i'").exit_code, 0);
  const std::string pid_file = (dir / "tstp.pid").string();
  const std::string line = "sh -c " + shell_quote("echo $$ > " + pid_file + "; exec " + SLUICECTL_PATH + " --socket " +
                                                  daemon.socket_path() + " top --interval 0.5");
  ASSERT_EQ(tmux.tmux("send-keys -t top:tstp " + shell_quote(line) + " Enter").exit_code, 0);
  ASSERT_TRUE(eventually([&] { return tmux.pane("top:tstp").find("sluice top") != std::string::npos; }, 10s))
      << tmux.pane("top:tstp");
  Top top{"tstp", std::stoi("0" + read_file_text(pid_file)), {}};
  top.tty = tmux.tmux("display -p -t top:tstp '#{pane_tty}'").output;
  top.tty.erase(top.tty.find_last_not_of("\n") + 1);
  ASSERT_GT(top.pid, 0);
  const std::string stat_path = "/proc/" + std::to_string(top.pid) + "/stat";
  ASSERT_EQ(tmux.tmux("send-keys -t top:tstp C-z").exit_code, 0);
  EXPECT_TRUE(eventually([&] { return read_file_text(stat_path).find(") T ") != std::string::npos; }, 5s))
      << "top is not stopped: " << read_file_text(stat_path);
  EXPECT_TRUE(eventually([&] { return on_main_screen(top) && line_mode(stty(top)); }, 5s))
      << tmux.pane("top:tstp") << "\n" << stty(top);
  ASSERT_EQ(tmux.tmux("send-keys -t top:tstp fg Enter").exit_code, 0);
  EXPECT_TRUE(eventually([&] { return !on_main_screen(top) && !line_mode(stty(top)); }, 5s))
      << "not back on top's screen:\n" << tmux.pane("top:tstp") << "\n" << stty(top);
  ASSERT_EQ(tmux.tmux("send-keys -t top:tstp q").exit_code, 0);
  EXPECT_TRUE(eventually([&] { return !std::filesystem::exists(stat_path); }, 5s)) << "q did not end top";
  EXPECT_TRUE(eventually([&] { return on_main_screen(top) && line_mode(stty(top)); }, 5s)) << stty(top);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::test
