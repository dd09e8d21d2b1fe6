#include "stats.h"

#include <gtest/gtest.h>

namespace netlat_load {
namespace {

TEST(Stats, NearestRankPercentiles) {
    std::vector<std::int64_t> sorted;
    for (int i = 1; i <= 100; ++i) sorted.push_back(i);
    EXPECT_EQ(percentile_nearest_rank(sorted, 50), 50);
    EXPECT_EQ(percentile_nearest_rank(sorted, 90), 90);
    EXPECT_EQ(percentile_nearest_rank(sorted, 99), 99);
    EXPECT_EQ(percentile_nearest_rank(sorted, 100), 100);
    EXPECT_EQ(percentile_nearest_rank({7}, 50), 7);
    EXPECT_EQ(percentile_nearest_rank({1, 2, 3}, 50), 2);
    EXPECT_EQ(percentile_nearest_rank({1, 2, 3, 4}, 50), 2);
}

TEST(Stats, SummarizeConvertsNanosecondsToMicroseconds) {
    Summary s = summarize({3000, 1000, 2000, 4000});  // unsorted on purpose
    EXPECT_EQ(s.count, 4u);
    EXPECT_DOUBLE_EQ(s.p50_us, 2.0);
    EXPECT_DOUBLE_EQ(s.p90_us, 4.0);
    EXPECT_DOUBLE_EQ(s.p99_us, 4.0);
    EXPECT_DOUBLE_EQ(s.mean_us, 2.5);
    EXPECT_DOUBLE_EQ(s.min_us, 1.0);
    EXPECT_DOUBLE_EQ(s.max_us, 4.0);
}

TEST(Stats, EmptyInputHasCountZero) {
    EXPECT_EQ(summarize({}).count, 0u);
}

}  // namespace
}  // namespace netlat_load
