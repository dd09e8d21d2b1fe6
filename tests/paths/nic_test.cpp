// A NIC path: two virtio-net NICs wired to each other (the VM tier's guest has them on one qemu
// hub, tests/vm/README.md), each moved into a namespace of its own. Packets go through the virtio
// driver's transmit and its NAPI poll with GRO (napi_gro_receive) instead of veth's shortcut.
// Skipped where the pair does not exist (the host); NETLAT_TEST_NIC_PAIR=required (the VM tier
// sets it) makes a missing pair a failure.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "paths.h"

using namespace netlatd::test;

namespace {

constexpr int kMessages = 300;

class Nic : public ::testing::Test {
  protected:
    void SetUp() override {
        const char* want = std::getenv("NETLAT_TEST_NIC_PAIR");
        const bool required = want && std::string(want) == "required";
        nics = virtio_nic_pair(required);
        if (!nics) {
            ASSERT_FALSE(required) << "NETLAT_TEST_NIC_PAIR=required: no virtio-net NICs with the "
                                      "MAC addresses of the pair";
            GTEST_SKIP() << "no virtio-net NIC pair (MAC addresses " << kNicPairMacs[0] << ", "
                         << kNicPairMacs[1] << "): the VM tier's paths guest has one";
        }
        pair.emplace("", "10.78.2", &*nics);
        a = NetnsPair::path(pair->ns_a);
        b = NetnsPair::path(pair->ns_b);
        d.emplace(paths_config({a, b}));
        ASSERT_TRUE(d->running()) << d->log();
    }
    // The IPv4 packets namespace ns has received (Ip InReceives): one per skb after GRO.
    double ip_in_receives(const std::string& ns) {
        auto r = run_command({"ip", "netns", "exec", ns, "cat", "/proc/net/snmp"});
        std::istringstream in(r.out);
        std::string names, values;
        while (std::getline(in, names) && std::getline(in, values)) {
            if (names.rfind("Ip:", 0) != 0) continue;
            std::istringstream n(names), v(values);
            std::string name, value;
            while (n >> name && v >> value)
                if (name == "InReceives") return std::stod(value);
        }
        ADD_FAILURE() << "no Ip InReceives in " << ns << "'s /proc/net/snmp: " << r.out;
        return 0;
    }

    // "rx stage events: driver=N ...; tx stage events: ..." for the log and failure messages: where
    // the NIC's packets were seen.
    static std::string stage_events(const Window& w) {
        std::string out = "rx stage events:";
        for (const char* stage : {"driver", "device", "network", "transport", "queued", "socket"})
            out += std::string(" ") + stage + "=" +
                   std::to_string(static_cast<long>(w.events("rx", stage)));
        out += "; tx stage events:";
        for (const char* stage : {"socket", "transport", "network", "device", "driver"})
            out += std::string(" ") + stage + "=" +
                   std::to_string(static_cast<long>(w.events("tx", stage)));
        return out;
    }
    // One line for the log: what each direction timed and counted, and where the packets were seen.
    static void log_summary(const Window& w, const std::string& what, const std::string& proto) {
        std::cout << what << ": tx total " << w.samples("tx", "total", proto) << ", rx total "
                  << w.samples("rx", "total", proto) << "; unmatched tx "
                  << w.unmatched_summary("tx") << ", rx " << w.unmatched_summary("rx") << "; "
                  << stage_events(w) << "; " << w.drains() << " drains in " << w.seconds()
                  << " s, closing scrape after " << w.settle_seconds() << " s" << std::endl;
    }

    std::optional<Nics> nics;
    std::optional<NetnsPair> pair;
    std::string a, b;
    std::optional<Daemon> d;
};

// Requests A -> B, each answered B -> A before the next, on UDP and on TCP: every message is timed
// once in each direction, and later messages still join.
TEST_F(Nic, RequestResponseAcrossVirtioNics) {
    for (bool tcp : {false, true}) {
        const std::string what = tcp ? "virtio-net, TCP" : "virtio-net, UDP";
        Flow request(tcp, a, b, pair->addr_b), response(tcp, b, a, pair->addr_a);
        request.ping(20);
        response.ping(20);
        Window w(*d);
        for (int i = 0; i < kMessages; i++) {
            request.ping(1);
            response.ping(1);
        }
        w.close();
        // Both flows have the same protocol: each direction's totals count both.
        log_summary(w, what, tcp ? "tcp" : "udp");
        expect_joined(w, "tx", "total", tcp ? "tcp" : "udp", 2 * kMessages,
                      what + "; " + stage_events(w));
        expect_joined(w, "rx", "total", tcp ? "tcp" : "udp", 2 * kMessages,
                      what + "; " + stage_events(w));
        EXPECT_GE(w.program_runs("tp_napi_gro_receive_entry"), 2 * kMessages)
            << what << ": the packets did not take the NIC's NAPI/GRO path";
        expect_later_messages_join(*d, request);
        expect_later_messages_join(*d, response);
    }
}

// Datagrams of sizes whose frames virtio-net may receive with only the Ethernet header copied
// into the skb (page_to_skb, a frame larger than the copy buffer's tailroom): GRO then pulls the IP
// header and leaves the UDP header outside until UDP's own pull, so the ports are known only on
// the socket's receive queue. Every datagram is still timed once in each direction.
TEST_F(Nic, LargeUdpDatagramsAcrossVirtioNics) {
    for (size_t bytes : {200, 1000, 1400}) {
        const std::string what = "virtio-net, UDP datagrams of " + std::to_string(bytes) + " bytes";
        Flow request(false, a, b, pair->addr_b), response(false, b, a, pair->addr_a);
        request.ping(20, bytes);
        response.ping(20, bytes);
        Window w(*d);
        for (int i = 0; i < kMessages; i++) {
            request.ping(1, bytes);
            response.ping(1, bytes);
        }
        w.close();
        log_summary(w, what, "udp");
        expect_joined(w, "tx", "total", "udp", 2 * kMessages, what + "; " + stage_events(w));
        expect_joined(w, "rx", "total", "udp", 2 * kMessages, what + "; " + stage_events(w));
        expect_later_messages_join(*d, request);
        expect_later_messages_join(*d, response);
    }
}

// A bulk TCP stream A -> B (writes of 32 KiB back to back while B reads) with GRO on at B: each
// write is timed once on tx, each skb B's IP receives (GRO's merged ones) once on rx.
TEST_F(Nic, BulkTcpStreamWithGro) {
    set_offload(pair->ns_b, pair->veth_b, "gro", true);
    Flow flow(true, a, b, pair->addr_b);
    flow.ping(20);
    constexpr int kWrites = 200;
    constexpr size_t kWrite = 32 << 10;
    const std::string chunk(kWrite, 's');
    const double received_before = ip_in_receives(pair->ns_b);
    Window w(*d);
    std::thread writer([&] {
        for (int i = 0; i < kWrites; i++)
            if (write(flow.tx, chunk.data(), kWrite) != static_cast<ssize_t>(kWrite)) return;
    });
    const size_t got = flow.receive(kWrites * kWrite);
    writer.join();
    w.close();
    ASSERT_EQ(got, kWrites * kWrite);
    const double skbs = ip_in_receives(pair->ns_b) - received_before;
    const std::string what = "virtio-net bulk TCP, " + std::to_string(kWrites) + " writes of " +
                             std::to_string(kWrite) + " bytes, " +
                             std::to_string(static_cast<long>(skbs)) + " skbs received";
    log_summary(w, what, "tcp");
    expect_joined(w, "tx", "total", "tcp", kWrites, what);
    expect_joined(w, "rx", "total", "tcp", skbs, what + "; " + stage_events(w));
    EXPECT_GE(w.program_runs("tp_napi_gro_receive_entry"), skbs)
        << what << ": the packets did not take the NIC's NAPI/GRO path";
    expect_later_messages_join(*d, flow);
}

}  // namespace
