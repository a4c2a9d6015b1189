#include "server.hpp"

#include <sys/socket.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cerrno>
#include <filesystem>

#include "decimal.hpp"
#include "protocol.hpp"
#include "spdlog/spdlog.h"

namespace sluice::daemon {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::local::stream_protocol;
using namespace asio::experimental::awaitable_operators;
using protocol::ErrorCode;
using protocol::ProtocolError;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t read_chunk_bytes = 64 * 1024;
constexpr mode_t socket_dir_mode = 0755;
// After a failed accept (EMFILE, ENFILE, ENOBUFS) the pending connection
// stays queued and the acceptor is readable at once: pause instead of spinning.
constexpr std::chrono::milliseconds accept_retry_pause{100};
// Refusals and deadline closes are logged at most this often, with a count
// of those left out: a flood of hostile clients must not flood the journal.
constexpr std::chrono::seconds refusal_log_window{10};
constexpr unsigned refusal_log_burst = 5;

// Is a daemon answering on path? (A socket file left by a crash refuses connections.)
bool socket_is_live(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof(address.sun_path) - 1);
  const bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return live;
}

// At most refusal_log_burst lines per refusal_log_window; the next line
// after a quiet spell says how many were left out.
class RateLimitedLog {
 public:
  template <class... Args>
  void warn(spdlog::format_string_t<Args...> format, Args&&... args) {
    const auto now = std::chrono::steady_clock::now();
    if (now - window_start_ >= refusal_log_window) {
      window_start_ = now;
      in_window_ = 0;
    }
    if (in_window_ >= refusal_log_burst) {
      ++suppressed_;
      return;
    }
    ++in_window_;
    std::string line = fmt::format(format, std::forward<Args>(args)...);
    if (suppressed_) {
      line += fmt::format(" ({} similar messages suppressed)", suppressed_);
      suppressed_ = 0;
    }
    spdlog::warn("{}", line);
  }

 private:
  std::chrono::steady_clock::time_point window_start_{};
  unsigned in_window_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace

Result<void> validate(const ConnectionLimits& limits) {
  auto bad = [](std::string_view option, std::uint64_t value, const std::string& why) -> Result<void> {
    return maps::make_error_because(std::string(option), std::to_string(value), why, EINVAL);
  };
  if (limits.max_connections < 1 || limits.max_connections > max_connections_limit)
    return bad("--max-connections", limits.max_connections,
               "expected 1.." + std::to_string(max_connections_limit) + " (each connection is a file descriptor)");
  if (limits.admin_reserved >= limits.max_connections)
    return bad("--admin-reserved-connections", limits.admin_reserved,
               "expected 0.." + std::to_string(limits.max_connections - 1) +
                   " (below --max-connections, or nobody but root and the admin group could connect)");
  if (limits.max_per_uid < 1 || limits.max_per_uid > limits.max_connections)
    return bad("--max-connections-per-uid", limits.max_per_uid,
               "expected 1.." + std::to_string(limits.max_connections) + " (at most --max-connections)");
  const std::string timeout_range =
      "expected " + std::to_string(min_timeout.count()) + ".." + std::to_string(max_timeout.count()) + " ms";
  if (limits.idle_timeout < min_timeout || limits.idle_timeout > max_timeout)
    return bad("--idle-timeout-ms", static_cast<std::uint64_t>(limits.idle_timeout.count()), timeout_range);
  if (limits.partial_line_timeout < min_timeout || limits.partial_line_timeout > max_timeout)
    return bad("--partial-line-timeout-ms", static_cast<std::uint64_t>(limits.partial_line_timeout.count()),
               timeout_range);
  return {};
}

Result<void> set_connection_limit(ConnectionLimits& limits, std::string_view option, std::string_view text) {
  const bool is_timeout = option.ends_with("-ms");
  const std::uint64_t most = is_timeout ? static_cast<std::uint64_t>(max_timeout.count()) : max_connections_limit;
  const auto parsed = maps::parse_decimal(text, 0, most);
  if (!parsed.value) return maps::Error{EINVAL, std::string(option) + ": " + parsed.problem};
  const std::uint64_t value = *parsed.value;
  if (option == "--max-connections") limits.max_connections = value;
  else if (option == "--admin-reserved-connections") limits.admin_reserved = value;
  else if (option == "--max-connections-per-uid") limits.max_per_uid = value;
  else if (option == "--idle-timeout-ms") limits.idle_timeout = std::chrono::milliseconds(value);
  else if (option == "--partial-line-timeout-ms") limits.partial_line_timeout = std::chrono::milliseconds(value);
  else return maps::Error{EINVAL, std::string(option) + ": not a connection limit"};
  return {};
}

std::string connection_limit_help(std::string_view option) {
  const ConnectionLimits defaults;
  auto with_default = [](std::string text, auto value) { return text + " (default " + std::to_string(value) + ")"; };
  if (option == "--max-connections")
    return with_default("control-socket connections open at once, 1.." + std::to_string(max_connections_limit),
                        defaults.max_connections);
  if (option == "--admin-reserved-connections")
    return with_default("of those, how many only root and the admin group may take", defaults.admin_reserved);
  if (option == "--max-connections-per-uid")
    return with_default("connections one uid may hold at once (root exempt)", defaults.max_per_uid);
  if (option == "--idle-timeout-ms")
    return with_default("close a connection that sends no request for this long", defaults.idle_timeout.count());
  if (option == "--partial-line-timeout-ms")
    return with_default("close a connection whose request line is unfinished this long after its first byte",
                        defaults.partial_line_timeout.count());
  return "";
}

void OpRegistry::add(std::string name, Handler handler) { handlers_[std::move(name)] = std::move(handler); }

const OpRegistry::Handler* OpRegistry::find(std::string_view name) const {
  auto found = handlers_.find(name);
  return found == handlers_.end() ? nullptr : &found->second;
}

std::vector<std::string> OpRegistry::names() const {
  std::vector<std::string> names;
  for (const auto& [name, handler] : handlers_) names.push_back(name);
  return names;
}

struct ControlServer::State : std::enable_shared_from_this<ControlServer::State> {
  State(asio::io_context& io, ServerOptions o, const OpRegistry& r, EventHub& e)
      : acceptor(io), options(std::move(o)), ops(r), events(e) {}

  stream_protocol::acceptor acceptor;
  ServerOptions options;
  const OpRegistry& ops;
  EventHub& events;
  RequestMetrics metrics;
  bool stopped = false;
  std::map<uid_t, std::size_t> open_per_uid;  // open connections of each uid (entries of 0 removed)
  RateLimitedLog refusal_log;
  // Apart from refusal_log, so a connection flood cannot hide who asked for a forbidden op.
  RateLimitedLog forbidden_log;

  void count(std::string_view op, std::string_view result) { ++metrics.requests[{std::string(op), std::string(result)}]; }

  // Empty: the peer may take a slot; otherwise why not.
  std::optional<std::string> refuse_reason(const PeerCredentials& peer, bool admin);

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(stream_protocol::socket socket, PeerCredentials peer);
};

namespace {

// One client. Requests are handled in order; an events stream takes the
// connection until it ends.
class Connection {
 public:
  Connection(std::shared_ptr<ControlServer::State> server, stream_protocol::socket socket, PeerCredentials peer)
      : server_(std::move(server)), socket_(std::move(socket)), peer_(std::move(peer)), deadline_(socket_.get_executor()) {}

  // Requests until the client leaves, or misses a deadline: idle_timeout
  // after its last complete request (or its connect), partial_line_timeout
  // after the first byte of a line it has not finished. Bytes trickled in
  // move neither deadline, so a slow drip cannot hold the slot either.
  asio::awaitable<void> run() {
    const ConnectionLimits& limits = server_->options.limits;
    auto last_request = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::time_point> line_started;
    for (;;) {
      while (auto frame = framer_.next()) {
        last_request = std::chrono::steady_clock::now();
        line_started.reset();
        if (std::holds_alternative<protocol::LineFramer::TooLarge>(*frame)) {
          server_->count("invalid", "too_large");
          const ProtocolError error{ErrorCode::TooLarge, "request line is over " +
                                                             std::to_string(protocol::max_request_bytes) +
                                                             " bytes; it was discarded"};
          if (!co_await write(protocol::error_reply(nullptr, error))) co_return;
          continue;
        }
        if (!co_await handle(std::get<std::string>(*frame))) co_return;
        last_request = std::chrono::steady_clock::now();
      }
      if (framer_.buffered() == 0) line_started.reset();
      else if (!line_started) line_started = std::chrono::steady_clock::now();
      const auto idle_deadline = last_request + limits.idle_timeout;
      const bool partial_first = line_started && *line_started + limits.partial_line_timeout < idle_deadline;
      deadline_.expires_at(partial_first ? *line_started + limits.partial_line_timeout : idle_deadline);
      auto outcome = co_await (socket_.async_read_some(asio::buffer(buffer_), use_tuple) ||
                               deadline_.async_wait(use_tuple));
      if (outcome.index() == 1) {
        if (partial_first) {
          ++server_->metrics.partial_line_timeouts;
          server_->refusal_log.warn("closing the connection of uid {} pid {}: a request line unfinished after {} ms",
                                    peer_.uid, peer_.pid, limits.partial_line_timeout.count());
        } else {
          ++server_->metrics.idle_timeouts;
          server_->refusal_log.warn("closing the connection of uid {} pid {}: no request for {} ms", peer_.uid,
                                    peer_.pid, limits.idle_timeout.count());
        }
        co_return;
      }
      auto [ec, n] = std::get<0>(outcome);
      if (ec) co_return;  // EOF or reset: the client is gone
      framer_.feed({buffer_.data(), n});
    }
  }

 private:
  // false: the connection is over.
  asio::awaitable<bool> handle(const std::string& line) {
    auto parsed = protocol::parse_request(line);
    if (auto* rejected = std::get_if<protocol::RejectedRequest>(&parsed)) {
      server_->count("invalid", protocol::to_string(rejected->error.code));
      co_return co_await write(protocol::error_reply(rejected->id, rejected->error));
    }
    auto& request = std::get<protocol::Request>(parsed);
    const protocol::OpInfo* info = protocol::find_op(request.op);
    const OpRegistry::Handler* handler = server_->ops.find(request.op);
    const bool streaming = info && info->streaming && request.op == "events";
    if (!handler && !streaming) {
      server_->count("unknown", "unknown_op");
      const ProtocolError error{ErrorCode::UnknownOp, "unknown op " + protocol::quote_value(json::string(request.op)) +
                                                          (info ? " (not available in this build of sluiced)" : "")};
      co_return co_await write(protocol::error_reply(request.id, error));
    }
    // Ops missing from the protocol table are state-changing unless declared otherwise.
    const protocol::Access access = info ? info->access : protocol::Access::ChangesState;
    const bool changes_state = access == protocol::Access::ChangesState;
    // Packet contents (events, and so sluicectl capture) are for the same
    // peers as state changes: a socket-group member reads counts, not traffic.
    if (access != protocol::Access::ReadOnly && !server_->options.authorizer.may_change_state(peer_)) {
      server_->count(request.op, "forbidden");
      // Rate-limited: a socket-group member looping a forbidden op must not flood the journal.
      server_->forbidden_log.warn("refused {} from uid {} pid {}: not root and not in the admin group", request.op,
                                  peer_.uid, peer_.pid);
      const ProtocolError error{ErrorCode::Forbidden, "op " + request.op + " " + std::string(protocol::to_string(access)) +
                                                          ": uid " + std::to_string(peer_.uid) +
                                                          " is neither root nor a member of the admin group"};
      co_return co_await write(protocol::error_reply(request.id, error));
    }
    if (streaming) co_return co_await stream_events(request);

    OpResult result = [&]() -> OpResult {
      try {
        return handler->run(request.args);
      } catch (const std::exception& e) {  // a bug must cost one request, not the daemon
        spdlog::error("op {} threw: {}", request.op, e.what());
        return ProtocolError{ErrorCode::Failed, std::string("internal error: ") + e.what()};
      }
    }();
    if (result) {
      server_->count(request.op, "ok");
      if (changes_state) spdlog::info("{} by uid {}: ok", request.op, peer_.uid);
      const bool written = co_await write(protocol::ok_reply(request.id, *result));
      if (handler->after_reply) handler->after_reply();
      co_return written;
    }
    server_->count(request.op, protocol::to_string(result.error().code));
    co_return co_await write(protocol::error_reply(request.id, result.error()));
  }

  asio::awaitable<bool> stream_events(const protocol::Request& request) {
    auto args = protocol::parse_events_args(request.args);
    if (!args) {
      server_->count(request.op, "bad_args");
      co_return co_await write(protocol::error_reply(request.id, args.error()));
    }
    server_->count(request.op, "ok");
    std::uint64_t sent = 0;
    if (!args->follow) {
      for (const auto& event : server_->events.recent(args->max.value_or(EventHub::history_capacity))) {
        if (!co_await write(protocol::event_reply(request.id, event))) co_return false;
        ++sent;
      }
      // Built outside co_await: GCC 12 miscompiles braced initializer lists inside co_await expressions.
      const std::string final_line = final_reply(request.id, sent, 0);
      co_return co_await write(final_line);
    }
    auto subscription = server_->events.subscribe();
    auto outcome = co_await (pump(request.id, *subscription, args->max, sent) || watch_for_close());
    if (outcome.index() == 1) co_return false;       // the client closed, or flooded the stream: the connection ends
    if (!std::get<0>(outcome)) co_return false;      // a write failed or timed out
    const std::string final_line = final_reply(request.id, sent, subscription->dropped());
    co_return co_await write(final_line);
  }

  static std::string final_reply(const json::value& id, std::uint64_t sent, std::uint64_t dropped) {
    return protocol::ok_reply(id, json::object{{"events", sent}, {"dropped", dropped}});
  }

  // Sends queued events until max; false when a write fails.
  asio::awaitable<bool> pump(const json::value& id, EventSubscription& subscription, std::optional<std::uint64_t> max,
                             std::uint64_t& sent) {
    for (;;) {
      while (!subscription.queue().empty()) {
        if (max && sent >= *max) co_return true;
        const auto event = std::move(subscription.queue().front());
        subscription.queue().pop_front();
        if (!co_await write(protocol::event_reply(id, event))) co_return false;
        ++sent;
      }
      if (max && sent >= *max) co_return true;
      co_await subscription.wait();
    }
  }

  // Completes when the client closes, or when it has sent more than
  // max_stream_input_bytes since the stream began. Bytes up to that bound are
  // kept for after the stream (a request pipelined behind a bounded follow);
  // beyond it the connection ends: a subscriber only reads, and the daemon
  // must not buffer without limit what a client writes and nobody reads.
  asio::awaitable<void> watch_for_close() {
    std::size_t received = 0;
    for (;;) {
      auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buffer_), use_tuple);
      if (ec) co_return;
      received += n;
      if (received > max_stream_input_bytes) {
        ++server_->metrics.stream_input_overflows;
        spdlog::warn("client pid {} sent over {} bytes during an events stream; closing its connection", peer_.pid,
                     max_stream_input_bytes);
        co_return;
      }
      framer_.feed({buffer_.data(), n});
    }
  }

  // false: the client did not take the line in time, or the socket failed.
  asio::awaitable<bool> write(const std::string& line) {
    asio::steady_timer timer(socket_.get_executor(), reply_write_timeout);
    auto outcome = co_await (asio::async_write(socket_, asio::buffer(line), use_tuple) || timer.async_wait(use_tuple));
    if (outcome.index() == 1) {
      ++server_->metrics.write_timeouts;
      spdlog::warn("client pid {} did not read its reply within {} s; closing its connection", peer_.pid,
                   reply_write_timeout.count());
      co_return false;
    }
    co_return !std::get<0>(std::get<0>(outcome));
  }

  std::shared_ptr<ControlServer::State> server_;
  stream_protocol::socket socket_;
  PeerCredentials peer_;
  asio::steady_timer deadline_;
  protocol::LineFramer framer_;
  std::vector<char> buffer_ = std::vector<char>(read_chunk_bytes);
};

}  // namespace

std::optional<std::string> ControlServer::State::refuse_reason(const PeerCredentials& peer, bool admin) {
  const ConnectionLimits& limits = options.limits;
  if (metrics.connections_open >= limits.max_connections)
    return "all " + std::to_string(limits.max_connections) + " connections are open";
  if (!admin && metrics.connections_open >= limits.max_connections - limits.admin_reserved) {
    ++metrics.connections_refused_reserved;
    return "only the " + std::to_string(limits.admin_reserved) + " connections reserved for root and the admin group are left";
  }
  if (peer.uid != 0) {
    auto found = open_per_uid.find(peer.uid);
    if (found != open_per_uid.end() && found->second >= limits.max_per_uid) {
      ++metrics.connections_refused_per_uid;
      return "uid " + std::to_string(peer.uid) + " already holds " + std::to_string(limits.max_per_uid) + " connections";
    }
  }
  return std::nullopt;
}

asio::awaitable<void> ControlServer::State::accept_loop() {
  auto self = shared_from_this();
  asio::steady_timer pause(acceptor.get_executor());
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      refusal_log.warn("accept on {}: {}", options.socket_path, ec.message());
      pause.expires_after(accept_retry_pause);
      co_await pause.async_wait(use_tuple);
      if (stopped) co_return;
      continue;
    }
    // The kernel recorded the peer at connect(): whose slot it is decides before anything is read.
    auto peer = read_peer_credentials(socket.native_handle());
    if (!peer) {
      refusal_log.warn("{}; closing the connection", peer.error().message);
      continue;
    }
    if (auto why = refuse_reason(*peer, options.authorizer.may_change_state(*peer))) {
      ++metrics.connections_refused;
      refusal_log.warn("refused a connection from uid {} pid {}: {}", peer->uid, peer->pid, *why);
      continue;  // the socket closes here
    }
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), std::move(*peer)), asio::detached);
  }
}

asio::awaitable<void> ControlServer::State::serve(stream_protocol::socket socket, PeerCredentials peer) {
  auto self = shared_from_this();
  ++metrics.connections_total;
  ++metrics.connections_open;
  ++open_per_uid[peer.uid];
  struct Closed {
    State& state;
    uid_t uid;
    ~Closed() {
      --state.metrics.connections_open;
      if (auto found = state.open_per_uid.find(uid); found != state.open_per_uid.end() && --found->second == 0)
        state.open_per_uid.erase(found);
    }
  } closed{*this, peer.uid};
  Connection connection(self, std::move(socket), std::move(peer));
  co_await connection.run();
}

ControlServer::ControlServer(asio::io_context& io, ServerOptions options, const OpRegistry& ops, EventHub& events)
    : state_(std::make_shared<State>(io, std::move(options), ops, events)) {}

ControlServer::~ControlServer() { stop(); }

Result<void> ControlServer::listen() {
  namespace fs = std::filesystem;
  const std::string& path = state_->options.socket_path;
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return maps::make_error_because("listen on", path, "socket path longer than " +
                                    std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes", ENAMETOOLONG);
  const fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::exists(parent, ec)) {
    fs::create_directories(parent, ec);
    if (ec) return maps::make_error("create socket directory", parent.string(), ec.value(), maps::ErrnoSubject::Path);
    ::chmod(parent.c_str(), socket_dir_mode);
  }
  struct stat info {};
  if (::lstat(path.c_str(), &info) == 0) {
    if (!S_ISSOCK(info.st_mode))
      return maps::make_error_because("listen on", path, "the path exists and is not a socket; not removing it", EEXIST);
    if (socket_is_live(path))
      return maps::make_error_because("listen on", path, "another daemon is answering on this socket", EADDRINUSE);
    if (::unlink(path.c_str()) != 0) return maps::make_error("remove stale socket", path, errno, maps::ErrnoSubject::Path);
    spdlog::info("removed stale socket {}", path);
  }
  boost::system::error_code bind_ec;
  state_->acceptor.open(stream_protocol(), bind_ec);
  if (bind_ec) return maps::make_error("open socket for", path, bind_ec.value());
  // The umask makes the socket 0660 from its creation: no window where it is wider.
  const mode_t previous = ::umask(0777 & ~socket_mode);
  state_->acceptor.bind(stream_protocol::endpoint(path), bind_ec);
  ::umask(previous);
  if (bind_ec) return maps::make_error("bind", path, bind_ec.value(), maps::ErrnoSubject::Path);
  // Never through a symlink: a path swapped after bind() must not get a file of root's chowned or chmodded.
  if (state_->options.socket_group &&
      ::fchownat(AT_FDCWD, path.c_str(), static_cast<uid_t>(-1), *state_->options.socket_group, AT_SYMLINK_NOFOLLOW) != 0)
    return maps::make_error("chown socket to its group", path, errno, maps::ErrnoSubject::Path);
  if (::fchmodat(AT_FDCWD, path.c_str(), socket_mode, AT_SYMLINK_NOFOLLOW) != 0)
    return maps::make_error("chmod socket", path, errno, maps::ErrnoSubject::Path);
  state_->acceptor.listen(asio::socket_base::max_listen_connections, bind_ec);
  if (bind_ec) return maps::make_error("listen on", path, bind_ec.value());
  return {};
}

void ControlServer::start() { asio::co_spawn(state_->acceptor.get_executor(), state_->accept_loop(), asio::detached); }

void ControlServer::stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  boost::system::error_code ignored;
  if (state_->acceptor.is_open()) {
    state_->acceptor.close(ignored);
    ::unlink(state_->options.socket_path.c_str());
  }
}

const RequestMetrics& ControlServer::metrics() const { return state_->metrics; }

}  // namespace sluice::daemon
