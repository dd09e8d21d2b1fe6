#include "daemon/metrics/http.h"

#include <CivetServer.h>
#include <civetweb.h>
#include <netdb.h>
#include <netinet/in.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
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

#include "daemon/config/config.h"
#include "daemon/metrics/basic_auth.h"
#include "daemon/metrics/tls.h"

namespace netlatd {
namespace {

// civetweb's limits, chosen in docs/RELIABILITY.md ("HTTP abuse"). civetweb serves one connection
// per worker thread: a client slower than request_timeout_ms loses its connection, so no client
// holds a worker longer than that while reading its request; without keep-alive a worker is free
// again after each answer; connections beyond the workers wait in the queue, then in the backlog.
// No linger option: close() never blocks a worker on a client that does not read.
const std::vector<std::string> kServerLimits = {
    "num_threads",        "256",    // workers: concurrent requests (and slow clients) served
    "request_timeout_ms", "3000",   // whole request head, and each write, within 3 s
    "enable_keep_alive",  "no",     // one request per connection (Prometheus reconnects)
    "max_request_size",   "16384",  // request line + headers; larger heads get 400
    "connection_queue",   "256",    // accepted connections waiting for a worker
    "listen_backlog",     "1024",   // connections waiting to be accepted
};

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

// Who may see a port's paths (every one but /healthz) and what every answer carries, under
// health_mutex. A port with no rules answers 503 to everything: requests are never let through
// before the rules are in place.
struct Access {
    std::unique_ptr<BasicAuth> auth;  // null: no authentication
    std::vector<std::pair<std::string, std::string>> headers;
};
std::map<int, std::shared_ptr<const Access>> access_by_port;

// Further paths of a port (add_endpoint), under health_mutex.
struct Endpoint {
    std::string content_type;
    std::function<std::string()> body;
};
std::map<int, std::map<std::string, std::shared_ptr<const Endpoint>>> endpoints_by_port;

void respond(mg_connection* connection, const mg_request_info* request, const Access* access,
             int code, const char* content_type, const std::string& body) {
    mg_response_header_start(connection, code);
    mg_response_header_add(connection, "Content-Type", content_type, -1);
    mg_response_header_add(connection, "Content-Length", std::to_string(body.size()).c_str(), -1);
    mg_response_header_add(connection, "Cache-Control", "no-store", -1);
    if (code == 401) {
        mg_response_header_add(connection, "WWW-Authenticate",
                               "Basic realm=\"netlatd\", charset=\"UTF-8\"", -1);
    }
    if (access != nullptr) {
        for (const auto& [name, value] : access->headers)
            mg_response_header_add(connection, name.c_str(), value.c_str(), -1);
    }
    mg_response_header_send(connection);
    if (std::strcmp(request->request_method, "HEAD") != 0)
        mg_write(connection, body.data(), body.size());
}

void forget_port(int port) {
    std::lock_guard lock(health_mutex);
    health_by_port.erase(port);
    access_by_port.erase(port);
    endpoints_by_port.erase(port);
}

// civetweb calls begin_request before any handler: the one dispatcher of every request, and the
// one place of the access rules. /healthz is open; every other path needs the port's credentials.
int dispatch_request(mg_connection* connection) {
    const mg_request_info* request = mg_get_request_info(connection);
    if (request == nullptr || request->local_uri == nullptr) return 0;
    constexpr const char* kText = "text/plain; charset=utf-8";
    Health health;
    std::shared_ptr<const Access> access;
    std::shared_ptr<const Endpoint> endpoint;
    {
        std::lock_guard lock(health_mutex);
        const int port = request->server_port;
        if (auto it = health_by_port.find(port); it != health_by_port.end()) health = it->second;
        if (auto it = access_by_port.find(port); it != access_by_port.end()) access = it->second;
        if (auto it = endpoints_by_port.find(port); it != endpoints_by_port.end()) {
            if (auto path = it->second.find(request->local_uri); path != it->second.end())
                endpoint = path->second;
        }
    }
    const auto answer = [&](int code, const char* content_type, const std::string& body) {
        respond(connection, request, access.get(), code, content_type, body);
        return code;
    };
    if (std::strcmp(request->local_uri, "/healthz") == 0) {
        return health.ready ? answer(200, kText, "ok\n")
                            : answer(503, kText, "not ready: " + health.status + "\n");
    }
    if (!access) return answer(503, kText, "not ready: " + health.status + "\n");
    if (access->auth && !access->auth->allows(mg_get_header(connection, "Authorization"))) {
        return answer(401, kText, "unauthorized\n");
    }
    if (!endpoint) return answer(404, kText, "not found\n");
    if (std::strcmp(request->request_method, "GET") != 0 &&
        std::strcmp(request->request_method, "HEAD") != 0) {
        return answer(405, kText, "GET or HEAD only\n");
    }
    try {
        return answer(200, endpoint->content_type.c_str(), endpoint->body());
    } catch (const std::exception& error) {
        return answer(500, kText, std::string(error.what()) + "\n");
    }
}

// civetweb asks for the TLS setup while it starts, with no pointer of ours: the web config of the
// server being started, under start_mutex.
std::mutex start_mutex;
const WebConfig* starting_web = nullptr;
std::string starting_error;

int init_tls(void* ssl_ctx, void*) {
    try {
        configure_tls(ssl_ctx, *starting_web->tls, "web config " + starting_web->source + ": ");
        return 1;  // set up: civetweb loads no certificate of its own
    } catch (const std::exception& error) {
        starting_error = error.what();
        return -1;
    }
}

}  // namespace

MetricsServer::MetricsServer(const std::string& listen,
                             std::shared_ptr<prometheus::Collectable> registry, const WebConfig& web)
    : callbacks_(std::make_unique<CivetCallbacks>()), registry_(std::move(registry)) {
    probe_bind(listen);
    if (web.tls) load_openssl_for_civetweb("web config " + web.source + ": ");
    const int port = std::stoi(split_listen(listen).port);
    auto access = std::make_shared<Access>();
    if (!web.basic_auth_users.empty())
        access->auth = std::make_unique<BasicAuth>(web.basic_auth_users);
    access->headers = web.headers;
    {
        std::lock_guard lock(health_mutex);
        access_by_port[port] = std::move(access);
        endpoints_by_port[port]["/metrics"] = std::make_shared<const Endpoint>(
            Endpoint{"text/plain; version=0.0.4; charset=utf-8", [registry = registry_] {
                         return prometheus::TextSerializer().Serialize(registry->Collect());
                     }});
    }
    callbacks_->begin_request = dispatch_request;
    if (web.tls) callbacks_->init_ssl = init_tls;
    std::vector<std::string> options = {"listening_ports", listen + (web.tls ? "s" : "")};
    options.insert(options.end(), kServerLimits.begin(), kServerLimits.end());
    std::lock_guard start(start_mutex);
    starting_web = &web;
    starting_error.clear();
    try {
        exposer_ = std::make_unique<prometheus::Exposer>(options, callbacks_.get());
    } catch (const std::exception& error) {
        forget_port(port);
        if (!starting_error.empty()) throw ConfigError(starting_error);
        fail(listen, error.what());
    }
    const std::vector<int> ports = exposer_->GetListeningPorts();
    if (!ports.empty())
        wake_address_ = std::make_unique<sockaddr_storage>(wake_address(listen, ports[0]));
}

// civetweb's accept loop polls with a 2 s timeout and looks at its stop flag only between polls,
// so stopping could take up to 2 s (too long for a prompt exit on SIGTERM). Connecting to the
// server while it stops wakes the loop at once.
MetricsServer::~MetricsServer() {
    for (int port : exposer_->GetListeningPorts()) forget_port(port);
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
