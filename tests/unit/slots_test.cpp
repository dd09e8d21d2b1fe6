// Histogram slot math of bpf/netlat.h, both directions.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "bpf/netlat.h"

namespace {

constexpr unsigned kLast = NETLAT_SLOTS - 1;

TEST(Slots, UpperEdgeMapsBackToItsSlot) {
    for (unsigned slot = 0; slot < kLast; ++slot) {
        const uint64_t upper = netlat_slot_upper_ns(slot);
        EXPECT_EQ(netlat_slot(upper), slot) << "upper " << upper;
        EXPECT_EQ(netlat_slot(upper + 1), slot + 1) << "upper " << upper;
    }
    EXPECT_EQ(netlat_slot(netlat_slot_upper_ns(kLast)), kLast);
}

TEST(Slots, EdgesIncreaseAndSlotsAreMonotonic) {
    for (unsigned slot = 1; slot < NETLAT_SLOTS; ++slot) {
        EXPECT_LT(netlat_slot_upper_ns(slot - 1), netlat_slot_upper_ns(slot)) << "slot " << slot;
    }
    unsigned previous = 0;
    for (uint64_t value = 0; value < (uint64_t{1} << 37); value = value * 9 / 8 + 1) {
        const unsigned slot = netlat_slot(value);
        EXPECT_GE(slot, previous) << "value " << value;
        ASSERT_LT(slot, NETLAT_SLOTS);
        previous = slot;
    }
}

TEST(Slots, EverySlotHoldsTheValuesBetweenItsEdges) {
    for (unsigned slot = 1; slot < kLast; ++slot) {
        const uint64_t lower = netlat_slot_upper_ns(slot - 1);  // exclusive
        const uint64_t upper = netlat_slot_upper_ns(slot);
        EXPECT_EQ(netlat_slot(lower + 1), slot);
        EXPECT_EQ(netlat_slot(lower + (upper - lower) / 2 + 1), slot);
    }
}

TEST(Slots, RelativeWidthAtMostOneSixteenth) {
    for (unsigned slot = NETLAT_SUBS; slot < NETLAT_SLOTS; ++slot) {
        const double lower = static_cast<double>(netlat_slot_upper_ns(slot - 1));
        const double width = static_cast<double>(netlat_slot_upper_ns(slot)) - lower;
        EXPECT_LE(width / lower, 1.0 / 16) << "slot " << slot;
    }
}

TEST(Slots, BoundaryValues) {
    EXPECT_EQ(netlat_slot(0), 0u);
    EXPECT_EQ(netlat_slot(1), 0u);
    EXPECT_EQ(netlat_slot(2), 1u);
    EXPECT_EQ(netlat_slot(16), 15u);
    EXPECT_EQ(netlat_slot(17), 16u);
    EXPECT_EQ(netlat_slot(18), 17u);
    EXPECT_EQ(netlat_slot_upper_ns(0), 1u);
    EXPECT_EQ(netlat_slot_upper_ns(15), 16u);
    EXPECT_EQ(netlat_slot_upper_ns(16), 17u);
    EXPECT_EQ(netlat_slot_upper_ns(kLast), uint64_t{1} << (NETLAT_MAX_MSB + 1));
}

TEST(Slots, HugeValuesGoToTheLastSlot) {
    const uint64_t top = uint64_t{1} << (NETLAT_MAX_MSB + 1);
    EXPECT_EQ(netlat_slot(top), kLast);
    EXPECT_EQ(netlat_slot(top + 1), kLast);
    EXPECT_EQ(netlat_slot(uint64_t{1} << 40), kLast);
    EXPECT_EQ(netlat_slot(std::numeric_limits<uint64_t>::max()), kLast);
    EXPECT_EQ(netlat_slot(netlat_slot_upper_ns(kLast - 1) + 1), kLast);
}

}  // namespace
