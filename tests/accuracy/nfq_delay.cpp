// nfq_delay: a known delay at the IP layer. Binds an NFQUEUE queue and, for each packet, waits a
// fixed time before it returns NF_ACCEPT, so an iptables rule
//   iptables -I INPUT -p udp --dport P -j NFQUEUE --queue-num Q
// holds every matching packet inside netfilter's INPUT (LOCAL_IN) hook for that time.
//
//   nfq_delay --queue Q --delay-us D [--busy]
//
// The wait runs from the moment the packet reaches this process: clock_nanosleep to 50 us before
// the deadline (timer slack set to 1 ns), then a busy wait on CLOCK_MONOTONIC for the tail.
// --busy: busy wait all of it, so the CPU does not idle (and its caches do not cool) while the
// packet is held, and the packet's path after the verdict runs as it does without the wait. Prints
// "ready" on stdout once the queue is bound. SIGTERM/SIGINT: unbinds and exits 0; on exit it
// prints "packets N wait_us_min X wait_us_max Y" on stdout.
// netinet/in.h before the netfilter headers, which pull in linux/in.h otherwise.
#include <netinet/in.h>
// clang-format off
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
// clang-format on
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

volatile sig_atomic_t g_stop = 0;

void on_signal(int) {
    g_stop = 1;
}

std::int64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

constexpr std::int64_t kSpinNs = 50'000;

void wait_until(std::int64_t deadline_ns, bool busy) {
    const std::int64_t sleep_to = deadline_ns - kSpinNs;
    if (!busy && sleep_to > monotonic_ns()) {
        timespec ts{static_cast<time_t>(sleep_to / 1'000'000'000),
                    static_cast<long>(sleep_to % 1'000'000'000)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR && !g_stop) {
        }
    }
    while (monotonic_ns() < deadline_ns) {
    }
}

struct State {
    std::int64_t delay_ns = 0;
    bool busy = false;
    std::uint64_t packets = 0;
    std::int64_t wait_min_ns = INT64_MAX;
    std::int64_t wait_max_ns = 0;
};

int on_packet(nfq_q_handle* queue, nfgenmsg*, nfq_data* data, void* arg) {
    const std::int64_t start = monotonic_ns();
    auto* state = static_cast<State*>(arg);
    const nfqnl_msg_packet_hdr* header = nfq_get_msg_packet_hdr(data);
    const std::uint32_t id = header ? ntohl(header->packet_id) : 0;
    wait_until(start + state->delay_ns, state->busy);
    const std::int64_t waited = monotonic_ns() - start;
    ++state->packets;
    state->wait_min_ns = std::min(state->wait_min_ns, waited);
    state->wait_max_ns = std::max(state->wait_max_ns, waited);
    return nfq_set_verdict(queue, id, NF_ACCEPT, 0, nullptr);
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr, "nfq_delay: %s\nusage: nfq_delay --queue Q --delay-us D [--busy]\n", why);
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    long queue_num = -1;
    long delay_us = -1;
    bool busy = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--busy") {
            busy = true;
            continue;
        }
        if (i + 1 >= argc) usage(("missing value for " + arg).c_str());
        char* end = nullptr;
        long value = std::strtol(argv[++i], &end, 10);
        if (*end != '\0' || value < 0) usage(("bad value for " + arg).c_str());
        if (arg == "--queue" && value <= 65535)
            queue_num = value;
        else if (arg == "--delay-us" && value <= 1'000'000)
            delay_us = value;
        else
            usage(("unknown option or value out of range: " + arg).c_str());
    }
    if (queue_num < 0 || delay_us < 0) usage("--queue and --delay-us are required");

    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    struct sigaction sa {};
    sa.sa_handler = on_signal;  // no SA_RESTART: recv() returns EINTR
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);

    State state;
    state.delay_ns = delay_us * 1000;
    state.busy = busy;
    nfq_handle* handle = nfq_open();
    if (!handle) {
        std::fprintf(stderr, "nfq_delay: nfq_open: %s\n", std::strerror(errno));
        return 1;
    }
    nfq_q_handle* queue =
        nfq_create_queue(handle, static_cast<std::uint16_t>(queue_num), &on_packet, &state);
    if (!queue) {
        std::fprintf(stderr, "nfq_delay: bind queue %ld: %s\n", queue_num, std::strerror(errno));
        nfq_close(handle);
        return 1;
    }
    if (nfq_set_mode(queue, NFQNL_COPY_META, 0) < 0) {
        std::fprintf(stderr, "nfq_delay: set mode: %s\n", std::strerror(errno));
        nfq_destroy_queue(queue);
        nfq_close(handle);
        return 1;
    }
    std::printf("ready\n");
    std::fflush(stdout);

    const int fd = nfq_fd(handle);
    alignas(nlmsghdr) char buffer[65536];
    int status = 0;
    while (!g_stop) {
        ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) {  // the kernel dropped queue messages: say so, keep going
                std::fprintf(stderr, "nfq_delay: queue overrun (ENOBUFS)\n");
                continue;
            }
            std::fprintf(stderr, "nfq_delay: recv: %s\n", std::strerror(errno));
            status = 1;
            break;
        }
        nfq_handle_packet(handle, buffer, static_cast<int>(n));
    }
    nfq_destroy_queue(queue);
    nfq_close(handle);
    std::printf("packets %llu wait_us_min %.1f wait_us_max %.1f\n",
                static_cast<unsigned long long>(state.packets),
                state.packets ? state.wait_min_ns / 1e3 : 0.0, state.wait_max_ns / 1e3);
    return status;
}
