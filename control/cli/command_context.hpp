#pragma once
// What sluicectl's own commands (sluicectl.cpp, block_commands.cpp,
// filter_commands.cpp) share: reading a reply's fields, tables, the command
// context that sends requests and reports failures, and option checks more
// than one command file uses.
#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "client.hpp"
#include "command_support.hpp"
#include "decimal.hpp"
#include "sluicectl.hpp"

namespace sluice::cli {

namespace json = boost::json;

// Column gap of every table.
inline constexpr std::string_view kGap = "  ";

// ---- errors while rendering a reply: the daemon sent a shape we do not know ----

struct BadReply {
  std::string message;
};

const json::object& as_object(const json::value& value, std::string_view what);
const json::array& array_field(const json::object& object, std::string_view key);
// Any scalar as text; "-" when absent. Tables show what the daemon sent
// without choking on a field a newer daemon renamed.
std::string text(const json::value* value);
std::string field(const json::object& object, std::string_view key);
std::optional<std::uint64_t> uint_field(const json::object& object, std::string_view key);

// ---- tables ----

class Table {
 public:
  enum class Align { Left, Right };
  struct Column {
    std::string header;
    Align align = Align::Left;
  };
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
  void add(std::vector<std::string> row) {
    row.resize(columns_.size());
    rows_.push_back(std::move(row));
  }
  void print(std::ostream& out) const {
    std::vector<std::size_t> widths;
    for (const auto& column : columns_) widths.push_back(column.header.size());
    for (const auto& row : rows_)
      for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    auto line = [&](const std::vector<std::string>& cells) {
      std::string text;
      for (std::size_t i = 0; i < cells.size(); ++i) {
        const bool last = i + 1 == cells.size();
        const std::string pad(widths[i] - cells[i].size(), ' ');
        if (i) text += kGap;
        if (columns_[i].align == Align::Right) text += pad + cells[i];
        else text += last ? cells[i] : cells[i] + pad;
      }
      out << text << '\n';
    };
    std::vector<std::string> headers;
    for (const auto& column : columns_) headers.push_back(column.header);
    line(headers);
    for (const auto& row : rows_) line(row);
  }

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// ---- the command context ----

struct Options {
  std::string socket = kDefaultSocket;
  bool json = false;
  double timeout_seconds = std::chrono::duration<double>(kDefaultReplyTimeout).count();
};

class Context {
 public:
  Context(Env& env, const Options& options) : env_(env), options_(options) {}

  Env& env() { return env_; }
  const Options& options() const { return options_; }

  // Sends one request and hands an ok result to render (or prints it raw
  // with --json). Returns the exit code.
  // idempotent: a read that may be sent again on a new connection when the
  // kept one was closed meanwhile (the daemon closes idle connections:
  // `stats --watch` with a long interval).
  int call(std::string_view op, const json::object& args, const std::function<void(const json::value&)>& render,
           bool idempotent = false) {
    const bool reused = session_ != nullptr;
    Session* session = connect();
    if (!session) return kExitUnavailable;
    auto result = session->call(op, args, timeout());
    if (!result && result.error().transport && reused && idempotent) {
      session_.reset();
      session = connect();
      if (!session) return kExitUnavailable;
      result = session->call(op, args, timeout());
    }
    if (!result) return report(op, result.error());
    return show(op, *result, render);
  }

  int stream(std::string_view op, const json::object& args, const std::function<bool(const json::value&)>& on_event,
             const std::function<void(const json::value&)>& on_result) {
    Session* session = connect();
    if (!session) return kExitUnavailable;
    try {
      auto result = session->stream(op, args, on_event);
      if (!result) {
        if (result.error().transport && result.error().transport->interrupted && env_.interrupted()) return kExitOk;
        return report(op, result.error());
      }
      return show(op, *result, on_result);
    } catch (const BadReply& bad) {
      env_.err << "sluicectl: unexpected reply to " << op << ": " << bad.message << '\n';
      return kExitUnavailable;
    }
  }

  int report(std::string_view op, const CallFailure& failure) {
    if (failure.daemon) {
      // sluiced's messages mostly start with the op already ("block.load: content: ..."): say it once.
      const std::string& message = failure.daemon->message;
      const bool names_op = message.starts_with(std::string(op) + ":");
      env_.err << "sluicectl: " << (names_op ? "" : std::string(op) + ": ") << message << " [" << failure.daemon->code
               << "]\n";
      return kExitFailed;
    }
    env_.err << "sluicectl: " << failure.transport->message << '\n';
    return kExitUnavailable;
  }

  // One request, its result or the failure, nothing printed (multi-request commands: block load).
  CallResult<json::value> raw_call(std::string_view op, const json::object& args) {
    Session* session = connect();
    if (!session) return CallFailure{std::nullopt, TransportError("cannot reach sluiced")};
    return session->call(op, args, timeout());
  }

  // A streaming request, nothing printed (top reads the recent drop events).
  CallResult<json::value> raw_stream(std::string_view op, const json::object& args,
                                     const std::function<bool(const json::value&)>& on_event) {
    Session* session = connect();
    if (!session) return CallFailure{std::nullopt, TransportError("cannot reach sluiced")};
    return session->stream(op, args, on_event);
  }

  int usage(const std::string& message) {
    env_.err << "sluicectl: " << message << '\n';
    return kExitUsage;
  }

 private:
  Session* connect() {
    if (session_) return session_.get();
    auto transport = env_.connect(options_.socket);
    if (!transport) {
      env_.err << "sluicectl: " << transport.error().message << '\n';
      return nullptr;
    }
    session_ = std::make_unique<Session>(std::move(*transport));
    return session_.get();
  }

  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds(static_cast<std::int64_t>(options_.timeout_seconds * 1000));
  }

  int show(std::string_view op, const json::value& result, const std::function<void(const json::value&)>& render) {
    if (options_.json) {
      env_.out << json::serialize(result) << '\n';
      return kExitOk;
    }
    try {
      render(result);
    } catch (const BadReply& bad) {
      env_.err << "sluicectl: unexpected reply to " << op << ": " << bad.message << '\n';
      return kExitUnavailable;
    }
    return kExitOk;
  }

  Env& env_;
  const Options& options_;
  std::unique_ptr<Session> session_;
};

// What a command runs once parsing succeeded: it returns the exit code.
using Action = std::function<int(Context&)>;

// ---- local argument checks (the daemon checks again; these catch typos
// before anything is sent) ----

CLI::Validator interface_validator();
CLI::Validator pass_or_drop_validator();

// add_decimal (integer options, decimal only) is in command_support.hpp.

}  // namespace sluice::cli
