#pragma once
// `sluicectl doctor [--json]`: gathers what it can see from the box (the
// status document and lb settings over the socket; bpffs, the pin
// directory, MTU and rp_filter of each attached interface from this
// machine) and prints diagnose()'s findings, each with its fix. Exit 0 when
// nothing is wrong, 1 when something is, 3 when sluiced cannot be reached.
#include <functional>

#include "top_command.hpp"

namespace CLI {
class App;
}

namespace sluice::cli {

// doctor reads through the same context as top: read-only calls, nothing printed.
using DoctorAction = std::function<int(TopContext&)>;
void add_doctor_command(CLI::App& app, const std::function<void(DoctorAction)>& set_action);

}  // namespace sluice::cli
