#include "paths.h"

#include <arpa/inet.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>

namespace netlatd::test {

namespace {

void check(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what + ": " + std::strerror(errno));
}

constexpr auto kSettle = std::chrono::milliseconds(350);  // > 3 drain intervals of 100 ms

// The calling thread runs SCHED_FIFO while this lives, so that other processes do not preempt it
// where the kernel's stamps and netlatd differ: between the application's clock and the system call
// (a process taking the CPU there for a tick adds milliseconds to one message's kernel figure
// only). Not for traffic that needs other threads to run between its messages (the floods), nor
// under a NETLAT_TEST_TIME_SCALE above 1 (the one-vCPU qemu guest, where it starved the softirq and
// timer work TCP needs: segments arrived twice).
class RealtimeScheduling {
  public:
    RealtimeScheduling() {
        const sched_param fifo{1};
        realtime_ =
            time_scale() == 1 && pthread_setschedparam(pthread_self(), SCHED_FIFO, &fifo) == 0;
    }
    ~RealtimeScheduling() {
        const sched_param other{0};
        if (realtime_) pthread_setschedparam(pthread_self(), SCHED_OTHER, &other);
    }
    RealtimeScheduling(const RealtimeScheduling&) = delete;
    RealtimeScheduling& operator=(const RealtimeScheduling&) = delete;

  private:
    bool realtime_ = false;
};

}  // namespace

void run_in(const std::string& ns, const std::function<void()>& fn) {
    std::string error;
    std::thread t([&] {
        try {
            enter_netns(ns);
            fn();
        } catch (const std::exception& e) {
            error = e.what();
        }
    });
    t.join();
    if (!error.empty()) throw std::runtime_error(error);
}

int socket_in(const std::string& ns, int domain, int type, int protocol) {
    int fd = -1;
    run_in(ns, [&] {
        fd = socket(domain, type, protocol);
        check(fd >= 0, "socket");
    });
    return fd;
}

int ifindex_in(const std::string& ns, const std::string& dev) {
    int index = 0;
    run_in(ns, [&] { index = static_cast<int>(if_nametoindex(dev.c_str())); });
    if (!index) throw std::runtime_error("no device " + dev + " in " + ns);
    return index;
}

std::array<uint8_t, 6> mac_in(const std::string& ns, const std::string& dev) {
    const int fd = socket_in(ns, AF_INET, SOCK_DGRAM);
    ifreq req{};
    std::strncpy(req.ifr_name, dev.c_str(), IFNAMSIZ - 1);
    const bool ok = ioctl(fd, SIOCGIFHWADDR, &req) == 0;
    close(fd);
    check(ok, "SIOCGIFHWADDR " + dev);
    std::array<uint8_t, 6> mac{};
    std::memcpy(mac.data(), req.ifr_hwaddr.sa_data, 6);
    return mac;
}

sockaddr_in ipv4(const std::string& addr, int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, addr.c_str(), &a.sin_addr);
    return a;
}

std::string netns_inode(const std::string& path) {
    struct stat st {};
    check(stat(path.c_str(), &st) == 0, "stat " + path);
    return std::to_string(st.st_ino);
}

std::string paths_config(const std::vector<std::string>& namespaces, bool netns_label) {
    std::string netns;
    for (const auto& ns : namespaces) netns += (netns.empty() ? "" : ", ") + netns_inode(ns);
    // bpf_stats: Window::program_runs reads the kernel's run counts (off by default).
    return "interval: 100ms\nbpf_stats: true\nbuckets:\n  max: 60s\nfilters:\n  local_ports: [" +
           std::to_string(kServerPort) + ", " + std::to_string(kClientPort) + "]\n  netns: [" +
           netns + "]\n" + (netns_label ? "labels:\n  netns: true\n" : "");
}

Flow::Flow(bool is_tcp, const std::string& from_ns, const std::string& to_ns,
           const std::string& to_addr)
    : tcp(is_tcp), rx_stamps_live_(static_cast<int>(2000 * time_scale())) {
    const int type = tcp ? SOCK_STREAM : SOCK_DGRAM;
    const sockaddr_in server = ipv4(to_addr, kServerPort);
    const sockaddr_in client = ipv4("0.0.0.0", kClientPort);
    const int one = 1, big = 8 << 20;
    int listener = socket_in(to_ns, AF_INET, type);
    tx = socket_in(from_ns, AF_INET, type);
    for (int fd : {listener, tx}) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(listener, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
    netlat_load::enable_rx_timestamping(listener);  // an accepted socket inherits it
    check(bind(listener, reinterpret_cast<const sockaddr*>(&server), sizeof(server)) == 0,
          "bind " + to_addr);
    check(bind(tx, reinterpret_cast<const sockaddr*>(&client), sizeof(client)) == 0, "bind client");
    if (tcp) check(listen(listener, 1) == 0, "listen");
    check(connect(tx, reinterpret_cast<const sockaddr*>(&server), sizeof(server)) == 0,
          "connect " + to_addr);
    if (tcp) {
        rx = accept(listener, nullptr, nullptr);
        close(listener);
        check(rx >= 0, "accept");
        for (int fd : {tx, rx}) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    } else {
        rx = listener;
    }
    timeval timeout{2, 0};  // a lost message fails the test instead of hanging it
    setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
}

Flow::~Flow() {
    close(tx);
    close(rx);
}

size_t Flow::receive(size_t bytes) {
    std::vector<char> buf(tcp ? bytes : 65536);
    size_t got = 0;
    std::optional<int64_t> stamp;
    do {
        StampedRead r(buf.data() + got, buf.size() - got);
        const ssize_t n = recvmsg(rx, &r.msg, 0);
        if (n < 0 || (tcp && n == 0)) break;
        got += static_cast<size_t>(n);
        stamp = netlat_load::parse_rx_stamp(r.msg);  // TCP: of the read that completes the message
    } while (tcp && got < bytes);
    const int64_t now = netlat_load::realtime_ns();
    if (tcp && got < bytes) return got;
    record_read(stamp, now);
    return got;
}

void Flow::record_read(std::optional<int64_t> stamp, int64_t now) {
    ++reads_;
    if (stamp) {
        rx_stamp_sum_ += now - *stamp;
        ++rx_stamps_;
    }
}

void Flow::send_stamped(int calls, int per_call, size_t bytes, const std::function<void(int)>& send,
                        const std::function<void(int)>& read) {
    const auto n = static_cast<size_t>(calls * per_call);
    std::vector<netlat_load::TxRecord> records(n);
    netlat_load::TxTracker stamps(tcp ? netlat_load::Proto::kTcp : netlat_load::Proto::kUdp,
                                  &records);
    // OPT_ID counts from here (UDP: sends, TCP: bytes from the write sequence; nothing is unsent).
    netlat_load::enable_timestamping(tx);
    for (int c = 0; c < calls; c++) {
        const auto first = static_cast<size_t>(c * per_call);
        for (int m = 0; m < per_call; m++) stamps.sent(first + static_cast<size_t>(m), bytes);
        const int64_t start = netlat_load::realtime_ns();
        send(c);
        if (::testing::Test::HasFatalFailure()) break;  // an ASSERT in send() or read() stops
        for (int m = 0; m < per_call; m++) records[first + static_cast<size_t>(m)].send_ns = start;
        if (read) {
            read(c);
        } else {
            for (int m = 0; m < per_call; m++)
                ASSERT_EQ(receive(bytes), bytes) << "call " << c << " was not received";
        }
        if (::testing::Test::HasFatalFailure()) break;
        stamps.drain(tx);  // the driver stamped the message before the receiver could read it
    }
    const int off = 0;
    setsockopt(tx, SOL_SOCKET, SO_TIMESTAMPING, &off, sizeof(off));
    sent_.insert(sent_.end(), records.begin(), records.end());
}

void Flow::ping(int n, size_t bytes, int datagrams) {
    const std::string payload(bytes, 'p');
    const size_t part = tcp ? bytes : bytes / static_cast<size_t>(datagrams);
    send_stamped(
        n, 1, bytes,
        [&](int i) {
            ASSERT_EQ(send(tx, payload.data(), bytes, tcp ? MSG_EOR : 0),
                      static_cast<ssize_t>(bytes))
                << "message " << i;
        },
        [&](int i) {
            for (int r = 0; r < (tcp ? 1 : datagrams); r++)
                ASSERT_EQ(receive(part), part) << "message " << i << " was not received";
        });
}

KernelMeans Flow::kernel_means() {
    KernelMeans k;
    int64_t tx_sum = 0;
    for (const auto& r : sent_) {
        if (!r.driver_ns) continue;
        const int64_t took = r.driver_ns - r.send_ns;
        tx_sum += took;
        k.tx_longest = std::max(k.tx_longest, static_cast<double>(took) / 1e9);
        ++k.sends_stamped;
    }
    const auto mean = [](int64_t sum, int n) {
        return n ? static_cast<double>(sum) / n / 1e9 : std::nan("");
    };
    k.sends = static_cast<int>(sent_.size());
    k.tx = mean(tx_sum, k.sends_stamped);
    k.reads = reads_;
    k.reads_stamped = rx_stamps_;
    k.rx = mean(rx_stamp_sum_, rx_stamps_);
    sent_.clear();
    rx_stamp_sum_ = 0;
    reads_ = rx_stamps_ = 0;
    return k;
}

std::vector<Sample> Window::settled_scrape() {
    const auto from = std::chrono::steady_clock::now();
    const double drains = metric_value(parse_metrics(d_.scrape()), "netlatd_drains_total", {});
    std::this_thread::sleep_for(kSettle);
    const auto deadline = from + std::chrono::duration<double>(60 * time_scale());
    for (;;) {
        std::vector<Sample> now = parse_metrics(d_.scrape());
        if (metric_value(now, "netlatd_drains_total", {}) >= drains + 2) {
            settle_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - from)
                                  .count();
            return now;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            ADD_FAILURE() << "netlatd did not drain twice in " << 60 * time_scale()
                          << " s (netlatd_drains_total stayed below " << drains + 2 << ")";
            return now;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

Window::Window(Daemon& d) : d_(d) {
    before_ = settled_scrape();
    start_ = std::chrono::steady_clock::now();
}

void Window::close() {
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    after_ = settled_scrape();
}

double Window::delta(const std::string& name,
                     const std::map<std::string, std::string>& match) const {
    return metric_value(after_, name, match) - metric_value(before_, name, match);
}

double Window::samples(const std::string& dir, const std::string& segment, const std::string& proto,
                       const std::string& netns) const {
    std::map<std::string, std::string> m{
        {"direction", dir}, {"segment", segment}, {"protocol", proto}};
    if (!netns.empty()) m["netns"] = netns;
    return delta("netlatd_stack_latency_seconds_count", m);
}

double Window::mean(const std::string& dir, const std::string& segment,
                    const std::string& proto) const {
    const std::map<std::string, std::string> m{
        {"direction", dir}, {"segment", segment}, {"protocol", proto}};
    return delta("netlatd_stack_latency_seconds_sum", m) / samples(dir, segment, proto);
}

double Window::events(const std::string& dir, const std::string& stage) const {
    return delta("netlatd_stage_events_total", {{"direction", dir}, {"stage", stage}});
}

double Window::unmatched(const std::string& dir, const std::string& reason,
                         const std::string& segment) const {
    std::map<std::string, std::string> m{{"direction", dir}};
    if (!reason.empty()) m["reason"] = reason;
    if (!segment.empty()) m["segment"] = segment;
    return delta("netlatd_unmatched_total", m);
}

double Window::program_runs(const std::string& program) const {
    return delta("netlatd_bpf_program_runs_total", {{"program", program}});
}

double Window::program_misses() const {
    double sum = 0;
    for (const auto& s : after_)
        if (s.name == "netlatd_bpf_program_misses_total") sum += delta(s.name, s.labels);
    return sum;
}

double Window::longest_sample(const std::string& dir) const {
    std::set<std::pair<std::string, std::string>> series;
    for (const auto& s : after_)
        if (s.name == "netlatd_stack_latency_seconds_count" && s.labels.at("direction") == dir)
            series.insert({s.labels.at("segment"), s.labels.at("protocol")});
    double longest = 0;
    for (const auto& [segment, proto] : series) {
        const std::map<std::string, std::string> m{
            {"direction", dir}, {"segment", segment}, {"protocol", proto}};
        auto after = histogram_buckets(after_, "netlatd_stack_latency_seconds", m);
        auto before = histogram_buckets(before_, "netlatd_stack_latency_seconds", m);
        std::map<double, double> base(before.begin(), before.end());
        double previous = 0;
        for (const auto& [le, count] : after) {
            const double moved = count - base[le];
            if (moved > previous) longest = std::max(longest, le);
            previous = moved;
        }
    }
    return longest;
}

double Window::samples_above(const std::string& dir, const std::string& segment,
                             const std::string& proto, double seconds) const {
    const std::map<std::string, std::string> m{
        {"direction", dir}, {"segment", segment}, {"protocol", proto}};
    auto at_or_below = [&](const std::vector<Sample>& s) {
        double n = 0;  // the buckets are cumulative, in order of their bound
        for (const auto& [le, count] : histogram_buckets(s, "netlatd_stack_latency_seconds", m))
            if (le <= seconds) n = count;
        return n;
    };
    return samples(dir, segment, proto) - (at_or_below(after_) - at_or_below(before_));
}

std::string Window::unmatched_summary(const std::string& dir) const {
    std::string out;
    for (const auto& s : after_) {
        if (s.name != "netlatd_unmatched_total" || s.labels.at("direction") != dir) continue;
        const double moved = delta(s.name, s.labels);
        if (moved > 0)
            out += s.labels.at("segment") + "/" + s.labels.at("reason") + "=" +
                   std::to_string(static_cast<long>(moved)) + " ";
    }
    return out.empty() ? "none" : out;
}

std::string Window::moved_counters() const {
    std::string out;
    for (const auto& s : after_) {
        if (s.name.rfind("netlatd_", 0) != 0 || s.name.find("_seconds") != std::string::npos ||
            s.name.find("_bytes") != std::string::npos)
            continue;
        const double moved = delta(s.name, s.labels);
        if (moved == 0) continue;
        std::string labels;
        for (const auto& [k, v] : s.labels) labels += (labels.empty() ? "" : ",") + k + "=" + v;
        out += s.name.substr(8) + (labels.empty() ? "" : "{" + labels + "}") + "=" +
               std::to_string(static_cast<long>(moved)) + " ";
    }
    return out.empty() ? "none" : out;
}

void expect_joined(const Window& w, const std::string& dir, const std::string& segment,
                   const std::string& proto, double expected, const std::string& what) {
    const double n = w.samples(dir, segment, proto);
    if (segment == "total") expected -= w.skipped(dir);
    const std::string where = what + ": " + dir + " " + segment + " " + proto + ": " +
                              std::to_string(static_cast<long>(n)) + " samples for " +
                              std::to_string(static_cast<long>(expected)) + "; unmatched " +
                              w.unmatched_summary(dir) + "; program misses " +
                              std::to_string(static_cast<long>(w.program_misses()));
    EXPECT_GE(n, expected * 0.99) << where;
    EXPECT_LE(n, expected * 1.01) << where << " (a message timed twice)";
    // A miss is counted under a reason, or by the kernel as a skipped run of a stage program
    // (netlatd_bpf_program_misses_total: fentry/fexit recursion, docs/SEMANTICS.md).
    EXPECT_LE(expected - n, w.unmatched(dir) + w.program_misses())
        << where << " (misses counted neither under a reason nor as program misses)";
    EXPECT_LE(w.longest_sample(dir), std::max(w.seconds() * 1.5, 250e-9))
        << what << ": a " << dir << " sample is longer than the " << w.seconds() << " s of traffic";
}

Measured measure_messages(Daemon& d, Flow& f, int n, size_t bytes, int datagrams) {
    f.kernel_means();  // drops what earlier messages left
    Window w(d);
    {
        const RealtimeScheduling realtime;
        f.ping(n, bytes, datagrams);
    }
    w.close();
    return {w, f.kernel_means()};
}

Measured measure_traffic(Daemon& d, Flow& f, const std::function<void()>& traffic) {
    f.kernel_means();  // drops what earlier messages left
    Window w(d);
    {
        const RealtimeScheduling realtime;
        traffic();
    }
    w.close();
    return {w, f.kernel_means()};
}

void expect_each_message_joined(const Window& w, const Flow& f, int messages,
                                const std::string& what) {
    const std::string proto = f.tcp ? "tcp" : "udp";
    expect_joined(w, "tx", "total", proto, messages, what);
    expect_joined(w, "rx", "total", proto, messages, what);
}

std::string rx_segment_of_kernel_stamp(const Flow& f) {
    return f.tcp ? "transport_to_socket" : "total";
}

double kernel_mean_tolerance(double kernel) {
    return (0.25 * kernel + 5e-6) * std::min(time_scale(), 2.0);
}

void expect_means_near_kernel(const Window& w, const Flow& f, const KernelMeans& kernel,
                              KernelStamps which, const std::string& what) {
    const std::string proto = f.tcp ? "tcp" : "udp";
    const auto expect_near = [&](const std::string& dir, const std::string& segment, double k,
                                 int stamped, int messages, const std::string& figure) {
        EXPECT_GT(messages, 0) << what << ": no messages to judge on " << figure;
        EXPECT_EQ(stamped, messages) << what << ": messages with the kernel's " << figure;
        const double measured = w.mean(dir, segment, proto);
        std::printf("%s: netlatd %s %s mean %.2f us, kernel %s mean %.2f us, tolerance %.2f us\n",
                    what.c_str(), dir.c_str(), segment.c_str(), measured * 1e6, figure.c_str(),
                    k * 1e6, kernel_mean_tolerance(k) * 1e6);
        EXPECT_NEAR(measured, k, kernel_mean_tolerance(k))
            << what << ": netlatd " << dir << " " << segment << " mean " << measured * 1e6
            << " us, kernel " << figure << " mean " << k * 1e6 << " us";
    };
    if (which & kTx) {
        std::printf("%s: the kernel's longest send() -> driver %.2f us\n", what.c_str(),
                    kernel.tx_longest * 1e6);
        expect_near("tx", "total", kernel.tx, kernel.sends_stamped, kernel.sends,
                    "send() -> driver (TX_SOFTWARE)");
    }
    if (which & kRx)
        expect_near("rx", rx_segment_of_kernel_stamp(f), kernel.rx, kernel.reads_stamped,
                    kernel.reads, "RX_SOFTWARE -> read returns");
}

void expect_comparisons_can_fail(const Window& w, const Flow& f, const KernelMeans& kernel,
                                 KernelStamps which, const std::string& what) {
    if (::testing::Test::HasNonfatalFailure()) return;  // shown only where the real one passes
    for (KernelStamps one : {kTx, kRx}) {
        if (!(which & one)) continue;
        KernelMeans moved = kernel;
        double& mean = one == kTx ? moved.tx : moved.rx;
        mean += 5 * kernel_mean_tolerance(mean);
        EXPECT_NONFATAL_FAILURE(expect_means_near_kernel(w, f, moved, one, what + " (moved)"),
                                "kernel");
    }
}

void expect_later_messages_join(Daemon& d, Flow& f, int messages) {
    Window w(d);
    f.ping(messages);
    w.close();
    const std::string proto = f.tcp ? "tcp" : "udp";
    for (const char* dir : {"tx", "rx"})
        EXPECT_GE(w.samples(dir, "total", proto), (messages - w.skipped(dir)) * 0.99)
            << "later messages of the same socket: " << dir << " total; unmatched "
            << w.unmatched_summary(dir) << "; counters that moved: " << w.moved_counters();
}

void set_offload(const std::string& ns, const std::string& dev, const std::string& feature,
                 bool on) {
    run_steps({{"ip", "netns", "exec", ns, "ethtool", "-K", dev, feature, on ? "on" : "off"}});
}

}  // namespace netlatd::test
