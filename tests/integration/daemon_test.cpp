// Integration tests: real netlatd, real BPF on this kernel, real loopback traffic. Root only.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <thread>

#include "harness.h"

using namespace netlatd::test;

namespace {

const char* kTxSegments[] = {"socket_to_transport", "transport_to_network", "network_to_device",
                             "device_to_driver", "total"};
const char* kRxSegments[] = {"driver_to_device", "device_to_network", "network_to_transport",
                             "transport_to_queued", "queued_to_socket", "stack", "transport_to_socket",
                             "total"};

constexpr int kMessages = 400;

// Only the test server's port: tx is its replies, rx what it reads, so counts equal messages.
std::string port_config(int port) {
    return "interval: 200ms\nfilters:\n  local_ports: [" + std::to_string(port) + "]\n";
}

double count_of(const std::vector<Sample>& s, const std::string& dir, const std::string& seg,
                const std::string& proto) {
    return metric_value(s, "netlatd_stack_latency_seconds_count",
                        {{"direction", dir}, {"segment", seg}, {"protocol", proto}});
}

std::vector<Sample> scrape_after_drain(Daemon& d) {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));  // > 3 drain intervals
    return parse_metrics(d.scrape());
}

// Which stages netlatd attached (mode != none) according to netlatd_stage_info.
std::set<std::string> attached_stages(const std::vector<Sample>& s) {
    std::set<std::string> out;
    for (const auto& x : s)
        if (x.name == "netlatd_stage_info" && x.labels.at("mode") != "none")
            out.insert(x.labels.at("direction") + "/" + x.labels.at("stage"));
    return out;
}

struct Case {
    bool tcp;
    bool ipv6;
};

class TrafficTest : public ::testing::TestWithParam<Case> {};

// Every segment this kernel supports has observations for the protocol, and counts follow the
// number of messages (margin: 2% + 4 for handshake/teardown packets that carry data-less segments).
TEST_P(TrafficTest, EverySegmentObservedAndCountsFollowMessages) {
    const Case c = GetParam();
    const std::string proto = c.tcp ? "tcp" : "udp";
    int port = free_tcp_port();
    Daemon d(port_config(port));
    ASSERT_TRUE(d.running()) << d.log();
    run_request_response({c.tcp, c.ipv6, kMessages, 64, port, std::chrono::microseconds(200)});
    auto s = scrape_after_drain(d);
    auto attached = attached_stages(s);

    for (const char* seg : kTxSegments) {
        if (!c.tcp && std::string(seg) == "socket_to_transport") continue;  // no UDP hook here
        EXPECT_GT(count_of(s, "tx", seg, proto), 0) << "tx " << seg << " " << proto;
    }
    for (const char* seg : kRxSegments) EXPECT_GT(count_of(s, "rx", seg, proto), 0) << "rx " << seg;

    const double lo = kMessages * 0.98, hi = kMessages * 1.02 + 4;
    for (const char* dir : {"tx", "rx"}) {
        double n = count_of(s, dir, "total", proto);
        EXPECT_GE(n, lo) << dir << " total count " << n << " for " << kMessages << " messages";
        EXPECT_LE(n, hi) << dir << " total count " << n << " for " << kMessages << " messages";
    }
    // Histogram sums are in seconds: loopback totals are microseconds, not nanoseconds or hours.
    double sum = metric_value(s, "netlatd_stack_latency_seconds_sum",
                              {{"direction", "tx"}, {"segment", "total"}, {"protocol", proto}});
    double mean = sum / count_of(s, "tx", "total", proto);
    EXPECT_GT(mean, 1e-7);
    EXPECT_LT(mean, 1e-2);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

INSTANTIATE_TEST_SUITE_P(Loopback, TrafficTest,
                         ::testing::Values(Case{true, false}, Case{true, true}, Case{false, false},
                                           Case{false, true}),
                         [](const auto& info) {
                             return std::string(info.param.tcp ? "tcp" : "udp") +
                                    (info.param.ipv6 ? "_ipv6" : "_ipv4");
                         });

TEST(Daemon, EveryStageAttachedOnThisKernel) {
    Daemon d;
    auto s = parse_metrics(d.scrape());
    auto attached = attached_stages(s);
    for (const char* stage : {"tx/socket", "tx/transport", "tx/network", "tx/device", "tx/driver",
                              "rx/driver", "rx/device", "rx/network", "rx/transport", "rx/queued",
                              "rx/socket"})
        EXPECT_TRUE(attached.count(stage)) << stage << " not attached:\n" << d.log();
    // The UDP transport gap is declared.
    EXPECT_EQ(metric_value(s, "netlatd_stage_info",
                           {{"direction", "tx"}, {"stage", "transport"}, {"mode", "none"}}),
              1);
    EXPECT_EQ(metric_value(s, "netlatd_build_info", {}), 1);
}

// A fresh machine mounts neither tracefs nor debugfs: netlatd must not need them. It runs in a
// private mount namespace where both are unmounted (the script refuses to start it otherwise).
TEST(Daemon, EveryStageAndTotalsWithoutTracefsOrDebugfs) {
    const std::vector<std::string> no_tracefs = {
        "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
        "for m in /sys/kernel/debug/tracing /sys/kernel/tracing /sys/kernel/debug; do "
        "  while mountpoint -q $m; do umount -l $m || exit 97; done; "
        "done; "
        "if grep -qE ' (tracefs|debugfs) ' /proc/self/mounts; then exit 98; fi; "
        "exec \"$@\"",
        "no-tracefs"};
    const int port = free_tcp_port();
    Daemon d(port_config(port), {}, no_tracefs);
    ASSERT_TRUE(d.running()) << d.log();
    std::ifstream mounts("/proc/" + std::to_string(d.pid()) + "/mounts");
    const std::string seen((std::istreambuf_iterator<char>(mounts)), {});
    ASSERT_EQ(seen.find(" tracefs "), std::string::npos) << seen;
    ASSERT_EQ(seen.find(" debugfs "), std::string::npos) << seen;

    run_request_response({true, false, 200, 64, port, std::chrono::microseconds(200)});
    run_request_response({false, false, 200, 64, port, std::chrono::microseconds(200)});
    auto s = scrape_after_drain(d);
    EXPECT_EQ(attached_stages(s).size(), 11u) << d.log();
    // Only UDP tx transport has no hook on this kernel.
    for (const auto& x : s) {
        if (x.name != "netlatd_stage_info" || x.labels.at("mode") != "none") continue;
        EXPECT_EQ(x.labels.at("direction") + "/" + x.labels.at("stage") + " " + x.labels.at("hook"),
                  "tx/transport udp:none");
    }
    for (const char* proto : {"tcp", "udp"})
        for (const char* dir : {"tx", "rx"})
            EXPECT_GE(count_of(s, dir, "total", proto), 200 * 0.98) << dir << " total " << proto;
    EXPECT_EQ(d.stop(), 0) << d.log();
}

// /healthz is 503 while hooks attach and before the first drain, 200 after: a readiness probe never
// passes a netlatd that measures nothing. The harness polls /healthz every 2 ms from the start.
TEST(Daemon, HealthzIsReadyOnlyOnceEveryHookIsAttached) {
    Daemon d;
    // At the first 200, the hooks are attached: stage_info is complete already.
    auto s = parse_metrics(d.scrape());
    EXPECT_EQ(attached_stages(s).size(), 11u) << d.log();
    const auto& seen = d.startup_health();
    ASSERT_GE(seen.size(), 2u) << "expected 503 answers before the 200";
    EXPECT_EQ(seen.back(), "200 ok");
    for (size_t i = 0; i + 1 < seen.size(); i++)
        EXPECT_EQ(seen[i].rfind("503 not ready: ", 0), 0u) << seen[i];
    EXPECT_TRUE(std::find(seen.begin(), seen.end(), "503 not ready: attaching hooks") != seen.end())
        << "the window while hooks attach was seen";
}

TEST(Daemon, PromtoolAcceptsTheExposition) {
    int port = free_tcp_port();
    Daemon d(port_config(port));
    run_request_response({true, false, 100, 64, port, std::chrono::microseconds(100)});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::string path = "/tmp/netlatd-metrics-" + std::to_string(getpid()) + ".txt";
    std::ofstream(path) << d.scrape();
    auto r = run_command({"sh", "-c", "promtool check metrics < " + path});
    unlink(path.c_str());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_EQ(r.out + r.err, "") << "promtool reported problems";
}

TEST(Daemon, SigtermStopsWithinTwoSeconds) {
    for (int sig : {SIGTERM, SIGINT}) {
        Daemon d;
        EXPECT_EQ(d.stop(sig, std::chrono::seconds(5)), 0) << d.log();
        EXPECT_LT(d.last_stop_duration().count(), 2000);
    }
}

// Those of `ids` the kernel still has.
std::set<int> still_present(const std::string& kind, const std::set<int>& ids) {
    std::set<int> left;
    for (int id : bpf_ids_present(kind))
        if (ids.count(id)) left.insert(id);
    return left;
}

TEST(Daemon, NothingStaysAttachedAfterSigkill) {
    std::set<int> progs, links;
    {
        Daemon d;
        progs = bpf_ids_held_by("prog", d.pid());
        links = bpf_ids_held_by("link", d.pid());
        ASSERT_GT(progs.size(), 10u) << "sanity: netlatd's programs are visible while it runs";
        ASSERT_GT(links.size(), 10u) << "sanity: netlatd's links are visible while it runs";
        EXPECT_EQ(d.stop(SIGKILL), 128 + SIGKILL);
    }
    std::set<int> left_progs = progs, left_links = links;
    for (int i = 0; i < 50 && !(left_progs.empty() && left_links.empty()); i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // freed after RCU
        left_progs = still_present("prog", progs);
        left_links = still_present("link", links);
    }
    EXPECT_TRUE(left_progs.empty()) << left_progs.size() << " programs left after SIGKILL";
    EXPECT_TRUE(left_links.empty()) << left_links.size() << " links left after SIGKILL";
}

TEST(Daemon, ListenAddressInUseIsReported) {
    const LoopbackSocket taken = bind_loopback(SOCK_STREAM, true);
    std::string addr = "127.0.0.1:" + std::to_string(taken.port);
    auto r = run_command({netlatd_path(), "--listen", addr});
    close(taken.fd);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(addr), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("in use"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("stage "), std::string::npos) << "nothing attached on a failed start";
}

class BrokenConfig : public ::testing::TestWithParam<std::string> {};

TEST_P(BrokenConfig, CheckConfigFailsWithOneLine) {
    std::string path = source_dir() + "/tests/data/config/" + GetParam();
    if (GetParam() == "missing.yaml") path = "/nonexistent/netlatd.yaml";
    auto r = run_command({netlatd_path(), "--check-config", "--config", path});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.out, "");
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    EXPECT_NE(r.err.find(GetParam() == "missing.yaml" ? "/nonexistent/netlatd.yaml" : GetParam()),
              std::string::npos)
        << "the message names the file: " << r.err;
}

INSTANTIATE_TEST_SUITE_P(Files, BrokenConfig,
                         ::testing::Values("bad_yaml.yaml", "unknown_key.yaml", "wrong_type.yaml",
                                           "out_of_range.yaml", "missing.yaml"),
                         [](const auto& info) {
                             std::string n = info.param.substr(0, info.param.find('.'));
                             return n;
                         });

TEST(Daemon, CheckConfigPrintsTheEffectiveDefault) {
    auto r = run_command({netlatd_path(), "--check-config"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("listen:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("probe_mode: auto"), std::string::npos) << r.out;
}

}  // namespace
