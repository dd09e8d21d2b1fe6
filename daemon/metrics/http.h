// netlatd's HTTP port: /metrics, /healthz and the page's endpoints over prometheus-cpp's civetweb
// server, with the TLS, basic auth and headers of the web config, and limits that keep /metrics
// serving under abusive clients (docs/RELIABILITY.md, "HTTP abuse").
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "daemon/config/web_config.h"

namespace prometheus {
class Exposer;
class Collectable;
}  // namespace prometheus
struct CivetCallbacks;
struct sockaddr_storage;

namespace netlatd {

class MetricsServer {
  public:
    // listen is "HOST:PORT" with a numeric host, "[v6]:PORT" for IPv6 ("0.0.0.0:9810",
    // "[::1]:9810"; IPv6 needs a civetweb built with it, which Debian 12's is not). Serves the
    // registry on /metrics and the readiness below on /healthz. Throws std::runtime_error("cannot serve /metrics
    // on HOST:PORT: <reason>"), e.g. "Address already in use": the address is probe-bound first
    // because civetweb only reports that binding failed.
    // `web` adds TLS on the same port (no plain HTTP then), basic auth on every path but /healthz
    // (which probes need without credentials and which tells nothing but readiness), and headers on
    // every answer. Bad TLS files throw ConfigError (see tls.h); main checks them before this.
    MetricsServer(const std::string& listen, std::shared_ptr<prometheus::Collectable> registry,
                  const WebConfig& web = {});
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    std::vector<int> ports() const;  // the bound ports

    // /healthz answers 503 "not ready: STATUS" until set_health(true, ...), then 200 "ok". A new
    // server is not ready ("starting"): netlatd marks it ready once every hook is attached and
    // the first drain has run, so a readiness probe never passes a netlatd that measures nothing.
    void set_health(bool ready, const std::string& status);

    // Serves GET (and HEAD) of exactly `path` with the text `body` returns at each request, from
    // civetweb's threads: the page at / and its JSON. Answered by the same dispatcher as /healthz
    // and /metrics, so every path of the port follows the same access rules.
    void add_endpoint(const std::string& path, const std::string& content_type,
                      std::function<std::string()> body);

    // Whether the linked civetweb can listen on IPv6 addresses.
    static bool ipv6_supported();

  private:
    std::unique_ptr<CivetCallbacks> callbacks_;
    std::unique_ptr<prometheus::Exposer> exposer_;
    std::shared_ptr<prometheus::Collectable> registry_;
    std::unique_ptr<sockaddr_storage> wake_address_;  // where to connect to speed up stopping
};

}  // namespace netlatd
