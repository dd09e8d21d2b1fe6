// The page at / of the metrics port: live per-segment latency for both directions, drawn in the
// browser from /api/latency.json. One self-contained HTML file (daemon/web/index.html) compiled
// in: no external scripts, fonts or styles, so it works with no internet.
#pragma once

#include <string_view>

namespace netlatd::web {

inline constexpr const char* kPagePath = "/";
inline constexpr const char* kLatencyJsonPath = "/api/latency.json";

std::string_view index_html();

}  // namespace netlatd::web
