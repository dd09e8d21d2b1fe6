// The report room on the host: percentiles and max from slots with known inputs, log2 display
// buckets, layer shares derived from the segment table, the store fed like the drainer feeds it,
// and the shape of the terminal report and the JSON document.
#include "daemon/report/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "bpf/netlat.h"
#include "daemon/model/names.h"
#include "daemon/report/histogram_stats.h"
#include "daemon/report/latency_store.h"

namespace netlatd {
namespace {

void record(SeriesCounts& series, uint64_t value_ns, uint64_t n = 1) {
    series.slots[netlat_slot(value_ns)] += n;
    series.count += n;
    series.sum_ns += value_ns * n;
}

// Percentiles are accurate to the slot width: within 1/16 of the true value.
void expect_within_slot(std::optional<double> estimate, double truth) {
    ASSERT_TRUE(estimate.has_value());
    EXPECT_NEAR(*estimate, truth, truth / 16) << "estimate " << *estimate << " for " << truth;
}

TEST(Percentiles, EmptyHistogramHasNone) {
    const SlotCounts empty{};
    EXPECT_FALSE(quantile_ns(empty, 0.5));
    EXPECT_FALSE(max_ns(empty));
    const LatencyStats stats = stats_of(SeriesCounts{});
    EXPECT_EQ(stats.count, 0u);
    EXPECT_FALSE(stats.p99_ns);
    EXPECT_FALSE(stats.mean_ns);
}

TEST(Percentiles, UniformValuesWithinTheSlotWidth) {
    SeriesCounts series;
    for (uint64_t v = 1; v <= 10000; ++v) record(series, v * 100);  // 100ns .. 1ms
    const LatencyStats stats = stats_of(series);
    EXPECT_EQ(stats.count, 10000u);
    expect_within_slot(stats.p50_ns, 500000);
    expect_within_slot(stats.p90_ns, 900000);
    expect_within_slot(stats.p99_ns, 990000);
    // Max is the upper edge of the highest slot: never below the true max, at most a slot above.
    ASSERT_TRUE(stats.max_ns);
    EXPECT_GE(*stats.max_ns, 1000000);
    EXPECT_LE(*stats.max_ns, 1000000 * (1 + 1.0 / 16));
    EXPECT_DOUBLE_EQ(*stats.mean_ns, 500050);
}

TEST(Percentiles, SingleValueStaysInsideItsSlot) {
    SeriesCounts series;
    record(series, 18000, 7);
    const unsigned slot = netlat_slot(18000);
    for (double q : {0.0, 0.5, 0.99, 1.0}) {
        const auto p = quantile_ns(series.slots, q);
        ASSERT_TRUE(p);
        EXPECT_GE(*p, static_cast<double>(slot_lower_ns(slot)));
        EXPECT_LE(*p, static_cast<double>(netlat_slot_upper_ns(slot)));
    }
    EXPECT_EQ(*max_ns(series.slots), static_cast<double>(netlat_slot_upper_ns(slot)));
}

TEST(Percentiles, TwoClustersSplitAtTheRank) {
    SeriesCounts series;
    record(series, 2000, 90);
    record(series, 64000, 10);
    expect_within_slot(quantile_ns(series.slots, 0.5), 2000);
    expect_within_slot(quantile_ns(series.slots, 0.89), 2000);
    expect_within_slot(quantile_ns(series.slots, 0.95), 64000);
}

TEST(SlotEdges, LowerEdgeIsThePreviousUpperEdge) {
    EXPECT_EQ(slot_lower_ns(0), 0u);
    for (unsigned slot = 1; slot < NETLAT_SLOTS; ++slot) {
        EXPECT_EQ(slot_lower_ns(slot), netlat_slot_upper_ns(slot - 1));
        EXPECT_LT(slot_lower_ns(slot), netlat_slot_upper_ns(slot));
    }
}

TEST(Log2Buckets, MicrosecondScaleWithReadableLabels) {
    SeriesCounts series;
    record(series, 20000, 186);  // 20us
    record(series, 5000, 3);     // 5us
    const auto buckets = log2_buckets(series.slots);
    ASSERT_EQ(buckets.size(), 3u);  // [4us, 8us), [8us, 16us) empty, [16us, 32us)
    EXPECT_EQ(buckets[0].label, "[4us, 8us)");
    EXPECT_EQ(buckets[0].count, 3u);
    EXPECT_EQ(buckets[1].label, "[8us, 16us)");
    EXPECT_EQ(buckets[1].count, 0u);
    EXPECT_EQ(buckets[2].label, "[16us, 32us)");
    EXPECT_EQ(buckets[2].lo_ns, 16000u);
    EXPECT_EQ(buckets[2].hi_ns, 32000u);
    EXPECT_EQ(buckets[2].count, 186u);
}

TEST(Log2Buckets, NanosecondsBelowAMicrosecondAndEveryCountKept) {
    SeriesCounts series;
    for (uint64_t v = 1; v < 5000000; v = v * 3 / 2 + 1) record(series, v, 2);
    uint64_t total = 0;
    for (const auto& bucket : log2_buckets(series.slots)) {
        total += bucket.count;
        EXPECT_LT(bucket.lo_ns, bucket.hi_ns);
    }
    EXPECT_EQ(total, series.count);
    SeriesCounts small;
    record(small, 300);
    EXPECT_EQ(log2_buckets(small.slots).at(0).label, "[256ns, 512ns)");
    SeriesCounts edge;
    record(edge, 700);
    EXPECT_EQ(log2_buckets(edge.slots).at(0).label, "[512ns, 1us)");
}

TEST(FormatNs, ThreeDigitsInTheLargestUnit) {
    EXPECT_EQ(format_ns(812), "812ns");
    EXPECT_EQ(format_ns(18234), "18.2us");
    EXPECT_EQ(format_ns(999.9), "1us");
    EXPECT_EQ(format_ns(999960), "1ms");
    EXPECT_EQ(format_ns(1500000), "1.5ms");
    EXPECT_EQ(format_ns(2.05e9), "2.05s");
    EXPECT_EQ(format_ns(4e12), "4000s");
    EXPECT_EQ(format_ns(std::nullopt), "-");
}

TEST(Layers, ConsecutiveStagesOfOneDirectionFromTheTable) {
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        const auto& s = names::kSegments[segment];
        EXPECT_EQ(is_layer_segment(segment), s.to == s.from + 1) << s.segment;
    }
    EXPECT_TRUE(is_layer_segment(NETLAT_SEG_TX_SOCKET_TO_TRANSPORT));
    EXPECT_TRUE(is_layer_segment(NETLAT_SEG_RX_QUEUED_TO_SOCKET));
    EXPECT_FALSE(is_layer_segment(NETLAT_SEG_TX_TOTAL));
    EXPECT_FALSE(is_layer_segment(NETLAT_SEG_RX_STACK));
    EXPECT_FALSE(is_layer_segment(NETLAT_SEG_RX_TRANSPORT_TO_SOCKET));
    EXPECT_EQ(total_segment(NETLAT_DIR_TX), unsigned{NETLAT_SEG_TX_TOTAL});
    EXPECT_EQ(total_segment(NETLAT_DIR_RX), unsigned{NETLAT_SEG_RX_TOTAL});
}

TEST(Layers, TheShareNoteNamesTheCompositeSegments) {
    const std::string note = share_scope_note();
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        const std::string name = std::string(names::direction_of_segment(segment)) + " " +
                                 std::string(names::kSegments[segment].segment);
        EXPECT_EQ(note.find(name) != std::string::npos, !is_layer_segment(segment)) << name;
    }
    EXPECT_NE(note.find("rx stack"), std::string::npos) << note;
}

TEST(Layers, SharesOfTheDirectionsLayerSum) {
    LatencySnapshot snapshot;
    record(snapshot.total[NETLAT_SEG_TX_SOCKET_TO_TRANSPORT][NETLAT_PROTO_TCP], 1000, 10);
    record(snapshot.total[NETLAT_SEG_TX_TRANSPORT_TO_NETWORK][NETLAT_PROTO_UDP], 3000, 10);
    record(snapshot.total[NETLAT_SEG_TX_TOTAL][NETLAT_PROTO_TCP], 999999, 10);  // not a layer
    const auto shares = layer_shares(snapshot);
    EXPECT_DOUBLE_EQ(*shares[NETLAT_SEG_TX_SOCKET_TO_TRANSPORT], 0.25);
    EXPECT_DOUBLE_EQ(*shares[NETLAT_SEG_TX_TRANSPORT_TO_NETWORK], 0.75);
    EXPECT_DOUBLE_EQ(*shares[NETLAT_SEG_TX_NETWORK_TO_DEVICE], 0.0);
    EXPECT_FALSE(shares[NETLAT_SEG_TX_TOTAL]);
    EXPECT_FALSE(shares[NETLAT_SEG_RX_DRIVER_TO_DEVICE]) << "rx has no samples";
}

netlat_hist_key key_of(unsigned segment, unsigned protocol, unsigned family = NETLAT_FAMILY_IPV4) {
    netlat_hist_key key{};
    key.segment = static_cast<__u8>(segment);
    key.protocol = static_cast<__u8>(protocol);
    key.family = static_cast<__u8>(family);
    return key;
}

TEST(Store, AccumulatesDrainsAndKeepsTheLastOne) {
    LatencyStore store;
    std::array<uint32_t, NETLAT_SLOTS> deltas{};
    deltas[netlat_slot(5000)] = 3;
    store.add(key_of(NETLAT_SEG_RX_TOTAL, NETLAT_PROTO_TCP), deltas, 3, 15000);
    store.add(key_of(NETLAT_SEG_RX_TOTAL, NETLAT_PROTO_TCP, NETLAT_FAMILY_IPV6), deltas, 3, 15000);
    store.add(key_of(NETLAT_SEG_COUNT, NETLAT_PROTO_TCP), deltas, 3, 15000);  // ignored
    std::vector<uint64_t> counters(NETLAT_CTR_COUNT, 0);
    counters[NETLAT_CTR_UNMATCHED(NETLAT_SEG_RX_TOTAL, NETLAT_UNMATCHED_STALE)] = 4;
    std::array<uint64_t, NETLAT_MAP_COUNT> evictions{};
    evictions[NETLAT_MAP_RX_SKB] = 2;
    store.commit(counters, evictions);
    store.add(key_of(NETLAT_SEG_RX_TOTAL, NETLAT_PROTO_UDP), deltas, 3, 15000);
    store.commit(counters, evictions);

    const auto snapshot = store.snapshot();
    EXPECT_EQ(snapshot->drains, 2u);
    EXPECT_EQ(snapshot->total[NETLAT_SEG_RX_TOTAL][NETLAT_PROTO_TCP].count, 6u);
    EXPECT_EQ(snapshot->total[NETLAT_SEG_RX_TOTAL][NETLAT_PROTO_UDP].count, 3u);
    EXPECT_EQ(snapshot->merged(NETLAT_SEG_RX_TOTAL).count, 9u);
    EXPECT_EQ(snapshot->merged(NETLAT_SEG_RX_TOTAL).slots[netlat_slot(5000)], 9u);
    EXPECT_EQ(snapshot->last[NETLAT_SEG_RX_TOTAL][NETLAT_PROTO_TCP].count, 0u);
    EXPECT_EQ(snapshot->last[NETLAT_SEG_RX_TOTAL][NETLAT_PROTO_UDP].count, 3u);
    EXPECT_EQ(snapshot->unmatched[NETLAT_SEG_RX_TOTAL][NETLAT_UNMATCHED_STALE], 4u);
    EXPECT_EQ(snapshot->evictions[NETLAT_MAP_RX_SKB], 2u);
}

LatencySnapshot sample_snapshot() {
    LatencySnapshot snapshot;
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        record(snapshot.total[segment][NETLAT_PROTO_TCP], 1000 * (segment + 1), 100);
        record(snapshot.total[segment][NETLAT_PROTO_UDP], 3000 * (segment + 1), 50);
    }
    snapshot.drains = 9;
    snapshot.elapsed = std::chrono::seconds(8);
    return snapshot;
}

ReportContext sample_context() {
    return {"0.1.0",
            "6.18.0",
            "auto",
            std::chrono::milliseconds(1000),
            {{"tx", "socket", "sys_enter", "tracepoint"}, {"tx", "transport", "udp:none", "none"}}};
}

TEST(TerminalReport, EverySegmentHistogramTableAndShares) {
    const std::string text = terminal_report(sample_snapshot(), sample_context());
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        const std::string name = std::string(names::direction_of_segment(segment)) + " " +
                                 std::string(names::kSegments[segment].segment);
        EXPECT_NE(text.find("\n@" + name + " ("), std::string::npos) << name << "\n" << text;
    }
    EXPECT_NE(text.find("sys_enter (tracepoint)"), std::string::npos) << text;
    EXPECT_NE(text.find("udp:none (none)"), std::string::npos) << text;
    EXPECT_NE(text.find("|@@@@"), std::string::npos) << text;
    EXPECT_NE(text.find("p50"), std::string::npos);
    EXPECT_NE(text.find("where the time goes"), std::string::npos);
    EXPECT_NE(text.find("1/16"), std::string::npos) << "states the accuracy";
}

TEST(JsonReport, SegmentsOfBothDirectionsWithFigures) {
    const auto doc = json_report(sample_snapshot(), sample_context());
    unsigned segments = 0;
    for (const auto& direction : doc.at("directions")) {
        double shares = 0;
        for (const auto& s : direction.at("segments")) {
            ++segments;
            EXPECT_EQ(s.at("count"), 150);
            EXPECT_EQ(s.at("protocols").at("tcp").at("count"), 100);
            EXPECT_FALSE(s.at("p99_ns").is_null());
            EXPECT_FALSE(s.at("log2").empty());
            if (s.at("layer")) shares += s.at("share").get<double>();
        }
        EXPECT_NEAR(shares, 1.0, 1e-9) << direction.at("direction");
    }
    EXPECT_EQ(segments, unsigned{NETLAT_SEG_COUNT});
    EXPECT_EQ(doc.at("stages").size(), unsigned{NETLAT_STAGE_COUNT});
    EXPECT_EQ(doc.at("directions").at(0).at("total_segment"), "total");
}

TEST(SummaryLines, OnePerDirectionOverThePeriod) {
    const LatencySnapshot before = sample_snapshot();
    LatencySnapshot now = before;
    record(now.total[NETLAT_SEG_TX_TOTAL][NETLAT_PROTO_TCP], 40000, 20);
    const auto lines = summary_lines(now, &before);
    ASSERT_EQ(lines.size(), size_t{NETLAT_DIR_COUNT});
    EXPECT_EQ(lines[0], "tx total (socket L5 -> driver L2): 20 samples, p50 39.9us, p99 40.9us")
        << lines[0];
    EXPECT_EQ(lines[1].find("rx total (driver L2 -> socket L5): 0 samples, p50 -, p99 -"), 0u)
        << lines[1];
    EXPECT_NE(summary_lines(now, nullptr)[0].find("170 samples"), std::string::npos);
}

}  // namespace
}  // namespace netlatd
