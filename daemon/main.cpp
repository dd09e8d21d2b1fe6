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
#include <unistd.h>
#include <time.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <thread>

#include "daemon/config/cli.h"
#include "daemon/config/config.h"
#include "daemon/drain/drainer.h"
#include "daemon/drain/map_reader.h"
#include "daemon/metrics/buckets.h"
#include "daemon/metrics/http.h"
#include "daemon/metrics/metrics.h"
#include "daemon/probes/probes.h"

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

int run(const netlatd::Config& config) {
    using namespace netlatd;
    // Signals are taken synchronously: block them before any thread (civetweb's) starts.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    Metrics metrics(config, NETLATD_VERSION, libbpf_version(), kernel_release());
    // The address first: a taken port fails before anything is attached.
    auto server = std::make_unique<MetricsServer>(config.listen, metrics.registry());
    server->set_health(false, "attaching hooks");
    auto probes = std::make_unique<Probes>(config);
    metrics.set_stage_info(probes->stage_info());
    MapFds fds = probes->map_fds();
    BpfMapReader reader(fds.hist, fds.counters, fds.entries);
    Drainer drainer(reader, metrics, probes->programs());
    server->set_health(false, "waiting for the first drain");

    spdlog::info("netlatd {} serving http://{}/metrics (probe mode {}, interval {} ms)",
                 NETLATD_VERSION, config.listen, to_string(config.probe_mode),
                 config.interval.count());
    // Ready once every hook is attached and a drain has succeeded: drain at once, then every
    // interval.
    bool ready = false;
    do {
        try {
            probes->sync_namespaces();
            drainer.drain();
            if (!ready) {
                ready = true;
                server->set_health(true, "ok");
                spdlog::info("ready: every hook attached, first drain done");
                notify_systemd("READY=1");
            }
        } catch (const std::exception& e) {
            spdlog::warn("drain failed: {}", e.what());
        }
    } while (!wait_for_stop(signals, config.interval));
    server->set_health(false, "stopping");
    notify_systemd("STOPPING=1");
    spdlog::info("stopping: detaching all hooks");
    // The HTTP server's threads take up to a poll timeout to stop: let them while hooks detach.
    std::thread server_stop([&server] { server.reset(); });
    probes.reset();
    server_stop.join();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
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
    try {
        config = resolve_config(options);
        bucket_bounds_ns(config.buckets);  // the bounds must survive snapping to BPF slots
    } catch (const std::exception& e) {
        return fail(kExitUsage, e.what());
    }
    if (options.check_config) {
        std::cout << to_yaml(config);
        return 0;
    }
    spdlog::set_level(spdlog::level::from_str(config.log_level));

    try {
        return run(config);
    } catch (const std::exception& e) {
        return fail(kExitRuntime, e.what());
    }
}
