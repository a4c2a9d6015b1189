#pragma once
// sluicectl's forward-stage commands: route, nexthop, cpumap and forward
// (route_commands.cpp), registered by sluicectl's run() next to the lb
// commands, with the same context (lb_commands.hpp). They build the
// requests of the route.*, nexthop.*, cpumap.set and forward.* ops and
// render their replies as tables.
#include <functional>

#include "lb_commands.hpp"

namespace CLI {
class App;
}

namespace sluice::cli {

// Adds `route`, `nexthop`, `cpumap` and `forward` to app; the command that parses hands its action to set_action.
void add_route_commands(CLI::App& app, const std::function<void(LbAction)>& set_action);

}  // namespace sluice::cli
