// The two sides of a run: the client sends (and in rr mode waits for each reply), the server
// receives (and in rr mode replies). Each side records what it sees; nothing is shared between
// the threads except RunControl.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "options.h"
#include "timestamping.h"

namespace netlat_load {

// Records of one direction, indexed by message seq. The sending side fills tx, the receiving
// side fills rx: in one process they are filled by different threads and read after both end.
struct DirectionLog {
    std::vector<TxRecord> tx;
    std::vector<RxRecord> rx;
    std::uint64_t tx_unmatched_stamps = 0;
};

struct RunControl {
    std::atomic<bool> stop{false};             // SIGINT/SIGTERM, or the other side failed
    std::atomic<bool> client_finished{false};  // the client has sent all it will send
    std::atomic<std::uint64_t> sent{0};        // messages the client sent, warmup included
    std::atomic<std::uint64_t> received{0};    // messages the server received
    std::atomic<std::uint64_t> replies{0};     // replies the client received
};

// Owns one socket file descriptor.
class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd();
    int get() const { return fd_; }
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }

  private:
    int fd_ = -1;
};

class Server {
  public:
    // inbound: client -> server records (rx filled here); outbound: the replies (tx filled here).
    Server(const Options& options, RunControl& control, DirectionLog* inbound,
           DirectionLog* outbound);
    // Creates the listening (TCP) or bound (UDP) socket in the calling thread's network namespace;
    // returns the port (the kernel's choice when port is 0).
    std::uint16_t open(const std::string& address, std::uint16_t port);
    // Serves one client until it is done (TCP: end of stream; UDP: end marker, or the in-process
    // client has finished and nothing came for --timeout) or until control.stop.
    void run();

  private:
    const Options& options_;
    RunControl& control_;
    DirectionLog* inbound_;
    DirectionLog* outbound_;
    Fd socket_;
};

class Client {
  public:
    // outbound: client -> server records (tx filled here); inbound: replies (rx filled here).
    Client(const Options& options, RunControl& control, DirectionLog* outbound,
           DirectionLog* inbound);
    void run(const std::string& address, std::uint16_t port);

  private:
    const Options& options_;
    RunControl& control_;
    DirectionLog* outbound_;
    DirectionLog* inbound_;
};

}  // namespace netlat_load
