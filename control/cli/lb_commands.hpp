#pragma once
// sluicectl's load-balancer commands: vip, backend and lb (lb_commands.cpp),
// registered by sluicectl's run(). They build the requests of the vip.*,
// backend.* and lb.* ops and render their replies as tables.
#include <boost/json.hpp>

#include <functional>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace CLI {
class App;
}

namespace sluice::cli {

// What an lb command needs of sluicectl: one request whose ok result goes
// to `render` (printed raw instead with --json), a usage error (exit 2,
// nothing sent), and standard output. Each returns the exit code.
struct LbContext {
  std::function<int(std::string_view op, const boost::json::object& args,
                    const std::function<void(const boost::json::value&)>& render)>
      call;
  std::function<int(const std::string& message)> usage;
  std::ostream& out;
};

// A reply of a shape the renderers do not know: sluicectl reports an unexpected reply.
struct LbBadReply : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using LbAction = std::function<int(LbContext&)>;
// Adds `vip`, `backend` and `lb` to app; the command that parses hands its action to set_action.
void add_lb_commands(CLI::App& app, const std::function<void(LbAction)>& set_action);

// An event of the balancer ({"type":"lb_health",...}) as one line for
// `sluicectl events`; nullopt for any other event.
std::optional<std::string> lb_event_line(const boost::json::value& event);

}  // namespace sluice::cli
