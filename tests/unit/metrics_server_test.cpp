// MetricsServer: /metrics and /healthz over HTTP on loopback, and the one-line bind error.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include "daemon/metrics/http.h"

namespace netlatd {
namespace {

// A TCP socket bound to 127.0.0.1 on a free port; listening if asked.
struct BoundSocket {
    int fd = -1;
    int port = 0;
    explicit BoundSocket(bool listening) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
        socklen_t length = sizeof(address);
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
        port = ntohs(address.sin_port);
        if (listening) {
            EXPECT_EQ(listen(fd, 1), 0);
        }
    }
    ~BoundSocket() { close(fd); }
};

int free_port() {
    return BoundSocket(false).port;
}

std::string http_get(int port, const std::string& path) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        close(fd);
        return "connect failed";
    }
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
    EXPECT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
    std::string response;
    char buffer[4096];
    for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) response.append(buffer, n);
    close(fd);
    return response;
}

TEST(MetricsServer, ServesMetricsAndHealthz) {
    auto registry = std::make_shared<prometheus::Registry>();
    prometheus::BuildCounter()
        .Name("netlatd_test_total")
        .Help("test")
        .Register(*registry)
        .Add({})
        .Increment(3);
    const int port = free_port();
    MetricsServer server("127.0.0.1:" + std::to_string(port), registry);
    EXPECT_EQ(server.ports(), std::vector<int>{port});

    const std::string metrics = http_get(port, "/metrics");
    EXPECT_EQ(metrics.find(" 200 OK\r\n"), 8u) << metrics;
    EXPECT_NE(metrics.find("\nnetlatd_test_total 3"), std::string::npos) << metrics;

    server.set_health(true, "ok");
    const std::string health = http_get(port, "/healthz");
    EXPECT_EQ(health.find(" 200 OK\r\n"), 8u) << health;
    EXPECT_EQ(health.substr(health.size() - 3), "ok\n") << health;
}

// The page at / and its JSON go through the same dispatcher as /healthz: exact paths, the content
// type given, the body made at each request; other paths still reach /metrics or get 404.
TEST(MetricsServer, AddedEndpointsAnswerTheirExactPath) {
    const int port = free_port();
    MetricsServer server("127.0.0.1:" + std::to_string(port),
                         std::make_shared<prometheus::Registry>());
    EXPECT_EQ(http_get(port, "/").find(" 404 Not Found\r\n"), 8u) << "nothing at / by default";
    int calls = 0;
    server.add_endpoint("/", "text/html; charset=utf-8", [] { return std::string("<p>page</p>"); });
    server.add_endpoint("/api/latency.json", "application/json",
                        [&calls] { return "{\"n\":" + std::to_string(++calls) + "}"; });

    const std::string page = http_get(port, "/");
    EXPECT_EQ(page.find(" 200 OK\r\n"), 8u) << page;
    EXPECT_NE(page.find("Content-Type: text/html; charset=utf-8\r\n"), std::string::npos) << page;
    EXPECT_TRUE(page.ends_with("\r\n\r\n<p>page</p>")) << page;
    EXPECT_TRUE(http_get(port, "/api/latency.json").ends_with("{\"n\":1}"));
    EXPECT_TRUE(http_get(port, "/api/latency.json").ends_with("{\"n\":2}")) << "made per request";
    EXPECT_EQ(http_get(port, "/api/latency.jsonx").find(" 404 Not Found\r\n"), 8u);
    EXPECT_EQ(http_get(port, "/metrics").find(" 200 OK\r\n"), 8u);
    EXPECT_EQ(http_get(port, "/healthz").find(" 503 "), 8u);
}

TEST(MetricsServer, HealthzIsNotReadyUntilMarkedReady) {
    const int port = free_port();
    MetricsServer server("127.0.0.1:" + std::to_string(port),
                         std::make_shared<prometheus::Registry>());
    auto expect = [&](const std::string& status_line, const std::string& body) {
        const std::string health = http_get(port, "/healthz");
        EXPECT_EQ(health.find(" " + status_line + "\r\n"), 8u) << health;
        EXPECT_EQ(health.substr(health.size() - body.size()), body) << health;
    };
    expect("503 Service Unavailable", "not ready: starting\n");
    server.set_health(false, "attaching hooks");
    expect("503 Service Unavailable", "not ready: attaching hooks\n");
    server.set_health(true, "ok");
    expect("200 OK", "ok\n");
    server.set_health(false, "stopping");
    expect("503 Service Unavailable", "not ready: stopping\n");
}

TEST(MetricsServer, StopsPromptlyAfterServing) {
    // civetweb alone takes up to 2 s to stop once it has served a request.
    const int port = free_port();
    auto server = std::make_unique<MetricsServer>("127.0.0.1:" + std::to_string(port),
                                                  std::make_shared<prometheus::Registry>());
    EXPECT_EQ(http_get(port, "/metrics").find(" 200 OK\r\n"), 8u);
    const auto start = std::chrono::steady_clock::now();
    server.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

TEST(MetricsServer, Ipv6ServesOrSaysCivetwebLacksIt) {
    const std::string listen = "[::1]:" + std::to_string(free_port());
    if (MetricsServer::ipv6_supported()) {
        MetricsServer server(listen, std::make_shared<prometheus::Registry>());
        EXPECT_EQ(server.ports().size(), 1u);
        return;
    }
    try {
        MetricsServer server(listen, std::make_shared<prometheus::Registry>());
        FAIL() << "expected an error";
    } catch (const std::runtime_error& error) {
        EXPECT_EQ(std::string(error.what()), "cannot serve /metrics on " + listen +
                                                 ": this build's civetweb has no IPv6 support");
    }
}

TEST(MetricsServer, AddressInUseIsOneClearLine) {
    BoundSocket taken(true);
    const std::string listen = "127.0.0.1:" + std::to_string(taken.port);
    try {
        MetricsServer server(listen, std::make_shared<prometheus::Registry>());
        FAIL() << "expected an error";
    } catch (const std::runtime_error& error) {
        EXPECT_EQ(std::string(error.what()),
                  "cannot serve /metrics on " + listen + ": Address already in use");
    }
}

TEST(MetricsServer, RejectsMalformedAddresses) {
    for (const std::string listen :
         {"9810", "127.0.0.1:", "::1:9810", "[::1:9810", "nohost:9810"}) {
        try {
            MetricsServer server(listen, std::make_shared<prometheus::Registry>());
            ADD_FAILURE() << "accepted " << listen;
        } catch (const std::runtime_error& error) {
            EXPECT_EQ(
                std::string(error.what()).rfind("cannot serve /metrics on " + listen + ": ", 0), 0u)
                << error.what();
        }
    }
}

}  // namespace
}  // namespace netlatd
