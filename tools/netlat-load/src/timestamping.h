// Kernel software timestamps (SO_TIMESTAMPING), in CLOCK_REALTIME nanoseconds.
//
// Sender: SOF_TIMESTAMPING_TX_SCHED (the packet enters the device layer / qdisc, in
// __dev_queue_xmit) and SOF_TIMESTAMPING_TX_SOFTWARE (the driver takes it: skb_tx_timestamp() in
// its xmit routine), with OPT_ID to tie each stamp to a send() and OPT_TSONLY to get the stamp
// without the payload. The stamps come back on the socket's error queue.
// Receiver: SOF_TIMESTAMPING_RX_SOFTWARE, reported in the control message of recvmsg().
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "options.h"

namespace netlat_load {

std::int64_t realtime_ns();
std::int64_t monotonic_ns();

// One send() of a message, as its sender saw it. 0 = not seen.
struct TxRecord {
    std::int64_t send_ns = 0;    // CLOCK_REALTIME just before the send() that completed the message
    std::int64_t sched_ns = 0;   // kernel: entry to the device layer (qdisc)
    std::int64_t driver_ns = 0;  // kernel: handed to the driver
    bool warmup = false;
};

// One received message, as its receiver saw it. 0 = not seen.
struct RxRecord {
    std::int64_t peer_send_ns = 0;  // sender's clock just before send(), from the message header
    std::int64_t kernel_ns = 0;     // kernel: software receive stamp (see README for where)
    std::int64_t recv_ns = 0;       // CLOCK_REALTIME just after the recv() that completed it
    bool warmup = false;
};

enum class TxStampKind { kSched, kDriver, kOther };

struct TxStamp {
    std::uint32_t id = 0;  // OPT_ID: UDP counts sends, TCP counts bytes (offset of the last byte)
    TxStampKind kind = TxStampKind::kOther;
    std::int64_t ns = 0;
};

// Timestamping for a connected TCP socket or a UDP socket: TX stamps with OPT_ID plus RX stamps.
// TCP needs an established connection (OPT_ID starts counting at the current write sequence).
void enable_timestamping(int fd);
// RX stamps only: for a listening TCP socket, so stamps are on before the first segment arrives.
void enable_rx_timestamping(int fd);

// The kernel turns receive timestamping on for the whole host lazily: the first socket that asks
// for it schedules a work item that flips a static key (net_enable_timestamp), and packets that
// arrive before it runs carry no stamp. This holds one loopback UDP socket with RX stamps open for
// its lifetime (so the key stays on between the run's sockets) and, at construction, sends itself
// datagrams until one comes back stamped or timeout_ms passes. Where loopback is unusable (a
// namespace with lo down) it waits for nothing.
class RxStampsLive {
  public:
    explicit RxStampsLive(int timeout_ms);
    ~RxStampsLive();
    RxStampsLive(const RxStampsLive&) = delete;
    RxStampsLive& operator=(const RxStampsLive&) = delete;
    // Whether a stamped datagram came back.
    bool live() const { return live_; }

  private:
    int fd_ = -1;
    bool live_ = false;
};

// From one message read with MSG_ERRQUEUE: nullopt if it is not a software TX timestamp.
std::optional<TxStamp> parse_tx_stamp(const msghdr& msg);
// From one recvmsg() of data: the software RX stamp, if the kernel reported one.
std::optional<std::int64_t> parse_rx_stamp(const msghdr& msg);

// Ties the error-queue stamps of one socket back to the messages sent on it.
class TxTracker {
  public:
    // records is indexed by message seq; the tracker fills sched_ns and driver_ns.
    TxTracker(Proto proto, std::vector<TxRecord>* records);

    // A message (records->at(seq)) has gone out; bytes is its length.
    void sent(std::uint64_t seq, std::size_t bytes);
    // Something went out that is not measured (it still advances the kernel's counter).
    void sent_unmeasured(std::size_t bytes);
    void on_stamp(const TxStamp& stamp);
    // Reads the error queue of fd until it is empty; returns the number of stamps read.
    std::size_t drain(int fd);
    // Messages still waiting for a stamp.
    std::size_t pending() const { return pending_.size(); }
    // Stamps whose id matched no pending message (duplicates, retransmissions, unmeasured sends).
    std::uint64_t unmatched() const { return unmatched_; }

  private:
    std::uint32_t next_key(std::size_t bytes);

    Proto proto_;
    std::vector<TxRecord>* records_;
    std::uint64_t sends_ = 0;
    std::uint64_t bytes_ = 0;
    std::unordered_map<std::uint32_t, std::uint64_t> pending_;  // OPT_ID key -> seq
    std::uint64_t unmatched_ = 0;
};

}  // namespace netlat_load
