#pragma once
// sluicectl's side of the control socket: a blocking connection that writes
// one request line and reads reply lines (protocol/protocol.hpp), and a
// Session on top that numbers requests, matches reply ids and tells daemon
// errors from transport failures.
//
// Transport is the seam for tests: unit tests plug a fake that replays
// canned reply lines; the real one is a Unix stream socket (Boost.Asio).
#include <boost/json.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protocol.hpp"

namespace sluice::cli {

// Replies are read whole into memory; a reply beyond this is a broken or
// hostile peer, not a listing we want (1M prefixes of block.list is ~40 MiB).
inline constexpr std::size_t kMaxReplyBytes = std::size_t{128} << 20;
// How long a one-shot request may wait for its reply before sluicectl gives
// up; streaming requests (events --follow) wait forever.
inline constexpr std::chrono::seconds kDefaultReplyTimeout{30};

// Why a transport failed: the message says what and where.
struct TransportError {
  // Declared constructors: without them a std::string would convert to
  // TransportError (C++20 aggregate paren-init) and TransportResult<std::string>
  // could not tell a line from an error. Return a line with
  // TransportResult<std::string>(boost::system::in_place_value, line).
  TransportError() = default;
  TransportError(std::string message_, bool interrupted_) : message(std::move(message_)), interrupted(interrupted_) {}
  explicit TransportError(std::string message_) : message(std::move(message_)) {}

  std::string message;
  bool interrupted = false;  // a signal (Ctrl-C) cut the wait short
};

template <class T>
using TransportResult = boost::system::result<T, TransportError>;

[[noreturn]] void throw_exception_from_error(const TransportError& error, const boost::source_location& where);

class Transport {
 public:
  virtual ~Transport() = default;
  // Writes one whole line (the newline included by the caller).
  virtual TransportResult<void> write_line(std::string_view line) = 0;
  // The next reply line without its newline. timeout: nullopt waits forever.
  virtual TransportResult<std::string> read_line(std::optional<std::chrono::milliseconds> timeout) = 0;
};

using Connector = std::function<TransportResult<std::unique_ptr<Transport>>(const std::string& socket_path)>;

// Connects to a Unix stream socket with Boost.Asio (blocking).
TransportResult<std::unique_ptr<Transport>> connect_unix(const std::string& socket_path);

// The outcome of one request, as the CLI needs it.
struct DaemonError {
  std::string code;  // "bad_args", ...
  std::string message;
};

struct CallFailure {
  // Exactly one of: the daemon answered ok:false, or talking to it failed.
  std::optional<DaemonError> daemon;
  std::optional<TransportError> transport;
};

template <class T>
using CallResult = boost::system::result<T, CallFailure>;

[[noreturn]] void throw_exception_from_error(const CallFailure& error, const boost::source_location& where);

class Session {
 public:
  explicit Session(std::unique_ptr<Transport> transport) : transport_(std::move(transport)) {}

  // One request, one reply: the result value of an ok reply.
  CallResult<boost::json::value> call(std::string_view op, const boost::json::object& args,
                                      std::chrono::milliseconds timeout = kDefaultReplyTimeout);

  // A streaming request: on_event for each event line (return false to stop
  // early), then the final result. No timeout: events come when they come.
  CallResult<boost::json::value> stream(std::string_view op, const boost::json::object& args,
                                        const std::function<bool(const boost::json::value&)>& on_event);

  // The exact request line call() and stream() send (without the newline).
  static std::string request_line(std::int64_t id, std::string_view op, const boost::json::object& args);

 private:
  CallResult<boost::json::value> exchange(std::string_view op, const boost::json::object& args,
                                          std::optional<std::chrono::milliseconds> timeout,
                                          const std::function<bool(const boost::json::value&)>* on_event);

  std::unique_ptr<Transport> transport_;
  std::int64_t next_id_ = 1;
};

}  // namespace sluice::cli
