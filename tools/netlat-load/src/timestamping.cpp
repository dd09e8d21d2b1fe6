#include "timestamping.h"

#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace netlat_load {
namespace {

std::int64_t to_ns(const timespec& ts) {
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void set_tsflags(int fd, unsigned flags, const char* what) {
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) != 0) {
        throw std::system_error(errno, std::generic_category(),
                                std::string("setsockopt(SO_TIMESTAMPING, ") + what + ")");
    }
}

}  // namespace

std::int64_t realtime_ns() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return to_ns(ts);
}

std::int64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return to_ns(ts);
}

void enable_timestamping(int fd) {
    set_tsflags(fd,
                SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_TX_SOFTWARE |
                    SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE |
                    SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY,
                "tx+rx software");
}

void enable_rx_timestamping(int fd) {
    set_tsflags(fd, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE, "rx software");
}

RxStampsLive::RxStampsLive(int timeout_ms) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    enable_rx_timestamping(fd_);
    sockaddr_in self{};
    self.sin_family = AF_INET;
    self.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof self;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&self), len) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&self), &len) != 0) {
        return;
    }
    const std::int64_t deadline = monotonic_ns() + std::int64_t{timeout_ms} * 1'000'000;
    while (!live_ && monotonic_ns() < deadline) {
        char byte = 0;
        if (sendto(fd_, &byte, 1, 0, reinterpret_cast<sockaddr*>(&self), len) != 1) return;
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        char control[CMSG_SPACE(sizeof(scm_timestamping))];
        iovec iov{&byte, 1};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        if (recvmsg(fd_, &msg, MSG_DONTWAIT) < 0) continue;
        live_ = parse_rx_stamp(msg).has_value();
        if (!live_) {
            timespec pause{0, 1'000'000};
            nanosleep(&pause, nullptr);
        }
    }
}

RxStampsLive::~RxStampsLive() {
    if (fd_ >= 0) close(fd_);
}

std::optional<TxStamp> parse_tx_stamp(const msghdr& msg) {
    std::optional<std::int64_t> ns;
    const sock_extended_err* err = nullptr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPING &&
            c->cmsg_len >= CMSG_LEN(sizeof(scm_timestamping))) {
            scm_timestamping tss;
            std::memcpy(&tss, CMSG_DATA(c), sizeof tss);
            if (tss.ts[0].tv_sec != 0 || tss.ts[0].tv_nsec != 0) ns = to_ns(tss.ts[0]);
        } else if (((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
                    (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)) &&
                   c->cmsg_len >= CMSG_LEN(sizeof(sock_extended_err))) {
            err = reinterpret_cast<const sock_extended_err*>(CMSG_DATA(c));
        }
    }
    if (!ns || err == nullptr || err->ee_errno != ENOMSG ||
        err->ee_origin != SO_EE_ORIGIN_TIMESTAMPING) {
        return std::nullopt;
    }
    TxStamp stamp;
    stamp.id = err->ee_data;
    stamp.ns = *ns;
    switch (err->ee_info) {
        case SCM_TSTAMP_SCHED:
            stamp.kind = TxStampKind::kSched;
            break;
        case SCM_TSTAMP_SND:
            stamp.kind = TxStampKind::kDriver;
            break;
        default:
            stamp.kind = TxStampKind::kOther;
            break;
    }
    return stamp;
}

std::optional<std::int64_t> parse_rx_stamp(const msghdr& msg) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPING &&
            c->cmsg_len >= CMSG_LEN(sizeof(scm_timestamping))) {
            scm_timestamping tss;
            std::memcpy(&tss, CMSG_DATA(c), sizeof tss);
            if (tss.ts[0].tv_sec == 0 && tss.ts[0].tv_nsec == 0) return std::nullopt;
            return to_ns(tss.ts[0]);
        }
    }
    return std::nullopt;
}

TxTracker::TxTracker(Proto proto, std::vector<TxRecord>* records)
    : proto_(proto), records_(records) {}

std::uint32_t TxTracker::next_key(std::size_t bytes) {
    // The kernel's counter is 32 bits wide and wraps; so do the keys.
    if (proto_ == Proto::kTcp) {
        bytes_ += bytes;
        return static_cast<std::uint32_t>(bytes_ - 1);
    }
    return static_cast<std::uint32_t>(sends_++);
}

void TxTracker::sent(std::uint64_t seq, std::size_t bytes) {
    pending_[next_key(bytes)] = seq;
}

void TxTracker::sent_unmeasured(std::size_t bytes) {
    next_key(bytes);
}

void TxTracker::on_stamp(const TxStamp& stamp) {
    auto it = pending_.find(stamp.id);
    if (it == pending_.end() || stamp.kind == TxStampKind::kOther) {
        ++unmatched_;
        return;
    }
    TxRecord& record = (*records_)[it->second];
    std::int64_t& slot = stamp.kind == TxStampKind::kSched ? record.sched_ns : record.driver_ns;
    if (slot != 0) {
        ++unmatched_;  // a second stamp for the same bytes: a retransmission, keep the first
        return;
    }
    slot = stamp.ns;
    if (record.sched_ns != 0 && record.driver_ns != 0) pending_.erase(it);
}

std::size_t TxTracker::drain(int fd) {
    std::size_t read = 0;
    for (;;) {
        alignas(cmsghdr) char control[512];
        char data[1];
        iovec iov{data, sizeof data};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return read;
            throw std::system_error(errno, std::generic_category(), "recvmsg(MSG_ERRQUEUE)");
        }
        if (auto stamp = parse_tx_stamp(msg)) {
            on_stamp(*stamp);
            ++read;
        }
    }
}

}  // namespace netlat_load
