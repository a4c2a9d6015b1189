#include "client.hpp"

#include <poll.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/io_context.hpp>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sluice::cli {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::local::stream_protocol;

// One read() worth of reply bytes.
constexpr std::size_t kReadChunkBytes = 64 * 1024;

class UnixTransport final : public Transport {
 public:
  UnixTransport(std::string path) : path_(std::move(path)), socket_(io_), framer_(kMaxReplyBytes) {}

  TransportResult<void> connect() {
    boost::system::error_code ec;
    socket_.connect(stream_protocol::endpoint(path_), ec);
    if (ec) return TransportError{"cannot connect to " + path_ + ": " + ec.message() + hint(ec)};
    return {};
  }

  TransportResult<void> write_line(std::string_view line) override {
    boost::system::error_code ec;
    asio::write(socket_, asio::buffer(line.data(), line.size()), ec);
    if (ec) return TransportError{"write to " + path_ + ": " + ec.message()};
    return {};
  }

  TransportResult<std::string> read_line(std::optional<std::chrono::milliseconds> timeout) override {
    const auto deadline = timeout ? std::optional(std::chrono::steady_clock::now() + *timeout) : std::nullopt;
    std::array<char, kReadChunkBytes> chunk;
    for (;;) {
      if (auto frame = framer_.next()) {
        if (std::holds_alternative<protocol::LineFramer::TooLarge>(*frame))
          return TransportError{"reply from " + path_ + " longer than " + std::to_string(kMaxReplyBytes) + " bytes"};
        return TransportResult<std::string>(boost::system::in_place_value, std::get<std::string>(std::move(*frame)));
      }
      if (auto waited = wait_readable(deadline); !waited) return waited.error();
      boost::system::error_code ec;
      const std::size_t n = socket_.read_some(asio::buffer(chunk), ec);
      if (ec == asio::error::interrupted) return TransportError{"interrupted", true};
      if (ec == asio::error::eof) return TransportError{"daemon closed the connection on " + path_ + " before replying"};
      if (ec) return TransportError{"read from " + path_ + ": " + ec.message()};
      framer_.feed(std::string_view(chunk.data(), n));
    }
  }

 private:
  // poll() rather than Asio timers: one blocking socket, no event loop, and
  // EINTR from Ctrl-C comes straight back to the caller.
  TransportResult<void> wait_readable(std::optional<std::chrono::steady_clock::time_point> deadline) {
    pollfd fd{socket_.native_handle(), POLLIN, 0};
    int timeout_ms = -1;
    if (deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return TransportError{"no reply from " + path_ + " within the timeout"};
      timeout_ms = static_cast<int>(std::min<std::int64_t>(left.count(), std::numeric_limits<int>::max()));
    }
    const int ready = ::poll(&fd, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) return TransportError{"interrupted", true};
    if (ready < 0) return TransportError{"poll " + path_ + ": " + std::strerror(errno)};
    if (ready == 0) return TransportError{"no reply from " + path_ + " within the timeout"};
    return {};
  }

  static std::string hint(const boost::system::error_code& ec) {
    if (ec == asio::error::not_found || ec.value() == ENOENT) return " (is sluiced running? --socket PATH)";
    if (ec.value() == EACCES) return " (permission denied: run as root or a member of the sluice admin group)";
    if (ec.value() == ECONNREFUSED) return " (socket exists but nobody listens: is sluiced running?)";
    return "";
  }

  std::string path_;
  asio::io_context io_;
  stream_protocol::socket socket_;
  protocol::LineFramer framer_;
};

}  // namespace

void throw_exception_from_error(const TransportError& error, const boost::source_location&) {
  throw std::runtime_error(error.message);
}

void throw_exception_from_error(const CallFailure& error, const boost::source_location&) {
  throw std::runtime_error(error.daemon ? error.daemon->message : error.transport ? error.transport->message : "failed");
}

TransportResult<std::unique_ptr<Transport>> connect_unix(const std::string& socket_path) {
  auto transport = std::make_unique<UnixTransport>(socket_path);
  if (auto connected = transport->connect(); !connected) return connected.error();
  return std::unique_ptr<Transport>(std::move(transport));
}

std::string Session::request_line(std::int64_t id, std::string_view op, const json::object& args) {
  json::object request;
  request["id"] = id;
  request["op"] = op;
  request["args"] = args;
  return json::serialize(request);
}

CallResult<json::value> Session::call(std::string_view op, const json::object& args, std::chrono::milliseconds timeout) {
  return exchange(op, args, timeout, nullptr);
}

CallResult<json::value> Session::stream(std::string_view op, const json::object& args,
                                        const std::function<bool(const json::value&)>& on_event) {
  return exchange(op, args, std::nullopt, &on_event);
}

CallResult<json::value> Session::exchange(std::string_view op, const json::object& args,
                                          std::optional<std::chrono::milliseconds> timeout,
                                          const std::function<bool(const json::value&)>* on_event) {
  const std::int64_t id = next_id_++;
  const std::string line = request_line(id, op, args) + "\n";
  if (line.size() > protocol::max_request_bytes + 1)
    return CallFailure{std::nullopt, TransportError{"request too large: " + std::to_string(line.size() - 1) +
                                                    " bytes, the daemon accepts at most " +
                                                    std::to_string(protocol::max_request_bytes)}};
  if (auto written = transport_->write_line(line); !written) return CallFailure{std::nullopt, written.error()};
  for (;;) {
    auto received = transport_->read_line(timeout);
    if (!received) return CallFailure{std::nullopt, received.error()};
    auto parsed = protocol::parse_reply(*received);
    if (auto* problem = std::get_if<std::string>(&parsed))
      return CallFailure{std::nullopt, TransportError{"bad reply to " + std::string(op) + ": " + *problem}};
    auto& reply = std::get<protocol::Reply>(parsed);
    // One request in flight per connection: any other id is a daemon bug.
    if (!(reply.id.is_int64() && reply.id.as_int64() == id))
      return CallFailure{std::nullopt, TransportError{"reply to " + std::string(op) + " carries id " +
                                                      protocol::quote_value(reply.id) + ", expected " +
                                                      std::to_string(id)}};
    if (!reply.ok)
      return CallFailure{DaemonError{std::string(protocol::to_string(reply.error->code)), reply.error->message},
                         std::nullopt};
    if (reply.event) {
      if (!on_event)
        return CallFailure{std::nullopt, TransportError{"daemon streamed events in reply to " + std::string(op)}};
      if (!(*on_event)(*reply.event)) return json::value(nullptr);
      continue;
    }
    if (!reply.result) return CallFailure{std::nullopt, TransportError{"reply to " + std::string(op) + " has no result"}};
    return std::move(*reply.result);
  }
}

}  // namespace sluice::cli
