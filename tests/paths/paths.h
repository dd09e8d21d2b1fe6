// Shared pieces of the paths tier: sockets made inside test namespaces, one-way message flows, the
// window of netlatd counters around a piece of traffic, and the checks every path test makes.
#pragma once

#include <netinet/in.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "harness.h"
#include "netns_pair.h"

namespace netlatd::test {

// Runs `fn` in a thread that entered the network namespace at `ns` and waits for it; rethrows.
void run_in(const std::string& ns, const std::function<void()>& fn);
// A device's index and MAC address inside namespace `ns`.
int ifindex_in(const std::string& ns, const std::string& dev);
std::array<uint8_t, 6> mac_in(const std::string& ns, const std::string& dev);

// A socket created in the network namespace at `ns` (a path under /run/netns; empty: the
// caller's). Its later calls work from any thread. Throws on failure.
int socket_in(const std::string& ns, int domain, int type, int protocol = 0);
sockaddr_in ipv4(const std::string& addr, int port);

// The receiving port of every flow and the port its sender binds: netlatd is filtered on both.
constexpr int kServerPort = 47001;
constexpr int kClientPort = 47002;

// netlatd on a 100 ms drain, filtered on the test's ports and namespaces (paths under /run/netns).
std::string paths_config(const std::vector<std::string>& namespaces);

// One-way messages from `tx` (namespace from_ns, bound to kClientPort) to `rx` (to_ns,
// to_addr:kServerPort). UDP: tx is connected to the bound rx, which takes kernel receive
// timestamps (SO_TIMESTAMPING, RX_SOFTWARE). TCP: tx connected, rx accepted, both TCP_NODELAY.
class Flow {
  public:
    Flow(bool tcp, const std::string& from_ns, const std::string& to_ns,
         const std::string& to_addr);
    ~Flow();
    Flow(const Flow&) = delete;
    Flow& operator=(const Flow&) = delete;

    // `n` messages of `bytes`, each sent with one write() and read whole before the next.
    void ping(int n, size_t bytes = 64);
    // Reads one UDP datagram or `bytes` of TCP; returns the bytes read.
    size_t receive(size_t bytes);
    // Mean of (read returns - kernel receive timestamp) over the UDP reads since the last call, in
    // seconds (NaN if none had a timestamp).
    double kernel_rx_mean();

    const bool tcp;
    int tx = -1, rx = -1;

  private:
    double stamp_sum_ = 0;
    int stamps_ = 0;
};

// What netlatd counted between the window's opening and its closing, and how long the traffic in
// between took. Both ends wait for more than two drain intervals, then scrape.
class Window {
  public:
    explicit Window(Daemon& d);
    void close();

    double samples(const std::string& dir, const std::string& segment,
                   const std::string& proto) const;
    double mean(const std::string& dir, const std::string& segment, const std::string& proto) const;
    double events(const std::string& dir, const std::string& stage) const;
    // Unmatched ends of `dir`, of one reason and one segment if given.
    double unmatched(const std::string& dir, const std::string& reason = "",
                     const std::string& segment = "") const;
    double program_runs(const std::string& program) const;
    // Runs of netlatd's programs the kernel skipped (netlatd_bpf_program_misses_total, all programs).
    double program_misses() const;
    // Messages of `dir` the kernel ran no kprobe program for (total/skipped): counted, not timed.
    double skipped(const std::string& dir) const { return unmatched(dir, "skipped", "total"); }
    // The largest bucket bound (s) holding a sample of any segment of `dir` (0: none).
    double longest_sample(const std::string& dir) const;
    // "segment/reason=n ..." for every unmatched counter of `dir` that moved.
    std::string unmatched_summary(const std::string& dir) const;
    double seconds() const { return seconds_; }

  private:
    double delta(const std::string& name, const std::map<std::string, std::string>& match) const;
    Daemon& d_;
    std::vector<Sample> before_, after_;
    std::chrono::steady_clock::time_point start_;
    double seconds_ = 0;
};

// The samples of `dir` `segment` for `proto` are `expected` (messages or skbs) within 99% and 101%,
// the ones missing are counted under an unmatched reason of `dir`, and no sample of `dir` is longer
// than the window's traffic. Of `total`, the packets counted skipped are not expected.
void expect_joined(const Window& w, const std::string& dir, const std::string& segment,
                   const std::string& proto, double expected, const std::string& what);
// Both directions' totals of one flow: tx `total` and rx `total` per message.
void expect_each_message_joined(const Window& w, const Flow& f, int messages,
                                const std::string& what);
// The mean of rx `total` is within 25% + 5 us of the kernel's receive timestamps' (UDP).
void expect_rx_mean_near_kernel(const Window& w, double kernel_mean, const std::string& what);
// After the event the test made, `messages` more on the same flow still join (>= 99%).
void expect_later_messages_join(Daemon& d, Flow& f, int messages = 200);

// `ethtool -K dev feature on|off` inside namespace ns.
void set_offload(const std::string& ns, const std::string& dev, const std::string& feature,
                 bool on);

}  // namespace netlatd::test
