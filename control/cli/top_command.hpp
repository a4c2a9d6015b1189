#pragma once
// `sluicectl top`: a live view of the box refreshed every interval, drawn
// by top_frame from the status document (the read-only ops over the
// socket), plus the sources of the recent sampled drops (the events op:
// admin only, so a socket-group user sees why they are missing). On a
// terminal it takes the alternate screen and exits on q or Ctrl-C, leaving
// the terminal as it found it; elsewhere (a pipe, a test) it prints frames.
#include <boost/json.hpp>

#include <functional>
#include <string_view>

#include "client.hpp"
#include "sluicectl.hpp"

namespace CLI {
class App;
}

namespace sluice::cli {

struct TopContext {
  // One request, its ok result or the failure; nothing printed.
  std::function<CallResult<boost::json::value>(std::string_view op, const boost::json::object& args)> call;
  // A streaming request (events without follow): each event, then the result.
  std::function<CallResult<boost::json::value>(std::string_view op, const boost::json::object& args,
                                               const std::function<bool(const boost::json::value&)>& on_event)>
      stream;
  Env& env;
  bool json = false;  // the global --json
};

using TopAction = std::function<int(TopContext&)>;
// Adds `top`; when it parses it hands its action to set_action.
void add_top_command(CLI::App& app, const std::function<void(TopAction)>& set_action);

}  // namespace sluice::cli
