#include "stats.h"

#include <algorithm>
#include <cmath>

namespace netlat_load {

std::int64_t percentile_nearest_rank(const std::vector<std::int64_t>& sorted, double p) {
    const auto n = static_cast<double>(sorted.size());
    auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * n));
    rank = std::clamp<std::size_t>(rank, 1, sorted.size());
    return sorted[rank - 1];
}

Summary summarize(std::vector<std::int64_t> deltas_ns) {
    Summary summary;
    if (deltas_ns.empty()) return summary;
    std::sort(deltas_ns.begin(), deltas_ns.end());
    constexpr double kNsPerUs = 1000.0;
    summary.count = deltas_ns.size();
    summary.p50_us = percentile_nearest_rank(deltas_ns, 50) / kNsPerUs;
    summary.p90_us = percentile_nearest_rank(deltas_ns, 90) / kNsPerUs;
    summary.p99_us = percentile_nearest_rank(deltas_ns, 99) / kNsPerUs;
    summary.min_us = deltas_ns.front() / kNsPerUs;
    summary.max_us = deltas_ns.back() / kNsPerUs;
    long double sum = 0;
    for (auto v : deltas_ns) sum += v;
    summary.mean_us = static_cast<double>(sum / deltas_ns.size()) / kNsPerUs;
    return summary;
}

}  // namespace netlat_load
