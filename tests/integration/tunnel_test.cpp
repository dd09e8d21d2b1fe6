// Tunnels: a VXLAN device sends its outer UDP packet with the inner packet's socket. That packet is
// not a send of the socket: each send is timed once, up to the tunnel device (before the fix, every
// UDP send over VXLAN gave two tx totals, the second for the outer packet).
//
// Topology: namespaces A and B joined by a veth pair (underlay 10.78.0.0/30), a VXLAN device on
// each (id 42, UDP 4789) with the overlay 10.79.0.0/24; UDP request/response from A to B over the
// overlay. netlatd is filtered on A's namespace: its tx is the client's requests only.
#include <gtest/gtest.h>

#include <thread>

#include "harness.h"
#include "netns_pair.h"

using namespace netlatd::test;

namespace {

constexpr int kMessages = 300;

void add_vxlan(const std::string& ns, const std::string& underlay, const std::string& local,
               const std::string& remote, const std::string& overlay) {
    for (const std::vector<std::string>& step :
         {std::vector<std::string>{"ip", "-n", ns, "link", "add", "vx42", "type", "vxlan", "id",
                                   "42", "dstport", "4789", "local", local, "remote", remote,
                                   "dev", underlay},
          {"ip", "-n", ns, "addr", "add", overlay + "/24", "dev", "vx42"},
          {"ip", "-n", ns, "link", "set", "vx42", "up"}}) {
        auto r = run_command(step);
        ASSERT_EQ(r.exit_code, 0) << step[4] << " " << step[5] << ": " << r.err;
    }
}

TEST(Tunnel, VxlanOuterPacketIsNotASecondSend) {
    NetnsPair pair;
    ASSERT_NO_FATAL_FAILURE(add_vxlan(pair.ns_a, pair.veth_a, pair.addr_a, pair.addr_b, "10.79.0.1"));
    ASSERT_NO_FATAL_FAILURE(add_vxlan(pair.ns_b, pair.veth_b, pair.addr_b, pair.addr_a, "10.79.0.2"));
    Daemon d("interval: 100ms\nfilters:\n  netns: [" + std::to_string(NetnsPair::inode(pair.ns_a)) +
             "]\n");
    ASSERT_TRUE(d.running()) << d.log();
    ASSERT_EQ(udp_echo(NetnsPair::path(pair.ns_a), NetnsPair::path(pair.ns_b), "10.79.0.2",
                       free_tcp_port(), kMessages),
              kMessages);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    auto s = parse_metrics(d.scrape());
    const double sends = metric_value(s, "netlatd_stack_latency_seconds_count",
                                      {{"direction", "tx"}, {"segment", "total"}, {"protocol", "udp"}});
    EXPECT_GE(sends, kMessages * 0.98) << d.log();
    EXPECT_LE(sends, kMessages * 1.02 + 4) << "the outer VXLAN packets were timed as sends too";
    EXPECT_EQ(metric_value(s, "netlatd_stack_latency_seconds_count",
                           {{"direction", "tx"}, {"segment", "total"}, {"protocol", "tcp"}}),
              0);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
