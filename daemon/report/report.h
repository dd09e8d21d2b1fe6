// The quick look without Prometheus: the terminal report of `netlatd --once` (bpftrace-style log2
// histograms, a percentile table, where the time goes), the same numbers as one JSON document (for
// --once --json and the page's /api/latency.json), and the periodic one-line log summary.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "daemon/model/types.h"
#include "daemon/report/latency_store.h"

namespace netlatd {

// Where the numbers come from, for the header of a report.
struct ReportContext {
    std::string version, kernel, probe_mode;
    std::chrono::milliseconds interval{0};
    std::vector<StageInfo> stages;  // the stage hooks in use, as netlatd_stage_info exports them
};

// The text report: header with the stage hooks, per direction and segment a log2 histogram, then
// count/p50/p90/p99/max per segment, then each per-layer segment's share of the direction, then
// the non-zero unmatched and eviction counters. Segments without samples say so.
std::string terminal_report(const LatencySnapshot& snapshot, const ReportContext& context);

// One JSON document with the same content (plus per-protocol figures and the last drain's
// percentiles). Latencies are in ns; a figure without samples is null.
nlohmann::json json_report(const LatencySnapshot& snapshot, const ReportContext& context);

// One line per direction about its total segment: "tx total (socket -> driver): 812 samples, p50
// 18.2us, p99 41us", over what `now` added since `before` (everything if before is null).
std::vector<std::string> summary_lines(const LatencySnapshot& now, const LatencySnapshot* before);

}  // namespace netlatd
