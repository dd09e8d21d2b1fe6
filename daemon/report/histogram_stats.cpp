#include "daemon/report/histogram_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "daemon/model/names.h"

namespace netlatd {
namespace {

constexpr uint64_t kNsPerUs = 1000;

// Edge k of the display buckets: 1, 2, 4, ..., 512 ns, then 1, 2, 4, ... us.
uint64_t log2_edge(unsigned k) {
    return k < 10 ? uint64_t{1} << k : kNsPerUs << (k - 10);
}

// The bucket index of a value: edge(k) <= value < edge(k + 1); values below 1 ns go to bucket 0
// (drawn as [0, 2ns)).
unsigned log2_bucket_of(double value_ns) {
    unsigned k = 0;
    while (k < 62 && static_cast<double>(log2_edge(k + 1)) <= value_ns) ++k;
    return k;
}

// A slot's representative value: its only value for single-nanosecond slots, else its middle.
double slot_middle_ns(unsigned slot) {
    const uint64_t upper = netlat_slot_upper_ns(slot);
    if (slot < NETLAT_SUBS) return static_cast<double>(upper);
    return (static_cast<double>(slot_lower_ns(slot)) + static_cast<double>(upper)) / 2;
}

std::string edge_label(uint64_t ns) {
    return ns == 0 ? "0" : format_ns(static_cast<double>(ns));
}

}  // namespace

uint64_t slot_lower_ns(unsigned slot) {
    return slot == 0 ? 0 : netlat_slot_upper_ns(slot - 1);
}

std::optional<double> quantile_ns(const SlotCounts& slots, double q) {
    uint64_t total = 0;
    for (uint64_t count : slots) total += count;
    if (total == 0) return std::nullopt;
    const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(total);
    uint64_t below = 0;
    for (unsigned slot = 0; slot < slots.size(); ++slot) {
        if (slots[slot] == 0) continue;
        if (static_cast<double>(below + slots[slot]) >= rank) {
            const double lower = static_cast<double>(slot_lower_ns(slot));
            const double upper = static_cast<double>(netlat_slot_upper_ns(slot));
            const double fraction = (rank - static_cast<double>(below)) / slots[slot];
            return lower + (upper - lower) * std::max(fraction, 0.0);
        }
        below += slots[slot];
    }
    return std::nullopt;  // not reached: the rank is at most the total
}

std::optional<double> max_ns(const SlotCounts& slots) {
    for (unsigned slot = slots.size(); slot-- > 0;) {
        if (slots[slot] != 0) return static_cast<double>(netlat_slot_upper_ns(slot));
    }
    return std::nullopt;
}

LatencyStats stats_of(const SeriesCounts& series) {
    LatencyStats stats;
    stats.count = series.count;
    stats.sum_ns = series.sum_ns;
    if (series.count != 0)
        stats.mean_ns = static_cast<double>(series.sum_ns) / static_cast<double>(series.count);
    stats.p50_ns = quantile_ns(series.slots, 0.50);
    stats.p90_ns = quantile_ns(series.slots, 0.90);
    stats.p99_ns = quantile_ns(series.slots, 0.99);
    stats.max_ns = max_ns(series.slots);
    return stats;
}

std::vector<Log2Bucket> log2_buckets(const SlotCounts& slots) {
    std::vector<uint64_t> counts;
    for (unsigned slot = 0; slot < slots.size(); ++slot) {
        if (slots[slot] == 0) continue;
        const unsigned k = log2_bucket_of(slot_middle_ns(slot));
        if (counts.size() <= k) counts.resize(k + 1, 0);
        counts[k] += slots[slot];
    }
    std::vector<Log2Bucket> buckets;
    size_t first = 0;
    while (first < counts.size() && counts[first] == 0) ++first;
    for (size_t k = first; k < counts.size(); ++k) {
        Log2Bucket bucket;
        bucket.lo_ns = k == 0 ? 0 : log2_edge(k);
        bucket.hi_ns = log2_edge(k + 1);
        bucket.count = counts[k];
        bucket.label = "[" + edge_label(bucket.lo_ns) + ", " + edge_label(bucket.hi_ns) + ")";
        buckets.push_back(std::move(bucket));
    }
    return buckets;
}

std::string format_ns(std::optional<double> ns) {
    if (!ns || !std::isfinite(*ns)) return "-";
    static constexpr struct {
        const char* suffix;
        double scale;
    } kUnits[] = {{"s", 1e9}, {"ms", 1e6}, {"us", 1e3}, {"ns", 1}};
    for (const auto& unit : kUnits) {
        const double value = *ns / unit.scale;
        // 999.96us rounds to "1e+03" at three digits: such a value belongs to the next unit.
        if (value >= 0.9995 || unit.scale == 1) {
            char text[32];
            std::snprintf(text, sizeof text, value >= 999.5 ? "%.0f%s" : "%.3g%s", value,
                          unit.suffix);
            return text;
        }
    }
    return "-";
}

bool is_layer_segment(unsigned segment) {
    const auto& s = names::kSegments.at(segment);
    return s.to == s.from + 1 && names::kStages[s.from].direction == s.direction &&
           names::kStages[s.to].direction == s.direction;
}

std::optional<unsigned> total_segment(unsigned direction) {
    std::optional<unsigned> first, last;
    for (unsigned stage = 0; stage < NETLAT_STAGE_COUNT; ++stage) {
        if (names::kStages[stage].direction != direction) continue;
        if (!first) first = stage;
        last = stage;
    }
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        const auto& s = names::kSegments[segment];
        if (first && s.direction == direction && s.from == *first && s.to == *last) return segment;
    }
    return std::nullopt;
}

std::string share_scope_note() {
    std::string composites;
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        if (is_layer_segment(segment)) continue;
        if (!composites.empty()) composites += ", ";
        composites += std::string(names::direction_of_segment(segment)) + " " +
                      std::string(names::kSegments[segment].segment);
    }
    return "composite segments (" + composites + ") are not layers";
}

std::vector<std::optional<double>> layer_shares(const LatencySnapshot& snapshot) {
    std::vector<std::optional<double>> shares(NETLAT_SEG_COUNT);
    std::array<double, NETLAT_DIR_COUNT> layer_sum{};
    std::vector<double> sums(NETLAT_SEG_COUNT, 0.0);
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        if (!is_layer_segment(segment)) continue;
        sums[segment] = static_cast<double>(snapshot.merged(segment).sum_ns);
        layer_sum[names::kSegments[segment].direction] += sums[segment];
    }
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        const double whole = layer_sum[names::kSegments[segment].direction];
        if (is_layer_segment(segment) && whole > 0) shares[segment] = sums[segment] / whole;
    }
    return shares;
}

}  // namespace netlatd
