#include "session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <system_error>

#include "wire.h"

namespace netlat_load {
namespace {

constexpr std::int64_t kNsPerSec = 1'000'000'000;
constexpr std::int64_t kPollSliceNs = 100'000'000;  // how often blocked waits look at stop
constexpr std::size_t kUdpBufferSize = 65536;
constexpr int kSocketBufferBytes = 4 << 20;
constexpr std::uint64_t kMaxSeqJump = 1'000'000;  // larger jumps are not from our client
constexpr int kUdpEndMarkers = 3;

std::system_error sys_error(const std::string& what) {
    return std::system_error(errno, std::generic_category(), what);
}

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t len = 0;
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

SocketAddress make_address(int family, const std::string& address, std::uint16_t port) {
    SocketAddress result;
    if (family == 4) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&result.storage);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        if (inet_pton(AF_INET, address.c_str(), &sin->sin_addr) != 1) {
            throw std::runtime_error("bad IPv4 address '" + address + "'");
        }
        result.len = sizeof(sockaddr_in);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&result.storage);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        if (inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) != 1) {
            throw std::runtime_error("bad IPv6 address '" + address + "'");
        }
        result.len = sizeof(sockaddr_in6);
    }
    return result;
}

std::string endpoint_text(const std::string& address, std::uint16_t port) {
    return (address.find(':') != std::string::npos ? "[" + address + "]" : address) + ":" +
           std::to_string(port);
}

void set_int_option(int fd, int level, int name, int value, const char* what) {
    if (setsockopt(fd, level, name, &value, sizeof value) != 0) throw sys_error(what);
}

void set_timeout_option(int fd, int name, std::int64_t ns, const char* what) {
    timeval tv{static_cast<time_t>(ns / kNsPerSec),
               static_cast<suseconds_t>((ns % kNsPerSec) / 1000)};
    if (setsockopt(fd, SOL_SOCKET, name, &tv, sizeof tv) != 0) throw sys_error(what);
}

// A larger receive buffer, beyond net.core.rmem_max when we may (CAP_NET_ADMIN). The error queue
// is charged to it too: when a blocked sender's stamps arrive in a burst they must all fit.
void enlarge_receive_buffer(int fd) {
    const int bytes = kSocketBufferBytes;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0) {
        set_int_option(fd, SOL_SOCKET, SO_RCVBUF, bytes, "SO_RCVBUF");
    }
}

Fd make_socket(const Options& options) {
    int fd = socket(options.family == 4 ? AF_INET : AF_INET6,
                    (options.proto == Proto::kTcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
    if (fd < 0) throw sys_error("socket");
    return Fd(fd);
}

void sleep_ns(std::int64_t ns) {
    if (ns <= 0) return;
    timespec ts{static_cast<time_t>(ns / kNsPerSec), static_cast<long>(ns % kNsPerSec)};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {
    }
}

// Sleeps until the monotonic deadline; false if control.stop was raised meanwhile.
bool sleep_until(std::int64_t deadline_mono_ns, const RunControl& control) {
    for (;;) {
        if (control.stop) return false;
        std::int64_t left = deadline_mono_ns - monotonic_ns();
        if (left <= 0) return true;
        sleep_ns(std::min(left, kPollSliceNs));
    }
}

void record_rx(DirectionLog* log, const MessageHeader& header, std::int64_t kernel_ns,
               std::int64_t recv_ns) {
    if (header.seq > log->rx.size() + kMaxSeqJump) return;
    if (header.seq >= log->rx.size()) log->rx.resize(header.seq + 1);
    RxRecord& record = log->rx[header.seq];
    if (record.recv_ns != 0) return;  // a duplicate: keep the first
    record = {header.send_ns, kernel_ns, recv_ns, (header.flags & kFlagWarmup) != 0};
}

enum class Status { kMessage, kTimeout, kStopped, kEndOfStream };

struct Received {
    Status status = Status::kTimeout;
    MessageHeader header;
    std::int64_t kernel_ns = 0;  // 0: the kernel reported no stamp
    std::int64_t recv_ns = 0;
    SocketAddress from;
};

// One connected TCP socket or one UDP socket, with the TX stamps of what it sends.
class Channel {
  public:
    Channel(int fd, Proto proto, DirectionLog* outbound, const RunControl& control)
        : fd_(fd),
          proto_(proto),
          outbound_(outbound),
          tracker_(proto, &outbound->tx),
          control_(control),
          buffer_(proto == Proto::kUdp ? kUdpBufferSize : kMinMessageSize) {}

    ~Channel() { outbound_->tx_unmatched_stamps += tracker_.unmatched(); }

    // Sends one message; measured ones get a TxRecord at header.seq. False if stopped midway.
    bool send(MessageHeader header, std::vector<char>& payload, const SocketAddress* dest,
              bool measured) {
        const std::int64_t send_ns = realtime_ns();
        header.send_ns = send_ns;
        encode_header(header, payload.data());
        if (!send_all(payload.data(), header.size, dest)) return false;
        if (measured) {
            if (header.seq >= outbound_->tx.size()) outbound_->tx.resize(header.seq + 1);
            outbound_->tx[header.seq] = {send_ns, 0, 0, (header.flags & kFlagWarmup) != 0};
            tracker_.sent(header.seq, header.size);
        } else {
            tracker_.sent_unmeasured(header.size);
        }
        return true;
    }

    void collect_stamps() { tracker_.drain(fd_); }

    // Waits for the TX stamps of every measured message sent so far, until they are all in, the
    // deadline passes or the run is stopped.
    void collect_all_stamps(std::int64_t deadline_mono_ns) {
        for (;;) {
            tracker_.drain(fd_);
            if (tracker_.pending() == 0 || control_.stop || monotonic_ns() >= deadline_mono_ns)
                return;
            sleep_ns(1'000'000);
        }
    }

    // Waits for a message and reads it whole. sleep_before_read_us: delay between "readable" and
    // the first read. deadline 0 = wait until stopped.
    Received receive(std::int64_t deadline_mono_ns, std::uint32_t sleep_before_read_us,
                     std::int64_t timeout_ns) {
        Received received;
        received.status = wait_readable(deadline_mono_ns);
        if (received.status != Status::kMessage) return received;
        if (sleep_before_read_us > 0) sleep_ns(std::int64_t{sleep_before_read_us} * 1000);
        return proto_ == Proto::kUdp ? receive_datagram(deadline_mono_ns)
                                     : receive_stream(monotonic_ns() + timeout_ns);
    }

  private:
    bool send_all(const char* data, std::size_t size, const SocketAddress* dest) {
        std::size_t offset = 0;
        // MSG_EOR keeps TCP from appending the next message to this one's last skb, which would
        // move this message's timestamp key to the next message's last byte.
        const int flags = MSG_NOSIGNAL | (proto_ == Proto::kTcp ? MSG_EOR : 0);
        while (offset < size) {
            if (control_.stop) return false;
            iovec iov{const_cast<char*>(data + offset), size - offset};
            msghdr msg{};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            if (dest != nullptr) {
                msg.msg_name = const_cast<sockaddr*>(dest->get());
                msg.msg_namelen = dest->len;
            }
            ssize_t n = sendmsg(fd_, &msg, flags);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                    continue;  // SO_SNDTIMEO
                throw sys_error("send");
            }
            if (proto_ == Proto::kUdp && static_cast<std::size_t>(n) != size) {
                throw std::runtime_error("short UDP send");
            }
            offset += static_cast<std::size_t>(n);
        }
        return true;
    }

    Status wait_readable(std::int64_t deadline_mono_ns) {
        for (;;) {
            if (control_.stop) return Status::kStopped;
            std::int64_t slice = kPollSliceNs;
            if (deadline_mono_ns != 0) {
                std::int64_t left = deadline_mono_ns - monotonic_ns();
                if (left <= 0) return Status::kTimeout;
                slice = std::min(slice, left);
            }
            pollfd pfd{fd_, POLLIN, 0};
            int rc = poll(&pfd, 1, static_cast<int>((slice + 999'999) / 1'000'000));
            if (rc < 0) {
                if (errno == EINTR) continue;
                throw sys_error("poll");
            }
            if (pfd.revents & POLLERR) {
                // Usually TX stamps on the error queue; if there were none, it is a socket error
                // that the next read reports.
                if (tracker_.drain(fd_) == 0) return Status::kMessage;
            }
            if (pfd.revents & (POLLIN | POLLHUP)) return Status::kMessage;
        }
    }

    // One recvmsg(): fills *kernel_ns when the kernel reports a stamp, *recv_ns just after.
    ssize_t read_once(char* data, std::size_t size, std::int64_t* kernel_ns, std::int64_t* recv_ns,
                      SocketAddress* from) {
        alignas(cmsghdr) char control[256];
        iovec iov{data, size};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        if (from != nullptr) {
            msg.msg_name = &from->storage;
            msg.msg_namelen = sizeof from->storage;
        }
        ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT);
        const int saved_errno = errno;
        *recv_ns = realtime_ns();
        if (n < 0) {
            errno = saved_errno;
            return n;
        }
        if (from != nullptr) from->len = msg.msg_namelen;
        if (proto_ == Proto::kUdp && (msg.msg_flags & MSG_TRUNC)) {
            throw std::runtime_error("UDP datagram larger than the receive buffer");
        }
        if (auto stamp = parse_rx_stamp(msg)) *kernel_ns = *stamp;
        return n;
    }

    Received receive_datagram(std::int64_t deadline_mono_ns) {
        Received received;
        for (;;) {
            ssize_t n = read_once(buffer_.data(), buffer_.size(), &received.kernel_ns,
                                  &received.recv_ns, &received.from);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == ECONNREFUSED)
                    throw std::runtime_error("the server is not reachable (ICMP port unreachable)");
                if (errno != EAGAIN && errno != EWOULDBLOCK) throw sys_error("recvmsg");
                received.status = wait_readable(deadline_mono_ns);
                if (received.status != Status::kMessage) return received;
                continue;
            }
            auto header = decode_header(buffer_.data(), static_cast<std::size_t>(n));
            if (!header || header->size != static_cast<std::size_t>(n)) {
                received.kernel_ns = 0;
                continue;  // not one of ours: ignore it
            }
            received.status = Status::kMessage;
            received.header = *header;
            return received;
        }
    }

    // Reads exactly size bytes. The stamp kept is the one reported by the recvmsg() that
    // completed the read (for TCP: the last skb it read), the time is taken just after that call.
    Status read_exact(char* data, std::size_t size, std::int64_t deadline_mono_ns,
                      Received* received, bool at_message_start) {
        std::size_t got = 0;
        while (got < size) {
            std::int64_t stamp = 0;
            ssize_t n = read_once(data + got, size - got, &stamp, &received->recv_ns, nullptr);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) throw sys_error("recvmsg");
                Status status = wait_readable(deadline_mono_ns);
                if (status == Status::kTimeout) {
                    throw std::runtime_error("a message stopped arriving halfway (TCP)");
                }
                if (status != Status::kMessage) return status;
                continue;
            }
            if (n == 0) {
                if (at_message_start && got == 0) return Status::kEndOfStream;
                throw std::runtime_error(
                    "the peer closed the connection in the middle of a message");
            }
            if (stamp != 0) received->kernel_ns = stamp;
            got += static_cast<std::size_t>(n);
        }
        return Status::kMessage;
    }

    Received receive_stream(std::int64_t deadline_mono_ns) {
        Received received;
        buffer_.resize(std::max(buffer_.size(), kMinMessageSize));
        received.status =
            read_exact(buffer_.data(), kMinMessageSize, deadline_mono_ns, &received, true);
        if (received.status != Status::kMessage) return received;
        auto header = decode_header(buffer_.data(), kMinMessageSize);
        if (!header) throw std::runtime_error("the byte stream is not netlat-load messages");
        received.header = *header;
        if (header->size > kMinMessageSize) {
            buffer_.resize(std::max<std::size_t>(buffer_.size(), header->size));
            received.status =
                read_exact(buffer_.data() + kMinMessageSize, header->size - kMinMessageSize,
                           deadline_mono_ns, &received, false);
        }
        return received;
    }

    int fd_;
    Proto proto_;
    DirectionLog* outbound_;
    TxTracker tracker_;
    const RunControl& control_;
    std::vector<char> buffer_;
};

std::int64_t timeout_ns(const Options& options) {
    return static_cast<std::int64_t>(options.timeout_s * kNsPerSec);
}

}  // namespace

Fd& Fd::operator=(Fd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) close(fd_);
        fd_ = other.release();
    }
    return *this;
}

Fd::~Fd() {
    if (fd_ >= 0) close(fd_);
}

Server::Server(const Options& options, RunControl& control, DirectionLog* inbound,
               DirectionLog* outbound)
    : options_(options), control_(control), inbound_(inbound), outbound_(outbound) {}

std::uint16_t Server::open(const std::string& address, std::uint16_t port) {
    SocketAddress addr = make_address(options_.family, address, port);
    socket_ = make_socket(options_);
    const int fd = socket_.get();
    if (options_.proto == Proto::kTcp)
        set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    if (bind(fd, addr.get(), addr.len) != 0) {
        throw sys_error("bind " + endpoint_text(address, port));
    }
    if (options_.proto == Proto::kTcp) {
        if (listen(fd, 1) != 0) throw sys_error("listen");
        // Switches on the kernel's RX stamping before the connection's first segment arrives.
        enable_rx_timestamping(fd);
    } else {
        enable_timestamping(fd);
        enlarge_receive_buffer(fd);
    }
    SocketAddress bound;
    bound.len = sizeof bound.storage;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound.storage), &bound.len) != 0) {
        throw sys_error("getsockname");
    }
    return ntohs(options_.family == 4
                     ? reinterpret_cast<const sockaddr_in*>(&bound.storage)->sin_port
                     : reinterpret_cast<const sockaddr_in6*>(&bound.storage)->sin6_port);
}

void Server::run() {
    Fd connection;
    int fd = socket_.get();
    if (options_.proto == Proto::kTcp) {
        // Both sides in one process: the client connects at once. A lone server waits for SIGINT.
        const std::int64_t deadline =
            options_.role == Role::kBoth ? monotonic_ns() + timeout_ns(options_) : 0;
        for (;;) {
            if (control_.stop) return;
            if (deadline != 0 && monotonic_ns() >= deadline) {
                throw std::runtime_error("no client connected within --timeout");
            }
            pollfd pfd{fd, POLLIN, 0};
            if (poll(&pfd, 1, static_cast<int>(kPollSliceNs / 1'000'000)) > 0) break;
        }
        connection = Fd(accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
        if (connection.get() < 0) throw sys_error("accept");
        socket_ = Fd();  // one client per run
        fd = connection.get();
        set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
        set_timeout_option(fd, SO_SNDTIMEO, kPollSliceNs, "SO_SNDTIMEO");
        enable_timestamping(fd);
    }

    Channel channel(fd, options_.proto, outbound_, control_);
    std::vector<char> reply;
    std::int64_t finished_seen_ns = 0;
    for (;;) {
        Received in = channel.receive(monotonic_ns() + kPollSliceNs, options_.sleep_before_read_us,
                                      timeout_ns(options_));
        if (in.status == Status::kStopped || in.status == Status::kEndOfStream) break;
        if (in.status == Status::kTimeout) {
            // UDP has no end of stream; if the end markers were lost, stop once the in-process
            // client is done and nothing came for --timeout.
            if (control_.client_finished) {
                if (finished_seen_ns == 0) finished_seen_ns = monotonic_ns();
                if (monotonic_ns() - finished_seen_ns > timeout_ns(options_)) break;
            }
            continue;
        }
        if (in.header.flags & kFlagEnd) break;
        record_rx(inbound_, in.header, in.kernel_ns, in.recv_ns);
        ++control_.received;
        if (in.header.flags & kFlagReplyWanted) {
            MessageHeader header = in.header;
            header.flags = in.header.flags & kFlagWarmup;
            reply.resize(std::max<std::size_t>(reply.size(), header.size));
            const SocketAddress* dest = options_.proto == Proto::kUdp ? &in.from : nullptr;
            if (!channel.send(header, reply, dest, true)) break;
        }
    }
    channel.collect_all_stamps(monotonic_ns() + timeout_ns(options_));
}

Client::Client(const Options& options, RunControl& control, DirectionLog* outbound,
               DirectionLog* inbound)
    : options_(options), control_(control), outbound_(outbound), inbound_(inbound) {}

void Client::run(const std::string& address, std::uint16_t port) {
    SocketAddress server = make_address(options_.family, address, port);
    Fd socket = make_socket(options_);
    const int fd = socket.get();
    set_timeout_option(fd, SO_SNDTIMEO, timeout_ns(options_), "SO_SNDTIMEO");  // bounds connect()
    if (connect(fd, server.get(), server.len) != 0) {
        throw sys_error("connect to " + endpoint_text(address, port));
    }
    set_timeout_option(fd, SO_SNDTIMEO, kPollSliceNs, "SO_SNDTIMEO");
    if (options_.proto == Proto::kTcp)
        set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
    // Only replies arrive here, so a fixed buffer does not change the measured direction's TCP
    // window; the server's TCP socket keeps the kernel's receive buffer autotuning.
    enlarge_receive_buffer(fd);
    enable_timestamping(fd);

    // A seam for the tests that prove the veth topology is removed when a run fails. It fails
    // once connected and before anything is sent: a reply left unread would make the close a
    // reset, and the server's "connection reset" could then be reported before this error.
    const char* inject = std::getenv("NETLAT_LOAD_TEST_FAIL");
    if (inject != nullptr && std::string(inject) == "client")
        throw std::runtime_error("injected failure (NETLAT_LOAD_TEST_FAIL=client)");

    Channel channel(fd, options_.proto, outbound_, control_);
    std::vector<char> payload(options_.size, 0);
    const bool rr = options_.mode == Mode::kRequestResponse;
    const std::uint64_t total = options_.count == 0 ? 0 : options_.warmup + options_.count;
    const std::int64_t start = monotonic_ns();
    const std::int64_t end =
        options_.duration_s > 0 ? start + static_cast<std::int64_t>(options_.duration_s * kNsPerSec)
                                : 0;
    const std::int64_t period =
        options_.rate > 0 ? static_cast<std::int64_t>(kNsPerSec / options_.rate) : 0;
    std::int64_t next = start;

    for (std::uint64_t seq = 0; !control_.stop; ++seq) {
        if (total != 0 && seq >= total) break;
        if (end != 0 && monotonic_ns() >= end) break;
        if (period != 0) {
            if (!sleep_until(next, control_)) break;
            next += period;
            // After a stall, do not burst to catch up: that would measure our own queueing.
            next = std::max(next, monotonic_ns() - period);
        }
        MessageHeader header;
        header.size = static_cast<std::uint32_t>(options_.size);
        header.seq = seq;
        header.flags = (seq < options_.warmup ? kFlagWarmup : 0) | (rr ? kFlagReplyWanted : 0);
        if (!channel.send(header, payload, nullptr, true)) break;
        ++control_.sent;
        if (!rr) {
            channel.collect_stamps();
            continue;
        }
        const std::int64_t deadline = monotonic_ns() + timeout_ns(options_);
        for (;;) {
            Received in = channel.receive(deadline, 0, timeout_ns(options_));
            if (in.status == Status::kStopped) break;
            if (in.status == Status::kEndOfStream) {
                throw std::runtime_error("the server closed the connection");
            }
            if (in.status == Status::kTimeout) {
                if (options_.proto == Proto::kTcp) {
                    throw std::runtime_error("no reply to message " + std::to_string(seq) +
                                             " within --timeout");
                }
                break;  // UDP: lost; it shows as a missing reply
            }
            record_rx(inbound_, in.header, in.kernel_ns, in.recv_ns);
            ++control_.replies;
            if (in.header.seq == seq) break;
        }
    }

    channel.collect_all_stamps(monotonic_ns() + timeout_ns(options_));
    if (options_.proto == Proto::kTcp) {
        shutdown(fd, SHUT_WR);
    } else if (!control_.stop) {
        MessageHeader end_marker;
        end_marker.size = kMinMessageSize;
        end_marker.flags = kFlagEnd;
        // Sent a few times in case one is dropped; once the server has gone, the kernel reports
        // ECONNREFUSED for the next ones, which is expected.
        try {
            for (int i = 0; i < kUdpEndMarkers; ++i) {
                channel.send(end_marker, payload, nullptr, false);
                sleep_ns(1'000'000);
            }
        } catch (const std::system_error& e) {
            if (e.code().value() != ECONNREFUSED) throw;
        }
    }
    control_.client_finished = true;
}

}  // namespace netlat_load
