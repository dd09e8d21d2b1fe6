// The overhead budget's controller: from a cost per interval to the share of flows measured.
#include "daemon/drain/budget.h"

#include <gtest/gtest.h>

namespace netlatd {
namespace {

constexpr double kSecond = 1.0;
constexpr double kNsPerSecond = 1e9;

// The cost, per second, of measuring all flows (a load that costs `full` of one CPU), when 1 in
// `every` flows is measured: the controller's model, exact here.
double cost_ns(double full, uint32_t every) { return full * kNsPerSecond / every; }

TEST(Budget, UnderTheBudgetMeasuresEveryFlow) {
    Budget budget(0.05, 1);
    EXPECT_EQ(budget.update(cost_ns(0.01, 1), kSecond), 1u);
    EXPECT_DOUBLE_EQ(budget.used(), 0.01);
}

TEST(Budget, OverTheBudgetSamplesToItsTargetAtOnce) {
    Budget budget(0.01, 1);
    const uint32_t every = budget.update(cost_ns(0.2, 1), kSecond);  // 20x the budget
    EXPECT_EQ(every, 25u);  // 0.2 / (0.01 * 0.8)
    // The next interval is under the budget, near its target, and stays there.
    EXPECT_EQ(budget.update(cost_ns(0.2, every), kSecond), every);
    EXPECT_LE(budget.used(), 0.01);
    EXPECT_GT(budget.used(), 0.01 * Budget::kTarget * 0.9);
}

TEST(Budget, MeasuresMoreFlowsOnlyWhenTheCostFalls) {
    Budget budget(0.01, 1);
    uint32_t every = budget.update(cost_ns(0.2, 1), kSecond);
    for (int i = 0; i < 10; ++i) every = budget.update(cost_ns(0.2, every), kSecond);
    EXPECT_EQ(every, 25u) << "a steady load keeps a steady sampling";
    // The load falls a hundredfold: the sampling halves each interval back to every flow.
    for (int i = 0; i < 10; ++i) every = budget.update(cost_ns(0.002, every), kSecond);
    EXPECT_EQ(every, 1u);
}

TEST(Budget, NeverBelowTheConfigsSamplingNorAboveTheMaximum) {
    Budget budget(0.01, 8);
    EXPECT_EQ(budget.every(), 8u);
    EXPECT_EQ(budget.update(0, kSecond), 8u);
    EXPECT_EQ(budget.update(cost_ns(1e6, 8), kSecond), Budget::kMaxEvery);
    EXPECT_EQ(budget.update(cost_ns(1e6, Budget::kMaxEvery), kSecond), Budget::kMaxEvery);
}

TEST(Budget, TheCostIsPerSecondOfWallTime) {
    Budget budget(0.01, 1);
    // 5 ms of programs over 1 s is 0.5%; over 0.1 s it is 5%.
    EXPECT_EQ(budget.update(5e6, 1.0), 1u);
    EXPECT_GT(budget.update(5e6, 0.1), 1u);
}

TEST(Budget, IgnoresAnEmptyInterval) {
    Budget budget(0.01, 1);
    EXPECT_EQ(budget.update(1e9, 0), 1u);
    EXPECT_EQ(budget.update(-1, 1), 1u);
}

}  // namespace
}  // namespace netlatd
