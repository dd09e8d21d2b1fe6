// The device paths a packet takes between namespaces: veth with GRO and threaded NAPI, a bridge,
// a router namespace, a host -> pod leg from the initial namespace, and ICMP and ARP floods between
// the measured packets. Each test counts netlatd's samples against the messages of a one-way flow
// (each sent, then read) and checks that every miss is counted under a reason and that no sample is
// longer than the traffic; outside the floods, netlatd's means are also checked against the
// kernel's timestamps of the same messages (docs/SEMANTICS.md).
#include <arpa/inet.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip_icmp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>

#include "paths.h"

using namespace netlatd::test;

namespace {

constexpr int kMessages = 300;

// Pings `flow` kMessages times in a window after a warm-up (ARP, slow start) and checks both
// directions' totals and, where `stamps` says they are comparable, netlatd's means against the
// kernel's timestamps of the same messages.
Measured measure(Daemon& d, Flow& flow, const std::string& what, KernelStamps stamps = kTxRx) {
    flow.ping(20);
    Measured m = measure_messages(d, flow, kMessages);
    expect_each_message_joined(m.w, flow, kMessages, what);
    expect_means_near_kernel(m.w, flow, m.kernel, stamps, what);
    return m;
}

// Receiving veth with GRO on and threaded NAPI: veth then delivers through its NAPI poll and
// napi_gro_receive() instead of netif_rx(). veth takes that path only for packets from a sender
// without TSO (or UDP, with rx-udp-gro-forwarding), so the sending veth's TSO is off.
TEST(Devices, VethWithGroAndThreadedNapi) {
    NetnsPair pair;
    set_offload(pair.ns_b, pair.veth_b, "gro", true);
    set_offload(pair.ns_a, pair.veth_a, "tso", false);
    run_steps({{"ip", "netns", "exec", pair.ns_b, "sh", "-c",
                "echo 1 > /sys/class/net/" + pair.veth_b + "/threaded"}});
    Daemon d(paths_config({NetnsPair::path(pair.ns_a), NetnsPair::path(pair.ns_b)}));
    ASSERT_TRUE(d.running()) << d.log();
    for (bool tcp : {false, true}) {
        Flow flow(tcp, NetnsPair::path(pair.ns_a), NetnsPair::path(pair.ns_b), pair.addr_b);
        const std::string what = tcp ? "veth GRO/NAPI, TCP" : "veth GRO/NAPI, UDP";
        const Window w = measure(d, flow, what).w;
        // The rx driver stage ran from the GRO hook for (at least) each message.
        EXPECT_GE(w.program_runs("tp_napi_gro_receive_entry"), kMessages)
            << what << ": the packets did not take veth's NAPI/GRO path";
    }
}

// host namespace A -> bridge br0 -> veth (a bridge port) -> pod namespace B, and back: a send is
// timed once, to the bottom device; a receive once, from the veth's driver stage. Towards the
// host a packet passes the rx driver and device stages twice, at the port (veth netif_rx) and when
// the bridge passes it up (netif_receive_skb of br0): rx `total` starts at the first, where the
// kernel stamps it, so it is judged against the kernel like any path's.
TEST(Devices, BridgeOverVeth) {
    BridgedPair pair;
    const std::string host = NetnsPair::path(pair.ns_a), pod = NetnsPair::path(pair.ns_b);
    Daemon d(paths_config({host, pod}));
    ASSERT_TRUE(d.running()) << d.log();
    {
        Flow flow(false, host, pod, pair.addr_b);
        measure(d, flow, "host -> bridge -> pod, UDP");
    }
    {
        Flow flow(false, pod, host, pair.addr_a);
        const Window w = measure(d, flow, "pod -> bridge -> host, UDP").w;
        for (const char* stage : {"driver", "device"})
            EXPECT_NEAR(w.events("rx", stage), 2 * kMessages, 0.01 * kMessages)
                << "pod -> bridge -> host: rx " << stage << " stage events (port, then bridge)";
        expect_joined(w, "rx", "driver_to_device", "udp", kMessages, "pod -> bridge -> host");
    }
    Flow flow(true, host, pod, pair.addr_b);
    measure(d, flow, "host -> bridge -> pod, TCP");
}

// A -> router namespace R (ip_forward) -> B: R's forwarding is neither a send nor a receive, so
// every rx per-skb segment has as many samples as skbs delivered locally (network_to_transport,
// which forwarded packets never reach: UDP the messages at B, TCP those and B's ACKs at A), not
// one more for each pass through R. The kernel's stamps judge both ends: the send's driver stamp
// is A's veth; a UDP packet's receive stamp taken in R is cleared when R's veth hands it to B's
// namespace (skb_scrub_packet), so B's netif_rx stamps it again.
TEST(Devices, ForwardedPacketsStayOutOfLocalDelivery) {
    RoutedPath path;
    const std::string a = NetnsPair::path(path.ns_a), b = NetnsPair::path(path.ns_b);
    Daemon d(paths_config({a, NetnsPair::path(path.ns_router()), b}));
    ASSERT_TRUE(d.running()) << d.log();
    for (bool tcp : {false, true}) {
        Flow flow(tcp, a, b, path.addr_b);
        const std::string proto = tcp ? "tcp" : "udp", what = "A -> router -> B, " + proto;
        const Window w = measure(d, flow, what).w;
        const double local = w.samples("rx", "network_to_transport", proto);
        EXPECT_GE(local, kMessages) << what;
        for (const char* segment : {"driver_to_device", "device_to_network"})
            expect_joined(w, "rx", segment, proto, local, what + ", per skb delivered locally");
    }
}

// A host leg that ends in another namespace (host -> pod, as a container runtime wires it): the
// client in the initial namespace, the server in a pod namespace, over a veth pair and over a
// bridge in the host namespace. Series are labelled by namespace: the host's sends are counted
// under the host's namespace and the pod's reads under the pod's, one each per message.
class HostToPod : public ::testing::TestWithParam<bool> {};

TEST_P(HostToPod, HostSendsAndPodReadsAreEachInTheirNamespace) {
    HostPodPair pair(GetParam());
    const std::string host = HostPodPair::kHostNetns, pod = NetnsPair::path(pair.ns_pod);
    Daemon d(paths_config({host, pod}, true));
    ASSERT_TRUE(d.running()) << d.log();
    for (bool tcp : {false, true}) {
        Flow flow(tcp, host, pod, pair.addr_pod);
        const std::string proto = tcp ? "tcp" : "udp";
        const std::string what =
            std::string("host -> ") + (GetParam() ? "bridge -> " : "") + "veth -> pod, " + proto;
        const Measured m = measure(d, flow, what);
        for (const auto& [dir, netns] : {std::pair{"tx", host}, std::pair{"rx", pod}})
            EXPECT_GE(m.w.samples(dir, "total", proto, netns_inode(netns)), kMessages * 0.99)
                << what << ": " << dir << " total in " << netns << "'s namespace; unmatched "
                << m.w.unmatched_summary(dir);
        EXPECT_EQ(m.w.samples("rx", "total", proto, netns_inode(host)), 0)
            << what << ": the pod's reads counted in the host's namespace";
        if (tcp) continue;
        // Each comparison fails when the kernel's mean moves by 5 times its tolerance (when the
        // real one passes, that is enough for a relative tolerance under 60%).
        for (KernelStamps which : {kTx, kRx}) {
            KernelMeans moved = m.kernel;
            double& mean = which == kTx ? moved.tx : moved.rx;
            mean += 5 * kernel_mean_tolerance(mean);
            EXPECT_NONFATAL_FAILURE(expect_means_near_kernel(m.w, flow, moved, which, what),
                                    "kernel");
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Devices, HostToPod, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "OverBridge" : "OverVeth"; });

// Background traffic from namespace A towards B until destroyed: one frame per call of `send_one`,
// in bursts of 50 with a 1 ms pause (tens of thousands a second, leaving CPU to the measured flow).
class Flood {
  public:
    explicit Flood(std::function<bool()> send_one)
        : thread_([this, send = std::move(send_one)] {
              while (!stop_) {
                  for (int i = 0; i < 50; i++) sent_ += send() ? 1 : 0;
                  std::this_thread::sleep_for(std::chrono::milliseconds(1));
              }
          }) {}
    ~Flood() {
        stop_ = true;
        thread_.join();
    }
    long sent() const { return sent_; }

  private:
    std::atomic<bool> stop_{false};
    std::atomic<long> sent_{0};
    std::thread thread_;
};

// UDP and TCP messages alternate on two flows of the same ports while `flood` runs; each is joined,
// and so are later messages of the same sockets.
void expect_joined_through_flood(Daemon& d, const NetnsPair& pair,
                                 const std::function<bool()>& send_one, const std::string& what) {
    const std::string a = NetnsPair::path(pair.ns_a), b = NetnsPair::path(pair.ns_b);
    Flow udp(false, a, b, pair.addr_b), tcp(true, a, b, pair.addr_b);
    udp.ping(20);
    tcp.ping(20);
    Window w(d);
    long flooded = 0;
    {
        Flood flood(send_one);
        for (int i = 0; i < kMessages; i++) {
            udp.ping(1);
            tcp.ping(1);
        }
        flooded = flood.sent();
    }
    w.close();
    // At least one flood packet per three messages (the flood's rate follows the machine's load).
    EXPECT_GE(flooded, kMessages / 3) << what << ": the flood did not run between the messages";
    expect_each_message_joined(w, udp, kMessages, what + ", UDP");
    expect_each_message_joined(w, tcp, kMessages, what + ", TCP");
    expect_later_messages_join(d, udp);
    expect_later_messages_join(d, tcp);
}

uint16_t ip_checksum(const void* data, size_t len) {
    uint32_t sum = 0;
    const auto* p = static_cast<const uint16_t*>(data);
    for (; len > 1; len -= 2) sum += *p++;
    if (len) sum += *reinterpret_cast<const uint8_t*>(p);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

// ICMP echo requests (ping -f style, from a raw socket) from A to B, answered by B's kernel.
TEST(Devices, IcmpFloodBetweenMeasuredPackets) {
    NetnsPair pair;
    Daemon d(paths_config({NetnsPair::path(pair.ns_a), NetnsPair::path(pair.ns_b)}));
    ASSERT_TRUE(d.running()) << d.log();
    const int raw = socket_in(NetnsPair::path(pair.ns_a), AF_INET, SOCK_RAW, IPPROTO_ICMP);
    const sockaddr_in to = ipv4(pair.addr_b, 0);
    uint16_t seq = 0;
    auto echo = [&] {
        icmphdr h{};
        h.type = ICMP_ECHO;
        h.un.echo.id = htons(0x6e6c);
        h.un.echo.sequence = htons(++seq);
        h.checksum = ip_checksum(&h, sizeof(h));
        return sendto(raw, &h, sizeof(h), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) >
               0;
    };
    expect_joined_through_flood(d, pair, echo, "ICMP flood");
    close(raw);
}

// ARP requests for B's address (from A's own addresses, so no neighbour entry changes), broadcast
// from a packet socket on A's veth.
TEST(Devices, ArpFloodBetweenMeasuredPackets) {
    NetnsPair pair;
    Daemon d(paths_config({NetnsPair::path(pair.ns_a), NetnsPair::path(pair.ns_b)}));
    ASSERT_TRUE(d.running()) << d.log();
    const std::string a = NetnsPair::path(pair.ns_a);
    const int packet = socket_in(a, AF_PACKET, SOCK_DGRAM, htons(ETH_P_ARP));
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(ETH_P_ARP);
    to.sll_ifindex = ifindex_in(a, pair.veth_a);
    to.sll_halen = 6;
    std::memset(to.sll_addr, 0xff, 6);
    struct __attribute__((packed)) {
        uint16_t htype = htons(1), ptype = htons(ETH_P_IP);
        uint8_t hlen = 6, plen = 4;
        uint16_t op = htons(1);
        uint8_t sha[6];
        in_addr spa;
        uint8_t tha[6] = {};
        in_addr tpa;
    } request;
    const auto mac = mac_in(a, pair.veth_a);
    std::memcpy(request.sha, mac.data(), 6);
    inet_pton(AF_INET, pair.addr_a.c_str(), &request.spa);
    inet_pton(AF_INET, pair.addr_b.c_str(), &request.tpa);
    auto arp = [&] {
        return sendto(packet, &request, sizeof(request), 0, reinterpret_cast<const sockaddr*>(&to),
                      sizeof(to)) > 0;
    };
    expect_joined_through_flood(d, pair, arp, "ARP flood");
    close(packet);
}

}  // namespace
