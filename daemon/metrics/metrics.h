// netlatd's Prometheus registry and metric families. Labels are fixed at creation; series of the
// static tables (stages, segments, reasons, maps) exist from the start at 0 so dashboards see them.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "bpf/netlat.h"
#include "daemon/config/config.h"
#include "daemon/model/types.h"

namespace netlatd {

class Metrics {
  public:
    // Throws std::invalid_argument if config.buckets leaves no bound (see bucket_bounds_ns).
    Metrics(const Config& config, std::string version, std::string libbpf_version,
            std::string kernel_release);
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    // What /metrics serves. A scrape waits while a drain updates the metrics (update_lock), so it
    // sees each drain whole: counters and histograms of the same BPF read.
    std::shared_ptr<prometheus::Collectable> registry() const { return collectable_; }
    std::unique_lock<std::mutex> update_lock() const { return std::unique_lock(*update_mutex_); }

    // Replaces all series of netlatd_stage_info{direction,stage,hook,mode} with these, each = 1.
    void set_stage_info(const std::vector<StageInfo>& stages);

    // Histogram layout: bucket bounds in ns (slot upper edges) and, per slot, its bucket index
    // (bounds_ns().size() = +Inf). A bucket_increments vector has bounds_ns().size() + 1 entries.
    const std::vector<uint64_t>& bounds_ns() const { return bounds_ns_; }
    const std::vector<uint32_t>& slot_buckets() const { return slot_buckets_; }

    // Adds pre-bucketed samples of one BPF histogram key to netlatd_stack_latency_seconds. The
    // series follows the label config: `family` only if labels.family, `netns` only if
    // labels.netns. With any of these optional labels on, once labels.max_series series exist,
    // samples of a new series go to the series whose optional labels are all "other" and are
    // counted in netlatd_series_overflow_total. Keys with an unknown segment/protocol/family are
    // ignored (returns false).
    bool observe_latency(const netlat_hist_key& key, const std::vector<double>& bucket_increments,
                         double sum_seconds);

    // Counter series; indexes are the netlat.h enums.
    prometheus::Counter& stage_events(unsigned stage) { return *stage_events_.at(stage); }
    prometheus::Counter& unmatched(unsigned segment, unsigned reason) {
        return *unmatched_.at(segment * kUnmatchedReasons + reason);
    }
    prometheus::Counter& map_evictions(unsigned map) { return *map_evictions_.at(map); }
    prometheus::Counter& series_overflow() { return *series_overflow_; }
    // netlatd_drains_total: drains done. Incremented after a drain's metrics are in: a scrape that
    // shows it two above an earlier scrape's value holds everything the maps had at that scrape.
    prometheus::Counter& drains() { return *drains_; }
    prometheus::Gauge& sampling_ratio() { return *sampling_ratio_; }
    prometheus::Gauge& bpf_cpu_ratio() { return *bpf_cpu_ratio_; }
    // netlatd_bpf_program_{run_seconds,runs,misses}_total{program}: created on first use.
    prometheus::Counter& program_run_seconds(const std::string& program);
    prometheus::Counter& program_runs(const std::string& program);
    prometheus::Counter& program_misses(const std::string& program);

  private:
    static constexpr size_t kUnmatchedReasons = NETLAT_UNMATCHED_COUNT;
    static constexpr size_t kUnmatchedSeries = size_t{NETLAT_SEG_COUNT} * kUnmatchedReasons;

    prometheus::Histogram& latency_series(uint64_t series_id, const netlat_hist_key& key,
                                          bool other);

    std::shared_ptr<prometheus::Registry> registry_;
    std::shared_ptr<std::mutex> update_mutex_;
    std::shared_ptr<prometheus::Collectable> collectable_;
    LabelConfig labels_;
    std::vector<uint64_t> bounds_ns_;
    std::vector<uint32_t> slot_buckets_;
    prometheus::Histogram::BucketBoundaries bounds_seconds_;

    prometheus::Family<prometheus::Histogram>* latency_;
    std::unordered_map<uint64_t, prometheus::Histogram*> latency_series_;
    size_t capped_series_ = 0;  // series other than the "other" ones

    prometheus::Family<prometheus::Counter>* stage_events_family_;
    prometheus::Family<prometheus::Counter>* unmatched_family_;
    prometheus::Family<prometheus::Counter>* map_evictions_family_;
    prometheus::Family<prometheus::Counter>* program_run_seconds_family_;
    prometheus::Family<prometheus::Counter>* program_runs_family_;
    prometheus::Family<prometheus::Counter>* program_misses_family_;
    prometheus::Family<prometheus::Gauge>* stage_info_family_;
    std::array<prometheus::Counter*, NETLAT_STAGE_COUNT> stage_events_{};
    std::array<prometheus::Counter*, (size_t)NETLAT_SEG_COUNT * NETLAT_UNMATCHED_COUNT>
        unmatched_{};
    std::array<prometheus::Counter*, NETLAT_MAP_COUNT> map_evictions_{};
    prometheus::Counter* series_overflow_;
    prometheus::Counter* drains_;
    prometheus::Gauge* sampling_ratio_;
    prometheus::Gauge* bpf_cpu_ratio_;
    std::vector<prometheus::Gauge*> stage_info_;
};

}  // namespace netlatd
