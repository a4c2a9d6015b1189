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

}  // namespace

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

  void count(std::string_view op, std::string_view result) { ++metrics.requests[{std::string(op), std::string(result)}]; }

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(stream_protocol::socket socket);
};

namespace {

// One client. Requests are handled in order; an events stream takes the
// connection until it ends.
class Connection {
 public:
  Connection(std::shared_ptr<ControlServer::State> server, stream_protocol::socket socket)
      : server_(std::move(server)), socket_(std::move(socket)) {}

  asio::awaitable<void> run() {
    auto peer = read_peer_credentials(socket_.native_handle());
    if (!peer) {
      spdlog::warn("{}; closing the connection", peer.error().message);
      co_return;
    }
    peer_ = *peer;
    for (;;) {
      while (auto frame = framer_.next()) {
        if (std::holds_alternative<protocol::LineFramer::TooLarge>(*frame)) {
          server_->count("invalid", "too_large");
          const ProtocolError error{ErrorCode::TooLarge, "request line is over " +
                                                             std::to_string(protocol::max_request_bytes) +
                                                             " bytes; it was discarded"};
          if (!co_await write(protocol::error_reply(nullptr, error))) co_return;
          continue;
        }
        if (!co_await handle(std::get<std::string>(*frame))) co_return;
      }
      auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buffer_), use_tuple);
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
    const bool changes_state = !info || info->access == protocol::Access::ChangesState;
    if (changes_state && !server_->options.authorizer.may_change_state(peer_)) {
      server_->count(request.op, "forbidden");
      spdlog::warn("refused {} from uid {} pid {}: not root and not in the admin group", request.op, peer_.uid, peer_.pid);
      const ProtocolError error{ErrorCode::Forbidden, "op " + request.op + " changes state: uid " +
                                                          std::to_string(peer_.uid) +
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
  protocol::LineFramer framer_;
  std::vector<char> buffer_ = std::vector<char>(read_chunk_bytes);
};

}  // namespace

asio::awaitable<void> ControlServer::State::accept_loop() {
  auto self = shared_from_this();
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      spdlog::warn("accept on {}: {}", options.socket_path, ec.message());
      continue;
    }
    if (metrics.connections_open >= max_connections) {
      ++metrics.connections_refused;
      continue;  // the socket closes here
    }
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> ControlServer::State::serve(stream_protocol::socket socket) {
  auto self = shared_from_this();
  ++metrics.connections_total;
  ++metrics.connections_open;
  struct Closed {
    RequestMetrics& m;
    ~Closed() { --m.connections_open; }
  } closed{metrics};
  Connection connection(self, std::move(socket));
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
