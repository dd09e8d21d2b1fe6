// HTTP abuse: garbage requests, huge headers, slow clients (slowloris) and 400 concurrent scrapes
// against a running netlatd; /metrics must keep serving. Prints the figures recorded in
// docs/RELIABILITY.md ("HTTP abuse").
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace netlatd::test {
namespace {

using Clock = std::chrono::steady_clock;

int connect_to(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// Sends `request` (all of it, whatever the server does meanwhile) and returns the status of the
// answer, 0 when the server closed without one, -1 when nothing came within `timeout`.
int exchange(int port, const std::string& request,
             std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    const int fd = connect_to(port);
    if (fd < 0) return -1;
    for (size_t sent = 0; sent < request.size();) {
        const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;  // the server may answer and close before the whole request is in
        sent += static_cast<size_t>(n);
    }
    std::string answer;
    const Clock::time_point deadline = Clock::now() + timeout;
    char buffer[65536];
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            close(fd);
            return -1;
        }
        const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        answer.append(buffer, static_cast<size_t>(n));
    }
    close(fd);
    if (answer.rfind("HTTP/1.", 0) != 0 || answer.size() < 12) return 0;
    return std::atoi(answer.substr(9, 3).c_str());
}

const std::string kScrape = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

struct Scrape {
    int status;
    std::chrono::milliseconds took;
};
Scrape timed_scrape(int port) {
    const Clock::time_point start = Clock::now();
    const int status = exchange(port, kScrape);
    return {status, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)};
}

TEST(HttpAbuse, GarbageAndHugeHeadsAreRefusedAndMetricsServes) {
    Daemon daemon;
    const int port = daemon.port();
    std::string binary(4096, '\0');
    for (size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 131 + 7);
    std::string many_headers = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    while (many_headers.size() < 64 * 1024) many_headers += "X-Filler: 0123456789abcdef\r\n";
    many_headers += "\r\n";
    struct Case {
        const char* name;
        std::string request;
        std::vector<int> allowed;  // statuses accepted (0: closed without an answer)
    };
    const std::vector<Case> cases = {
        {"binary junk (4 KB)", binary, {0, 400, 413}},
        {"empty head", "\r\n\r\n", {0, 400}},
        {"no version", "GET /metrics\r\n\r\n", {0, 400, 505}},
        {"HTTP/9.9", "GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n", {0, 400, 505}},
        {"unknown method", "BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n", {0, 400, 405, 501}},
        {"header without colon", "GET /metrics HTTP/1.1\r\nHost x\r\n\r\n", {0, 400}},
        {"negative Content-Length",
         "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
         {0, 400, 411, 413}},
        {"NUL in the path",
         std::string("GET /met\0rics HTTP/1.1\r\nHost: x\r\n\r\n", 36),
         {0, 400, 404}},
        {"1 MB header value",
         "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n",
         {0, 400, 413}},
        {"64 KB of headers", many_headers, {0, 400, 413}},
        {"100 KB path",
         "GET /" + std::string(100 * 1024, 'p') + " HTTP/1.1\r\n\r\n",
         {0, 400, 413}},
        {"POST /metrics", "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", {405}},
    };
    for (const Case& c : cases) {
        const int status = exchange(port, c.request);
        std::printf("%-26s -> %s\n", c.name,
                    status == 0 ? "closed without answer" : std::to_string(status).c_str());
        EXPECT_NE(std::find(c.allowed.begin(), c.allowed.end(), status), c.allowed.end())
            << c.name << ": " << status;
        EXPECT_EQ(exchange(port, kScrape), 200) << "after " << c.name;
    }
    // 500 connections that connect and close at once, or send half a request line and close.
    for (int i = 0; i < 500; ++i) {
        const int fd = connect_to(port);
        if (i % 2 == 1 && fd >= 0) send(fd, "GET /met", 8, MSG_NOSIGNAL);
        if (fd >= 0) close(fd);
    }
    EXPECT_EQ(exchange(port, kScrape), 200) << "after 500 aborted connections";
    EXPECT_TRUE(daemon.running()) << daemon.log();
    EXPECT_EQ(daemon.stop(), 0);
}

// Slowloris: `connections` clients send a request head one byte every 200 ms and open a new
// connection when the server drops theirs; meanwhile /metrics is scraped every 250 ms. Returns the
// scrapes, and through `dropped` how many slow connections the server cut.
std::vector<Scrape> scrape_under_slowloris(int port, int connections, std::chrono::seconds duration,
                                           int& dropped) {
    std::atomic<bool> stop = false;
    std::atomic<int> cut = 0;
    std::thread attacker([&] {
        const std::string head = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
        std::vector<int> fds(connections, -1);
        const auto open = [&](int& fd) {
            fd = connect_to(port);
            if (fd >= 0) send(fd, head.data(), head.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        };
        for (int& fd : fds) open(fd);
        while (!stop) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            for (int& fd : fds) {
                char probe;
                const bool closed = fd < 0 || recv(fd, &probe, 1, MSG_DONTWAIT | MSG_PEEK) >= 0 ||
                                    send(fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1;
                if (closed) {
                    if (fd >= 0) close(fd);
                    ++cut;
                    open(fd);
                }
            }
        }
        for (int fd : fds) close(fd);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let them take the workers
    std::vector<Scrape> scrapes;
    for (const Clock::time_point end = Clock::now() + duration; Clock::now() < end;) {
        scrapes.push_back(timed_scrape(port));
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    stop = true;
    attacker.join();
    dropped = cut;
    return scrapes;
}

std::chrono::milliseconds slowest(const std::vector<Scrape>& scrapes) {
    std::chrono::milliseconds max{0};
    for (const Scrape& s : scrapes) max = std::max(max, s.took);
    return max;
}

TEST(HttpAbuse, SlowClientsAndConcurrentScrapesLeaveMetricsServing) {
    Daemon daemon;
    const int port = daemon.port();
    // Fewer slow clients than civetweb's workers (256): scrapes are not slowed at all.
    int dropped = 0;
    std::vector<Scrape> scrapes =
        scrape_under_slowloris(port, 200, std::chrono::seconds(8), dropped);
    std::printf(
        "slowloris 200 connections, 8 s: %zu scrapes, slowest %lld ms, %d slow "
        "connections cut by the server\n",
        scrapes.size(), static_cast<long long>(slowest(scrapes).count()), dropped);
    for (const Scrape& s : scrapes) EXPECT_EQ(s.status, 200);
    EXPECT_LT(slowest(scrapes), std::chrono::seconds(1));
    EXPECT_GT(dropped, 0) << "the request timeout (3 s) never cut a slow connection";

    // More slow clients than workers: a scrape waits for a worker, i.e. for the request timeout
    // (3 s) to cut slow clients, but is answered within Prometheus' default scrape timeout.
    scrapes = scrape_under_slowloris(port, 400, std::chrono::seconds(12), dropped);
    std::printf(
        "slowloris 400 connections, 12 s: %zu scrapes, slowest %lld ms, %d slow "
        "connections cut by the server\n",
        scrapes.size(), static_cast<long long>(slowest(scrapes).count()), dropped);
    for (const Scrape& s : scrapes) EXPECT_EQ(s.status, 200);
    EXPECT_LT(slowest(scrapes), std::chrono::seconds(10));
    EXPECT_EQ(timed_scrape(port).status, 200) << "after the slow clients left";

    // 400 scrapes at once.
    std::vector<Scrape> concurrent(400);
    std::vector<std::thread> threads;
    const Clock::time_point start = Clock::now();
    for (Scrape& s : concurrent) threads.emplace_back([&s, port] { s = timed_scrape(port); });
    for (std::thread& t : threads) t.join();
    const auto all = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    const long ok = std::count_if(concurrent.begin(), concurrent.end(),
                                  [](const Scrape& s) { return s.status == 200; });
    std::printf("400 concurrent scrapes: %ld answered 200, all done in %lld ms, slowest %lld ms\n",
                ok, static_cast<long long>(all.count()),
                static_cast<long long>(slowest(concurrent).count()));
    EXPECT_EQ(ok, 400);
    EXPECT_TRUE(daemon.running()) << daemon.log();
    EXPECT_EQ(daemon.stop(), 0);
}

}  // namespace
}  // namespace netlatd::test
