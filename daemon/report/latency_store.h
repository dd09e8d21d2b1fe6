// What netlatd has measured so far, in process: cumulative slot counts per (segment, protocol),
// summed over families and network namespaces, plus the counters. The drainer feeds it once per
// drain; the terminal report (--once), the JSON endpoint of the page and the periodic log summary
// read snapshots of it, so all of them show the same numbers.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "bpf/netlat.h"

namespace netlatd {

using SlotCounts = std::array<uint64_t, NETLAT_SLOTS>;

// One histogram: samples per slot (see netlat.h's slot math), their count and sum.
struct SeriesCounts {
    uint64_t count = 0, sum_ns = 0;
    SlotCounts slots{};

    SeriesCounts& operator+=(const SeriesCounts& other);
    // What was added since `earlier`, a snapshot of the same cumulative series.
    SeriesCounts since(const SeriesCounts& earlier) const;
};

using SegmentSeries = std::array<std::array<SeriesCounts, NETLAT_PROTO_COUNT>, NETLAT_SEG_COUNT>;

struct LatencySnapshot {
    SegmentSeries total{};  // since the first drain
    SegmentSeries last{};   // added by the last drain
    std::array<uint64_t, NETLAT_STAGE_COUNT> stage_events{};
    std::array<std::array<uint64_t, NETLAT_UNMATCHED_COUNT>, NETLAT_SEG_COUNT> unmatched{};
    std::array<uint64_t, NETLAT_MAP_COUNT> evictions{};
    uint64_t drains = 0;
    std::chrono::steady_clock::duration elapsed{};  // from the first drain to the last

    // Both protocols of a segment together.
    SeriesCounts merged(unsigned segment) const;
};

class LatencyStore {
  public:
    // Drainer side, one thread: add() every key's deltas of one drain, then commit() them with the
    // cumulative counters of the same drain. Keys with an unknown segment or protocol are ignored.
    void add(const netlat_hist_key& key, const std::array<uint32_t, NETLAT_SLOTS>& slot_deltas,
             uint64_t count_delta, uint64_t sum_delta_ns);
    // counters: NETLAT_CTR_COUNT cumulative values (as read from the BPF counters map);
    // evictions: cumulative per map.
    void commit(const std::vector<uint64_t>& counters,
                const std::array<uint64_t, NETLAT_MAP_COUNT>& evictions);

    // Any thread. On the heap: a snapshot is a few hundred KiB, too much for a server thread's
    // stack.
    std::unique_ptr<LatencySnapshot> snapshot() const;

  private:
    SegmentSeries pending_{};  // drainer thread only
    mutable std::mutex mutex_;
    LatencySnapshot current_;
    std::chrono::steady_clock::time_point first_drain_{};
};

}  // namespace netlatd
