// Prometheus bucket bounds of netlatd_stack_latency_seconds, placed on BPF histogram slot edges.
#pragma once

#include <cstdint>
#include <vector>

#include "daemon/config/config.h"

namespace netlatd {

// The configured bounds in ns, each snapped UP to the nearest slot upper edge
// (netlat_slot_upper_ns), so that every Prometheus `le` bucket is exactly a union of slots.
// Explicit bounds are taken as given; otherwise min_seconds * 2^(k / per_octave) for k = 0, 1, ...
// up to max_seconds (max_seconds itself closes the list if the sequence does not land on it).
// Bounds are deduplicated after snapping; bounds in the last slot (the overflow slot, which has no
// upper edge) are left to +Inf. Throws std::invalid_argument if no bound remains.
std::vector<uint64_t> bucket_bounds_ns(const BucketConfig& config);

// For each of the NETLAT_SLOTS slots, the index of the Prometheus bucket it belongs to:
// 0..bounds_ns.size()-1 for the finite buckets, bounds_ns.size() for +Inf. The last slot always
// goes to +Inf. bounds_ns must be strictly increasing slot upper edges (as bucket_bounds_ns
// returns).
std::vector<uint32_t> slot_to_bucket(const std::vector<uint64_t>& bounds_ns);

// ns -> seconds, for prometheus::Histogram's bucket boundaries.
std::vector<double> bounds_seconds(const std::vector<uint64_t>& bounds_ns);

}  // namespace netlatd
