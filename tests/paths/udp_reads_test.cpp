// UDP reads are joined to the datagram they take by its position on the socket's queue, so no
// event can shift later pairs: datagrams queued before netlatd started, a backlog read after a
// wait, peeks before reads and empty datagrams. Each case counts the rx samples of the receiving
// socket (netlatd filtered on its port) against the datagrams read.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <thread>

#include "harness.h"

using namespace netlatd::test;

namespace {

// A bound UDP receiver on 127.0.0.1 and a sender connected to it.
struct UdpPair {
    LoopbackSocket bound = bind_loopback(SOCK_DGRAM);
    int rx = bound.fd;
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    int port = bound.port;
    UdpPair() {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<uint16_t>(port));
        connect(tx, reinterpret_cast<sockaddr*>(&a), sizeof(a));
        const int big = 4 << 20;
        setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    }
    ~UdpPair() {
        close(rx);
        close(tx);
    }
    void send(size_t bytes = 64) const {
        const std::string payload(bytes, 'u');
        ASSERT_EQ(::send(tx, payload.data(), payload.size(), 0), static_cast<ssize_t>(bytes));
    }
    void read(int flags = 0) const {
        char buf[2048];
        ASSERT_GE(recv(rx, buf, sizeof(buf), flags), 0);
    }
};

std::string config_for(int port) {
    return "interval: 100ms\nfilters:\n  local_ports: [" + std::to_string(port) + "]\n";
}

double rx_count(const std::vector<Sample>& s, const std::string& segment) {
    return metric_value(s, "netlatd_stack_latency_seconds_count",
                        {{"direction", "rx"}, {"segment", segment}, {"protocol", "udp"}});
}

double rx_no_start(const std::vector<Sample>& s) {
    return metric_value(
        s, "netlatd_unmatched_total",
        {{"direction", "rx"}, {"segment", "queued_to_socket"}, {"reason", "no_start"}});
}

std::vector<Sample> settle_and_scrape(Daemon& d) {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));  // > 3 drain intervals
    return parse_metrics(d.scrape());
}

// At least 99% of `reads` have an rx total sample, and none has two.
void expect_reads_joined(const std::vector<Sample>& s, int reads, const Daemon& d) {
    EXPECT_GE(rx_count(s, "total"), reads * 0.99) << d.log();
    EXPECT_LE(rx_count(s, "total"), reads);
}

// 40 datagrams wait on the socket when netlatd starts; their reads are no_start, and every later
// ping-pong read still joins its own datagram (before: every later read was no_start).
TEST(UdpReads, DatagramsQueuedBeforeStartDoNotShiftLaterReads) {
    UdpPair p;
    for (int i = 0; i < 40; i++) p.send();
    Daemon d(config_for(p.port));
    ASSERT_TRUE(d.running()) << d.log();
    constexpr int kMessages = 200;
    for (int i = 0; i < 40 + kMessages; i++) {
        if (i >= 40) p.send();
        p.read();
    }
    auto s = settle_and_scrape(d);
    expect_reads_joined(s, kMessages, d);
    EXPECT_EQ(rx_no_start(s), 40);
}

// A receiver and a netlatd filtered on its port, started before any datagram.
class UdpReadsMeasured : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_TRUE(d.running()) << d.log(); }
    UdpPair p;
    Daemon d{config_for(p.port)};
};

// A backlog of 300 datagrams read after 30 ms: each is joined, so the wait shows in every sample
// (before: 16 of each 100 were joined, the longest waits dropped).
TEST_F(UdpReadsMeasured, BacklogReadAfterAWaitIsMeasuredWhole) {
    constexpr int kBacklog = 300;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < kBacklog; i++) p.send();
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        for (int i = 0; i < kBacklog; i++) p.read();
    }
    auto s = settle_and_scrape(d);
    EXPECT_GE(rx_count(s, "queued_to_socket"), 2 * kBacklog * 0.99) << d.log();
    EXPECT_LE(rx_count(s, "total"), 2 * kBacklog);
    // Every datagram waited at least the 30 ms sleep (the bound leaves room for the default
    // buckets, 2^(1/2) apart, and Prometheus-style interpolation inside them).
    auto buckets = histogram_buckets(
        s, "netlatd_stack_latency_seconds",
        {{"direction", "rx"}, {"segment", "queued_to_socket"}, {"protocol", "udp"}});
    EXPECT_GE(histogram_quantile(0.05, buckets), 0.02);
}

// MSG_PEEK before each read: the peek is not a read; the read joins its datagram.
TEST_F(UdpReadsMeasured, PeekThenReadJoinsEachDatagramOnce) {
    constexpr int kMessages = 200;
    for (int i = 0; i < kMessages; i++) {
        p.send();
        p.read(MSG_PEEK);
        p.read();
    }
    auto s = settle_and_scrape(d);
    expect_reads_joined(s, kMessages, d);
    EXPECT_EQ(rx_no_start(s), 0);
}

// Empty datagrams are datagrams: read() returns 0 and the read is joined.
TEST_F(UdpReadsMeasured, EmptyDatagramsAreJoined) {
    constexpr int kMessages = 200;
    for (int i = 0; i < kMessages; i++) {
        p.send(0);
        p.read();
    }
    auto s = settle_and_scrape(d);
    expect_reads_joined(s, kMessages, d);
}

}  // namespace
