// Summary statistics of one latency distribution.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace netlat_load {

struct Summary {
    std::size_t count = 0;
    double p50_us = 0, p90_us = 0, p99_us = 0, mean_us = 0, min_us = 0, max_us = 0;
};

// Nearest-rank percentile (the smallest value with at least p% of values <= it) of sorted
// values; p in (0, 100]. sorted must not be empty.
std::int64_t percentile_nearest_rank(const std::vector<std::int64_t>& sorted, double p);

// Deltas in nanoseconds -> summary in microseconds. An empty input gives count 0.
Summary summarize(std::vector<std::int64_t> deltas_ns);

}  // namespace netlat_load
