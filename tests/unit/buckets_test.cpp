// Prometheus bucket bounds on histogram slot edges.
#include "daemon/metrics/buckets.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "bpf/netlat.h"

namespace netlatd {
namespace {

constexpr unsigned kLast = NETLAT_SLOTS - 1;

bool is_slot_edge(uint64_t ns) {
    return netlat_slot_upper_ns(netlat_slot(ns)) == ns;
}

BucketConfig explicit_bounds(std::vector<double> bounds) {
    BucketConfig config;
    config.bounds = std::move(bounds);
    return config;
}

TEST(Buckets, DefaultGeometricBoundsSitOnSlotEdges) {
    const BucketConfig config;  // 250ns .. 4s, 2 per octave
    const std::vector<uint64_t> bounds = bucket_bounds_ns(config);
    ASSERT_FALSE(bounds.empty());
    for (size_t i = 0; i < bounds.size(); ++i) {
        EXPECT_TRUE(is_slot_edge(bounds[i])) << bounds[i];
        if (i > 0) {
            EXPECT_LT(bounds[i - 1], bounds[i]);
        }
    }
    EXPECT_EQ(bounds.front(), 256u);  // 250 ns snapped up to the edge of its slot
    EXPECT_GE(bounds.back(), 4'000'000'000u);
    EXPECT_LT(netlat_slot_upper_ns(netlat_slot(4'000'000'000u) - 1), 4'000'000'000u);
    // 250ns * 2^(k/2) up to 4 s: 48 steps of half an octave, plus 4 s itself.
    EXPECT_EQ(bounds.size(), 49u);
}

TEST(Buckets, SnapsUpToTheNearestEdge) {
    // Every bound is the smallest slot edge >= the configured value.
    for (double seconds : {1e-9, 17e-9, 18e-9, 100e-9, 999e-9, 1e-6, 12.3e-6, 0.5, 60.0}) {
        const std::vector<uint64_t> bounds = bucket_bounds_ns(explicit_bounds({seconds}));
        ASSERT_EQ(bounds.size(), 1u) << seconds;
        const double ns = seconds * 1e9;
        EXPECT_GE(static_cast<double>(bounds[0]), ns * (1 - 1e-12)) << seconds;
        const unsigned slot = netlat_slot(bounds[0]);
        if (slot > 0) {
            EXPECT_LT(static_cast<double>(netlat_slot_upper_ns(slot - 1)), ns);
        }
    }
    EXPECT_EQ(bucket_bounds_ns(explicit_bounds({17e-9})), std::vector<uint64_t>{17});
    EXPECT_EQ(bucket_bounds_ns(explicit_bounds({1e-6})), std::vector<uint64_t>{1024});
}

TEST(Buckets, DeduplicatesAfterSnapping) {
    // 1000 ns and 1010 ns share the slot (992, 1024]; 2 us is its own.
    const std::vector<uint64_t> bounds = bucket_bounds_ns(explicit_bounds({1e-6, 1.01e-6, 2e-6}));
    EXPECT_EQ(bounds, (std::vector<uint64_t>{1024, 2048}));
}

TEST(Buckets, BoundsBeyondTheLastFiniteSlotAreLeftToInf) {
    const std::vector<uint64_t> bounds = bucket_bounds_ns(explicit_bounds({1.0, 100.0}));
    EXPECT_EQ(bounds.size(), 1u);
    EXPECT_THROW(bucket_bounds_ns(explicit_bounds({100.0})), std::invalid_argument);
}

TEST(Buckets, RejectsEmptyAndNonPositive) {
    EXPECT_THROW(bucket_bounds_ns(explicit_bounds({-1.0})), std::invalid_argument);
    BucketConfig config;
    config.per_octave = 0;
    EXPECT_THROW(bucket_bounds_ns(config), std::invalid_argument);
    config = BucketConfig{};
    config.min_seconds = 2;
    config.max_seconds = 1;
    EXPECT_THROW(bucket_bounds_ns(config), std::invalid_argument);
}

TEST(Buckets, GeometricOnePerOctave) {
    BucketConfig config;
    config.min_seconds = 1e-6;
    config.max_seconds = 1e-3;
    config.per_octave = 1;
    const std::vector<uint64_t> bounds = bucket_bounds_ns(config);
    // 1us * 2^k for k = 0..9, then 1 ms itself; 2^k us snapped up: 1024, 2048, ... ns.
    ASSERT_EQ(bounds.size(), 11u);
    for (unsigned k = 0; k < 10; ++k) EXPECT_EQ(bounds[k], 1024u << k) << k;
    EXPECT_EQ(bounds[10], netlat_slot_upper_ns(netlat_slot(1'000'000)));
}

TEST(Buckets, SlotToBucketIsAUnionOfSlots) {
    const std::vector<uint64_t> bounds = bucket_bounds_ns(BucketConfig{});
    const std::vector<uint32_t> buckets = slot_to_bucket(bounds);
    ASSERT_EQ(buckets.size(), NETLAT_SLOTS);
    for (unsigned slot = 0; slot < NETLAT_SLOTS; ++slot) {
        const uint32_t bucket = buckets[slot];
        ASSERT_LE(bucket, bounds.size());
        if (slot > 0) {
            EXPECT_GE(bucket, buckets[slot - 1]);
        }
        if (slot == kLast) {
            EXPECT_EQ(bucket, bounds.size());
            continue;
        }
        const uint64_t upper = netlat_slot_upper_ns(slot);
        const uint64_t lower = slot == 0 ? 0 : netlat_slot_upper_ns(slot - 1);
        if (bucket < bounds.size()) {
            EXPECT_LE(upper, bounds[bucket]) << "slot " << slot;
        }
        if (bucket > 0) {
            EXPECT_GE(lower, bounds[bucket - 1]) << "slot " << slot;
        }
    }
}

TEST(Buckets, LastSlotAlwaysGoesToInf) {
    // Even a bound on the last finite edge leaves the overflow slot to +Inf.
    const std::vector<uint64_t> bounds = {netlat_slot_upper_ns(kLast - 1)};
    const std::vector<uint32_t> buckets = slot_to_bucket(bounds);
    EXPECT_EQ(buckets[kLast - 1], 0u);
    EXPECT_EQ(buckets[kLast], 1u);
}

TEST(Buckets, BoundsInSeconds) {
    EXPECT_EQ(bounds_seconds({256, 1'000'000'000}), (std::vector<double>{256e-9, 1.0}));
}

}  // namespace
}  // namespace netlatd
