#include "daemon/drain/budget.h"

#include <algorithm>
#include <cmath>

namespace netlatd {

Budget::Budget(double cpu, uint32_t min_every)
    : cpu_(cpu), min_every_(std::clamp<uint32_t>(min_every, 1, kMaxEvery)), every_(min_every_) {}

uint32_t Budget::update(double cost_ns, double seconds) {
    if (!(seconds > 0) || !(cost_ns >= 0)) return every_;
    used_ = cost_ns / (seconds * 1e9);
    const double aim = cpu_ * kTarget;
    if (used_ > cpu_) {
        // The measured part of the cost scales with the share of flows measured.
        const double wanted = std::ceil(every_ * used_ / aim);
        every_ = static_cast<uint32_t>(std::min<double>(wanted, kMaxEvery));
    } else if (every_ > min_every_ && used_ * 2 < aim) {
        every_ = std::max(min_every_, every_ / 2);
    }
    return every_;
}

}  // namespace netlatd
