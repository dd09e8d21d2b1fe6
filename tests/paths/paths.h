// Shared pieces of the paths tier: sockets made inside test namespaces, one-way message flows, the
// window of netlatd counters around a piece of traffic, and the checks every path test makes.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "harness.h"
#include "netns_pair.h"
#include "timestamping.h"

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

// netlatd on a 100 ms drain, filtered on the test's ports and namespaces (paths under /run/netns,
// or /proc/self/ns/net), each series labelled with its namespace if `netns_label`.
std::string paths_config(const std::vector<std::string>& namespaces, bool netns_label = false);
// The inode of the namespace at `path`, as filters.netns and the netns label name it.
std::string netns_inode(const std::string& path);

// The kernel's software timestamps of a flow's traffic (netlat-load's SO_TIMESTAMPING code) since
// the last Flow::kernel_means(), as means in seconds (NaN where nothing had the stamp).
struct KernelMeans {
    double tx = 0;  // send() -> driver: TX_SOFTWARE, the driver's skb_tx_timestamp() (OPT_ID)
    int sends = 0, sends_stamped = 0;  // messages ping() sent, those with a TX_SOFTWARE stamp
    double tx_longest = 0;  // the longest of them: one slow message moves a mean of 200 this much
    double rx = 0;  // RX_SOFTWARE -> the read that completed the message (UDP: datagram) returns
    int reads = 0, reads_stamped = 0;  // messages and datagrams read, those with an RX stamp
};

// A msghdr for one read into `len` bytes at `data`, with room for the kernel's control messages
// (netlat_load::parse_rx_stamp reads the receive stamp from it). Not copyable: msg points into it.
struct StampedRead {
    StampedRead(void* data, size_t len) : iov{data, len} {
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
    }
    StampedRead(const StampedRead&) = delete;
    StampedRead& operator=(const StampedRead&) = delete;
    iovec iov;
    alignas(cmsghdr) char control[256];
    msghdr msg{};
};

// One-way messages from `tx` (namespace from_ns, bound to kClientPort) to `rx` (to_ns,
// to_addr:kServerPort). UDP: tx is connected to the bound rx. TCP: tx connected, rx accepted, both
// TCP_NODELAY. rx takes kernel receive timestamps (RX_SOFTWARE); ping() has the kernel stamp its
// sends (TX_SCHED, TX_SOFTWARE with OPT_ID) and turns that off again, so that the tests' own calls
// on tx are not stamped.
class Flow {
  public:
    Flow(bool tcp, const std::string& from_ns, const std::string& to_ns,
         const std::string& to_addr);
    ~Flow();
    Flow(const Flow&) = delete;
    Flow& operator=(const Flow&) = delete;

    // `n` messages of `bytes`, each sent with one send() (TCP: MSG_EOR, so no later message joins
    // its skb and moves its stamp) and read whole before the next (UDP: as `datagrams` datagrams of
    // equal size, for a socket that segments its sends).
    void ping(int n, size_t bytes = 64, int datagrams = 1);
    // `calls` send calls, each of `per_call` messages of `bytes` (send(c) makes call c; the
    // application's clock is taken just before it and is every message's start), each call's
    // messages read by read(c) (default: receive(bytes) per message) before the next call. The
    // kernel stamps the sends as in ping(). Each message must leave in an skb of its own (TCP:
    // MSG_EOR, or one message per call, read before the next), or its stamp goes to a later one.
    void send_stamped(int calls, int per_call, size_t bytes, const std::function<void(int)>& send,
                      const std::function<void(int)>& read = {});
    // Reads one UDP datagram or `bytes` of TCP; returns the bytes read.
    size_t receive(size_t bytes);
    // A read the test made itself (recvmmsg, io_uring): the message's RX stamp, if the read
    // reported one, and the application's clock after the read returned.
    void record_read(std::optional<int64_t> stamp, int64_t now);
    // The kernel's means over the messages ping() sent since the last call.
    KernelMeans kernel_means();

    const bool tcp;
    int tx = -1, rx = -1;

  private:
    // On a fresh machine the kernel turns receive stamps on lazily: wait until they are live.
    netlat_load::RxStampsLive rx_stamps_live_;
    std::vector<netlat_load::TxRecord> sent_;
    int64_t rx_stamp_sum_ = 0;  // ns
    int reads_ = 0, rx_stamps_ = 0;
};

// What netlatd counted between the window's opening and its closing, and how long the traffic in
// between took. Both ends scrape once netlatd has drained twice after them (netlatd_drains_total),
// and no sooner than 350 ms.
class Window {
  public:
    explicit Window(Daemon& d);
    void close();

    // With `netns` (an inode): of that namespace's series only (labels.netns).
    double samples(const std::string& dir, const std::string& segment, const std::string& proto,
                   const std::string& netns = "") const;
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
    // Samples of `dir` `segment` for `proto` in buckets above `seconds`.
    double samples_above(const std::string& dir, const std::string& segment,
                         const std::string& proto, double seconds) const;
    // "segment/reason=n ..." for every unmatched counter of `dir` that moved.
    std::string unmatched_summary(const std::string& dir) const;
    // "name{labels}=n ..." for every netlatd counter that moved (histograms left out): what a
    // failed check prints so that a rare failure can be read from its log alone.
    std::string moved_counters() const;
    double seconds() const { return seconds_; }
    // netlatd's drains between the two scrapes, and how long close() waited for its scrape (s).
    double drains() const { return delta("netlatd_drains_total", {}); }
    double settle_seconds() const { return settle_seconds_; }

  private:
    double delta(const std::string& name, const std::map<std::string, std::string>& match) const;
    // A scrape holding everything netlatd's programs counted before the call: it waits kSettle
    // for the kernel's last work on the traffic, then for the second drain completed after the
    // call (the first may have read the maps before it). A slow drain (the one-vCPU TCG guest on a
    // busy host) makes this wait longer instead of cutting the window's last messages off.
    std::vector<Sample> settled_scrape();
    Daemon& d_;
    std::vector<Sample> before_, after_;
    std::chrono::steady_clock::time_point start_;
    double seconds_ = 0, settle_seconds_ = 0;
};

// A window around `n` messages of `f` (ping(n, bytes, datagrams)), sent from a SCHED_FIFO thread
// (time scale 1 only) so that no other process preempts it between its clock and its calls, and
// the kernel's means of those messages.
struct Measured {
    Window w;
    KernelMeans kernel;
};
Measured measure_messages(Daemon& d, Flow& f, int n, size_t bytes = 64, int datagrams = 1);
// The same around any `traffic` on `f` (send_stamped(), record_read()), from a SCHED_FIFO thread
// as above.
Measured measure_traffic(Daemon& d, Flow& f, const std::function<void()>& traffic);

// The samples of `dir` `segment` for `proto` are `expected` (messages or skbs) within 99% and 101%,
// the ones missing are counted under an unmatched reason of `dir`, and no sample of `dir` is longer
// than the window's traffic. Of `total`, the packets counted skipped are not expected.
void expect_joined(const Window& w, const std::string& dir, const std::string& segment,
                   const std::string& proto, double expected, const std::string& what);
// Both directions' totals of one flow: tx `total` and rx `total` per message.
void expect_each_message_joined(const Window& w, const Flow& f, int messages,
                                const std::string& what);

// The kernel stamps a flow's messages can be judged against (docs/SEMANTICS.md, "Checked against
// the kernel's timestamps"). kTx: the send's driver stamp is the driver stage netlatd ends tx
// `total` at. kRx: the receive stamp is taken at netlatd's rx driver stage (UDP: `netif_rx` or the
// receive list after GRO) or, for TCP, where IP hands the packet to TCP (rx `transport_to_socket`),
// in the receiving namespace, and each message is one skb.
enum KernelStamps { kNoStamps = 0, kTx = 1, kRx = 2, kTxRx = 3 };
// The netlatd segment judged against the kernel's receive stamp (see kRx).
std::string rx_segment_of_kernel_stamp(const Flow& f);
// The largest distance allowed between a netlatd mean and the kernel's mean `kernel` (s) of the
// same messages: 25% of it plus 5 us, times NETLAT_TEST_TIME_SCALE up to 2 (docs/SEMANTICS.md
// says why).
double kernel_mean_tolerance(double kernel);
// Each message (`which`: sent, read) had its kernel stamp, and netlatd's means (tx `total`; rx, see
// kRx) are within kernel_mean_tolerance() of the kernel's means of the same messages.
void expect_means_near_kernel(const Window& w, const Flow& f, const KernelMeans& kernel,
                              KernelStamps which, const std::string& what);
// Each comparison of `which` fails when the kernel's mean moves by 5 times its tolerance (when the
// real one passes, that is enough for a relative tolerance under 60%; after a failure of the test
// it is not tried).
void expect_comparisons_can_fail(const Window& w, const Flow& f, const KernelMeans& kernel,
                                 KernelStamps which, const std::string& what);
// After the event the test made, `messages` more on the same flow still join (>= 99%).
void expect_later_messages_join(Daemon& d, Flow& f, int messages = 200);

// `ethtool -K dev feature on|off` inside namespace ns.
void set_offload(const std::string& ns, const std::string& dev, const std::string& feature,
                 bool on);

}  // namespace netlatd::test
