#pragma once
// The filter's prefix-list ops on the control socket: block.add, block.del,
// block.list, block.load, over control/filter's FilterTable.
//
// They write single entries into the live generation (cheap for a million
// prefixes) instead of swapping whole sets, then record the new lists in the
// desired state (state_ops), which persists them; if that fails, the table
// is put back. rule.* and limit.* live in state_ops.
#include "filter_table.hpp"
#include "server.hpp"
#include "state_ops.hpp"

namespace sluice::daemon {

void register_filter_ops(OpRegistry& ops, filter::FilterTable& table, StateOps& state);

}  // namespace sluice::daemon
