// Flow sampling and the overhead budget.
//
// sampling: N measures 1 in N flows, chosen by port pair: every message of a chosen flow is
// measured whole (its tx and rx totals), the others not at all, and leaving them out is not a miss.
// budget.cpu raises N while the programs cost more than the budget, and lowers it again after.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "bpf/netlat.h"
#include "harness.h"

using namespace netlatd::test;

namespace {

constexpr int kFlows = 24;
constexpr int kMessages = 40;
constexpr uint32_t kEvery = 4;

double unmatched(const std::vector<Sample>& samples, const std::string& reason) {
    return metric_value(samples, "netlatd_unmatched_total", {{"reason", reason}});
}

class FlowSampling : public ::testing::TestWithParam<std::string> {};

// Each flow's two ends are measured or not by their own (local, remote) pair: the client's end by
// (client, server), the server's by (server, client). The totals count exactly the messages of the
// chosen ends, and no miss is counted for the others.
TEST_P(FlowSampling, MeasuresWholeFlowsItsHashChooses) {
    const bool tcp = GetParam() == "tcp";
    // Over IPv6, counted in the family="ipv6" series: the harness's own scrapes of netlatd (IPv4)
    // are flows too, and sampled like any other.
    Daemon d("interval: 100ms\nlabels: {family: true}\nsampling: " + std::to_string(kEvery) + "\n");
    ASSERT_TRUE(d.running()) << d.log();
    const int server = free_tcp_port();
    int chosen_ends = 0;
    for (int i = 0; i < kFlows; ++i) {
        const int client = free_tcp_port();
        ASSERT_NE(client, server);
        chosen_ends += netlat_flow_sampled(uint16_t(client), uint16_t(server), kEvery);
        chosen_ends += netlat_flow_sampled(uint16_t(server), uint16_t(client), kEvery);
        run_request_response({.tcp = tcp, .ipv6 = true, .messages = kMessages, .server_port = server,
                              .gap = std::chrono::microseconds(100), .client_port = client});
    }
    // Both ends of 24 flows, 1 in 4 chosen: some but not all (else the test shows nothing).
    ASSERT_GT(chosen_ends, 0);
    ASSERT_LT(chosen_ends, 2 * kFlows);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    const auto samples = parse_metrics(d.scrape());
    EXPECT_DOUBLE_EQ(metric_value(samples, "netlatd_sampling_ratio", {}), 1.0 / kEvery);
    const double expected = double(chosen_ends) * kMessages;
    for (const std::string direction : {"tx", "rx"}) {
        const double totals =
            metric_value(samples, "netlatd_stack_latency_seconds_count",
                         {{"direction", direction}, {"segment", "total"}, {"protocol", GetParam()},
                          {"family", "ipv6"}});
        EXPECT_GE(totals, expected * 0.98) << direction << ": chosen ends' messages not measured";
        EXPECT_LE(totals, expected * 1.02) << direction << ": ends left out were measured";
    }
    // Left-out ends are neither samples nor misses (each would count 40 messages).
    EXPECT_LT(unmatched(samples, "no_start"), kMessages / 2) << d.log();
    EXPECT_EQ(d.stop(), 0) << d.log();
}

INSTANTIATE_TEST_SUITE_P(Protocols, FlowSampling, ::testing::Values("udp", "tcp"),
                         [](const auto& info) { return info.param; });

// A budget far below what a fast ping-pong costs: the share of flows measured drops while the load
// runs, and comes back to every flow once it stops.
TEST(Budget, SamplesSparserUnderLoadAndMeasuresEveryFlowAfter) {
    Daemon d("interval: 100ms\nbudget: {cpu: 0.0002, event_cost: 300ns}\n");
    ASSERT_TRUE(d.running()) << d.log();
    auto ratio = [&] {
        return metric_value(parse_metrics(d.scrape()), "netlatd_sampling_ratio", {});
    };
    EXPECT_DOUBLE_EQ(ratio(), 1.0);

    std::atomic<bool> stop{false};
    std::thread load([&] {
        while (!stop) {
            run_request_response({.tcp = false, .messages = 500, .gap = std::chrono::microseconds(0)});
        }
    });
    double lowest = 1.0, cpu = 0;
    for (int i = 0; i < 40 && lowest == 1.0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const auto samples = parse_metrics(d.scrape());
        lowest = std::min(lowest, metric_value(samples, "netlatd_sampling_ratio", {}));
        cpu = std::max(cpu, metric_value(samples, "netlatd_bpf_cpu_ratio", {}));
    }
    stop = true;
    load.join();
    EXPECT_LT(lowest, 1.0) << "the budget never thinned the sampling\n" << d.log();
    EXPECT_GT(cpu, 0.0002) << "the cost that broke the budget is not exported";

    double after = 0;
    for (int i = 0; i < 60 && after != 1.0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        after = ratio();
    }
    EXPECT_DOUBLE_EQ(after, 1.0) << "still sampling once the load stopped\n" << d.log();
    EXPECT_NE(d.log().find("overhead budget: BPF programs at"), std::string::npos) << d.log();
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
