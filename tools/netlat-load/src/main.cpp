// netlat-load: load generator and ground-truth judge for netlatd. See README.md.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "options.h"
#include "report.h"
#include "session.h"
#include "timestamping.h"
#include "topology.h"

#ifndef NETLAT_LOAD_VERSION
#define NETLAT_LOAD_VERSION "unknown"
#endif

namespace netlat_load {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;

// The first failure of either side; raising it stops the other side too.
class FirstError {
  public:
    explicit FirstError(RunControl& control) : control_(control) {}
    void set(const std::string& side, const std::exception& e) {
        std::lock_guard lock(mutex_);
        if (text_.empty()) text_ = side + ": " + e.what();
        control_.stop = true;
    }
    std::string text() {
        std::lock_guard lock(mutex_);
        return text_;
    }

  private:
    RunControl& control_;
    std::mutex mutex_;
    std::string text_;
};

int cleanup_stale() {
    auto removed = sweep_stale_namespaces();
    for (const auto& name : removed) std::printf("removed namespace %s\n", name.c_str());
    if (removed.empty()) std::printf("nothing to remove\n");
    return 0;
}

void print_progress(const RunControl& control, double elapsed_s, Role role) {
    std::fprintf(stderr, "netlat-load: %.1f s:", elapsed_s);
    if (role != Role::kServer)
        std::fprintf(stderr, " sent %llu", static_cast<unsigned long long>(control.sent.load()));
    if (role != Role::kClient)
        std::fprintf(stderr, " received %llu",
                     static_cast<unsigned long long>(control.received.load()));
    if (role != Role::kServer)
        std::fprintf(stderr, " replies %llu",
                     static_cast<unsigned long long>(control.replies.load()));
    std::fprintf(stderr, "\n");
}

int run(const Options& options, const sigset_t& signals) {
    RunResult result;
    result.options = options;
    RunControl control;
    FirstError error(control);

    std::unique_ptr<VethTopology> topology;
    std::string server_netns, client_netns;
    std::string server_address = options.address;
    if (options.topology == Topology::kVeth) {
        for (const auto& name : sweep_stale_namespaces()) {
            std::fprintf(stderr, "netlat-load: removed stale namespace %s\n", name.c_str());
        }
        topology = std::make_unique<VethTopology>(options.family);
        server_netns = topology->server().netns;
        client_netns = topology->client().netns;
        server_address = topology->server().address;
    }

    // Before the first message: packets that arrive before the kernel has turned RX timestamping
    // on would have no stamp (see RxStampsLive).
    RxStampsLive rx_stamps(2000);

    std::promise<std::uint16_t> port_promise;
    std::shared_future<std::uint16_t> port = port_promise.get_future().share();
    std::atomic<int> running{0};
    std::vector<std::thread> threads;
    const std::int64_t start_ns = monotonic_ns();

    if (options.role != Role::kClient) {
        ++running;
        threads.emplace_back([&] {
            try {
                if (!server_netns.empty()) enter_netns(server_netns);
                Server server(options, control, &result.client_to_server, &result.server_to_client);
                std::uint16_t bound = server.open(server_address, options.port);
                if (options.role == Role::kServer) {
                    std::fprintf(stderr, "netlat-load: %s server listening on %s port %u\n",
                                 to_string(options.proto), server_address.c_str(), bound);
                }
                port_promise.set_value(bound);
                server.run();
            } catch (const std::exception& e) {
                error.set("server", e);
                try {
                    port_promise.set_exception(std::current_exception());
                } catch (const std::future_error&) {
                    // the port was already published
                }
            }
            --running;
        });
    }
    if (options.role != Role::kServer) {
        ++running;
        threads.emplace_back([&] {
            try {
                std::uint16_t server_port = options.role == Role::kBoth ? port.get() : options.port;
                if (!client_netns.empty()) enter_netns(client_netns);
                Client client(options, control, &result.client_to_server, &result.server_to_client);
                client.run(server_address, server_port);
            } catch (const std::exception& e) {
                error.set("client", e);
            }
            control.client_finished = true;
            --running;
        });
    }

    // Signals are blocked in every thread; this one takes them, and prints progress meanwhile.
    std::int64_t next_progress = start_ns + 1'000'000'000;
    while (running > 0) {
        timespec wait{0, 100'000'000};
        siginfo_t info;
        int sig = sigtimedwait(&signals, &info, &wait);
        if (sig > 0) {
            if (!result.interrupted) {
                std::fprintf(stderr, "netlat-load: %s, stopping\n", strsignal(sig));
            }
            result.interrupted = true;
            control.stop = true;
        }
        if (options.progress && monotonic_ns() >= next_progress) {
            print_progress(control, (monotonic_ns() - start_ns) / 1e9, options.role);
            next_progress += 1'000'000'000;
        }
    }
    for (auto& t : threads) t.join();
    result.elapsed_s = (monotonic_ns() - start_ns) / 1e9;

    if (topology && !topology->remove()) {
        std::fprintf(stderr,
                     "netlat-load: error: could not remove the veth topology (see above)\n");
        return kExitFailure;
    }
    if (std::string text = error.text(); !text.empty()) {
        std::fprintf(stderr, "netlat-load: error: %s\n", text.c_str());
        return kExitFailure;
    }
    // A lone server learns the mode from the messages: replies were asked for or not.
    if (options.role == Role::kServer && result.server_to_client.tx.empty()) {
        result.options.mode = Mode::kOneWay;
    }
    if (!options.samples_path.empty()) write_samples(result, options.samples_path);
    if (options.json) {
        std::cout << to_json(result).dump(2) << std::endl;
    } else {
        std::cout << to_table(result) << std::flush;
    }
    return result.interrupted ? kExitInterrupted : 0;
}

}  // namespace
}  // namespace netlat_load

int main(int argc, char** argv) {
    using namespace netlat_load;
    Options options;
    try {
        options = parse_options(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const UsageError& e) {
        std::fprintf(stderr, "netlat-load: %s\n", e.what());
        return kExitUsage;
    }
    if (options.help) {
        std::cout << usage_text();
        return 0;
    }
    if (options.version) {
        std::cout << "netlat-load " << NETLAT_LOAD_VERSION << "\n";
        return 0;
    }
    // Blocked before any thread or child exists, so all inherit it: only sigtimedwait() in the
    // main thread sees these, and cleanup always runs.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    try {
        if (options.cleanup) return cleanup_stale();
        return run(options, signals);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "netlat-load: error: %s\n", e.what());
        return kExitFailure;
    }
}
