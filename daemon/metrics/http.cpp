#include "daemon/metrics/http.h"

#include <CivetServer.h>
#include <civetweb.h>
#include <netdb.h>
#include <netinet/in.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

namespace netlatd {
namespace {

[[noreturn]] void fail(const std::string& listen, const std::string& reason) {
    throw std::runtime_error("cannot serve /metrics on " + listen + ": " + reason);
}

struct HostPort {
    std::string host, port;
};

HostPort split_listen(const std::string& listen) {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) {
        fail(listen, "expected HOST:PORT or [IPv6]:PORT");
    }
    std::string host = listen.substr(0, colon);
    if (host.front() == '[') {
        if (host.back() != ']') fail(listen, "expected [IPv6]:PORT");
        host = host.substr(1, host.size() - 2);
        if (!MetricsServer::ipv6_supported())
            fail(listen, "this build's civetweb has no IPv6 support");
    } else if (host.find(':') != std::string::npos) {
        fail(listen, "an IPv6 address needs brackets: [IPv6]:PORT");
    }
    return {host, listen.substr(colon + 1)};
}

// The address a local client reaches the server on: the wildcard addresses become loopback.
sockaddr_storage wake_address(const std::string& listen, int port) {
    HostPort address = split_listen(listen);
    if (address.host == "0.0.0.0") address.host = "127.0.0.1";
    if (address.host == "::") address.host = "::1";
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* result = nullptr;
    sockaddr_storage storage{};
    if (getaddrinfo(address.host.c_str(), std::to_string(port).c_str(), &hints, &result) == 0) {
        std::memcpy(&storage, result->ai_addr, result->ai_addrlen);
        freeaddrinfo(result);
    }
    return storage;
}

// One connection attempt, closed at once: enough to wake civetweb's accept loop.
void poke(const sockaddr_storage& address) {
    if (address.ss_family == AF_UNSPEC) return;
    const int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    const timeval timeout{0, 100'000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    const socklen_t length =
        address.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    connect(fd, reinterpret_cast<const sockaddr*>(&address), length);
    close(fd);
}

// Binds (and closes) a socket on the address the way civetweb will, to learn the errno it would
// hit: civetweb itself only logs that it could not bind.
void probe_bind(const std::string& listen) {
    const HostPort address = split_listen(listen);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* result = nullptr;
    if (int err = getaddrinfo(address.host.c_str(), address.port.c_str(), &hints, &result);
        err != 0) {
        fail(listen, gai_strerror(err));
    }
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(result, freeaddrinfo);
    const int fd =
        socket(result->ai_family, result->ai_socktype | SOCK_CLOEXEC, result->ai_protocol);
    if (fd < 0) fail(listen, std::strerror(errno));
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (result->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    const int err = bind(fd, result->ai_addr, result->ai_addrlen) == 0 ? 0 : errno;
    close(fd);
    if (err != 0) fail(listen, std::strerror(err));
}

// What /healthz answers, per listening port: civetweb copies its callbacks and gives them no
// pointer of ours, but it tells the port a request came in on.
struct Health {
    bool ready = false;
    std::string status = "starting";
};
std::mutex health_mutex;
std::map<int, Health> health_by_port;

// Further paths of a port (add_endpoint), under health_mutex.
struct Endpoint {
    std::string content_type;
    std::function<std::string()> body;
};
std::map<int, std::map<std::string, std::shared_ptr<const Endpoint>>> endpoints_by_port;

void respond(mg_connection* connection, const mg_request_info* request, int code,
             const char* content_type, const std::string& body) {
    mg_response_header_start(connection, code);
    mg_response_header_add(connection, "Content-Type", content_type, -1);
    mg_response_header_add(connection, "Content-Length", std::to_string(body.size()).c_str(), -1);
    mg_response_header_add(connection, "Cache-Control", "no-store", -1);
    mg_response_header_send(connection);
    if (std::strcmp(request->request_method, "HEAD") != 0)
        mg_write(connection, body.data(), body.size());
}

// civetweb calls begin_request before any handler: the one dispatcher of every request. /healthz
// and the added endpoints are answered here; 0 passes the request on to the metrics handler. A
// port not registered yet is still starting.
int dispatch_request(mg_connection* connection) {
    const mg_request_info* request = mg_get_request_info(connection);
    if (request == nullptr || request->local_uri == nullptr) return 0;
    if (std::strcmp(request->local_uri, "/healthz") == 0) {
        Health health;
        {
            std::lock_guard lock(health_mutex);
            if (auto it = health_by_port.find(request->server_port); it != health_by_port.end())
                health = it->second;
        }
        const std::string body = (health.ready ? "ok" : "not ready: " + health.status) + "\n";
        const int code = health.ready ? 200 : 503;
        respond(connection, request, code, "text/plain; charset=utf-8", body);
        return code;
    }
    std::shared_ptr<const Endpoint> endpoint;
    {
        std::lock_guard lock(health_mutex);
        if (auto port = endpoints_by_port.find(request->server_port);
            port != endpoints_by_port.end()) {
            if (auto it = port->second.find(request->local_uri); it != port->second.end())
                endpoint = it->second;
        }
    }
    if (!endpoint) return 0;
    if (std::strcmp(request->request_method, "GET") != 0 &&
        std::strcmp(request->request_method, "HEAD") != 0) {
        respond(connection, request, 405, "text/plain; charset=utf-8", "GET or HEAD only\n");
        return 405;
    }
    std::string body;
    try {
        body = endpoint->body();
    } catch (const std::exception& error) {
        respond(connection, request, 500, "text/plain; charset=utf-8",
                std::string(error.what()) + "\n");
        return 500;
    }
    respond(connection, request, 200, endpoint->content_type.c_str(), body);
    return 200;
}

}  // namespace

MetricsServer::MetricsServer(const std::string& listen,
                             std::shared_ptr<prometheus::Collectable> registry)
    : callbacks_(std::make_unique<CivetCallbacks>()), registry_(std::move(registry)) {
    probe_bind(listen);
    callbacks_->begin_request = dispatch_request;
    try {
        exposer_ = std::make_unique<prometheus::Exposer>(listen, 2, callbacks_.get());
    } catch (const std::exception& error) {
        fail(listen, error.what());
    }
    exposer_->RegisterCollectable(registry_, "/metrics");
    const std::vector<int> ports = exposer_->GetListeningPorts();
    if (!ports.empty())
        wake_address_ = std::make_unique<sockaddr_storage>(wake_address(listen, ports[0]));
}

// civetweb's accept loop polls with a 2 s timeout and looks at its stop flag only between polls,
// so stopping could take up to 2 s (too long for a prompt exit on SIGTERM). Connecting to the
// server while it stops wakes the loop at once.
MetricsServer::~MetricsServer() {
    {
        std::lock_guard lock(health_mutex);
        for (int port : exposer_->GetListeningPorts()) {
            health_by_port.erase(port);
            endpoints_by_port.erase(port);
        }
    }
    if (!wake_address_) return;
    std::atomic<bool> stopped = false;
    std::thread waker([&] {
        for (std::this_thread::sleep_for(std::chrono::milliseconds(10)); !stopped;
             std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
            poke(*wake_address_);
        }
    });
    exposer_.reset();
    stopped = true;
    waker.join();
}

// mg_check_feature bit 8: civetweb was built with IPv6.
bool MetricsServer::ipv6_supported() {
    return mg_check_feature(8) != 0;
}

void MetricsServer::set_health(bool ready, const std::string& status) {
    std::lock_guard lock(health_mutex);
    for (int port : exposer_->GetListeningPorts()) health_by_port[port] = {ready, status};
}

void MetricsServer::add_endpoint(const std::string& path, const std::string& content_type,
                                 std::function<std::string()> body) {
    auto endpoint = std::make_shared<const Endpoint>(Endpoint{content_type, std::move(body)});
    std::lock_guard lock(health_mutex);
    for (int port : exposer_->GetListeningPorts()) endpoints_by_port[port][path] = endpoint;
}

std::vector<int> MetricsServer::ports() const {
    return exposer_->GetListeningPorts();
}

}  // namespace netlatd
