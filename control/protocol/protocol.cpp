#include "protocol.hpp"

#include <boost/json/basic_parser_impl.hpp>

#include <array>
#include <set>
#include <utility>
#include <vector>

namespace sluice::protocol {
namespace {

namespace json = boost::json;

constexpr std::array<std::pair<ErrorCode, std::string_view>, 6> error_code_names{{
    {ErrorCode::BadJson, "bad_json"},
    {ErrorCode::TooLarge, "too_large"},
    {ErrorCode::UnknownOp, "unknown_op"},
    {ErrorCode::BadArgs, "bad_args"},
    {ErrorCode::Forbidden, "forbidden"},
    {ErrorCode::Failed, "failed"},
}};

// Long enough to recognise a value in an error message, short enough that a
// hostile megabyte never comes back in a reply or a log line.
constexpr std::size_t max_quoted_chars = 64;

RejectedRequest reject(json::value id, std::string message) {
  return RejectedRequest{std::move(id), ProtocolError{ErrorCode::BadJson, std::move(message)}};
}

// A validating pass over the request (Boost.JSON's basic_parser, nothing
// built): finds a key given twice in one object, at any depth. Boost.JSON
// 1.81 keeps the last of duplicate keys and has no option to refuse them, so
// {"op":"status","op":"shutdown"} would run shutdown; a request whose
// meaning depends on which duplicate a parser keeps is refused instead.
class DuplicateKeyCheck {
 public:
  static constexpr std::size_t max_array_size = -1;
  static constexpr std::size_t max_object_size = -1;
  static constexpr std::size_t max_string_size = -1;
  static constexpr std::size_t max_key_size = -1;

  // The first duplicate: its path ("args.stages.filter"); empty when none.
  const std::string& duplicate() const noexcept { return duplicate_; }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_array_begin(json::error_code&) { return begin(false); }
  bool on_array_end(std::size_t, json::error_code&) { return end(); }
  bool on_object_begin(json::error_code&) { return begin(true); }
  bool on_object_end(std::size_t, json::error_code&) { return end(); }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return value(); }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
    key_.append(s.data(), s.size());
    Frame& object = frames_.back();
    if (!object.keys.insert(key_).second) {
      duplicate_ = path() + (frames_.size() > 1 ? "." : "") + key_;
      ec = json::error::syntax;  // stops the pass; duplicate() says why
      return false;
    }
    object.last_key = std::move(key_);
    key_.clear();
    return true;
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, json::error_code&) { return value(); }
  bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return value(); }
  bool on_double(double, json::string_view, json::error_code&) { return value(); }
  bool on_bool(bool, json::error_code&) { return value(); }
  bool on_null(json::error_code&) { return value(); }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  struct Frame {
    bool object = false;
    std::set<std::string, std::less<>> keys;  // objects: keys seen so far
    std::string last_key;                     // objects: the key of the value being read
    std::size_t index = 0;                    // arrays: elements so far
  };

  bool begin(bool object) {
    frames_.push_back(Frame{object, {}, {}, 0});
    return true;
  }
  bool end() {
    frames_.pop_back();
    return value();
  }
  // A value ended: in an array, the next one has the next index.
  bool value() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
    return true;
  }
  // Where the innermost frame sits, from the document's root ("args.stages", "x[2]").
  std::string path() const {
    std::string out;
    for (std::size_t i = 0; i + 1 < frames_.size(); ++i) {
      const Frame& parent = frames_[i];
      if (parent.object) out += (out.empty() ? "" : ".") + parent.last_key;
      else out += "[" + std::to_string(parent.index) + "]";
    }
    return out;
  }

  std::vector<Frame> frames_;
  std::string key_;
  std::string duplicate_;
};

// The path of a key given twice in `line`, or nothing. Malformed JSON is
// left to the real parse, which names the syntax error.
std::optional<std::string> duplicate_key(std::string_view line, const json::parse_options& options) {
  json::basic_parser<DuplicateKeyCheck> checker(options);
  json::error_code ec;
  checker.write_some(false, line.data(), line.size(), ec);
  const std::string& duplicate = checker.handler().duplicate();
  if (duplicate.empty()) return std::nullopt;
  return duplicate;
}

std::string serialize_line(const json::object& reply) {
  std::string line = json::serialize(reply);
  line += '\n';
  return line;
}

}  // namespace

std::string_view to_string(ErrorCode code) {
  for (const auto& [value, name] : error_code_names)
    if (value == code) return name;
  return "failed";
}

std::optional<ErrorCode> parse_error_code(std::string_view text) {
  for (const auto& [value, name] : error_code_names)
    if (name == text) return value;
  return std::nullopt;
}

std::string kind_name(const json::value& value) {
  switch (value.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_: return "a number";
    case json::kind::string: return "a string";
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
  }
  return "a value";
}

std::string quote_value(const json::value& value) {
  std::string text = json::serialize(value);
  if (text.size() > max_quoted_chars) {
    text.resize(max_quoted_chars);
    text += "...";
  }
  return text;
}

ParsedRequest parse_request(std::string_view line) {
  if (line.size() > max_request_bytes)
    return RejectedRequest{nullptr, {ErrorCode::TooLarge, "request is " + std::to_string(line.size()) +
                                                              " bytes; the limit is " +
                                                              std::to_string(max_request_bytes)}};
  json::parse_options options;
  options.max_depth = max_json_depth;
  std::error_code ec;
  json::value parsed;
  try {
    parsed = json::parse(line, ec, {}, options);
  } catch (const std::exception& e) {  // allocation failures: still a reply, never a crash
    return reject(nullptr, std::string("request is not valid JSON: ") + e.what());
  }
  if (ec) return reject(nullptr, "request is not valid JSON: " + ec.message());
  try {
    if (auto duplicate = duplicate_key(line, options))
      return reject(nullptr, "key " + quote_value(json::string(*duplicate)) +
                                 " is given twice; a request names each key once");
  } catch (const std::exception& e) {
    return reject(nullptr, std::string("request is not valid JSON: ") + e.what());
  }
  if (!parsed.is_object()) return reject(nullptr, "request must be a JSON object, got " + kind_name(parsed));
  json::object& object = parsed.as_object();

  json::value id = nullptr;
  if (auto* found = object.if_contains("id")) {
    // An integer, echoed as sent: a fraction or an exponent (1.5, 1e400,
    // which Boost.JSON reads as a double and would echo as 1E400 or worse)
    // and strings are refused, so what comes back is what went out.
    if (!found->is_int64() && !found->is_uint64())
      return reject(nullptr, "field id must be an integer, got " + quote_value(*found));
    id = *found;
  } else {
    return reject(nullptr, "field id is missing");
  }
  for (const auto& entry : object) {
    const std::string_view key = entry.key();
    if (key != "id" && key != "op" && key != "args")
      return reject(id, "unknown field " + quote_value(json::string(key)) + " (expected id, op, args)");
  }
  Request request;
  request.id = id;
  const auto* op = object.if_contains("op");
  if (!op) return reject(id, "field op is missing");
  if (!op->is_string()) return reject(id, "field op must be a string, got " + quote_value(*op));
  request.op = std::string(op->as_string());
  if (const auto* args = object.if_contains("args")) {
    if (!args->is_object()) return reject(id, "field args must be an object, got " + quote_value(*args));
    request.args = args->as_object();
  }
  return request;
}

std::string ok_reply(const json::value& id, const json::value& result) {
  return serialize_line(json::object{{"id", id}, {"ok", true}, {"result", result}});
}

std::string error_reply(const json::value& id, const ProtocolError& error) {
  return serialize_line(json::object{
      {"id", id},
      {"ok", false},
      {"error", json::object{{"code", to_string(error.code)}, {"message", error.message}}}});
}

std::string event_reply(const json::value& id, const json::value& event) {
  return serialize_line(json::object{{"id", id}, {"ok", true}, {"event", event}});
}

std::variant<Reply, std::string> parse_reply(std::string_view line) {
  std::error_code ec;
  json::value parsed = json::parse(line, ec);
  if (ec) return "reply is not valid JSON: " + ec.message();
  if (!parsed.is_object()) return std::string("reply is not a JSON object");
  const json::object& object = parsed.as_object();
  Reply reply;
  if (const auto* id = object.if_contains("id")) reply.id = *id;
  const auto* ok = object.if_contains("ok");
  if (!ok || !ok->is_bool()) return std::string("reply has no boolean field ok");
  reply.ok = ok->as_bool();
  if (const auto* result = object.if_contains("result")) reply.result = *result;
  if (const auto* event = object.if_contains("event")) reply.event = *event;
  if (!reply.ok) {
    const auto* error = object.if_contains("error");
    if (!error || !error->is_object()) return std::string("failed reply has no error object");
    const auto* code = error->as_object().if_contains("code");
    const auto* message = error->as_object().if_contains("message");
    if (!code || !code->is_string() || !message || !message->is_string())
      return std::string("error object needs string fields code and message");
    auto known = parse_error_code(code->as_string());
    if (!known) return "unknown error code " + quote_value(*code);
    reply.error = ProtocolError{*known, std::string(message->as_string())};
  }
  return reply;
}

void LineFramer::feed(std::string_view bytes) {
  compact();
  if (discarding_) {
    // Keep only what follows the end of the over-long line.
    const auto newline = bytes.find('\n');
    if (newline == std::string_view::npos) return;
    discarding_ = false;
    bytes.remove_prefix(newline + 1);
  }
  buffer_.append(bytes);
}

std::optional<LineFramer::Frame> LineFramer::next() {
  while (consumed_ < buffer_.size()) {
    const auto newline = buffer_.find('\n', std::max(scanned_, consumed_));
    if (newline == std::string::npos) {
      scanned_ = buffer_.size();
      if (buffered() > max_line_bytes_) {
        discarding_ = true;
        consumed_ = scanned_ = buffer_.size();
        return Frame{TooLarge{}};
      }
      return std::nullopt;
    }
    std::string line = buffer_.substr(consumed_, newline - consumed_);
    consumed_ = scanned_ = newline + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line.size() > max_line_bytes_) return Frame{TooLarge{}};
    return Frame{std::move(line)};
  }
  return std::nullopt;
}

void LineFramer::compact() {
  if (consumed_ == 0) return;
  buffer_.erase(0, consumed_);
  scanned_ = scanned_ > consumed_ ? scanned_ - consumed_ : 0;
  consumed_ = 0;
}

}  // namespace sluice::protocol
