// A send is timed once, whatever devices its packet crosses (netlatd filtered on namespace A, whose
// tx is the client's requests only; UDP request/response from A to B):
//  - a stacked device (macvlan on A's veth): the packet queues on the macvlan, then on the veth;
//    the driver stage is the bottom device's transmit (before the fix, the veth's queue started a
//    second join: about 2 tx totals per send);
//  - a tunnel (VXLAN over the veth pair, id 42, UDP 4789, overlay 10.79.0.0/24): the outer packet
//    carries the inner packet's socket but is not a send of it (before the fix: 2 tx totals per
//    send).
#include <gtest/gtest.h>

#include <thread>

#include "paths.h"

using namespace netlatd::test;

namespace {

constexpr int kMessages = 300;

void add_vxlan(const std::string& ns, const std::string& underlay, const std::string& local,
               const std::string& remote, const std::string& overlay) {
    run_steps({{"ip", "-n", ns, "link", "add", "vx42", "type", "vxlan", "id", "42", "dstport",
                "4789", "local", local, "remote", remote, "dev", underlay},
               {"ip", "-n", ns, "addr", "add", overlay + "/24", "dev", "vx42"},
               {"ip", "-n", ns, "link", "set", "vx42", "up"}});
}

// netlatd filtered on A's namespace, UDP request/response from A to server_addr in B: one tx
// total of UDP per send (within 2% + 4) and none of TCP.
void expect_each_send_timed_once(const NetnsPair& pair, const std::string& server_addr) {
    Daemon d("interval: 100ms\nfilters:\n  netns: [" + std::to_string(NetnsPair::inode(pair.ns_a)) +
             "]\n");
    ASSERT_TRUE(d.running()) << d.log();
    ASSERT_EQ(udp_echo(NetnsPair::path(pair.ns_a), NetnsPair::path(pair.ns_b), server_addr,
                       free_tcp_port(), kMessages),
              kMessages);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    auto s = parse_metrics(d.scrape());
    const double totals =
        metric_value(s, "netlatd_stack_latency_seconds_count",
                     {{"direction", "tx"}, {"segment", "total"}, {"protocol", "udp"}});
    EXPECT_GE(totals, kMessages * 0.98) << d.log();
    EXPECT_LE(totals, kMessages * 1.02 + 4) << "a send was timed more than once";
    EXPECT_EQ(metric_value(s, "netlatd_stack_latency_seconds_count",
                           {{"direction", "tx"}, {"segment", "total"}, {"protocol", "tcp"}}),
              0);
    // One-way messages: tx total against the send's TX_SOFTWARE stamp.
    Flow flow(false, NetnsPair::path(pair.ns_a), NetnsPair::path(pair.ns_b), server_addr);
    flow.ping(20);
    const auto [w, kernel] = measure_messages(d, flow, kMessages);
    expect_joined(w, "tx", "total", "udp", kMessages, "one-way to " + server_addr);
    expect_means_near_kernel(w, flow, kernel, kTx, "one-way to " + server_addr);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(Stacked, MacvlanOnVethIsOneSendWithTheVethAsDriver) {
    NetnsPair pair;
    run_steps({{"ip", "-n", pair.ns_a, "link", "add", "mv0", "link", pair.veth_a, "type", "macvlan",
                "mode", "bridge"},
               {"ip", "-n", pair.ns_a, "addr", "add", "10.80.0.1/24", "dev", "mv0"},
               {"ip", "-n", pair.ns_a, "link", "set", "mv0", "up"},
               {"ip", "-n", pair.ns_b, "addr", "add", "10.80.0.2/24", "dev", pair.veth_b}});
    expect_each_send_timed_once(pair, "10.80.0.2");
}

TEST(Tunnel, VxlanOuterPacketIsNotASecondSend) {
    NetnsPair pair;
    add_vxlan(pair.ns_a, pair.veth_a, pair.addr_a, pair.addr_b, "10.79.0.1");
    add_vxlan(pair.ns_b, pair.veth_b, pair.addr_b, pair.addr_a, "10.79.0.2");
    expect_each_send_timed_once(pair, "10.79.0.2");
}

}  // namespace
