#include "daemon/drain/drainer.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace netlatd {
namespace {

uint64_t pack(const netlat_hist_key& key) {
    static_assert(sizeof(netlat_hist_key) == sizeof(uint64_t));
    uint64_t packed;
    std::memcpy(&packed, &key, sizeof(packed));
    return packed;
}

// Counters only grow; a smaller value means a reader restarted them, so the new value is the delta.
uint64_t counter_delta(uint64_t current, uint64_t previous) {
    return current >= previous ? current - previous : current;
}

}  // namespace

Drainer::Drainer(MapReader& reader, Metrics& metrics, std::vector<ProgramRef> programs)
    : reader_(reader),
      metrics_(metrics),
      programs_(std::move(programs)),
      previous_programs_(programs_.size()),
      bucket_increments_(metrics.bounds_ns().size() + 1) {
    for (const ProgramRef& program : programs_) {
        program_counters_.push_back({&metrics_.program_run_seconds(program.name),
                                     &metrics_.program_runs(program.name),
                                     &metrics_.program_misses(program.name)});
    }
}

void Drainer::drain() {
    // Histograms are read before the counters: a sample's start stage counted its event before the
    // sample landed in a histogram, so no segment has more samples than the stage it starts at saw
    // events. Scrapes see the drain whole (the update lock), so they see that too.
    const HistSnapshot snapshot = reader_.read_histograms();
    const std::vector<uint64_t> counters = reader_.read_counters();
    const std::vector<uint64_t> live = reader_.map_entry_counts();
    {
        const auto lock = metrics_.update_lock();
        drain_histograms(snapshot);
        drain_counters(counters, live);
    }
    if (store_ != nullptr) store_->commit(previous_counters_, evictions_);
    drain_programs();
    metrics_.drains().Increment();  // last: this drain's metrics are all in
}

void Drainer::drain_histograms(const HistSnapshot& snapshot) {
    const std::vector<uint32_t>& slot_buckets = metrics_.slot_buckets();
    static const HistTotals kZero{};
    const uint64_t drain = ++drains_;

    for (const auto& [key, totals] : snapshot) {
        auto [entry, inserted] = previous_hist_.try_emplace(pack(key));
        const HistTotals* previous = &entry->second.totals;
        // A new key, or one deleted and recreated since the last read, starts from zero.
        if (inserted || entry->second.drain != drain - 1 || totals.count < previous->count) {
            previous = &kZero;
        }

        std::fill(bucket_increments_.begin(), bucket_increments_.end(), 0.0);
        bool any = false;
        for (unsigned slot = 0; slot < NETLAT_SLOTS; ++slot) {
            const uint32_t delta = totals.slots[slot] - previous->slots[slot];  // modulo 2^32
            slot_deltas_[slot] = delta;
            if (delta != 0) {
                bucket_increments_[slot_buckets[slot]] += delta;
                any = true;
            }
        }
        const uint64_t sum_delta_ns = totals.sum_ns - previous->sum_ns;
        if (any || sum_delta_ns != 0) {
            metrics_.observe_latency(key, bucket_increments_,
                                     static_cast<double>(sum_delta_ns) / 1e9);
            if (store_ != nullptr)
                store_->add(key, slot_deltas_, totals.count - previous->count, sum_delta_ns);
        }
        entry->second = {totals, drain};
    }
    std::erase_if(previous_hist_,
                  [drain](const auto& entry) { return entry.second.drain != drain; });
}

void Drainer::drain_counters(const std::vector<uint64_t>& counters,
                             const std::vector<uint64_t>& live) {
    if (counters.size() < NETLAT_CTR_COUNT || live.size() < NETLAT_MAP_COUNT) {
        throw std::runtime_error(
            "drain: the map reader returned " + std::to_string(counters.size()) + " counters and " +
            std::to_string(live.size()) + " map entry counts, expected " +
            std::to_string(NETLAT_CTR_COUNT) + " and " + std::to_string(NETLAT_MAP_COUNT));
    }
    if (previous_counters_.empty()) previous_counters_.assign(NETLAT_CTR_COUNT, 0);
    auto delta = [&](unsigned index) {
        return static_cast<double>(counter_delta(counters[index], previous_counters_[index]));
    };

    last_cost_.stage_events = 0;
    for (unsigned stage = 0; stage < NETLAT_STAGE_COUNT; ++stage) {
        const double events = delta(NETLAT_CTR_STAGE(stage));
        metrics_.stage_events(stage).Increment(events);
        last_cost_.stage_events += static_cast<uint64_t>(events);
    }
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        for (unsigned reason = 0; reason < NETLAT_UNMATCHED_COUNT; ++reason) {
            metrics_.unmatched(segment, reason)
                .Increment(delta(NETLAT_CTR_UNMATCHED(segment, reason)));
        }
    }
    // Evictions are not seen by BPF programs: whatever was inserted and neither deleted explicitly
    // nor still live was evicted. Reads race with writers, so the estimate only ever grows.
    for (unsigned map = 0; map < NETLAT_MAP_COUNT; ++map) {
        const uint64_t inserted = counters[NETLAT_CTR_MAP_INSERT(map)];
        const uint64_t gone = counters[NETLAT_CTR_MAP_DELETE(map)] + live[map];
        const uint64_t evicted = inserted > gone ? inserted - gone : 0;
        if (evicted > evictions_[map]) {
            metrics_.map_evictions(map).Increment(static_cast<double>(evicted - evictions_[map]));
            evictions_[map] = evicted;
        }
    }
    previous_counters_.assign(counters.begin(), counters.begin() + NETLAT_CTR_COUNT);
}

void Drainer::drain_programs() {
    last_cost_.program_ns = 0;
    for (size_t i = 0; i < programs_.size(); ++i) {
        const ProgramRef& program = programs_[i];
        const ProgramStats stats = reader_.program_stats(program.name, program.fd);
        ProgramStats& previous = previous_programs_[i];
        const ProgramCounters& counters = program_counters_[i];
        const uint64_t ns = counter_delta(stats.run_time_ns, previous.run_time_ns);
        last_cost_.program_ns += ns;
        counters.run_seconds->Increment(static_cast<double>(ns) / 1e9);
        counters.runs->Increment(
            static_cast<double>(counter_delta(stats.run_cnt, previous.run_cnt)));
        counters.misses->Increment(
            static_cast<double>(counter_delta(stats.misses, previous.misses)));
        previous = stats;
    }
}

}  // namespace netlatd
