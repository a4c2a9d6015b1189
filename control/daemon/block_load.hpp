#pragma once
// A block load streamed over the control socket (sluicectl block load FILE):
//
//   block.load.begin  {source, action?}  -> {load}      opens the one load
//   block.load.chunk  {load, data}       -> {lines, prefixes}
//   block.load.commit {load}             -> {loaded, new, lines}
//   block.load.abort  {load}
//
// The daemon never opens a path a client names (it runs as root): the
// client sends the file's bytes, in chunks of at most one request each.
// Each chunk is parsed as it arrives (lines may span chunks; a line is at
// most filter::kMaxPrefixFileLineBytes) and checked against the index of
// the listed prefixes: a bad line, a prefix listed twice in the file, a
// line past the lists' capacity or a file over kMaxLoadBytes ends the load
// with "<source>:<line>: <reason>" and nothing changed. The last line must
// end with a newline: one that does not (a file cut short, or still being
// written) is refused at commit, as its prefix may be a cut-off longer one.
// Commit writes the whole file into the idle generation and flips
// (FilterTable::load_prefixes), then persists it as a new prefix snapshot.
//
// Memory: the parsed entries (bounded by the lists' capacity) and one
// partial line. One load at a time; one left idle for kLoadIdleTimeout is
// dropped when another begins. While a load is open, status shows its
// progress ("block_load").
#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "filter_table.hpp"
#include "server.hpp"
#include "state_ops.hpp"

namespace sluice::daemon {

inline constexpr std::size_t kMaxLoadBytes = std::size_t{1} << 30;  // comments included
inline constexpr std::chrono::seconds kLoadIdleTimeout{60};
inline constexpr std::size_t kMaxLoadSourceBytes = 256;

class BlockLoads {
 public:
  BlockLoads(filter::FilterTable& table, StateOps& state) : table_(table), state_(state) {}
  BlockLoads(const BlockLoads&) = delete;
  BlockLoads& operator=(const BlockLoads&) = delete;

  void register_ops(OpRegistry& ops);
  // "block_load": {source, lines, bytes, prefixes} while a load is open.
  void add_status(boost::json::object& status) const;

 private:
  struct Load {
    std::uint64_t id = 0;
    std::string source;
    filter::Action default_action = filter::Action::Drop;
    std::size_t lines = 0;  // complete lines seen
    std::size_t bytes = 0;
    std::string partial;  // the start of a line whose newline has not come yet
    std::vector<filter::PrefixEntry> entries;
    std::unordered_map<filter::PrefixKey, std::size_t, filter::PrefixKeyHash> line_of;  // prefix -> its line
    std::size_t new_v4 = 0, new_v6 = 0;  // entries not listed yet
    std::chrono::steady_clock::time_point last_activity;
  };

  OpResult begin(const boost::json::object& args);
  OpResult chunk(const boost::json::object& args);
  OpResult commit(const boost::json::object& args);
  OpResult abort(const boost::json::object& args);
  // The open load the request names, or bad_args.
  protocol::ArgsResult<Load*> named(std::string_view op, const boost::json::object& args);
  // Parses one complete line into the load; error: the load is over.
  std::optional<std::string> take_line(Load& load, std::string_view line);
  OpResult refuse(std::string_view op, const std::string& reason);  // ends the load

  filter::FilterTable& table_;
  StateOps& state_;
  std::optional<Load> load_;
  std::uint64_t next_id_ = 1;
};

}  // namespace sluice::daemon
