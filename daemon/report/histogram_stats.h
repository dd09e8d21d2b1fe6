// Numbers from netlatd's histogram slots: percentiles, max, log2 buckets for display, readable
// units, and which segments are layers. One implementation for the terminal report, the JSON of
// the page and the log summary. Slot values are exact to the slot, so every number derived here is
// accurate to the slot width: at most 1/16 of the value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "daemon/report/latency_store.h"

namespace netlatd {

inline constexpr const char* kAccuracyNote =
    "percentiles, max and bucket edges are accurate to the histogram slot width (<= 1/16 relative)";
// What a share is, for the report and the JSON.
inline constexpr const char* kShareFormula =
    "share = a per-layer segment's summed latency / the sum over its direction's per-layer "
    "segments";
// "composite segments (tx total, rx stack, ...) are not layers", from the segment table.
std::string share_scope_note();

// The smallest value a slot holds is lower_ns + 1; slot 0 also holds 0.
uint64_t slot_lower_ns(unsigned slot);

// Quantile q (0..1) in ns: the slot where the rank falls, interpolated linearly inside it (as
// Prometheus' histogram_quantile does). nullopt for an empty histogram.
std::optional<double> quantile_ns(const SlotCounts& slots, double q);
// The upper edge of the highest non-empty slot: no sample was larger. nullopt when empty.
std::optional<double> max_ns(const SlotCounts& slots);

struct LatencyStats {
    uint64_t count = 0, sum_ns = 0;
    std::optional<double> mean_ns, p50_ns, p90_ns, p99_ns, max_ns;
};
LatencyStats stats_of(const SeriesCounts& series);

// A display bucket [lo_ns, hi_ns): powers of two of nanoseconds below 1us (1ns, 2ns, ..., 512ns),
// powers of two of microseconds above (1us, 2us, 4us, ...), the scale of the original bpftrace
// scripts' hist(us). A slot goes to the bucket that holds its middle.
struct Log2Bucket {
    uint64_t lo_ns = 0, hi_ns = 0;
    uint64_t count = 0;
    std::string label;  // "[16us, 32us)"
};
// From the lowest to the highest non-empty bucket, empty ones between included; empty if no sample.
std::vector<Log2Bucket> log2_buckets(const SlotCounts& slots);

// Three significant digits in the largest unit that keeps the value >= 1: "812ns", "18.2us",
// "1.5ms", "2.05s"; "-" when there is no value.
std::string format_ns(std::optional<double> ns);

// Segments that are one layer: consecutive stages (to = from + 1) of one direction, in the order
// of the segment table. Composite segments (totals, rx stack, ...) are not layers.
bool is_layer_segment(unsigned segment);
// The segment that spans the whole direction (its first stage to its last), e.g. tx total.
std::optional<unsigned> total_segment(unsigned direction);

// Each per-layer segment's share of the direction's per-layer sum, by segment index (nullopt for
// non-layer segments and when the direction has no samples).
std::vector<std::optional<double>> layer_shares(const LatencySnapshot& snapshot);

}  // namespace netlatd
