// Send calls that do not pass the send-syscall hook (sendfile here) must not inherit the time of an
// earlier write() of the same thread: each is timed from its own start or counted as no_start.
// With the bug, every sendfile after a write(), 200 ms later, gave socket_to_transport and total
// samples of about 200 ms. (Before 6.5 the function modes time sendfile from kernel_sendpage.)
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <thread>

#include "harness.h"

using namespace netlatd::test;

namespace {

constexpr int kRounds = 12;
constexpr auto kPause = std::chrono::milliseconds(150);

// Samples of tx `segment` longer than `seconds` (from the cumulative buckets).
double samples_above(const std::vector<Sample>& s, const std::string& segment, double seconds) {
    auto buckets =
        histogram_buckets(s, "netlatd_stack_latency_seconds",
                          {{"direction", "tx"}, {"segment", segment}, {"protocol", "tcp"}});
    double total = 0, below = 0;
    for (auto [le, count] : buckets) {
        if (std::isinf(le)) total = count;
        if (le <= seconds) below = count;
    }
    return total - below;
}

TEST(SendPaths, SendfileAfterWriteIsNotTimedFromTheWrite) {
    // A TCP connection on loopback; the server end drains everything.
    const auto [listener, port] = bind_loopback(SOCK_STREAM, true);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));

    Daemon d("interval: 100ms\nfilters:\n  remote_ports: [" + std::to_string(port) + "]\n");
    ASSERT_TRUE(d.running()) << d.log();

    int client = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    const int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int server = accept(listener, nullptr, nullptr);
    ASSERT_GE(server, 0);
    std::thread drain([server] {
        char buf[4096];
        while (read(server, buf, sizeof(buf)) > 0) {
        }
    });

    char path[] = "/tmp/netlatd-sendfile-XXXXXX";
    int file = mkstemp(path);
    ASSERT_GE(file, 0);
    unlink(path);
    const std::string payload(64, 'x');
    ASSERT_EQ(write(file, payload.data(), payload.size()), 64);

    for (int i = 0; i < kRounds; i++) {
        ASSERT_EQ(write(client, payload.data(), payload.size()), 64);
        std::this_thread::sleep_for(kPause);
        off_t offset = 0;
        ASSERT_EQ(sendfile(client, file, &offset, payload.size()), 64);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    shutdown(client, SHUT_WR);
    drain.join();
    close(server);
    close(client);
    close(file);
    close(listener);

    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    auto s = parse_metrics(d.scrape());
    // The write() calls are timed (kRounds samples); no sample may span the pause.
    const double timed =
        metric_value(s, "netlatd_stack_latency_seconds_count",
                     {{"direction", "tx"}, {"segment", "total"}, {"protocol", "tcp"}});
    EXPECT_GE(timed, kRounds) << d.log();
    const double pause = std::chrono::duration<double>(kPause).count();
    for (const char* segment : {"socket_to_transport", "transport_to_network", "total"})
        EXPECT_EQ(samples_above(s, segment, pause / 2), 0)
            << "tx " << segment << ": samples as long as the pause between write() and sendfile()";
    // The sendfile calls were timed from their own start, or had none: counted, not guessed.
    const double no_start = metric_value(
        s, "netlatd_unmatched_total",
        {{"direction", "tx"}, {"segment", "socket_to_transport"}, {"reason", "no_start"}});
    EXPECT_GE(timed + no_start, 2 * kRounds) << timed << " timed, " << no_start << " no_start";
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
