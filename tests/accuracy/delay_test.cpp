// Delay injection (issue #3): a known delay added at one layer moves that layer's segment by the
// delay and leaves the others where they were.
//
// Each case runs the same one-way traffic twice against one netlatd (loopback, 500 messages/s,
// so the CPUs idle the same way in both runs): a baseline, then a run with the delay. The medians
// of the rx segments of the second run (histogram deltas between scrapes) are compared with the
// baseline's:
//   (a) the receiver sleeps 1 ms between "readable" and the read (netlat-load
//       --sleep-before-read): rx queued_to_socket moves by 1 ms;
//   (b) an iptables NFQUEUE rule in INPUT hands each packet to nfq_delay, whose verdict waits
//       1 ms (baseline: the same rule, verdict at once; see the test): the packet is held inside
//       netfilter's LOCAL_IN hook, between netlatd's network stage (PRE_ROUTING, first priority)
//       and its transport stage (LOCAL_IN, last priority), so rx network_to_transport moves by 1
//       ms.
// Acceptance (issue #3): the injected segment's median moves by the injected delay within 10%;
// every other per-layer rx segment's median moves by at most 20%. The composites that contain
// the injected segment (stack = driver..queued, transport_to_socket, total) move by construction
// and are not checked. Per-layer segments on loopback have sub-microsecond medians, where one
// histogram bucket or a cache miss is more than 20%: their bound is max(20%, 0.3 us), an absolute
// floor stated here and in the test output, never applied to the injected segment.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "harness.h"

using namespace netlatd::test;

namespace {

constexpr int kMessages = 1000;
constexpr int kRate = 500;
constexpr double kDelayUs = 1000;
constexpr double kInjectedTolerance = 0.10;
constexpr double kOtherTolerance = 0.20;
constexpr double kOtherFloorUs = 0.3;
// netlat-load (both ends) and nfq_delay run on this one CPU, in the baseline and the delayed run.
constexpr int kTrafficCpu = 0;
constexpr const char* kRuleComment = "netlatd-delay-test";

const std::vector<std::string> kRxSegments = {"driver_to_device", "device_to_network",
                                              "network_to_transport", "transport_to_queued",
                                              "queued_to_socket"};
const std::vector<std::string> kRxComposites = {"stack", "transport_to_socket", "total"};

std::string delay_config(int port) {
    return "interval: 100ms\n"
           "buckets: {min: 100ns, max: 1s, per_octave: 16}\n"
           "filters:\n  local_ports: [" +
           std::to_string(port) + "]\n";
}

using Buckets = std::vector<std::pair<double, double>>;

// Cumulative buckets of one rx segment, minus an earlier scrape's.
Buckets segment_buckets(const std::vector<Sample>& now, const std::vector<Sample>& before,
                        const std::string& proto, const std::string& segment) {
    const std::map<std::string, std::string> match = {
        {"direction", "rx"}, {"segment", segment}, {"protocol", proto}};
    Buckets b = histogram_buckets(now, "netlatd_stack_latency_seconds", match);
    Buckets a = histogram_buckets(before, "netlatd_stack_latency_seconds", match);
    std::map<double, double> earlier(a.begin(), a.end());
    for (auto& [le, count] : b) count -= earlier.count(le) ? earlier[le] : 0;
    return b;
}

struct Medians {
    std::map<std::string, double> median_us;
    std::map<std::string, double> count;
};

Medians summarize(const std::vector<Sample>& now, const std::vector<Sample>& before,
                  const std::string& proto) {
    Medians run;
    std::vector<std::string> all = kRxSegments;
    all.insert(all.end(), kRxComposites.begin(), kRxComposites.end());
    for (const auto& segment : all) {
        Buckets b = segment_buckets(now, before, proto, segment);
        run.count[segment] = b.empty() ? 0 : b.back().second;
        run.median_us[segment] = histogram_quantile(0.5, b) * 1e6;
    }
    return run;
}

// One netlat-load run; returns after netlatd drained it (a few intervals).
void load(const std::string& proto, int port, std::vector<std::string> extra) {
    std::vector<std::string> argv = {"taskset",
                                     "-c",
                                     std::to_string(kTrafficCpu),
                                     netlat_load_path(),
                                     "--proto",
                                     proto,
                                     "--family",
                                     "4",
                                     "--topology",
                                     "loopback",
                                     "--mode",
                                     "oneway",
                                     "--count",
                                     std::to_string(kMessages),
                                     "--rate",
                                     std::to_string(kRate),
                                     "--port",
                                     std::to_string(port),
                                     "--json"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = run_command(argv);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto report = nlohmann::json::parse(r.out);
    ASSERT_EQ(report["client_to_server"]["lost"].get<int>(), 0) << r.out;
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
}

// Compares the delayed run with the baseline: prints every rx segment, checks the injected one
// and the other per-layer ones.
void judge(const std::string& what, const std::string& proto, const Medians& base,
           const Medians& delayed, const std::string& injected) {
    std::printf("%s %s: rx segment medians, baseline -> delayed (us)\n", what.c_str(),
                proto.c_str());
    for (const auto& [segment, b] : base.median_us) {
        const double d = delayed.median_us.at(segment);
        const bool composite =
            std::find(kRxComposites.begin(), kRxComposites.end(), segment) != kRxComposites.end();
        std::printf("  %-22s %10.2f -> %10.2f  (%+.2f, %+.1f%%) n=%.0f/%.0f%s\n", segment.c_str(),
                    b, d, d - b, 100 * (d - b) / b, base.count.at(segment),
                    delayed.count.at(segment),
                    segment == injected ? "  [injected]"
                    : composite         ? "  [contains injected: not checked]"
                                        : "");
    }
    for (const auto& segment : kRxSegments) {
        ASSERT_GE(base.count.at(segment), 0.95 * kMessages) << "baseline " << segment;
        ASSERT_GE(delayed.count.at(segment), 0.95 * kMessages) << "delayed " << segment;
        const double b = base.median_us.at(segment), d = delayed.median_us.at(segment);
        if (segment == injected) {
            EXPECT_NEAR(d - b, kDelayUs, kInjectedTolerance * kDelayUs)
                << segment << " should move by the injected " << kDelayUs << " us: " << b << " -> "
                << d << " us";
        } else {
            const double bound = std::max(kOtherTolerance * b, kOtherFloorUs);
            EXPECT_LE(std::fabs(d - b), bound)
                << segment << " (not delayed) moved: " << b << " -> " << d
                << " us; bound max(20%, 0.3 us) = " << bound << " us";
        }
    }
}

class Delay : public ::testing::TestWithParam<std::string> {};

TEST_P(Delay, SleepBeforeReadMovesQueuedToSocket) {
    const std::string proto = GetParam();
    const int port = free_tcp_port();
    Daemon d(delay_config(port));
    ASSERT_TRUE(d.running()) << d.log();

    auto start = parse_metrics(d.scrape());
    ASSERT_NO_FATAL_FAILURE(load(proto, port, {}));
    auto after_base = parse_metrics(d.scrape());
    ASSERT_NO_FATAL_FAILURE(
        load(proto, port, {"--sleep-before-read", std::to_string(static_cast<int>(kDelayUs))}));
    auto after_delay = parse_metrics(d.scrape());

    judge("sleep-before-read 1 ms", proto, summarize(after_base, start, proto),
          summarize(after_delay, after_base, proto), "queued_to_socket");
    EXPECT_EQ(d.stop(), 0) << d.log();
}

// nfq_delay as a child process: bound to its queue once the constructor returns; SIGTERM in the
// destructor.
class NfqDelay {
  public:
    NfqDelay(int queue, int delay_us) {
        int out[2];
        if (pipe(out) != 0) throw std::runtime_error("pipe");
        pid_ = fork();
        if (pid_ == 0) {
            cpu_set_t cpus;
            CPU_ZERO(&cpus);
            CPU_SET(kTrafficCpu, &cpus);
            sched_setaffinity(0, sizeof(cpus), &cpus);
            dup2(out[1], 1);
            close(out[0]);
            close(out[1]);
            execl(NFQ_DELAY_PATH, NFQ_DELAY_PATH, "--queue", std::to_string(queue).c_str(),
                  "--delay-us", std::to_string(delay_us).c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        close(out[1]);
        out_ = out[0];
        if (read_line(std::chrono::seconds(5)) != "ready")
            throw std::runtime_error("nfq_delay did not bind queue " + std::to_string(queue));
    }
    ~NfqDelay() { stop(); }
    NfqDelay(const NfqDelay&) = delete;
    NfqDelay& operator=(const NfqDelay&) = delete;

    // Stops it; returns its last line ("packets N wait_us_min X wait_us_max Y").
    std::string stop() {
        if (pid_ <= 0) return summary_;
        kill(pid_, SIGTERM);
        summary_ = read_line(std::chrono::seconds(5));
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            if (waitpid(pid_, &status, WNOHANG) == 0) {
                kill(pid_, SIGKILL);
                waitpid(pid_, &status, 0);
            }
        }
        pid_ = -1;
        close(out_);
        return summary_;
    }

  private:
    std::string read_line(std::chrono::milliseconds timeout) {
        std::string line;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        char c;
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd p{out_, POLLIN, 0};
            if (poll(&p, 1, 100) <= 0) continue;
            if (read(out_, &c, 1) != 1) break;
            if (c == '\n') return line;
            line += c;
        }
        return line;
    }
    pid_t pid_ = -1;
    int out_ = -1;
    std::string summary_;
};

// An iptables rule sending this port's packets to the queue; deleted by the destructor, on
// failure too. --queue-bypass: if nfq_delay is gone, packets pass instead of being dropped.
class QueueRule {
  public:
    QueueRule(const std::string& proto, int port, int queue)
        : spec_{"INPUT",
                "-p",
                proto,
                "--dport",
                std::to_string(port),
                "-m",
                "comment",
                "--comment",
                kRuleComment,
                "-j",
                "NFQUEUE",
                "--queue-num",
                std::to_string(queue),
                "--queue-bypass"} {
        remove_stale();
        auto r = iptables("-I");
        if (r.exit_code != 0) throw std::runtime_error("iptables -I: " + r.err);
    }
    ~QueueRule() {
        auto r = iptables("-D");
        if (r.exit_code != 0) std::fprintf(stderr, "iptables -D failed: %s\n", r.err.c_str());
    }
    QueueRule(const QueueRule&) = delete;
    QueueRule& operator=(const QueueRule&) = delete;

  private:
    CommandResult iptables(const std::string& op) {
        std::vector<std::string> argv = {"iptables", "-w", op};
        argv.insert(argv.end(), spec_.begin(), spec_.end());
        return run_command(argv);
    }
    // Rules of an earlier run of this test that was killed before it could delete them.
    static void remove_stale() {
        auto rules = run_command({"iptables", "-w", "-S", "INPUT"});
        std::istringstream in(rules.out);
        std::string line;
        while (std::getline(in, line)) {
            if (line.find(kRuleComment) == std::string::npos || line.rfind("-A ", 0) != 0) continue;
            std::vector<std::string> argv = {"iptables", "-w", "-D"};
            std::istringstream words(line.substr(3));
            for (std::string w; words >> w;) argv.push_back(w);
            run_command(argv);
        }
    }
    std::vector<std::string> spec_;
};

// One run through the queue with this verdict delay; checks that nfq_delay saw every message.
void queued_load(const std::string& proto, int port, int delay_us) {
    const int queue = 1000 + getpid() % 30000;
    NfqDelay delay(queue, delay_us);
    {
        QueueRule rule(proto, port, queue);
        ASSERT_NO_FATAL_FAILURE(load(proto, port, {}));
    }  // rule deleted before nfq_delay stops
    const std::string summary = delay.stop();
    std::printf("nfq_delay --delay-us %d: %s\n", delay_us, summary.c_str());
    unsigned long long packets = 0;
    ASSERT_EQ(std::sscanf(summary.c_str(), "packets %llu", &packets), 1) << summary;
    ASSERT_GE(packets, static_cast<unsigned long long>(kMessages)) << "the rule did not match";
}

// The baseline goes through the same queue with a verdict at once (delay 0): queueing a packet to
// user space changes who wakes the reader (nfq_delay's verdict call instead of the sender's send
// call, whose rest of the call the reader waits for on a shared CPU), which alone moved rx
// queued_to_socket by -20..-27% against a run without the rule. With the queue in both runs the
// verdict wait is the only difference. The run without the rule is printed for reference.
TEST_P(Delay, NfqueueVerdictDelayMovesNetworkToTransport) {
    const std::string proto = GetParam();
    const int port = free_tcp_port();
    Daemon d(delay_config(port));
    ASSERT_TRUE(d.running()) << d.log();

    auto start = parse_metrics(d.scrape());
    ASSERT_NO_FATAL_FAILURE(load(proto, port, {}));
    auto after_plain = parse_metrics(d.scrape());
    ASSERT_NO_FATAL_FAILURE(queued_load(proto, port, 0));
    auto after_base = parse_metrics(d.scrape());
    ASSERT_NO_FATAL_FAILURE(queued_load(proto, port, static_cast<int>(kDelayUs)));
    auto after_delay = parse_metrics(d.scrape());

    const Medians plain = summarize(after_plain, start, proto);
    const Medians base = summarize(after_base, after_plain, proto);
    const Medians delayed = summarize(after_delay, after_base, proto);
    std::printf("for reference, without the rule -> queue, verdict at once (us):\n");
    for (const auto& [segment, p] : plain.median_us)
        std::printf("  %-22s %10.2f -> %10.2f\n", segment.c_str(), p, base.median_us.at(segment));
    judge("NFQUEUE verdict after 1 ms vs at once", proto, base, delayed, "network_to_transport");
    EXPECT_EQ(d.stop(), 0) << d.log();
}

INSTANTIATE_TEST_SUITE_P(Injected, Delay, ::testing::Values("udp", "tcp"),
                         [](const auto& info) { return info.param; });

}  // namespace
