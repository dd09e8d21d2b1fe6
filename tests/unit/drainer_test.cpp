// Drainer: deltas of BPF map reads into Prometheus metrics, checked in the scraped text.
#include "daemon/drain/drainer.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cmath>
#include <cstring>
#include <future>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include "bpf/netlat.h"
#include "daemon/metrics/metrics.h"

namespace netlatd {
namespace {

class FakeMapReader : public MapReader {
  public:
    HistSnapshot histograms;
    std::vector<uint64_t> counters = std::vector<uint64_t>(NETLAT_CTR_COUNT, 0);
    std::vector<uint64_t> entries = std::vector<uint64_t>(NETLAT_MAP_COUNT, 0);
    std::map<int, ProgramStats> programs;

    HistSnapshot read_histograms() override { return histograms; }
    std::vector<uint64_t> read_counters() override { return counters; }
    std::vector<uint64_t> map_entry_counts() override { return entries; }
    ProgramStats program_stats(const std::string&, int fd) override { return programs.at(fd); }

    HistTotals& hist(unsigned segment, unsigned protocol, unsigned family = NETLAT_FAMILY_IPV4,
                     uint32_t netns = 0) {
        netlat_hist_key key{};
        key.segment = static_cast<__u8>(segment);
        key.protocol = static_cast<__u8>(protocol);
        key.family = static_cast<__u8>(family);
        key.netns = netns;
        for (auto& [existing, totals] : histograms) {
            if (std::memcmp(&existing, &key, sizeof(key)) == 0) return totals;
        }
        return histograms.emplace_back(key, HistTotals{}).second;
    }
};

// Adds n samples of value_ns to a histogram value the way the BPF side does.
void record(HistTotals& totals, uint64_t value_ns, uint32_t n = 1) {
    totals.slots[netlat_slot(value_ns)] += n;
    totals.count += n;
    totals.sum_ns += value_ns * n;
}

// One sample line of the text exposition: name{labels} value.
struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value;
};

std::vector<Sample> scrape(Metrics& metrics) {
    std::ostringstream text;
    prometheus::TextSerializer().Serialize(text, metrics.registry()->Collect());
    std::vector<Sample> samples;
    std::istringstream lines(text.str());
    for (std::string line; std::getline(lines, line);) {
        if (line.empty() || line[0] == '#') continue;
        Sample sample;
        size_t pos = line.find_first_of("{ ");
        sample.name = line.substr(0, pos);
        if (line[pos] == '{') {
            ++pos;
            while (line[pos] != '}') {
                const size_t eq = line.find('=', pos);
                const size_t end = line.find('"', eq + 2);
                sample.labels[line.substr(pos, eq - pos)] = line.substr(eq + 2, end - eq - 2);
                pos = end + 1;
                if (line[pos] == ',') ++pos;
            }
            ++pos;
        }
        sample.value = std::stod(line.substr(pos + 1));
        samples.push_back(std::move(sample));
    }
    return samples;
}

// The value of the one sample with this name whose labels include these; nullopt if none.
std::optional<double> value(const std::vector<Sample>& samples, const std::string& name,
                            const std::map<std::string, std::string>& labels) {
    std::optional<double> found;
    for (const Sample& sample : samples) {
        if (sample.name != name) continue;
        bool match = true;
        for (const auto& [label, wanted] : labels) {
            auto it = sample.labels.find(label);
            if (it == sample.labels.end()) {
                match = false;
            } else if (label == "le" && wanted != "+Inf" && it->second != "+Inf") {
                match =
                    std::abs(std::stod(it->second) - std::stod(wanted)) <= 1e-9 * std::stod(wanted);
            } else {
                match = it->second == wanted;
            }
            if (!match) break;
        }
        if (!match) continue;
        EXPECT_FALSE(found.has_value()) << name << " matches more than one series";
        found = sample.value;
    }
    return found;
}

size_t count_series(const std::vector<Sample>& samples, const std::string& name) {
    size_t n = 0;
    for (const Sample& sample : samples) n += sample.name == name;
    return n;
}

const std::map<std::string, std::string> kTxTotalTcp = {
    {"direction", "tx"}, {"segment", "total"}, {"protocol", "tcp"}};

std::map<std::string, std::string> with(std::map<std::string, std::string> labels,
                                        const std::string& label, const std::string& value) {
    labels[label] = value;
    return labels;
}

Config config_with_bounds(std::vector<double> bounds) {
    Config config;
    config.buckets.bounds = std::move(bounds);
    return config;
}

TEST(Drainer, AllStaticSeriesExistAtZeroBeforeAnyDrain) {
    Metrics metrics(Config{}, "0.1.0", "1.1.2", "6.18.0");
    const auto samples = scrape(metrics);
    const size_t buckets = metrics.bounds_ns().size() + 1;
    EXPECT_EQ(count_series(samples, "netlatd_stack_latency_seconds_count"),
              size_t{NETLAT_SEG_COUNT} * NETLAT_PROTO_COUNT);
    EXPECT_EQ(count_series(samples, "netlatd_stack_latency_seconds_bucket"),
              size_t{NETLAT_SEG_COUNT} * NETLAT_PROTO_COUNT * buckets);
    EXPECT_EQ(value(samples, "netlatd_stack_latency_seconds_count",
                    {{"direction", "rx"}, {"segment", "queued_to_socket"}, {"protocol", "udp"}}),
              0.0);
    EXPECT_EQ(count_series(samples, "netlatd_stage_events_total"), size_t{NETLAT_STAGE_COUNT});
    EXPECT_EQ(
        value(samples, "netlatd_stage_events_total", {{"direction", "rx"}, {"stage", "queued"}}),
        0.0);
    EXPECT_EQ(count_series(samples, "netlatd_unmatched_total"),
              size_t{NETLAT_SEG_COUNT} * NETLAT_UNMATCHED_COUNT);
    EXPECT_EQ(
        value(samples, "netlatd_unmatched_total",
              {{"direction", "tx"}, {"segment", "transport_to_network"}, {"reason", "retransmit"}}),
        0.0);
    EXPECT_EQ(count_series(samples, "netlatd_map_evictions_total"), size_t{NETLAT_MAP_COUNT});
    EXPECT_EQ(value(samples, "netlatd_map_evictions_total", {{"map", "tx_skb"}}), 0.0);
    EXPECT_EQ(value(samples, "netlatd_series_overflow_total", {}), 0.0);
    EXPECT_EQ(value(samples, "netlatd_drains_total", {}), 0.0);
    EXPECT_EQ(value(samples, "netlatd_build_info",
                    {{"version", "0.1.0"}, {"libbpf", "1.1.2"}, {"kernel", "6.18.0"}}),
              1.0);
}

TEST(Drainer, SamplesLandInTheirLeBuckets) {
    // 1 us snaps to 1024 ns, 10 us to 10240 ns.
    Metrics metrics(config_with_bounds({256e-9, 1e-6, 10e-6}), "v", "l", "k");
    ASSERT_EQ(metrics.bounds_ns(), (std::vector<uint64_t>{256, 1024, 10240}));
    FakeMapReader reader;
    Drainer drainer(reader, metrics, {});
    HistTotals& tx_total = reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP);
    record(tx_total, 1);                  // le 256 ns
    record(tx_total, 256, 2);             // on the bound: le 256 ns
    record(tx_total, 257, 3);             // next slot: le 1024 ns
    record(tx_total, 1024);               // le 1024 ns
    record(tx_total, 1025, 4);            // le 10240 ns
    record(tx_total, 10241);              // +Inf
    record(tx_total, uint64_t{1} << 40);  // beyond the last slot: +Inf
    drainer.drain();

    const auto samples = scrape(metrics);
    const std::string bucket = "netlatd_stack_latency_seconds_bucket";
    EXPECT_EQ(value(samples, bucket, with(kTxTotalTcp, "le", "2.56e-07")), 3.0);
    EXPECT_EQ(value(samples, bucket, with(kTxTotalTcp, "le", "1.024e-06")), 7.0);
    EXPECT_EQ(value(samples, bucket, with(kTxTotalTcp, "le", "1.024e-05")), 11.0);
    EXPECT_EQ(value(samples, bucket, with(kTxTotalTcp, "le", "+Inf")), 13.0);
    EXPECT_EQ(value(samples, "netlatd_stack_latency_seconds_count", kTxTotalTcp), 13.0);
    const double sum_ns = 1 + 512 + 771 + 1024 + 4100 + 10241 + std::pow(2.0, 40);
    EXPECT_NEAR(*value(samples, "netlatd_stack_latency_seconds_sum", kTxTotalTcp), sum_ns / 1e9,
                1e-9);
    // Other series untouched.
    EXPECT_EQ(value(samples, "netlatd_stack_latency_seconds_count",
                    {{"direction", "tx"}, {"segment", "total"}, {"protocol", "udp"}}),
              0.0);
}

TEST(Drainer, ExportsDeltasAcrossDrains) {
    Metrics metrics(config_with_bounds({1e-6}), "v", "l", "k");
    FakeMapReader reader;
    Drainer drainer(reader, metrics, {});
    HistTotals& totals = reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP);
    record(totals, 500, 5);
    drainer.drain();
    drainer.drain();  // nothing new: nothing added
    record(totals, 5000, 2);
    drainer.drain();

    const auto samples = scrape(metrics);
    EXPECT_EQ(value(samples, "netlatd_stack_latency_seconds_bucket",
                    with(kTxTotalTcp, "le", "1.024e-06")),
              5.0);
    EXPECT_EQ(value(samples, "netlatd_stack_latency_seconds_count", kTxTotalTcp), 7.0);
    EXPECT_NEAR(*value(samples, "netlatd_stack_latency_seconds_sum", kTxTotalTcp), 12500e-9, 1e-15);
    EXPECT_EQ(value(samples, "netlatd_drains_total", {}), 3.0);
}

TEST(Drainer, SlotCountersWrapModulo2To32) {
    Metrics metrics(config_with_bounds({1e-6}), "v", "l", "k");
    FakeMapReader reader;
    Drainer drainer(reader, metrics, {});
    HistTotals& totals = reader.hist(NETLAT_SEG_RX_STACK, NETLAT_PROTO_UDP);
    const unsigned slot = netlat_slot(500);
    totals.slots[slot] = 0xfffffff0u;
    totals.count = 0xfffffff0u;
    drainer.drain();
    totals.slots[slot] += 0x20;  // wraps to 0x10
    totals.count += 0x20;
    ASSERT_EQ(totals.slots[slot], 0x10u);
    drainer.drain();

    const std::map<std::string, std::string> series = {
        {"direction", "rx"}, {"segment", "stack"}, {"protocol", "udp"}};
    EXPECT_EQ(value(scrape(metrics), "netlatd_stack_latency_seconds_count", series),
              double{0xfffffff0u} + 0x20);
}

TEST(Drainer, RecreatedKeyStartsFromZero) {
    Metrics metrics(config_with_bounds({1e-6}), "v", "l", "k");
    FakeMapReader reader;
    Drainer drainer(reader, metrics, {});
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP), 500, 10);
    drainer.drain();
    reader.histograms.clear();  // evicted
    drainer.drain();
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP), 500, 3);  // recreated
    drainer.drain();
    EXPECT_EQ(value(scrape(metrics), "netlatd_stack_latency_seconds_count", kTxTotalTcp), 13.0);
}

TEST(Drainer, FamiliesAggregateUnlessLabelled) {
    for (bool family_label : {false, true}) {
        Config config = config_with_bounds({1e-6});
        config.labels.family = family_label;
        Metrics metrics(config, "v", "l", "k");
        FakeMapReader reader;
        Drainer drainer(reader, metrics, {});
        record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, NETLAT_FAMILY_IPV4), 500, 2);
        record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, NETLAT_FAMILY_IPV6), 500, 5);
        drainer.drain();
        const auto samples = scrape(metrics);
        const std::string count = "netlatd_stack_latency_seconds_count";
        if (family_label) {
            EXPECT_EQ(value(samples, count, with(kTxTotalTcp, "family", "ipv4")), 2.0);
            EXPECT_EQ(value(samples, count, with(kTxTotalTcp, "family", "ipv6")), 5.0);
            EXPECT_EQ(count_series(samples, count), 2u);  // created lazily
        } else {
            EXPECT_EQ(value(samples, count, kTxTotalTcp), 7.0);
            for (const Sample& sample : samples) EXPECT_EQ(sample.labels.count("family"), 0u);
        }
    }
}

TEST(Drainer, NetnsSeriesBeyondTheCapGoToOther) {
    Config config = config_with_bounds({1e-6});
    config.labels.netns = true;
    config.labels.max_series = 2;
    Metrics metrics(config, "v", "l", "k");
    FakeMapReader reader;
    Drainer drainer(reader, metrics, {});
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, 0, 4026531840u), 500, 1);
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, 0, 4026532001u), 500, 2);
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, 0, 4026532002u), 500, 3);
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, 0, 4026532003u), 500, 4);
    drainer.drain();
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, 0, 4026532003u), 500, 1);
    drainer.drain();

    const auto samples = scrape(metrics);
    const std::string count = "netlatd_stack_latency_seconds_count";
    EXPECT_EQ(value(samples, count, with(kTxTotalTcp, "netns", "4026531840")), 1.0);
    EXPECT_EQ(value(samples, count, with(kTxTotalTcp, "netns", "4026532001")), 2.0);
    EXPECT_EQ(value(samples, count, with(kTxTotalTcp, "netns", "4026532002")), std::nullopt);
    EXPECT_EQ(value(samples, count, with(kTxTotalTcp, "netns", "other")), 8.0);
    EXPECT_EQ(value(samples, "netlatd_series_overflow_total", {}), 8.0);
    EXPECT_EQ(count_series(samples, count), 3u);
}

// Every optional label is capped the same way: with only `family` on, the series beyond the cap go
// to family="other"; with both on, an excess series has both labels "other".
TEST(Drainer, FamilySeriesBeyondTheCapGoToOther) {
    Config config = config_with_bounds({1e-6});
    config.labels.family = true;
    config.labels.max_series = 1;
    Metrics metrics(config, "v", "l", "k");
    FakeMapReader reader;
    Drainer drainer(reader, metrics, {});
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, NETLAT_FAMILY_IPV4), 500, 2);
    drainer.drain();
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, NETLAT_FAMILY_IPV6), 500, 5);
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_UDP, NETLAT_FAMILY_IPV4), 500, 3);
    drainer.drain();

    const auto samples = scrape(metrics);
    const std::string count = "netlatd_stack_latency_seconds_count";
    EXPECT_EQ(value(samples, count, with(kTxTotalTcp, "family", "ipv4")), 2.0);
    EXPECT_EQ(value(samples, count, with(kTxTotalTcp, "family", "ipv6")), std::nullopt);
    EXPECT_EQ(value(samples, count, with(kTxTotalTcp, "family", "other")), 5.0);
    EXPECT_EQ(
        value(samples, count, {{"segment", "total"}, {"protocol", "udp"}, {"family", "other"}}),
        3.0);
    EXPECT_EQ(value(samples, "netlatd_series_overflow_total", {}), 8.0);
    EXPECT_EQ(count_series(samples, count), 3u);
}

TEST(Drainer, AllOptionalLabelsFoldTogetherBeyondTheCap) {
    Config config = config_with_bounds({1e-6});
    config.labels.family = true;
    config.labels.netns = true;
    config.labels.max_series = 2;
    Metrics metrics(config, "v", "l", "k");
    FakeMapReader reader;
    Drainer drainer(reader, metrics, {});
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, NETLAT_FAMILY_IPV4, 1u), 500, 1);
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, NETLAT_FAMILY_IPV6, 1u), 500, 2);
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, NETLAT_FAMILY_IPV4, 2u), 500, 3);
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, NETLAT_FAMILY_IPV6, 3u), 500, 4);
    drainer.drain();

    const auto samples = scrape(metrics);
    const std::string count = "netlatd_stack_latency_seconds_count";
    auto series = [](const char* family, const char* netns) {
        return with(with(kTxTotalTcp, "family", family), "netns", netns);
    };
    EXPECT_EQ(value(samples, count, series("ipv4", "1")), 1.0);
    EXPECT_EQ(value(samples, count, series("ipv6", "1")), 2.0);
    EXPECT_EQ(value(samples, count, series("other", "other")), 7.0);
    EXPECT_EQ(value(samples, "netlatd_series_overflow_total", {}), 7.0);
    EXPECT_EQ(count_series(samples, count), 3u);
}

// A sample's start stage counts its event before the sample lands in a histogram: reading the
// histograms first keeps every segment's count at or below its start stage's events.
TEST(Drainer, ReadsHistogramsBeforeCounters) {
    struct OrderedReader : FakeMapReader {
        std::vector<std::string> reads;
        HistSnapshot read_histograms() override {
            reads.push_back("histograms");
            return FakeMapReader::read_histograms();
        }
        std::vector<uint64_t> read_counters() override {
            reads.push_back("counters");
            return FakeMapReader::read_counters();
        }
    };
    Metrics metrics(config_with_bounds({1e-6}), "v", "l", "k");
    OrderedReader reader;
    Drainer drainer(reader, metrics, {});
    drainer.drain();
    EXPECT_EQ(reader.reads, (std::vector<std::string>{"histograms", "counters"}));
}

// A scrape waits while a drain updates the metrics, so it never sees half a drain.
TEST(Drainer, ScrapesWaitForTheUpdateLock) {
    Metrics metrics(config_with_bounds({1e-6}), "v", "l", "k");
    auto lock = metrics.update_lock();
    auto scrape = std::async(std::launch::async, [&] { return metrics.registry()->Collect(); });
    EXPECT_EQ(scrape.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
    lock.unlock();
    EXPECT_EQ(scrape.wait_for(std::chrono::seconds(5)), std::future_status::ready);
    EXPECT_FALSE(scrape.get().empty());
}

TEST(Drainer, IgnoresKeysOutsideTheTables) {
    Metrics metrics(config_with_bounds({1e-6}), "v", "l", "k");
    FakeMapReader reader;
    Drainer drainer(reader, metrics, {});
    record(reader.hist(NETLAT_SEG_COUNT, NETLAT_PROTO_TCP), 500, 1);
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_COUNT), 500, 1);
    drainer.drain();
    for (const Sample& sample : scrape(metrics)) {
        if (sample.name.starts_with("netlatd_stack_latency_seconds")) {
            EXPECT_EQ(sample.value, 0.0) << sample.name;
        }
    }
}

TEST(Drainer, CountersIncreaseByDeltas) {
    Metrics metrics(Config{}, "v", "l", "k");
    FakeMapReader reader;
    Drainer drainer(reader, metrics, {});
    reader.counters[NETLAT_CTR_STAGE(NETLAT_STAGE_RX_QUEUED)] = 10;
    reader.counters[NETLAT_CTR_UNMATCHED(NETLAT_SEG_RX_QUEUED_TO_SOCKET, NETLAT_UNMATCHED_STALE)] =
        3;
    drainer.drain();
    reader.counters[NETLAT_CTR_STAGE(NETLAT_STAGE_RX_QUEUED)] = 25;
    reader.counters[NETLAT_CTR_UNMATCHED(NETLAT_SEG_RX_QUEUED_TO_SOCKET, NETLAT_UNMATCHED_STALE)] =
        4;
    drainer.drain();
    drainer.drain();

    const auto samples = scrape(metrics);
    EXPECT_EQ(
        value(samples, "netlatd_stage_events_total", {{"direction", "rx"}, {"stage", "queued"}}),
        25.0);
    EXPECT_EQ(
        value(samples, "netlatd_stage_events_total", {{"direction", "tx"}, {"stage", "socket"}}),
        0.0);
    EXPECT_EQ(value(samples, "netlatd_unmatched_total",
                    {{"direction", "rx"}, {"segment", "queued_to_socket"}, {"reason", "stale"}}),
              4.0);
}

TEST(Drainer, EvictionsAreInsertedMinusDeletedMinusLiveAndNeverDecrease) {
    Metrics metrics(Config{}, "v", "l", "k");
    FakeMapReader reader;
    Drainer drainer(reader, metrics, {});
    auto set = [&](uint64_t inserted, uint64_t deleted, uint64_t live) {
        reader.counters[NETLAT_CTR_MAP_INSERT(NETLAT_MAP_TX_SKB)] = inserted;
        reader.counters[NETLAT_CTR_MAP_DELETE(NETLAT_MAP_TX_SKB)] = deleted;
        reader.entries[NETLAT_MAP_TX_SKB] = live;
        drainer.drain();
        return value(scrape(metrics), "netlatd_map_evictions_total", {{"map", "tx_skb"}});
    };
    EXPECT_EQ(set(10, 3, 4), 3.0);
    EXPECT_EQ(set(12, 5, 6), 3.0);  // a racy read says 1: the total stays
    EXPECT_EQ(set(20, 5, 6), 9.0);
    EXPECT_EQ(set(20, 20, 6), 9.0);  // more deleted + live than inserted: no negative estimate
    EXPECT_EQ(value(scrape(metrics), "netlatd_map_evictions_total", {{"map", "rx_skb"}}), 0.0);
}

TEST(Drainer, ProgramRunStatsByDeltas) {
    Metrics metrics(Config{}, "v", "l", "k");
    FakeMapReader reader;
    reader.programs[7] = {1'500'000'000, 10};
    Drainer drainer(reader, metrics, {{"tx_socket", 7}});
    const std::map<std::string, std::string> program = {{"program", "tx_socket"}};
    EXPECT_EQ(value(scrape(metrics), "netlatd_bpf_program_runs_total", program), 0.0);
    drainer.drain();
    reader.programs[7] = {2'500'000'000, 30, 4};
    drainer.drain();
    const auto samples = scrape(metrics);
    EXPECT_DOUBLE_EQ(*value(samples, "netlatd_bpf_program_run_seconds_total", program), 2.5);
    EXPECT_EQ(value(samples, "netlatd_bpf_program_runs_total", program), 30.0);
    EXPECT_EQ(value(samples, "netlatd_bpf_program_misses_total", program), 4.0);
}

TEST(Metrics, StageInfoIsReplacedAsAWhole) {
    Metrics metrics(Config{}, "v", "l", "k");
    metrics.set_stage_info({{"tx", "socket", "syscalls:sys_enter_sendto", "tracepoint"},
                            {"tx", "network", "POST_ROUTING", "netfilter"}});
    metrics.set_stage_info({{"tx", "socket", "sock_sendmsg", "kprobe"}});
    const auto samples = scrape(metrics);
    EXPECT_EQ(count_series(samples, "netlatd_stage_info"), 1u);
    EXPECT_EQ(value(samples, "netlatd_stage_info",
                    {{"direction", "tx"},
                     {"stage", "socket"},
                     {"hook", "sock_sendmsg"},
                     {"mode", "kprobe"}}),
              1.0);
}

// The store behind the --once report and the page gets the same deltas as the metrics: summed
// over families, per (segment, protocol), with the cumulative counters of the drain.
TEST(Drainer, FeedsTheLatencyStore) {
    Metrics metrics(Config{}, "0.1.0", "1.1.2", "6.18.0");
    FakeMapReader reader;
    Drainer drainer(reader, metrics, {});
    LatencyStore store;
    drainer.feed(&store);
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP), 5000, 3);
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP, NETLAT_FAMILY_IPV6), 9000, 2);
    reader.counters[NETLAT_CTR_UNMATCHED(NETLAT_SEG_TX_TOTAL, NETLAT_UNMATCHED_STALE)] = 7;
    drainer.drain();
    record(reader.hist(NETLAT_SEG_TX_TOTAL, NETLAT_PROTO_TCP), 5000, 1);
    drainer.drain();

    const auto snapshot = store.snapshot();
    const SeriesCounts& tcp = snapshot->total[NETLAT_SEG_TX_TOTAL][NETLAT_PROTO_TCP];
    EXPECT_EQ(tcp.count, 6u);
    EXPECT_EQ(tcp.sum_ns, 4u * 5000 + 2 * 9000);
    EXPECT_EQ(tcp.slots[netlat_slot(5000)], 4u);
    EXPECT_EQ(tcp.slots[netlat_slot(9000)], 2u);
    EXPECT_EQ(snapshot->last[NETLAT_SEG_TX_TOTAL][NETLAT_PROTO_TCP].count, 1u);
    EXPECT_EQ(snapshot->unmatched[NETLAT_SEG_TX_TOTAL][NETLAT_UNMATCHED_STALE], 7u);
    EXPECT_EQ(snapshot->drains, 2u);
}

}  // namespace
}  // namespace netlatd
