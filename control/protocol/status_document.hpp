#pragma once
// One picture of the whole box, gathered from the read-only ops of the
// control protocol: the daemon and its interfaces, the stages that run, the
// verdict counters, conntrack fill, the VIPs with their backends, the
// routes and next hops, the filter's rules with their hits.
//
// Two readers build it the same way: sluiced's status page (/status.json,
// the ops called in-process through its registry) and `sluicectl top` (the
// ops called over the control socket). So the page and the terminal view
// can never disagree about what a field means, and neither reads anything
// an operator's `sluicectl` could not.
#include <boost/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace sluice::protocol {

// One op's ok result, or why there is none (the op's error message). An op
// that fails leaves its part of the document out and adds its error to
// "errors"; the rest is still shown.
using StatusCall = std::function<std::variant<boost::json::value, std::string>(std::string_view op,
                                                                               const boost::json::object& args)>;

// Routes in the document: the busiest this many (by packets), with the total.
inline constexpr std::uint64_t status_routes_shown = 100;

// The ops compose_status calls, in order (all read-only: the socket group may call them).
inline constexpr std::string_view status_document_ops[] = {
    "status", "config.get", "stats", "conn.list", "rule.list", "vip.list", "backend.list",
    "lb.show", "forward.show", "route.list", "nexthop.list"};

// {"daemon":{version,pid,uptime_seconds,degraded,restore_error?,rollback_error?},
//  "interfaces":[{name,ifindex,mode,dispatcher,prog_id,attached}],
//  "stages":{filter,lb,forward}   (what runs: the config array's stage bits),
//  "drop_sample_every":N          (1 in N filter drops to the events stream; 0 off),
//  "filter":{generation,rules,prefixes,rate_classes,default_policy},
//  "counters":[{verdict,reason,packets,bytes}],
//  "conntrack":{entries,capacity},
//  "rules":[{id,action,description,packets,bytes,owner?}],
//  "vips":[{vip,table_size,packets,bytes,new_conns,backends:[{address,weight,state,health,share,packets,bytes,new_conns}]}],
//  "lb_connections":{v4,v6,v4_capacity,v6_capacity}?,
//  "forward":{stage_enabled,routes,next_hops}?,
//  "routes":[{prefix,kind,next_hop?,group?,origin,effective,packets,bytes}]
//            (the status_routes_shown busiest, most packets first),
//  "routes_total":N, "routes_truncated":bool (more routes than listed),
//  "next_hops":[{next_hop,dev,resolved,packets,bytes}],
//  "errors":["op: message"]}
boost::json::object compose_status(const StatusCall& call);

}  // namespace sluice::protocol
