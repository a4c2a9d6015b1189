#include "top_command.hpp"

#include <CLI/CLI.hpp>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <map>
#include <memory>

#include "command_support.hpp"
#include "packet_head.hpp"
#include "contract.hpp"
#include "status_document.hpp"
#include "top_frame.hpp"

namespace sluice::cli {
namespace {

namespace json = boost::json;

constexpr double min_interval_s = 0.2, max_interval_s = 60, default_interval_s = 1;
constexpr std::uint32_t max_iterations = 1'000'000;
// The drops whose sources are counted: the most recent this many samples.
constexpr std::uint32_t sampled_drops_read = 256;
constexpr std::size_t top_sources = 16;
// Keys are looked at this often while waiting for the next refresh.
constexpr std::chrono::milliseconds key_slice{100};

// The terminal, in the state top needs and back: no echo, no line
// buffering (a key press arrives at once; Ctrl-C still signals), the
// alternate screen and a hidden cursor. Restored on every way out.
class TerminalScreen {
 public:
  TerminalScreen() { enter(); }

  // Into top's mode (again after a stop: the shell may have changed the
  // terminal meanwhile, so it is read again).
  void enter() {
    if (active_ || ::isatty(STDIN_FILENO) != 1 || ::isatty(STDOUT_FILENO) != 1) return;
    if (::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) != 0) return;
    active_ = true;
    write_all("\x1b[?1049h\x1b[?25l");
  }
  TerminalScreen(const TerminalScreen&) = delete;
  TerminalScreen& operator=(const TerminalScreen&) = delete;
  ~TerminalScreen() { restore(); }

  // Back to the terminal as it was (idempotent): the main screen, the cursor, line mode.
  void restore() {
    if (!active_) return;
    active_ = false;
    write_all("\x1b[?25h\x1b[?1049l");
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }

  bool active() const { return active_; }

  std::pair<std::size_t, std::size_t> size() const {
    winsize ws{};
    if (active_ && ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) return {ws.ws_col, ws.ws_row};
    return {top_min_width, top_min_height};
  }

  // The frame drawn over the last one: home, each line then clear-to-end, clear below.
  void draw(const std::vector<std::string>& lines) const {
    std::string out = "\x1b[H";
    for (std::size_t i = 0; i < lines.size(); ++i) out += lines[i] + "\x1b[K" + (i + 1 < lines.size() ? "\r\n" : "");
    write_all(out + "\x1b[J");
  }

  // A key within `wait`, if one was pressed.
  std::optional<char> key(std::chrono::milliseconds wait) const {
    pollfd in{.fd = STDIN_FILENO, .events = POLLIN, .revents = 0};
    if (::poll(&in, 1, static_cast<int>(wait.count())) <= 0) return std::nullopt;
    char c = 0;
    if (::read(STDIN_FILENO, &c, 1) != 1) return std::nullopt;
    return c;
  }

 private:
  static void write_all(std::string_view text) {
    while (!text.empty()) {
      const ssize_t n = ::write(STDOUT_FILENO, text.data(), text.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      text.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  termios saved_{};
  bool active_ = false;
};

// Signals that end or suspend top while it holds the terminal. SIGINT and
// SIGTERM are sluicectl's own (env.interrupted); these are caught only for
// top's lifetime, so the terminal is restored before the process goes.
std::atomic<int> end_signal{0};          // SIGHUP or SIGQUIT received
std::atomic<bool> suspend_wanted{false};  // SIGTSTP received

extern "C" void on_top_end(int signal_number) { end_signal.store(signal_number); }
extern "C" void on_top_suspend(int) { suspend_wanted.store(true); }

class TopSignals {
 public:
  TopSignals() {
    end_signal.store(0);
    suspend_wanted.store(false);
    // No SA_RESTART: a request blocked on the socket returns at once.
    install(SIGHUP, on_top_end, saved_hup_);
    install(SIGQUIT, on_top_end, saved_quit_);
    install(SIGTSTP, on_top_suspend, saved_tstp_);
  }
  TopSignals(const TopSignals&) = delete;
  TopSignals& operator=(const TopSignals&) = delete;
  ~TopSignals() {
    ::sigaction(SIGHUP, &saved_hup_, nullptr);
    ::sigaction(SIGQUIT, &saved_quit_, nullptr);
    ::sigaction(SIGTSTP, &saved_tstp_, nullptr);
  }

  // Off the terminal, stopped as SIGTSTP would have stopped us; on SIGCONT back in.
  static void suspend(TerminalScreen& screen) {
    suspend_wanted.store(false);
    screen.restore();
    struct sigaction stop_default {}, ours {};
    stop_default.sa_handler = SIG_DFL;
    sigemptyset(&stop_default.sa_mask);
    ::sigaction(SIGTSTP, &stop_default, &ours);
    ::raise(SIGTSTP);  // stops here until SIGCONT
    ::sigaction(SIGTSTP, &ours, nullptr);
    screen.enter();
  }

 private:
  static void install(int signal_number, void (*handler)(int), struct sigaction& saved) {
    struct sigaction action {};
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    ::sigaction(signal_number, &action, &saved);
  }

  struct sigaction saved_hup_ {}, saved_quit_ {}, saved_tstp_ {};
};

// The exit status of a top ended by SIGHUP or SIGQUIT: the shell's 128 + N, as if it had killed us.
constexpr int exit_signalled_base = 128;

std::string wall_clock() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  localtime_r(&now, &parts);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &parts);
  return text;
}

// A transport failure ends top: the daemon is gone or the socket broke.
struct DaemonLost {
  std::string message;
};

// The recent sampled drops' sources, counted (the events op; admin only).
void read_drop_sources(TopContext& ctx, const json::object& doc, TopInput& input) {
  const json::value* every = doc.if_contains("drop_sample_every");
  if (every && every->is_number() && every->to_number<double>() == 0) {
    input.drop_sources_unavailable = "drop sampling is off (config drop_sample_every 0)";
    return;
  }
  std::map<std::string, std::uint64_t> counts;
  std::uint64_t sampled = 0;
  auto result = ctx.stream("events", {{"max", sampled_drops_read}}, [&](const json::value& event) {
    const json::value* head = event.is_object() ? event.get_object().if_contains("head_hex") : nullptr;
    if (!head || !head->is_string()) return true;  // an lb health event: not a drop
    ++sampled;
    if (auto bytes = decode_hex(head->get_string(), SLUICE_EVENT_HEAD_BYTES))
      if (auto source = packet_source_address(*bytes)) ++counts[*source];
    return true;
  });
  if (!result) {
    if (result.error().transport) throw DaemonLost{result.error().transport->message};
    input.drop_sources_unavailable = "events: " + result.error().daemon->message +
                                     (result.error().daemon->code == "forbidden" ? " (needs uid 0 or the admin group)" : "");
    return;
  }
  input.sampled_drops = sampled;
  input.drop_sources.assign(counts.begin(), counts.end());
  std::stable_sort(input.drop_sources.begin(), input.drop_sources.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  if (input.drop_sources.size() > top_sources) input.drop_sources.resize(top_sources);
}

int run_top(TopContext& ctx, double interval_s, std::optional<std::uint32_t> iterations) {
  Env& env = ctx.env;
  const auto interval = std::chrono::milliseconds(static_cast<std::int64_t>(interval_s * 1000));
  TopSignals signals;
  TerminalScreen screen;
  std::optional<json::object> previous;
  auto previous_at = std::chrono::steady_clock::now();
  std::uint32_t frame_number = 0;
  for (;;) try {
    for (;; ++frame_number) {
      const protocol::StatusCall call = [&ctx](std::string_view op, const json::object& args)
          -> std::variant<json::value, std::string> {
        auto result = ctx.call(op, args);
        if (result) return std::move(*result);
        if (result.error().transport) throw DaemonLost{result.error().transport->message};
        return result.error().daemon->message;
      };
      json::object doc = protocol::compose_status(call);
      const auto now = std::chrono::steady_clock::now();
      TopInput input;
      input.now = &doc;
      input.previous = previous ? &*previous : nullptr;
      input.seconds = std::chrono::duration<double>(now - previous_at).count();
      input.clock = wall_clock();
      read_drop_sources(ctx, doc, input);
      const auto [width, height] = screen.size();
      const auto lines = render_top_frame(input, width, height);
      if (screen.active()) {
        screen.draw(lines);
      } else {
        if (frame_number) env.out << '\n';
        for (const auto& line : lines) env.out << line << '\n';
        env.out << std::flush;
      }
      previous = std::move(doc);
      previous_at = now;
      if (iterations && frame_number + 1 >= *iterations) return kExitOk;
      for (auto waited = std::chrono::milliseconds(0); waited < interval; waited += key_slice) {
        if (env.interrupted()) return kExitOk;
        if (const int ended = end_signal.load()) return screen.restore(), exit_signalled_base + ended;
        if (suspend_wanted.load()) {
          TopSignals::suspend(screen);
          break;  // a fresh frame at once on the screen entered again
        }
        if (screen.active()) {
          if (auto key = screen.key(key_slice); key && (*key == 'q' || *key == 'Q')) return kExitOk;
        } else {
          env.sleep(key_slice);
        }
      }
    }
  } catch (const DaemonLost& lost) {
    // Off the alternate screen first, so the message stays visible.
    screen.restore();
    if (env.interrupted()) return kExitOk;  // Ctrl-C cut a request short: a clean end
    if (const int ended = end_signal.load()) return exit_signalled_base + ended;
    if (suspend_wanted.load()) {
      // SIGTSTP cut a request short: stop now, then go on (a broken connection shows in the next frame's request).
      TopSignals::suspend(screen);
      ++frame_number;
      continue;
    }
    env.err << "sluicectl: top: " << lost.message << '\n';
    return kExitUnavailable;
  }
}

}  // namespace

void add_top_command(CLI::App& app, const std::function<void(TopAction)>& set_action) {
  auto* cmd = app.add_subcommand(
      "top", "Live view refreshed each interval: verdicts/s, VIPs and backends, fill, dropped sources (q quits)");
  auto interval = std::make_shared<double>(default_interval_s);
  auto iterations = std::make_shared<std::optional<std::uint32_t>>();
  cmd->add_option("--interval", *interval, "Seconds between refreshes")
      ->check(CLI::Range(min_interval_s, max_interval_s))
      ->capture_default_str();
  add_decimal(cmd, "--iterations", *iterations, 1, max_iterations, "Stop after N refreshes (default: until q or Ctrl-C)");
  cmd->callback([=] {
    set_action([interval, iterations](TopContext& ctx) { return run_top(ctx, *interval, *iterations); });
  });
}

}  // namespace sluice::cli
