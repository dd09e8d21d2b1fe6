// netlatd: per-layer Linux network stack latency, measured with eBPF, served as Prometheus
// histograms. Start-up is an ordered list of steps; each failure is one line and an exit code, and
// everything attached is released by the destructors on every path out.
#include <bpf/libbpf.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <malloc.h>
#include <unistd.h>
#include <time.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <thread>

#include "daemon/config/cli.h"
#include "daemon/config/config.h"
#include "daemon/config/web_config.h"
#include "daemon/drain/drainer.h"
#include "daemon/drain/map_reader.h"
#include "daemon/metrics/buckets.h"
#include "daemon/metrics/http.h"
#include "daemon/metrics/metrics.h"
#include "daemon/metrics/tls.h"
#include "daemon/probes/netns.h"
#include "daemon/probes/probes.h"
#include "daemon/report/latency_store.h"
#include "daemon/report/report.h"
#include "daemon/web/page.h"

namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

std::string kernel_release() {
    utsname u{};
    return uname(&u) == 0 ? u.release : "unknown";
}

std::string libbpf_version() {
    return std::to_string(libbpf_major_version()) + "." + std::to_string(libbpf_minor_version());
}

int fail(int code, const std::string& message) {
    std::fprintf(stderr, "netlatd: %s\n", message.c_str());
    return code;
}

// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET when systemd runs us with
// Type=notify; nothing otherwise.
void notify_systemd(const char* state) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (path == nullptr || (path[0] != '/' && path[0] != '@')) return;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const size_t length = std::strlen(path);
    if (length >= sizeof(address.sun_path)) return;
    std::memcpy(address.sun_path, path, length);
    if (address.sun_path[0] == '@') address.sun_path[0] = '\0';  // abstract socket
    const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    sendto(fd, state, std::strlen(state), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&address),
           static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length));
    close(fd);
}

// Waits for SIGINT/SIGTERM for up to one interval; true when asked to stop.
bool wait_for_stop(const sigset_t& signals, std::chrono::milliseconds interval) {
    timespec timeout{static_cast<time_t>(interval.count() / 1000),
                     static_cast<long>(interval.count() % 1000) * 1000000L};
    int sig = sigtimedwait(&signals, nullptr, &timeout);
    return sig == SIGINT || sig == SIGTERM;
}

// The periodic one-line summary per direction in the log (config.log_summary; 0 = off), over what
// was measured since the previous one.
class SummaryLog {
  public:
    explicit SummaryLog(std::chrono::milliseconds period)
        : period_(period), next_(std::chrono::steady_clock::now() + period) {}

    void maybe_log(const netlatd::LatencyStore& store) {
        const auto now = std::chrono::steady_clock::now();
        if (period_.count() == 0 || now < next_) return;
        auto snapshot = store.snapshot();
        for (const std::string& line : netlatd::summary_lines(*snapshot, previous_.get()))
            spdlog::info("summary of the last {}: {}",
                         netlatd::format_duration(period_.count() / 1e3), line);
        previous_ = std::move(snapshot);
        next_ = now + period_;
    }

  private:
    std::chrono::milliseconds period_;
    std::chrono::steady_clock::time_point next_;
    std::unique_ptr<netlatd::LatencySnapshot> previous_;
};

// Runs the daemon, or with --once measures for options.duration and prints the report. Both go
// through the same probes and drainer; --once starts no HTTP server unless --listen asks for one.
int run(const netlatd::Config& config, const netlatd::CliOptions& options,
        const netlatd::WebConfig& web) {
    using namespace netlatd;
    using Clock = std::chrono::steady_clock;
    // Signals are taken synchronously: block them before any thread (civetweb's) starts.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    const bool once = options.once;
    Metrics metrics(config, NETLATD_VERSION, libbpf_version(), kernel_release());
    // Declared before the server, whose endpoints read them, so that they outlive it.
    auto store = std::make_unique<LatencyStore>();
    ReportContext context;
    context.version = NETLATD_VERSION;
    context.kernel = kernel_release();
    context.probe_mode = to_string(config.probe_mode);
    context.interval = config.interval;
    std::unique_ptr<MetricsServer> server;
    if (!once || options.listen) {
        // The address first: a taken port fails before anything is attached.
        server = std::make_unique<MetricsServer>(config.listen, metrics.registry(), web);
        server->set_health(false, "attaching hooks");
        server->add_endpoint(web::kPagePath, "text/html; charset=utf-8",
                             [] { return std::string(web::index_html()); });
    }
    auto probes = std::make_unique<Probes>(config);
    context.stages = probes->stage_info();
    metrics.set_stage_info(context.stages);
    MapFds fds = probes->map_fds();
    BpfMapReader reader(fds.hist, fds.hist_flat, fds.counters, fds.entries);
    Drainer drainer(reader, metrics, probes->programs());
    drainer.feed(store.get());
    if (server) {
        server->add_endpoint(web::kLatencyJsonPath, "application/json", [&store, &context] {
            return json_report(*store->snapshot(), context).dump();
        });
        server->set_health(false, "waiting for the first drain");
        spdlog::info(
            "netlatd {} serving {}://{}/metrics and the page at / (probe mode {}, "
            "interval {} ms{})",
            NETLATD_VERSION, web.tls ? "https" : "http", config.listen,
            to_string(config.probe_mode), config.interval.count(),
            web.basic_auth_users.empty() ? "" : ", basic auth");
        if (!web.tls && !web.basic_auth_users.empty())
            spdlog::warn("basic auth without TLS: passwords cross the network in clear text");
    }
    const auto duration = options.duration.value_or(kOnceDuration);
    const Clock::time_point deadline = once ? Clock::now() + duration : Clock::time_point::max();
    if (once) {
        spdlog::info("netlatd {} measuring for {} ms (probe mode {}, interval {} ms)",
                     NETLATD_VERSION, duration.count(), to_string(config.probe_mode),
                     config.interval.count());
    }

    // Ready once every hook is attached and a drain has succeeded: drain at once, then every
    // interval. --once drains one last time at its deadline or on SIGINT/SIGTERM.
    bool ready = false, stopping = false;
    SummaryLog summary(once ? std::chrono::milliseconds(0) : config.log_summary);
    for (;;) {
        try {
            probes->sync_namespaces();
            drainer.drain();
            if (!ready) {
                ready = true;
                if (server) server->set_health(true, "ok");
                spdlog::info("ready: every hook attached, first drain done");
                if (!once) notify_systemd("READY=1");
            }
        } catch (const std::exception& e) {
            spdlog::warn("drain failed: {}", e.what());
        }
        const Clock::time_point now = Clock::now();
        if (stopping || now >= deadline) break;
        summary.maybe_log(*store);
        std::chrono::milliseconds wait = config.interval;
        if (once) {
            wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
        }
        stopping = wait_for_stop(signals, wait);
        if (stopping && !once) break;
    }
    if (server) server->set_health(false, "stopping");
    if (!once) notify_systemd("STOPPING=1");
    spdlog::info("stopping: detaching all hooks");
    // The HTTP server's threads take up to a poll timeout to stop: let them while hooks detach.
    std::thread server_stop([&server] { server.reset(); });
    probes.reset();
    server_stop.join();
    if (once) {
        const auto snapshot = store->snapshot();
        if (options.json) {
            std::cout << json_report(*snapshot, context).dump(2) << "\n";
        } else {
            std::cout << terminal_report(*snapshot, context);
        }
        std::cout.flush();
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    // Two malloc arenas, not glibc's 8 per core: the HTTP server's 256 workers would each get one
    // and keep what they freed (tens of MiB of RSS after a burst of scrapes).
    mallopt(M_ARENA_MAX, 2);
    using namespace netlatd;
    spdlog::set_default_logger(spdlog::stderr_color_mt("netlatd"));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

    CliOptions options;
    try {
        options = parse_cli(argc, argv);
    } catch (const CliError& e) {
        return fail(kExitUsage, e.what());
    }
    if (options.help) {
        std::cout << usage();
        return 0;
    }
    if (options.version) {
        std::cout << "netlatd " << NETLATD_VERSION << " (libbpf " << libbpf_version() << ")\n";
        return 0;
    }

    Config config;
    WebConfig web;
    try {
        config = resolve_config(options);
        bucket_bounds_ns(config.buckets);  // the bounds must survive snapping to BPF slots
        // The web config and its TLS files are checked here, before anything is attached.
        if (options.web_config_path) {
            web = load_web_config_file(*options.web_config_path);
            if (web.tls) check_tls(*web.tls, "web config " + web.source + ": ");
        }
    } catch (const std::exception& e) {
        return fail(kExitUsage, e.what());
    }
    if (options.check_config) {
        std::cout << to_yaml(config);
        return 0;
    }
    // Interfaces are matched by name in every namespace, but a name that exists nowhere at start
    // is a typo far more often than an interface still to come.
    const auto& interfaces = config.filters.interfaces;
    if (const auto missing = missing_interfaces(interfaces); !missing.empty()) {
        const auto index =
            std::find(interfaces.begin(), interfaces.end(), missing.front()) - interfaces.begin();
        return fail(kExitUsage,
                    "config " + printable(options.config_path.value_or(""), std::string::npos) +
                        ": filters.interfaces[" + std::to_string(index) + "]: " +
                        quote(missing.front()) + " is not an interface in any network namespace");
    }
    spdlog::set_level(spdlog::level::from_str(config.log_level));

    try {
        return run(config, options, web);
    } catch (const std::exception& e) {
        return fail(kExitRuntime, e.what());
    }
}
