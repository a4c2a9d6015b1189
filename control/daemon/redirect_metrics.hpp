#pragma once
// The redirects that failed after the XDP program returned
// (dataplane/redirect_errors.hpp) on /metrics, by receiving and egress port
// and the kernel's errno, and whether each tracepoint is watched at all: a
// box that cannot see them says so rather than showing zeros.
#include <string>

#include "redirect_errors.hpp"

namespace sluice::daemon {

// watch: nullptr when the watch could not be opened (every tracepoint shows as unwatched).
std::string render_redirect_error_metrics(const dataplane::RedirectErrorWatch* watch);

}  // namespace sluice::daemon
