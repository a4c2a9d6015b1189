#pragma once
// The one table of names for verdicts and reasons of maps/sluice_maps.h, as
// user space shows them (control socket, metrics labels, sluicectl): the
// lower-case suffix of the enum constant, SLUICE_REASON_TRUNC_ETH -> "trunc_eth".
// tests/control/daemon_names_test.cpp reads sluice_maps.h and fails when an
// enum value has no name here.
#include <optional>
#include <string>
#include <string_view>

#include "sluice_maps.h"

namespace sluice::dataplane {

std::string_view verdict_name(sluice_verdict verdict);  // "unknown" outside the enum
std::optional<sluice_verdict> parse_verdict_name(std::string_view name);

// Reasons without an enum constant yet (stage ranges reserved for later
// stages, gaps) read "filter_reason_33", "reason_27", ...: still unique, so
// metrics never merge two reasons under one label.
std::string reason_name(sluice_reason reason);
std::optional<sluice_reason> parse_reason_name(std::string_view name);

}  // namespace sluice::dataplane
