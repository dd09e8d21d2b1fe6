// The overhead budget: from what netlatd's BPF programs cost over one drain interval, the flow
// sampling that keeps them within a share of one CPU. Pure arithmetic: the caller measures the
// cost and applies the answer (Probes::set_flow_sampling).
#pragma once

#include <cstdint>

#include "daemon/config/config.h"

namespace netlatd {

class Budget {
  public:
    static constexpr uint32_t kMaxEvery = kMaxSampling;

    // cpu: the share of one CPU the programs may take (0 < cpu <= 1); min_every: the sampling the
    // config asks for (1 in N flows), which the budget only ever raises.
    Budget(double cpu, uint32_t min_every);

    // The programs cost cost_ns over `seconds` of wall time while 1 in every() flows was measured:
    // returns the sampling for the next interval. Above the budget it samples more sparsely at
    // once, aiming at kTarget of it; it measures more flows again (half the step) only while a
    // doubled cost would still stay under that aim, so it does not oscillate.
    uint32_t update(double cost_ns, double seconds);

    uint32_t every() const { return every_; }
    double used() const { return used_; }  // the last interval's share of one CPU

    static constexpr double kTarget = 0.8;

  private:
    double cpu_;
    uint32_t min_every_;
    uint32_t every_;
    double used_ = 0;
};

}  // namespace netlatd
