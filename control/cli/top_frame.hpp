#pragma once
// One frame of `sluicectl top`, drawn from the status document
// (protocol/status_document.hpp, the same one sluiced's status page reads):
// the daemon, its interfaces and stages, conntrack and lb connection fill,
// verdicts per second by reason, VIPs and backends with health and rates,
// and the sources of the sampled drops. Pure: the command around it talks
// to the socket and the terminal; this only lays text out.
//
// Every line fits `width` columns and the frame fits `height` lines
// (80x24 at the least): sections get rows by a fixed share of the height
// and say how many rows they left out. Text from the daemon (interface
// names, addresses) is printed with control characters replaced, so a
// hostile name cannot move the cursor or retitle the terminal.
#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sluice::cli {

// The least terminal top draws for; a smaller one is drawn as if it were this.
inline constexpr std::size_t top_min_width = 80;
inline constexpr std::size_t top_min_height = 24;

struct TopInput {
  const boost::json::object* now = nullptr;       // this refresh's status document
  const boost::json::object* previous = nullptr;  // the last one, for rates; nullptr on the first frame
  double seconds = 0;                             // between the two
  std::string clock;                              // wall time of this refresh, "07:12:01"
  // Sources of the recent sampled drops, most first, and how many drops were sampled.
  std::vector<std::pair<std::string, std::uint64_t>> drop_sources;
  std::uint64_t sampled_drops = 0;
  // Why there are no sources to show ("events: forbidden ..."); empty when they were read.
  std::string drop_sources_unavailable;
};

std::vector<std::string> render_top_frame(const TopInput& input, std::size_t width, std::size_t height);

// Text safe for a terminal: every byte outside printable ASCII becomes '?'.
std::string terminal_safe(std::string_view text);

}  // namespace sluice::cli
