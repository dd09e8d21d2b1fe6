#include "paths.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <thread>

namespace netlatd::test {

namespace {

void check(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what + ": " + std::strerror(errno));
}

double realtime_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

constexpr auto kSettle = std::chrono::milliseconds(350);  // > 3 drain intervals of 100 ms

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

std::string paths_config(const std::vector<std::string>& namespaces) {
    std::string netns;
    for (const auto& ns : namespaces) {
        struct stat st {};
        check(stat(ns.c_str(), &st) == 0, "stat " + ns);
        netns += (netns.empty() ? "" : ", ") + std::to_string(st.st_ino);
    }
    // bpf_stats: Window::program_runs reads the kernel's run counts (off by default).
    return "interval: 100ms\nbpf_stats: true\nbuckets:\n  max: 60s\nfilters:\n  local_ports: [" +
           std::to_string(kServerPort) + ", " + std::to_string(kClientPort) + "]\n  netns: [" +
           netns + "]\n";
}

Flow::Flow(bool is_tcp, const std::string& from_ns, const std::string& to_ns,
           const std::string& to_addr)
    : tcp(is_tcp) {
    const int type = tcp ? SOCK_STREAM : SOCK_DGRAM;
    const sockaddr_in server = ipv4(to_addr, kServerPort);
    const sockaddr_in client = ipv4("0.0.0.0", kClientPort);
    const int one = 1, big = 8 << 20;
    int listener = socket_in(to_ns, AF_INET, type);
    tx = socket_in(from_ns, AF_INET, type);
    for (int fd : {listener, tx}) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(listener, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
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
        const int flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
        setsockopt(rx, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof(flags));
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
    if (tcp) {
        size_t got = 0;
        while (got < bytes) {
            ssize_t n = read(rx, buf.data() + got, bytes - got);
            if (n <= 0) break;
            got += static_cast<size_t>(n);
        }
        return got;
    }
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) char control[256];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(rx, &msg, 0);
    const double now = realtime_ns();
    if (n < 0) return 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPING) continue;
        scm_timestamping ts{};
        std::memcpy(&ts, CMSG_DATA(c), sizeof(ts));
        if (!ts.ts[0].tv_sec) continue;
        stamp_sum_ += now - (static_cast<double>(ts.ts[0].tv_sec) * 1e9 +
                             static_cast<double>(ts.ts[0].tv_nsec));
        ++stamps_;
    }
    return static_cast<size_t>(n);
}

void Flow::ping(int n, size_t bytes) {
    const std::string payload(bytes, 'p');
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(write(tx, payload.data(), bytes), static_cast<ssize_t>(bytes)) << "message " << i;
        ASSERT_EQ(receive(bytes), bytes) << "message " << i << " was not received";
    }
}

double Flow::kernel_rx_mean() {
    double mean = stamps_ ? stamp_sum_ / stamps_ / 1e9 : std::nan("");
    stamp_sum_ = 0;
    stamps_ = 0;
    return mean;
}

Window::Window(Daemon& d) : d_(d) {
    std::this_thread::sleep_for(kSettle);
    before_ = parse_metrics(d_.scrape());
    start_ = std::chrono::steady_clock::now();
}

void Window::close() {
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::this_thread::sleep_for(kSettle);
    after_ = parse_metrics(d_.scrape());
}

double Window::delta(const std::string& name,
                     const std::map<std::string, std::string>& match) const {
    return metric_value(after_, name, match) - metric_value(before_, name, match);
}

double Window::samples(const std::string& dir, const std::string& segment,
                       const std::string& proto) const {
    return delta("netlatd_stack_latency_seconds_count",
                 {{"direction", dir}, {"segment", segment}, {"protocol", proto}});
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
    EXPECT_LE(expected - n, w.unmatched(dir)) << where << " (misses not counted under a reason)";
    EXPECT_LE(w.longest_sample(dir), std::max(w.seconds() * 1.5, 250e-9))
        << what << ": a " << dir << " sample is longer than the " << w.seconds() << " s of traffic";
}

void expect_each_message_joined(const Window& w, const Flow& f, int messages,
                                const std::string& what) {
    const std::string proto = f.tcp ? "tcp" : "udp";
    expect_joined(w, "tx", "total", proto, messages, what);
    expect_joined(w, "rx", "total", proto, messages, what);
}

void expect_rx_mean_near_kernel(const Window& w, double kernel_mean, const std::string& what) {
    const double measured = w.mean("rx", "total", "udp");
    EXPECT_NEAR(measured, kernel_mean, kernel_mean * 0.25 + 5e-6)
        << what << ": rx total mean " << measured * 1e6 << " us, kernel timestamps "
        << kernel_mean * 1e6 << " us";
}

void expect_later_messages_join(Daemon& d, Flow& f, int messages) {
    Window w(d);
    f.ping(messages);
    w.close();
    const std::string proto = f.tcp ? "tcp" : "udp";
    for (const char* dir : {"tx", "rx"})
        EXPECT_GE(w.samples(dir, "total", proto), (messages - w.skipped(dir)) * 0.99)
            << "later messages of the same socket: " << dir << " total; unmatched "
            << w.unmatched_summary(dir);
}

void set_offload(const std::string& ns, const std::string& dev, const std::string& feature,
                 bool on) {
    run_steps({{"ip", "netns", "exec", ns, "ethtool", "-K", dev, feature, on ? "on" : "off"}});
}

}  // namespace netlatd::test
