#include "daemon/metrics/metrics.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "daemon/metrics/buckets.h"
#include "daemon/model/names.h"

namespace netlatd {
namespace {

std::string str(std::string_view view) {
    return std::string(view);
}

// The optional labels of netlatd_stack_latency_seconds, each turned on by labels.<name>. A series
// beyond labels.max_series has all of them set to "other".
struct OptionalLabel {
    std::string_view name;
    bool LabelConfig::*enabled;
    bool (*valid)(const netlat_hist_key&);
    std::string (*value)(const netlat_hist_key&);
    void (*clear)(netlat_hist_key&);
};
constexpr std::array<OptionalLabel, 2> kOptionalLabels = {{
    {"family", &LabelConfig::family,
     [](const netlat_hist_key& key) { return key.family < NETLAT_FAMILY_COUNT; },
     [](const netlat_hist_key& key) { return str(names::kFamilies[key.family]); },
     [](netlat_hist_key& key) { key.family = 0; }},
    {"netns", &LabelConfig::netns, [](const netlat_hist_key&) { return true; },
     [](const netlat_hist_key& key) { return std::to_string(key.netns); },
     [](netlat_hist_key& key) { key.netns = 0; }},
}};

bool any_optional_label(const LabelConfig& labels) {
    return std::ranges::any_of(kOptionalLabels,
                               [&](const OptionalLabel& label) { return labels.*label.enabled; });
}

// Identity of a histogram series: the key with the fields that are no label under the label config
// cleared (all optional ones for the "other" series), and `pad` marking the "other" series.
uint64_t series_id(netlat_hist_key key, const LabelConfig& labels, bool other) {
    for (const OptionalLabel& label : kOptionalLabels) {
        if (other || !(labels.*label.enabled)) label.clear(key);
    }
    key.pad = other ? 1 : 0;
    static_assert(sizeof(netlat_hist_key) == sizeof(uint64_t));
    uint64_t id;
    std::memcpy(&id, &key, sizeof(id));
    return id;
}

// The registry, collected under the update lock.
class LockedRegistry : public prometheus::Collectable {
  public:
    LockedRegistry(std::shared_ptr<prometheus::Registry> registry,
                   std::shared_ptr<std::mutex> mutex)
        : registry_(std::move(registry)), mutex_(std::move(mutex)) {}
    std::vector<prometheus::MetricFamily> Collect() const override {
        std::lock_guard lock(*mutex_);
        return registry_->Collect();
    }

  private:
    std::shared_ptr<prometheus::Registry> registry_;
    std::shared_ptr<std::mutex> mutex_;
};

}  // namespace

Metrics::Metrics(const Config& config, std::string version, std::string libbpf_version,
                 std::string kernel_release)
    : registry_(std::make_shared<prometheus::Registry>()),
      update_mutex_(std::make_shared<std::mutex>()),
      collectable_(std::make_shared<LockedRegistry>(registry_, update_mutex_)),
      labels_(config.labels),
      bounds_ns_(bucket_bounds_ns(config.buckets)),
      slot_buckets_(slot_to_bucket(bounds_ns_)),
      bounds_seconds_(netlatd::bounds_seconds(bounds_ns_)) {
    latency_ = &prometheus::BuildHistogram()
                    .Name("netlatd_stack_latency_seconds")
                    .Help(
                        "Time a packet or call spent between two stages of the kernel network "
                        "stack (segment), per direction and protocol")
                    .Register(*registry_);
    if (!any_optional_label(labels_)) {
        for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
            for (unsigned protocol = 0; protocol < NETLAT_PROTO_COUNT; ++protocol) {
                netlat_hist_key key{};
                key.segment = static_cast<__u8>(segment);
                key.protocol = static_cast<__u8>(protocol);
                latency_series(series_id(key, labels_, false), key, false);
            }
        }
    }

    stage_events_family_ = &prometheus::BuildCounter()
                                .Name("netlatd_stage_events_total")
                                .Help("Packets or calls seen at a stage")
                                .Register(*registry_);
    for (unsigned stage = 0; stage < NETLAT_STAGE_COUNT; ++stage) {
        stage_events_[stage] =
            &stage_events_family_->Add({{"direction", str(names::direction_of_stage(stage))},
                                        {"stage", str(names::kStages[stage].stage)}});
    }

    unmatched_family_ = &prometheus::BuildCounter()
                             .Name("netlatd_unmatched_total")
                             .Help("Segment ends that found no matching start, by reason")
                             .Register(*registry_);
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        for (unsigned reason = 0; reason < NETLAT_UNMATCHED_COUNT; ++reason) {
            unmatched_[segment * kUnmatchedReasons + reason] =
                &unmatched_family_->Add({{"direction", str(names::direction_of_segment(segment))},
                                         {"segment", str(names::kSegments[segment].segment)},
                                         {"reason", str(names::kUnmatchedReasons[reason])}});
        }
    }

    map_evictions_family_ = &prometheus::BuildCounter()
                                 .Name("netlatd_map_evictions_total")
                                 .Help(
                                     "Entries a bounded BPF map dropped to make room (inserted - "
                                     "deleted - live)")
                                 .Register(*registry_);
    for (unsigned map = 0; map < NETLAT_MAP_COUNT; ++map) {
        map_evictions_[map] = &map_evictions_family_->Add({{"map", str(names::kMaps[map])}});
    }

    series_overflow_ = &prometheus::BuildCounter()
                            .Name("netlatd_series_overflow_total")
                            .Help(
                                "Latency samples recorded in a series whose optional labels "
                                "(family, netns) are \"other\" because labels.max_series "
                                "histogram series exist")
                            .Register(*registry_)
                            .Add({});

    drains_ = &prometheus::BuildCounter()
                   .Name("netlatd_drains_total")
                   .Help(
                       "Reads of the BPF maps into these metrics (one per interval); a scrape "
                       "shows a drain whole, and a value two above an earlier scrape's means "
                       "everything counted before that scrape is in")
                   .Register(*registry_)
                   .Add({});

    sampling_ratio_ = &prometheus::BuildGauge()
                           .Name("netlatd_sampling_ratio")
                           .Help(
                               "Share of flows measured (1 in N port pairs: the config's sampling, "
                               "raised by the overhead budget); histograms hold only these flows")
                           .Register(*registry_)
                           .Add({});
    sampling_ratio_->Set(1.0 / config.sampling);
    bpf_cpu_ratio_ = &prometheus::BuildGauge()
                          .Name("netlatd_bpf_cpu_ratio")
                          .Help(
                              "netlatd's BPF programs' cost over the last interval as a share of "
                              "one CPU, as the overhead budget sees it (source: kernel BPF "
                              "statistics, or stage events x budget.event_cost); 0 without a "
                              "budget")
                          .Register(*registry_)
                          .Add({});

    program_run_seconds_family_ = &prometheus::BuildCounter()
                                       .Name("netlatd_bpf_program_run_seconds_total")
                                       .Help(
                                           "Time spent running a BPF program (kernel BPF stats: 0 "
                                           "unless the config has bpf_stats: true or the host "
                                           "kernel.bpf_stats_enabled=1)")
                                       .Register(*registry_);
    program_runs_family_ = &prometheus::BuildCounter()
                                .Name("netlatd_bpf_program_runs_total")
                                .Help(
                                    "Runs of a BPF program (kernel BPF stats: 0 unless the config "
                                    "has bpf_stats: true or the host kernel.bpf_stats_enabled=1)")
                                .Register(*registry_);
    program_misses_family_ = &prometheus::BuildCounter()
                                  .Name("netlatd_bpf_program_misses_total")
                                  .Help(
                                      "Runs of a BPF program the kernel skipped because a BPF "
                                      "program already ran on the CPU (bpf_prog_info "
                                      "recursion_misses: fentry and fexit programs; tp_btf "
                                      "programs on newer kernels; kprobe programs from 6.7)")
                                  .Register(*registry_);

    stage_info_family_ = &prometheus::BuildGauge()
                              .Name("netlatd_stage_info")
                              .Help(
                                  "How each stage is hooked: hook name and mode "
                                  "(fentry|kprobe|tracepoint|netfilter|cgroup|none); always 1")
                              .Register(*registry_);

    prometheus::BuildGauge()
        .Name("netlatd_build_info")
        .Help("netlatd version, libbpf version and running kernel release; always 1")
        .Register(*registry_)
        .Add({{"version", std::move(version)},
              {"libbpf", std::move(libbpf_version)},
              {"kernel", std::move(kernel_release)}})
        .Set(1);
}

void Metrics::set_stage_info(const std::vector<StageInfo>& stages) {
    for (prometheus::Gauge* gauge : stage_info_) stage_info_family_->Remove(gauge);
    stage_info_.clear();
    for (const StageInfo& stage : stages) {
        prometheus::Gauge& gauge = stage_info_family_->Add({{"direction", stage.direction},
                                                            {"stage", stage.stage},
                                                            {"hook", stage.hook},
                                                            {"mode", stage.mode}});
        gauge.Set(1);
        stage_info_.push_back(&gauge);
    }
}

bool Metrics::observe_latency(const netlat_hist_key& key,
                              const std::vector<double>& bucket_increments, double sum_seconds) {
    if (key.segment >= NETLAT_SEG_COUNT || key.protocol >= NETLAT_PROTO_COUNT) return false;
    for (const OptionalLabel& label : kOptionalLabels) {
        if (labels_.*label.enabled && !label.valid(key)) return false;
    }
    const uint64_t id = series_id(key, labels_, false);
    auto it = latency_series_.find(id);
    prometheus::Histogram* histogram = it != latency_series_.end() ? it->second : nullptr;
    if (histogram == nullptr) {
        const bool other = any_optional_label(labels_) && capped_series_ >= labels_.max_series;
        histogram = &latency_series(series_id(key, labels_, other), key, other);
        if (other) {
            double samples = 0;
            for (double increment : bucket_increments) samples += increment;
            series_overflow_->Increment(samples);
        }
    }
    histogram->ObserveMultiple(bucket_increments, sum_seconds);
    return true;
}

prometheus::Histogram& Metrics::latency_series(uint64_t id, const netlat_hist_key& key,
                                               bool other) {
    if (auto it = latency_series_.find(id); it != latency_series_.end()) return *it->second;
    prometheus::Labels labels{{"direction", str(names::direction_of_segment(key.segment))},
                              {"segment", str(names::kSegments[key.segment].segment)},
                              {"protocol", str(names::kProtocols[key.protocol])}};
    for (const OptionalLabel& label : kOptionalLabels) {
        if (labels_.*label.enabled) labels.emplace(label.name, other ? "other" : label.value(key));
    }
    prometheus::Histogram& histogram = latency_->Add(labels, bounds_seconds_);
    latency_series_.emplace(id, &histogram);
    if (!other) ++capped_series_;
    return histogram;
}

prometheus::Counter& Metrics::program_run_seconds(const std::string& program) {
    return program_run_seconds_family_->Add({{"program", program}});
}

prometheus::Counter& Metrics::program_runs(const std::string& program) {
    return program_runs_family_->Add({{"program", program}});
}

prometheus::Counter& Metrics::program_misses(const std::string& program) {
    return program_misses_family_->Add({{"program", program}});
}

}  // namespace netlatd
