// Filters work on every stage (issue #3): with a filter on, every segment's sample count follows
// only the selected traffic; the other traffic, run at the same time, adds nothing.
//
// Two traffic sources of different sizes (kSelected and kOther UDP or TCP request/response
// exchanges) run against one netlatd; each latency series (direction, segment) must count at most
// the selected traffic's samples (+2%), and the segments every exchange passes through must count
// at least 95% of them. Had the other traffic been counted, it would add 300 or 600 per series.
#include <gtest/gtest.h>

#include <thread>

#include "harness.h"
#include "netns_pair.h"

using namespace netlatd::test;

namespace {

constexpr int kSelected = 200;
constexpr int kOther = 300;

std::string config_with(const std::string& filters) {
    return "interval: 100ms\nfilters:\n" + filters;
}

// The segments every request/response exchange of this protocol has a sample in, on both ends
// (tracepoint mode: UDP has no tx transport stage, so no socket_to_transport).
std::vector<std::pair<std::string, std::string>> expected_segments(const std::string& proto) {
    std::vector<std::pair<std::string, std::string>> s = {
        {"tx", "transport_to_network"}, {"tx", "network_to_device"},
        {"tx", "device_to_driver"},     {"tx", "total"},
        {"rx", "driver_to_device"},     {"rx", "device_to_network"},
        {"rx", "network_to_transport"}, {"rx", "transport_to_queued"},
        {"rx", "queued_to_socket"},     {"rx", "stack"},
        {"rx", "transport_to_socket"},  {"rx", "total"}};
    if (proto == "tcp") s.push_back({"tx", "socket_to_transport"});
    return s;
}

// Every series counts at most `expected_per_segment` (+2%) and the expected segments at least 95%
// of it.
void check_counts(Daemon& d, const std::string& proto, double expected_per_segment) {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));  // a few drain intervals
    auto samples = parse_metrics(d.scrape());
    for (const auto& s : samples) {
        if (s.name != "netlatd_stack_latency_seconds_count" || s.labels.at("protocol") != proto)
            continue;
        EXPECT_LE(s.value, expected_per_segment * 1.02)
            << s.labels.at("direction") << " " << s.labels.at("segment")
            << " counts traffic the filter excludes";
    }
    for (const auto& [direction, segment] : expected_segments(proto)) {
        const double count =
            metric_value(samples, "netlatd_stack_latency_seconds_count",
                         {{"direction", direction}, {"segment", segment}, {"protocol", proto}});
        EXPECT_GE(count, 0.95 * expected_per_segment)
            << direction << " " << segment << ": " << count << " samples";
    }
}

class PortFilters : public ::testing::TestWithParam<std::string> {};

// local_ports: [A]: the server on A sees requests (rx) and sends replies (tx), all on local port A;
// the clients' ends (ephemeral local ports) and port B's server are excluded.
TEST_P(PortFilters, LocalPortSelectsOnlyItsTraffic) {
    const bool tcp = GetParam() == "tcp";
    const int a = free_tcp_port(), b = free_tcp_port();
    Daemon d(config_with("  local_ports: [" + std::to_string(a) + "]\n"));
    ASSERT_TRUE(d.running()) << d.log();
    run_request_response({.tcp = tcp, .messages = kSelected, .server_port = a});
    run_request_response({.tcp = tcp, .messages = kOther, .server_port = b});
    check_counts(d, GetParam(), kSelected);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

// remote_ports: [A]: the client of A's server (remote port A) on both directions.
TEST_P(PortFilters, RemotePortSelectsOnlyItsTraffic) {
    const bool tcp = GetParam() == "tcp";
    const int a = free_tcp_port(), b = free_tcp_port();
    Daemon d(config_with("  remote_ports: [" + std::to_string(a) + "]\n"));
    ASSERT_TRUE(d.running()) << d.log();
    run_request_response({.tcp = tcp, .messages = kSelected, .server_port = a});
    run_request_response({.tcp = tcp, .messages = kOther, .server_port = b});
    check_counts(d, GetParam(), kSelected);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

// The same with a UDP client that sends with sendto() on an unconnected socket: the socket has no
// remote port, so only the packet's destination says it is port A's traffic.
TEST(PortFilters, RemotePortSelectsUnconnectedUdpSends) {
    const int a = free_tcp_port(), b = free_tcp_port();
    Daemon d(config_with("  remote_ports: [" + std::to_string(a) + "]\n"));
    ASSERT_TRUE(d.running()) << d.log();
    run_request_response(
        {.tcp = false, .messages = kSelected, .server_port = a, .connect_client = false});
    run_request_response(
        {.tcp = false, .messages = kOther, .server_port = b, .connect_client = false});
    check_counts(d, "udp", kSelected);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

INSTANTIATE_TEST_SUITE_P(Proto, PortFilters, ::testing::Values("udp", "tcp"),
                         [](const auto& info) { return info.param; });

// Loopback traffic and veth traffic between two namespaces of our own, UDP. netlatd hooks the
// netfilter stages of a namespace when it discovers it (every drain interval): traffic starts
// after the log says both are hooked. An interface filter selects both ends of an exchange (both
// are on lo, or on the two veths), so each segment counts 2 samples per exchange.
struct Mixed {
    NetnsPair pair;
    int port = free_tcp_port();
};

void wait_hooked(Daemon& d, const NetnsPair& pair) {
    for (const auto& ns : {pair.ns_a, pair.ns_b}) {
        ASSERT_TRUE(wait_for_log(d, "network namespace " + std::to_string(NetnsPair::inode(ns)) +
                                        ": netfilter stages hooked"))
            << ns << " not hooked:\n"
            << d.log();
    }
}

void run_loopback(int port, int messages) {
    ASSERT_EQ(udp_echo("", "", "127.0.0.1", port, messages), messages);
}

void run_veth(const Mixed& m, int messages) {
    ASSERT_EQ(udp_echo(NetnsPair::path(m.pair.ns_a), NetnsPair::path(m.pair.ns_b), m.pair.addr_b,
                       m.port, messages),
              messages);
}

// Runs netlatd with one filter, then `selected` exchanges that the filter keeps and `other` that
// it drops (veth first or loopback first), and checks every series counts only the kept ones.
void expect_only(Mixed& m, const std::string& filter, bool veth_selected, int expected) {
    Daemon d(config_with(filter));
    ASSERT_TRUE(d.running()) << d.log();
    ASSERT_NO_FATAL_FAILURE(wait_hooked(d, m.pair));
    ASSERT_NO_FATAL_FAILURE(veth_selected ? run_veth(m, kSelected) : run_loopback(m.port, kSelected));
    ASSERT_NO_FATAL_FAILURE(veth_selected ? run_loopback(m.port, kOther) : run_veth(m, kOther));
    check_counts(d, "udp", expected);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(InterfaceFilter, LoopbackOnlyExcludesVethTraffic) {
    Mixed m;
    expect_only(m, "  interfaces: [lo]\n", false, 2 * kSelected);
}

TEST(InterfaceFilter, VethNamesSelectVethTrafficOnly) {
    Mixed m;
    expect_only(m, "  interfaces: [" + m.pair.veth_a + ", " + m.pair.veth_b + "]\n", true, 2 * kSelected);
}

// netns: [inode of B]: only what happens inside B: the server's rx (requests) and tx (replies);
// the client's end in A and the loopback traffic in netlatd's namespace are excluded.
TEST(NetnsFilter, NamespaceInodeSelectsOnlyThatNamespace) {
    Mixed m;
    expect_only(m, "  netns: [" + std::to_string(NetnsPair::inode(m.pair.ns_b)) + "]\n", true, kSelected);
}

// netns: [inode of A]: the client's end only; B's server and the loopback traffic add nothing.
TEST(NetnsFilter, OtherNamespaceInodeSelectsTheOtherEnd) {
    Mixed m;
    expect_only(m, "  netns: [" + std::to_string(NetnsPair::inode(m.pair.ns_a)) + "]\n", true, kSelected);
}

}  // namespace
