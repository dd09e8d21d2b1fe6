// Segmentation offloads on a veth pair: a GSO super-packet is one tx sample per send call whether
// the device takes it whole (offload on) or the stack segments it in software before the driver
// (offload off), and each skb the receiver sees is one rx sample (docs/SEMANTICS.md, GRO and GSO).
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "paths.h"

using namespace netlatd::test;

namespace {

constexpr int kCalls = 200;

struct Offloads {
    std::string name;
    bool tso, gso;
};
void PrintTo(const Offloads& o, std::ostream* os) {
    *os << o.name;
}

// A veth pair whose sending side has `feature` set as asked and whose receiving side has no GRO
// (each skb on the wire is one skb at the receiver), with netlatd on both namespaces.
struct GsoPair {
    NetnsPair pair;
    const std::string a = NetnsPair::path(pair.ns_a), b = NetnsPair::path(pair.ns_b);
    Daemon d{paths_config({a, b})};
    explicit GsoPair(const std::vector<std::pair<std::string, bool>>& features) {
        for (const auto& [feature, on] : features) set_offload(pair.ns_a, pair.veth_a, feature, on);
        set_offload(pair.ns_b, pair.veth_b, "gro", false);
    }
};

// One send of 4 x 1000 bytes with UDP_SEGMENT 1000: the receiver reads 4 datagrams. With
// tx-udp-segmentation on the veth passes the super-packet whole and the receiving UDP splits it;
// off, the sender's device layer splits it before the driver.
class UdpSegment : public ::testing::TestWithParam<bool> {};

TEST_P(UdpSegment, OneTxSamplePerCallOneRxSamplePerDatagram) {
    GsoPair p({{"tx-udp-segmentation", GetParam()}});
    ASSERT_TRUE(p.d.running()) << p.d.log();
    Flow flow(false, p.a, p.b, p.pair.addr_b);
    flow.ping(20);
    constexpr int kSegments = 4, kGsoSize = 1000;
    const int gso_size = kGsoSize;
    ASSERT_EQ(setsockopt(flow.tx, SOL_UDP, UDP_SEGMENT, &gso_size, sizeof(gso_size)), 0);
    const auto [w, kernel] = measure_messages(p.d, flow, kCalls, kSegments * kGsoSize, kSegments);
    const std::string what =
        std::string("UDP_SEGMENT, tx-udp-segmentation ") + (GetParam() ? "on" : "off");
    expect_joined(w, "tx", "total", "udp", kCalls, what);
    expect_joined(w, "rx", "total", "udp", kCalls * kSegments, what);
    // The send's stamp goes with the first segment (__udp_gso_segment) or the whole super-packet;
    // each datagram read has its receive stamp (those split by the receiving UDP inherit it).
    expect_means_near_kernel(w, flow, kernel, kTxRx, what);
    const int off = 0;
    setsockopt(flow.tx, SOL_UDP, UDP_SEGMENT, &off, sizeof(off));
    expect_later_messages_join(p.d, flow);
}

INSTANTIATE_TEST_SUITE_P(Gso, UdpSegment, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "OffloadOn" : "OffloadOff"; });

// TCP messages of 4000 bytes (about 3 segments of the veth's MSS): TSO on, one skb end to end;
// TSO off with GSO on, TCP builds one skb that the device layer segments before the driver; both
// off, TCP builds one skb per segment. Either way one tx total per write.
class TcpOffloads : public ::testing::TestWithParam<Offloads> {};

TEST_P(TcpOffloads, OneTxSamplePerCallOneRxSamplePerSkb) {
    const Offloads o = GetParam();
    GsoPair p({{"tso", o.tso}, {"gso", o.gso}});
    ASSERT_TRUE(p.d.running()) << p.d.log();
    Flow flow(true, p.a, p.b, p.pair.addr_b);
    flow.ping(20, 4000);
    int mss = 0;
    socklen_t len = sizeof(mss);
    ASSERT_EQ(getsockopt(flow.tx, IPPROTO_TCP, TCP_MAXSEG, &mss, &len), 0);
    const int skbs = o.tso ? 1 : (4000 + mss - 1) / mss;
    const auto [w, kernel] = measure_messages(p.d, flow, kCalls, 4000);
    const std::string what = "TCP, " + o.name + " (MSS " + std::to_string(mss) + ")";
    expect_joined(w, "tx", "total", "tcp", kCalls, what);
    expect_joined(w, "rx", "total", "tcp", kCalls * skbs, what);
    // The kernel's stamps judge TSO only: one skb, stamped at the driver and at the receiver. A
    // segmented send's TX_SOFTWARE stamp goes with the segment holding its last byte
    // (tcp_gso_tstamp), while tx total ends at the first segment's hand-off (about 2.5 us earlier
    // here for 3 segments); the read completes with the last skb's receive stamp, while rx samples
    // are per skb.
    expect_means_near_kernel(w, flow, kernel, o.tso ? kTxRx : kNoStamps, what);
    expect_later_messages_join(p.d, flow);
}

INSTANTIATE_TEST_SUITE_P(Gso, TcpOffloads,
                         ::testing::Values(Offloads{"TsoOn", true, true},
                                           Offloads{"SoftwareGso", false, true},
                                           Offloads{"NoOffload", false, false}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
