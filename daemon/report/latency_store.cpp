#include "daemon/report/latency_store.h"

namespace netlatd {

SeriesCounts& SeriesCounts::operator+=(const SeriesCounts& other) {
    count += other.count;
    sum_ns += other.sum_ns;
    for (size_t slot = 0; slot < slots.size(); ++slot) slots[slot] += other.slots[slot];
    return *this;
}

SeriesCounts SeriesCounts::since(const SeriesCounts& earlier) const {
    SeriesCounts out;
    // Cumulative values only grow; a smaller one (never expected) counts as no change.
    auto minus = [](uint64_t now, uint64_t then) { return now >= then ? now - then : 0; };
    out.count = minus(count, earlier.count);
    out.sum_ns = minus(sum_ns, earlier.sum_ns);
    for (size_t slot = 0; slot < slots.size(); ++slot)
        out.slots[slot] = minus(slots[slot], earlier.slots[slot]);
    return out;
}

SeriesCounts LatencySnapshot::merged(unsigned segment) const {
    SeriesCounts out;
    for (const SeriesCounts& series : total.at(segment)) out += series;
    return out;
}

void LatencyStore::add(const netlat_hist_key& key,
                       const std::array<uint32_t, NETLAT_SLOTS>& slot_deltas, uint64_t count_delta,
                       uint64_t sum_delta_ns) {
    if (key.segment >= NETLAT_SEG_COUNT || key.protocol >= NETLAT_PROTO_COUNT) return;
    SeriesCounts& series = pending_[key.segment][key.protocol];
    series.count += count_delta;
    series.sum_ns += sum_delta_ns;
    for (size_t slot = 0; slot < slot_deltas.size(); ++slot)
        series.slots[slot] += slot_deltas[slot];
}

void LatencyStore::commit(const std::vector<uint64_t>& counters,
                          const std::array<uint64_t, NETLAT_MAP_COUNT>& evictions) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    if (current_.drains == 0) first_drain_ = now;
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        for (unsigned protocol = 0; protocol < NETLAT_PROTO_COUNT; ++protocol) {
            current_.total[segment][protocol] += pending_[segment][protocol];
        }
    }
    current_.last = pending_;
    pending_ = {};
    if (counters.size() >= NETLAT_CTR_COUNT) {
        for (unsigned stage = 0; stage < NETLAT_STAGE_COUNT; ++stage)
            current_.stage_events[stage] = counters[NETLAT_CTR_STAGE(stage)];
        for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
            for (unsigned reason = 0; reason < NETLAT_UNMATCHED_COUNT; ++reason)
                current_.unmatched[segment][reason] =
                    counters[NETLAT_CTR_UNMATCHED(segment, reason)];
        }
    }
    current_.evictions = evictions;
    ++current_.drains;
    current_.elapsed = now - first_drain_;
}

std::unique_ptr<LatencySnapshot> LatencyStore::snapshot() const {
    std::lock_guard lock(mutex_);
    return std::make_unique<LatencySnapshot>(current_);
}

}  // namespace netlatd
