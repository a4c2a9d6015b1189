#pragma once
// The status page sluiced serves at GET / (control/metrics/status_page.html,
// compiled into the binary by CMake: the page needs no file at run time and
// references no external asset).
#include <string_view>

namespace sluice::metrics {

std::string_view status_page_html();
inline constexpr std::string_view status_page_content_type = "text/html; charset=utf-8";
inline constexpr std::string_view status_json_content_type = "application/json";

}  // namespace sluice::metrics
