#include "daemon/metrics/buckets.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "bpf/netlat.h"

namespace netlatd {
namespace {

constexpr unsigned kOverflowSlot = NETLAT_SLOTS - 1;

// Largest finite bound: the upper edge of the last slot before the overflow slot.
uint64_t largest_finite_bound_ns() {
    return netlat_slot_upper_ns(kOverflowSlot - 1);
}

// Rounds to whole ns (the BPF side measures in ns) and snaps up to a slot edge. Returns 0 for
// bounds beyond the last finite slot: those are covered by +Inf.
uint64_t snap_up_ns(double seconds) {
    const double ns = std::round(seconds * 1e9);
    if (!(ns <= static_cast<double>(largest_finite_bound_ns()))) return 0;
    const uint64_t value = std::max<uint64_t>(1, static_cast<uint64_t>(ns));
    return netlat_slot_upper_ns(netlat_slot(value));
}

std::vector<double> configured_bounds_seconds(const BucketConfig& config) {
    if (!config.bounds.empty()) return config.bounds;
    if (!(config.min_seconds > 0) || !(config.max_seconds >= config.min_seconds) ||
        config.per_octave == 0) {
        throw std::invalid_argument("buckets: need 0 < min <= max and per_octave >= 1 (min " +
                                    std::to_string(config.min_seconds) + ", max " +
                                    std::to_string(config.max_seconds) + ", per_octave " +
                                    std::to_string(config.per_octave) + ")");
    }
    std::vector<double> bounds;
    const double tolerance = 1.0 + 1e-9;
    // Bounds past the last finite slot edge are dropped later; stop generating there.
    const double limit = std::min(config.max_seconds * tolerance,
                                  2.0 * static_cast<double>(largest_finite_bound_ns()) / 1e9);
    for (unsigned k = 0;; ++k) {
        const double bound =
            config.min_seconds * std::exp2(static_cast<double>(k) / config.per_octave);
        if (bound > limit) break;
        bounds.push_back(bound);
    }
    if (bounds.empty() || bounds.back() * tolerance < config.max_seconds) {
        bounds.push_back(config.max_seconds);
    }
    return bounds;
}

}  // namespace

std::vector<uint64_t> bucket_bounds_ns(const BucketConfig& config) {
    std::vector<uint64_t> bounds;
    for (double seconds : configured_bounds_seconds(config)) {
        if (!(seconds > 0)) {
            throw std::invalid_argument("buckets: bound " + std::to_string(seconds) +
                                        " is not > 0");
        }
        if (uint64_t ns = snap_up_ns(seconds); ns != 0) bounds.push_back(ns);
    }
    std::sort(bounds.begin(), bounds.end());
    bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
    if (bounds.empty()) {
        throw std::invalid_argument("buckets: no bound at or below " +
                                    std::to_string(largest_finite_bound_ns() / 1e9) +
                                    " s (the largest finite histogram slot edge)");
    }
    return bounds;
}

std::vector<uint32_t> slot_to_bucket(const std::vector<uint64_t>& bounds_ns) {
    std::vector<uint32_t> buckets(NETLAT_SLOTS);
    const auto infinity = static_cast<uint32_t>(bounds_ns.size());
    for (unsigned slot = 0; slot < NETLAT_SLOTS; ++slot) {
        if (slot == kOverflowSlot) {
            buckets[slot] = infinity;
            continue;
        }
        const uint64_t upper = netlat_slot_upper_ns(slot);
        auto it = std::lower_bound(bounds_ns.begin(), bounds_ns.end(), upper);
        buckets[slot] = static_cast<uint32_t>(it - bounds_ns.begin());
    }
    return buckets;
}

std::vector<double> bounds_seconds(const std::vector<uint64_t>& bounds_ns) {
    std::vector<double> seconds;
    seconds.reserve(bounds_ns.size());
    for (uint64_t ns : bounds_ns) seconds.push_back(static_cast<double>(ns) / 1e9);
    return seconds;
}

}  // namespace netlatd
