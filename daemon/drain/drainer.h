// One drain: read the BPF maps, subtract the previous read, feed the Prometheus metrics.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bpf/netlat.h"
#include "daemon/drain/map_reader.h"
#include "daemon/metrics/metrics.h"
#include "daemon/model/types.h"
#include "daemon/report/latency_store.h"

namespace netlatd {

class Drainer {
  public:
    // reader and metrics must outlive the Drainer. The first drain() exports everything the maps
    // hold (they were created by this process, so they start at zero).
    Drainer(MapReader& reader, Metrics& metrics, std::vector<ProgramRef> programs);

    // Never resets BPF maps: each value is cumulative and the delta since the previous read is
    // exported (u32 slots modulo 2^32, u64 counts). A histogram key that disappeared (LRU) and came
    // back starts from zero. Throws what the reader throws (BpfMapError, std::runtime_error); the
    // state stays consistent, so the caller may log and drain again next interval.
    void drain();

    // Also adds every drain's deltas and counters to `store` (which must outlive the Drainer): the
    // terminal report, the page's JSON and the log summary read it.
    void feed(LatencyStore* store) { store_ = store; }

    // What the last drain interval cost, for the overhead budget: netlatd's programs' run time as
    // the kernel counts it (0 while kernel BPF statistics are off), and the stage events they
    // counted.
    struct Cost {
        uint64_t program_ns = 0;
        uint64_t stage_events = 0;
    };
    Cost last_cost() const { return last_cost_; }

  private:
    void drain_histograms(const HistSnapshot& snapshot);
    void drain_counters(const std::vector<uint64_t>& counters, const std::vector<uint64_t>& live);
    void drain_programs();

    MapReader& reader_;
    Metrics& metrics_;
    std::vector<ProgramRef> programs_;

    struct PreviousHist {
        HistTotals totals;
        uint64_t drain = 0;  // the drain that last saw the key; older entries are gone from the map
    };
    std::unordered_map<uint64_t, PreviousHist> previous_hist_;  // by packed netlat_hist_key
    uint64_t drains_ = 0;
    std::vector<uint64_t> previous_counters_;             // empty before the first drain
    std::array<uint64_t, NETLAT_MAP_COUNT> evictions_{};  // exported eviction totals
    std::vector<ProgramStats> previous_programs_;
    struct ProgramCounters {
        prometheus::Counter *run_seconds, *runs, *misses;
    };
    std::vector<ProgramCounters> program_counters_;
    std::vector<double> bucket_increments_;  // reused: bounds + 1 entries
    LatencyStore* store_ = nullptr;
    Cost last_cost_;
    std::array<uint32_t, NETLAT_SLOTS> slot_deltas_{};  // reused: one key's deltas for store_
};

}  // namespace netlatd
