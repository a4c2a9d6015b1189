#pragma once
// The control-socket protocol of sluiced, shared by the daemon and sluicectl.
//
// Unix stream socket, newline-delimited JSON. A request is one line:
//   {"id":<integer>,"op":"<name>","args":{...}}        (args optional)
// Each key appears once per object, at every depth: a request with a
// duplicate key is refused (bad_json), never read as "the last one wins".
// and every reply is one line:
//   {"id":...,"ok":true,"result":...}
//   {"id":...,"ok":false,"error":{"code":"<code>","message":"<text>"}}
// Streaming ops (events) send {"id":...,"ok":true,"event":...} lines before
// their final result line.
//
// Everything here is pure (no I/O), so it is unit-tested and fuzzed.
#include <boost/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace sluice::protocol {

// A request line longer than this (newline excluded) is refused with
// ErrorCode::TooLarge and discarded up to its newline; the connection goes on.
inline constexpr std::size_t max_request_bytes = std::size_t{1} << 20;  // 1 MiB
// JSON nesting deeper than this is refused: no request needs it and deep
// nesting is the cheapest way to exhaust a recursive parser.
inline constexpr std::size_t max_json_depth = 16;

enum class ErrorCode {
  BadJson,    // not JSON, not an object, or a bad id/op/args envelope
  TooLarge,   // request line over max_request_bytes
  UnknownOp,  // op is not one the daemon knows
  BadArgs,    // args do not fit the op (field and value named)
  Forbidden,  // state-changing op from an unauthorised peer
  Failed,     // the kernel/libbpf refused; state rolled back
};

std::string_view to_string(ErrorCode code);
std::optional<ErrorCode> parse_error_code(std::string_view text);

struct ProtocolError {
  ErrorCode code;
  std::string message;
};

struct Request {
  boost::json::value id;  // an integer (int64 or uint64), echoed verbatim
  std::string op;
  boost::json::object args;
};

// A request that could not be accepted: the error, and the id to echo
// (null when the id itself could not be read).
struct RejectedRequest {
  boost::json::value id;
  ProtocolError error;
};

using ParsedRequest = std::variant<Request, RejectedRequest>;

// "a string", "an object", ... for error messages.
std::string kind_name(const boost::json::value& value);
// The value as JSON, cut to a few dozen characters: errors name the value
// without echoing a hostile megabyte back.
std::string quote_value(const boost::json::value& value);

// Parses one request line (without its newline). Never throws.
ParsedRequest parse_request(std::string_view line);

// Reply lines, newline-terminated, ready to write.
std::string ok_reply(const boost::json::value& id, const boost::json::value& result);
std::string error_reply(const boost::json::value& id, const ProtocolError& error);
std::string event_reply(const boost::json::value& id, const boost::json::value& event);

// A reply line as read back by a client.
struct Reply {
  boost::json::value id;
  bool ok = false;
  std::optional<boost::json::value> result;  // final reply of an ok request
  std::optional<boost::json::value> event;   // one streamed event
  std::optional<ProtocolError> error;
};
// Errors name what is wrong with the line.
std::variant<Reply, std::string> parse_reply(std::string_view line);

// Splits a byte stream into request lines and enforces max_line_bytes.
// Bytes of an over-long line are not kept: after reporting TooLarge the
// framer discards up to the next newline and then resumes.
class LineFramer {
 public:
  struct TooLarge {};
  using Frame = std::variant<std::string, TooLarge>;

  explicit LineFramer(std::size_t max_line_bytes = max_request_bytes) : max_line_bytes_(max_line_bytes) {}

  void feed(std::string_view bytes);
  // The next complete line (without "\n" or a trailing "\r"; empty lines are
  // skipped) or a TooLarge marker; nothing when more bytes are needed.
  std::optional<Frame> next();
  // Bytes held for an incomplete line.
  std::size_t buffered() const noexcept { return buffer_.size() - consumed_; }

 private:
  void compact();

  std::size_t max_line_bytes_;
  std::string buffer_;
  std::size_t consumed_ = 0;  // bytes of buffer_ already handed out
  std::size_t scanned_ = 0;   // bytes of buffer_ known to hold no newline
  bool discarding_ = false;   // inside an over-long line, already reported
};

}  // namespace sluice::protocol
