#include "block_load.hpp"

#include "spdlog/spdlog.h"

namespace sluice::daemon {
namespace {

namespace json = boost::json;
using protocol::ErrorCode;
using protocol::ProtocolError;
namespace args = protocol::args;

constexpr std::size_t max_action_bytes = 16;

// The name a client gives its file, as errors quote it: printable, one line.
std::optional<std::string> source_problem(std::string_view source) {
  if (source.empty()) return "is empty";
  for (unsigned char c : source)
    if (c < 0x20 || c == 0x7f) return "contains a control character";
  return std::nullopt;
}

}  // namespace

void BlockLoads::register_ops(OpRegistry& ops) {
  auto bind = [this](OpResult (BlockLoads::*method)(const json::object&)) {
    return OpRegistry::Handler{[this, method](const json::object& object) { return (this->*method)(object); }, nullptr};
  };
  ops.add("block.load.begin", bind(&BlockLoads::begin));
  ops.add("block.load.chunk", bind(&BlockLoads::chunk));
  ops.add("block.load.commit", bind(&BlockLoads::commit));
  ops.add("block.load.abort", bind(&BlockLoads::abort));
  // The whole file inside one request (at most one request line): the same
  // parser and all-or-nothing commit; errors name "content: line N".
  ops.add("block.load", {[this](const json::object& object) -> OpResult {
                           constexpr std::string_view op = "block.load";
                           if (auto keys = args::only_keys(op, object, {"content", "action", "rate_class"}); !keys)
                             return keys.error();
                           if (object.contains("rate_class"))
                             return args::bad(op, "rate_class", "rate-limit needs a class per line in the content");
                           auto content = args::required_string(op, object, "content", protocol::max_request_bytes);
                           if (!content) return content.error();
                           auto action = args::optional_string(op, object, "action", max_action_bytes);
                           if (!action) return action.error();
                           if (load_ && std::chrono::steady_clock::now() - load_->last_activity < kLoadIdleTimeout)
                             return ProtocolError{ErrorCode::Failed, std::string(op) + ": a block load from " +
                                                                         load_->source + " is under way; try again"};
                           json::object begin_args{{"source", "content"}};
                           if (*action) begin_args["action"] = **action;
                           if (auto begun = begin(begin_args); !begun) {
                             // The begin op's own field names are this op's too.
                             return ProtocolError{begun.error().code,
                                                  std::string(op) + begun.error().message.substr(std::string_view("block.load.begin").size())};
                           }
                           Load& load = *load_;
                           load.source.clear();  // errors say "content: line N" (the request field), not a file
                           std::string_view text = *content;
                           while (!text.empty()) {
                             const std::size_t end = text.find('\n');
                             const std::string_view line = text.substr(0, end);
                             if (auto problem = take_line(load, line)) return refuse(op, *problem);
                             text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
                           }
                           return commit(json::object{{"load", load.id}});
                         },
                         nullptr});
}

void BlockLoads::add_status(json::object& status) const {
  if (!load_) return;
  status["block_load"] = json::object{{"source", load_->source.empty() ? std::string("content") : load_->source},
                                      {"lines", load_->lines},
                                      {"bytes", load_->bytes},
                                      {"prefixes", load_->entries.size()}};
}

OpResult BlockLoads::refuse(std::string_view op, const std::string& reason) {
  load_.reset();  // nothing was written: the load is simply gone
  return ProtocolError{ErrorCode::BadArgs, std::string(op) + ": " + reason};
}

protocol::ArgsResult<BlockLoads::Load*> BlockLoads::named(std::string_view op, const json::object& object) {
  auto id = args::optional_uint(op, object, "load", 1, std::numeric_limits<std::uint64_t>::max());
  if (!id) return id.error();
  if (!*id) return args::bad(op, "load", "is required (the id block.load.begin returned)");
  if (!load_ || load_->id != **id)
    return args::bad(op, "load", std::to_string(**id) + " is not an open block load (ended by an error, a commit, an "
                                                        "abort or " + std::to_string(kLoadIdleTimeout.count()) + " s idle)");
  load_->last_activity = std::chrono::steady_clock::now();
  return &*load_;
}

OpResult BlockLoads::begin(const json::object& object) {
  constexpr std::string_view op = "block.load.begin";
  if (auto keys = args::only_keys(op, object, {"source", "action"}); !keys) return keys.error();
  auto source = args::required_string(op, object, "source", kMaxLoadSourceBytes);
  if (!source) return source.error();
  if (auto problem = source_problem(*source)) return args::bad(op, "source", *problem);
  auto action_text = args::optional_string(op, object, "action", max_action_bytes);
  if (!action_text) return action_text.error();
  filter::Action action = filter::Action::Drop;
  if (*action_text) {
    auto parsed = filter::parse_action(**action_text);
    if (!parsed || (*parsed != filter::Action::Drop && *parsed != filter::Action::Pass))
      return args::bad(op, "action", "must be \"drop\" or \"pass\" (rate-limit lines name their class), got " +
                                         protocol::quote_value(json::string(**action_text)));
    action = *parsed;
  }
  const auto now = std::chrono::steady_clock::now();
  if (load_) {
    if (now - load_->last_activity < kLoadIdleTimeout)
      return ProtocolError{ErrorCode::Failed, std::string(op) + ": a block load from " + load_->source +
                                                  " is under way (" + std::to_string(load_->lines) + " lines so far); try again"};
    spdlog::warn("block load {} from {} dropped: idle for {} s", load_->id, load_->source, kLoadIdleTimeout.count());
  }
  load_.emplace();
  load_->id = next_id_++;
  load_->source = *source;
  load_->default_action = action;
  load_->last_activity = now;
  return json::value(json::object{{"load", load_->id}});
}

std::optional<std::string> BlockLoads::take_line(Load& load, std::string_view line) {
  ++load.lines;
  const std::string where = load.source.empty() ? "content: line " + std::to_string(load.lines) + ": "
                                                : load.source + ":" + std::to_string(load.lines) + ": ";
  auto parsed = filter::parse_prefix_line(line, load.default_action, table_.rule_set().rate_classes);
  if (!parsed) return where + parsed.error().message;
  if (!*parsed) return std::nullopt;
  const filter::PrefixEntry& entry = **parsed;
  const filter::PrefixKey key = filter::prefix_key(entry.prefix);
  if (auto [seen, fresh] = load.line_of.try_emplace(key, load.lines); !fresh)
    return where + "prefix " + maps::to_string(entry.prefix) + " is also on line " + std::to_string(seen->second);
  if (!table_.find_prefix(entry.prefix)) {
    const bool v4 = entry.prefix.index() == 0;
    std::size_t& fresh = v4 ? load.new_v4 : load.new_v6;
    const std::size_t capacity = v4 ? SLUICE_FILTER_MAX_V4_PREFIXES : SLUICE_FILTER_MAX_V6_PREFIXES;
    const std::size_t listed = table_.prefix_count(v4 ? 4 : 6);
    if (listed + fresh + 1 > capacity)
      return where + "prefix " + maps::to_string(entry.prefix) + ": the " + (v4 ? "IPv4" : "IPv6") + " list would hold " +
             std::to_string(listed + fresh + 1) + " prefixes, over its capacity of " + std::to_string(capacity) + " (" +
             std::to_string(listed) + " listed, " + std::to_string(fresh) + " new before this line)";
    ++fresh;
  }
  load.entries.push_back(entry);
  return std::nullopt;
}

OpResult BlockLoads::chunk(const json::object& object) {
  constexpr std::string_view op = "block.load.chunk";
  if (auto keys = args::only_keys(op, object, {"load", "data"}); !keys) return keys.error();
  auto load = named(op, object);
  if (!load) return load.error();
  auto data = args::required_string(op, object, "data", protocol::max_request_bytes);
  if (!data) return data.error();
  Load& l = **load;
  if (l.bytes + data->size() > kMaxLoadBytes)
    return refuse(op, l.source + ": over " + std::to_string(kMaxLoadBytes) + " bytes, the most a block load takes");
  l.bytes += data->size();
  std::string_view text = *data;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    if (end == std::string_view::npos) {
      // The rest of the line comes with the next chunk; a line has a bound.
      if (l.partial.size() + text.size() > filter::kMaxPrefixFileLineBytes) {
        ++l.lines;
        return refuse(op, l.source + ":" + std::to_string(l.lines) + ": a line of more than " +
                              std::to_string(filter::kMaxPrefixFileLineBytes) + " bytes, over the limit");
      }
      l.partial.append(text);
      break;
    }
    std::optional<std::string> problem;
    if (l.partial.empty()) {
      problem = take_line(l, text.substr(0, end));
    } else {
      l.partial.append(text.substr(0, std::min(end, filter::kMaxPrefixFileLineBytes + 1)));
      problem = take_line(l, l.partial);
      l.partial.clear();
    }
    if (problem) return refuse(op, *problem);
    text.remove_prefix(end + 1);
  }
  return json::value(json::object{{"lines", l.lines}, {"prefixes", l.entries.size()}});
}

OpResult BlockLoads::commit(const json::object& object) {
  constexpr std::string_view op = "block.load.commit";
  if (auto keys = args::only_keys(op, object, {"load"}); !keys) return keys.error();
  auto named_load = named(op, object);
  if (!named_load) return named_load.error();
  Load& load = **named_load;
  const std::string_view reply_op = load.source.empty() ? std::string_view("block.load") : op;
  if (!load.partial.empty()) {
    const std::string line = std::to_string(load.lines + 1);
    return refuse(reply_op, load.source + ":" + line + ": the last line has no newline (a file cut short?): " +
                                "refused, as its prefix may be the start of a longer one; end the file with a newline");
  }
  const std::size_t lines = load.lines;
  const std::string source = load.source.empty() ? std::string("content") : load.source;
  std::vector<filter::PrefixEntry> entries = std::move(load.entries);
  load_.reset();  // the staging memory goes with it, whatever happens next
  const auto started = std::chrono::steady_clock::now();
  // A copy of what is live: the undo if the state cannot be persisted.
  const filter::RuleSet before = table_.rule_set();
  auto loaded = table_.load_prefixes(entries);
  if (!loaded) {
    const bool full = loaded.error().errnum == E2BIG;  // past capacity: bad input; ENOSPC (tbl8 groups): failed
    return ProtocolError{full ? ErrorCode::BadArgs : ErrorCode::Failed,
                         std::string(reply_op) + ": " + source + ": " + loaded.error().message + "; nothing changed"};
  }
  if (auto persisted = state_.commit_prefix_changes(entries, {}); !persisted) {
    std::string message = std::string(reply_op) + ": persist: " + persisted.error().message;
    if (auto undone = table_.replace(before); !undone) {
      message += "; rollback incomplete (" + undone.error().message +
                 "): the prefix lists may not be what block.list reports; restart sluiced";
      state_.report_incomplete_rollback(message);
    } else {
      message += "; rolled back";
    }
    return ProtocolError{ErrorCode::Failed, message};
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  spdlog::info("block load from {}: {} prefixes ({} new) from {} lines made live in {} ms", source, entries.size(), *loaded,
               lines, took.count());
  return json::value(json::object{{"loaded", entries.size()}, {"new", *loaded}, {"lines", lines}});
}

OpResult BlockLoads::abort(const json::object& object) {
  constexpr std::string_view op = "block.load.abort";
  if (auto keys = args::only_keys(op, object, {"load"}); !keys) return keys.error();
  auto load = named(op, object);
  if (!load) return load.error();
  load_.reset();
  return json::value(json::object{{"aborted", true}});
}

}  // namespace sluice::daemon
