#pragma once
// The forward stage on the control socket: route.*, nexthop.*, forward.set,
// cpumap.set and forward.show, over control/route's RouteTable.
//
// Every change op edits the `forward` section of the desired state and goes
// through StateOps::change() as the balancer's ops do (lb_ops.hpp):
// validated with the whole next state, made live (RouteOps::make_live: the
// difference to what the table holds, each step undone in reverse on a
// failure), persisted in state.yaml, or rolled back.
//
// It also owns the forward stage's bit: SLUICE_STAGE_FORWARD is set in the
// config array only while a route exists. With lb's egress `forward` the
// balancer's encapsulated packets are routed by the forward stage, so that
// egress needs a route (refused otherwise: the packets would reach the
// kernel's stack, which may not forward).
//
// Neighbours and route sync: a NeighbourTable (with a NetlinkWatch on the
// daemon's io_context) is always open, so next hops without a MAC follow
// the kernel's neighbour table. While `forward.sync` is set (op route.sync)
// a KernelMirror mirrors that kernel table as Kernel-origin routes through
// "kernel:*" next hops and groups; make_live opens, moves or stops it (and
// its undo reverses that). The diff of make_live is over the static section
// only: mirrored entries are the mirror's. The forward bit is also on while
// sync is (the kernel's routes are routes).
#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "forward_model.hpp"
#include "kernel_mirror.hpp"
#include "neighbour_table.hpp"
#include "netlink_watch.hpp"
#include "route_table.hpp"
#include "server.hpp"
#include "state_ops.hpp"

namespace sluice::daemon {

class RouteOps final : public StatePart {
 public:
  // Opens the NeighbourTable in the calling thread's network namespace (a
  // failure is logged: MAC-less next hops then stay unresolved, to the stack).
  RouteOps(route::RouteTable& table, StateOps& state, boost::asio::io_context& io);
  ~RouteOps() override;

  void register_ops(OpRegistry& ops);
  const route::RouteTable& table() const noexcept { return table_; }
  // What the table holds (the section last made live).
  const config::ForwardConfig& live() const noexcept { return live_; }
  // Empty: no NeighbourTable (it failed to open) / route sync off.
  std::optional<route::NeighbourTableStats> neighbour_stats() const;
  std::optional<route::KernelMirrorStats> mirror_stats() const;

  // StatePart
  protocol::ArgsResult<void> check(std::string_view op, const config::DesiredState& next,
                                   filter::RuleSet& set) const override;
  std::uint32_t effective_stages(const config::DesiredState& next, std::uint32_t stages) const override;
  bool changes(const config::DesiredState& next) const override;
  Result<void> make_live(const config::DesiredState& state) override;
  void add_baseline(config::DesiredState& baseline) const override;
  std::vector<std::pair<config::RuleSpec, std::string>> owned_rules(const config::DesiredState& state) const override;

 private:
  OpResult route_add(const boost::json::object& args, bool replace);
  OpResult route_del(const boost::json::object& args);
  OpResult route_list(const boost::json::object& args) const;
  OpResult nexthop_list(const boost::json::object& args) const;
  OpResult group_add(const boost::json::object& args, bool replace);
  OpResult group_del(const boost::json::object& args);
  OpResult group_list(const boost::json::object& args) const;
  OpResult forward_set(const boost::json::object& args);
  OpResult cpumap_set(const boost::json::object& args);
  OpResult forward_show(const boost::json::object& args) const;
  OpResult route_sync(const boost::json::object& args);
  // Route sync of `sync`'s table (opened in this namespace, watched on io_), or off.
  Result<void> set_sync(const std::optional<config::ForwardSync>& sync);
  OpResult change_forward(std::string_view op,
                          const std::function<protocol::ArgsResult<void>(config::ForwardConfig&)>& edit,
                          boost::json::object result);

  route::RouteTable& table_;
  StateOps& state_;
  boost::asio::io_context& io_;
  config::ForwardConfig live_;
  // Each watch is declared after what it watches: destroyed first, it releases the fd before it closes.
  std::unique_ptr<route::NeighbourTable> neighbours_;
  std::unique_ptr<route::NetlinkWatch> neighbour_watch_;
  std::unique_ptr<route::KernelMirror> mirror_;
  std::unique_ptr<route::NetlinkWatch> mirror_watch_;
};

// Several sections with owners outside StateOps as the one StatePart it
// holds (lb, then forward): checked and made live in order; a part that
// fails to go live undoes the parts before it (each back to what its maps
// held), so the whole is still all or nothing.
class StateParts final : public StatePart {
 public:
  // A part and the name its kill step has (sluiced --fault-kill-before lb, forward).
  struct Named {
    std::string_view name;
    StatePart* part;
  };
  explicit StateParts(std::vector<Named> parts) : parts_(std::move(parts)) {}

  // Fault injection, for tests only (no op reaches it): make_live calls it
  // with a part's name before it writes that part's maps, whether or not the
  // part has work, so a kill can land between the parts of one change. A
  // rollback that brings the parts back goes through make_live too.
  using PartHook = std::function<void(std::string_view name)>;
  void set_part_hook(PartHook hook) { part_hook_ = std::move(hook); }

  protocol::ArgsResult<void> check(std::string_view op, const config::DesiredState& next,
                                   filter::RuleSet& set) const override;
  std::uint32_t effective_stages(const config::DesiredState& next, std::uint32_t stages) const override;
  bool changes(const config::DesiredState& next) const override;
  Result<void> make_live(const config::DesiredState& state) override;
  void add_baseline(config::DesiredState& baseline) const override;
  std::vector<std::pair<config::RuleSpec, std::string>> owned_rules(const config::DesiredState& state) const override;
  void settle_start() override;

 private:
  std::vector<Named> parts_;
  PartHook part_hook_;
};

}  // namespace sluice::daemon
