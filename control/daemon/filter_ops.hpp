#pragma once
// The filter's prefix-list ops on the control socket: block.add, block.del,
// block.list, block.load, over control/filter's FilterTable.
//
// Only the prefix lists are wired: FilterTable::open recovers them (and the
// default policy) from the pinned maps after a restart, so these ops stay
// correct across daemon restarts. Rules and rate classes are compiled into
// bitmaps that cannot be read back; rule.* and limit.* need the rule set
// persisted by the daemon (state dir or control/config) before they can be
// offered without a restart silently dropping rules.
#include "filter_table.hpp"
#include "server.hpp"

namespace sluice::daemon {

void register_filter_ops(OpRegistry& ops, filter::FilterTable& table, const std::string& state_dir);

}  // namespace sluice::daemon
