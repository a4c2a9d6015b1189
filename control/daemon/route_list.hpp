#pragma once
// The forward stage's JSON replies shared by RouteOps (route_ops.cpp) and
// route.list (route_list.cpp): a next hop, a route.
#include <boost/json.hpp>

#include <cstdint>
#include <string_view>

#include "forward_config.hpp"
#include "route_table.hpp"

namespace sluice::daemon {

boost::json::object hop_json(const config::ForwardHop& hop);
boost::json::object route_json(const config::ForwardRoute& route);
std::string_view origin_name(route::Origin origin);

}  // namespace sluice::daemon
