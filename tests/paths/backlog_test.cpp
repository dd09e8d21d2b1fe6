// TCP backlogs across a veth pair: hundreds of segments wait on the receive queue while the reader
// sleeps, then are read. Each segment is one rx sample (joined by sequence when its last byte is
// read) and later messages of the same connection still join. UDP backlogs and datagrams queued
// before netlatd starts: udp_reads_test.cpp.
#include <gtest/gtest.h>
#include <linux/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "paths.h"

using namespace netlatd::test;

namespace {

// Data segments the socket has received so far (TCP_INFO). The sender has no TSO and the receiver
// no GRO, so every skb on the way is at most one segment and this counts skbs.
unsigned data_segments_in(int fd) {
    tcp_info info{};
    socklen_t len = sizeof(info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 0;
    return info.tcpi_data_segs_in;
}

TEST(Backlog, TcpSegmentsReadAfterAWaitAreEachJoined) {
    NetnsPair pair;
    const std::string a = NetnsPair::path(pair.ns_a), b = NetnsPair::path(pair.ns_b);
    set_offload(pair.ns_a, pair.veth_a, "tso", false);
    set_offload(pair.ns_b, pair.veth_b, "gro", false);
    Daemon d(paths_config({a, b}));
    ASSERT_TRUE(d.running()) << d.log();
    Flow flow(true, a, b, pair.addr_b);
    flow.ping(20);
    constexpr int kBacklog = 300;
    constexpr size_t kSize = 100;
    const std::string payload(kSize, 'b');
    Window w(d);
    unsigned segments = 0;
    for (int round = 0; round < 2; round++) {
        const unsigned before = data_segments_in(flow.rx);
        for (int i = 0; i < kBacklog; i++)
            ASSERT_EQ(write(flow.tx, payload.data(), kSize), static_cast<ssize_t>(kSize));
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        ASSERT_EQ(flow.receive(kBacklog * kSize), kBacklog * kSize);
        segments += data_segments_in(flow.rx) - before;
    }
    w.close();
    const std::string what = "TCP backlogs of " + std::to_string(kBacklog) + " writes (" +
                             std::to_string(segments) + " segments in 2 rounds) read after 30 ms";
    expect_joined(w, "rx", "queued_to_socket", "tcp", segments, what);
    expect_joined(w, "rx", "total", "tcp", segments, what);
    expect_later_messages_join(d, flow);
}

}  // namespace
