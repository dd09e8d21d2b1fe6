// Control-message parsing and OPT_ID matching, fed with hand-built messages.
#include "timestamping.h"

#include <gtest/gtest.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>

#include "wire.h"

namespace netlat_load {
namespace {

// A msghdr whose control buffer holds the given cmsgs, like recvmsg() fills it.
class ControlBuilder {
  public:
    template <typename T>
    ControlBuilder& add(int level, int type, const T& payload) {
        std::size_t at = used_;
        used_ += CMSG_SPACE(sizeof(T));
        auto* c = reinterpret_cast<cmsghdr*>(buffer_ + at);
        c->cmsg_level = level;
        c->cmsg_type = type;
        c->cmsg_len = CMSG_LEN(sizeof(T));
        std::memcpy(CMSG_DATA(c), &payload, sizeof(T));
        return *this;
    }
    msghdr msg() {
        msghdr m{};
        m.msg_control = buffer_;
        m.msg_controllen = used_;
        return m;
    }

  private:
    alignas(cmsghdr) char buffer_[512] = {};
    std::size_t used_ = 0;
};

scm_timestamping software_stamp(long sec, long nsec) {
    scm_timestamping tss{};
    tss.ts[0].tv_sec = sec;
    tss.ts[0].tv_nsec = nsec;
    return tss;
}

sock_extended_err stamp_error(std::uint32_t id, std::uint32_t info) {
    sock_extended_err err{};
    err.ee_errno = ENOMSG;
    err.ee_origin = SO_EE_ORIGIN_TIMESTAMPING;
    err.ee_info = info;
    err.ee_data = id;
    return err;
}

TEST(ParseTxStamp, ReadsIdKindAndTimeForIpv4AndIpv6) {
    ControlBuilder v4;
    v4.add(SOL_SOCKET, SCM_TIMESTAMPING, software_stamp(5, 7))
        .add(SOL_IP, IP_RECVERR, stamp_error(41, SCM_TSTAMP_SCHED));
    auto stamp = parse_tx_stamp(v4.msg());
    ASSERT_TRUE(stamp);
    EXPECT_EQ(stamp->id, 41u);
    EXPECT_EQ(stamp->kind, TxStampKind::kSched);
    EXPECT_EQ(stamp->ns, 5'000'000'007);

    ControlBuilder v6;
    v6.add(SOL_IPV6, IPV6_RECVERR, stamp_error(3, SCM_TSTAMP_SND))
        .add(SOL_SOCKET, SCM_TIMESTAMPING, software_stamp(1, 0));
    stamp = parse_tx_stamp(v6.msg());
    ASSERT_TRUE(stamp);
    EXPECT_EQ(stamp->kind, TxStampKind::kDriver);
    EXPECT_EQ(stamp->id, 3u);
}

TEST(ParseTxStamp, IgnoresRealErrorsAndHalfMessages) {
    sock_extended_err icmp = stamp_error(1, SCM_TSTAMP_SND);
    icmp.ee_errno = ECONNREFUSED;
    icmp.ee_origin = SO_EE_ORIGIN_ICMP;
    ControlBuilder real_error;
    real_error.add(SOL_SOCKET, SCM_TIMESTAMPING, software_stamp(1, 0))
        .add(SOL_IP, IP_RECVERR, icmp);
    EXPECT_FALSE(parse_tx_stamp(real_error.msg()));

    ControlBuilder no_time;
    no_time.add(SOL_IP, IP_RECVERR, stamp_error(1, SCM_TSTAMP_SND));
    EXPECT_FALSE(parse_tx_stamp(no_time.msg()));

    ControlBuilder zero_time;  // hardware-only stamps leave ts[0] zero
    zero_time.add(SOL_SOCKET, SCM_TIMESTAMPING, software_stamp(0, 0))
        .add(SOL_IP, IP_RECVERR, stamp_error(1, SCM_TSTAMP_SND));
    EXPECT_FALSE(parse_tx_stamp(zero_time.msg()));
}

TEST(ParseRxStamp, ReadsTheSoftwareStamp) {
    ControlBuilder b;
    b.add(SOL_SOCKET, SCM_TIMESTAMPING, software_stamp(2, 500));
    EXPECT_EQ(parse_rx_stamp(b.msg()), 2'000'000'500);
    ControlBuilder none;
    EXPECT_FALSE(parse_rx_stamp(none.msg()));
}

TxStamp stamp(std::uint32_t id, TxStampKind kind, std::int64_t ns) {
    return {id, kind, ns};
}

TEST(TxTracker, TcpKeysAreTheOffsetOfEachMessagesLastByte) {
    std::vector<TxRecord> records(3);
    TxTracker tracker(Proto::kTcp, &records);
    tracker.sent(0, 100);  // bytes 0..99
    tracker.sent_unmeasured(24);
    tracker.sent(2, 100);  // bytes 124..223
    EXPECT_EQ(tracker.pending(), 2u);
    tracker.on_stamp(stamp(99, TxStampKind::kSched, 10));
    tracker.on_stamp(stamp(99, TxStampKind::kDriver, 11));
    tracker.on_stamp(stamp(123, TxStampKind::kDriver, 12));  // the unmeasured send
    tracker.on_stamp(stamp(223, TxStampKind::kDriver, 14));
    tracker.on_stamp(stamp(223, TxStampKind::kSched, 13));
    EXPECT_EQ(records[0].sched_ns, 10);
    EXPECT_EQ(records[0].driver_ns, 11);
    EXPECT_EQ(records[2].sched_ns, 13);
    EXPECT_EQ(records[2].driver_ns, 14);
    EXPECT_EQ(tracker.pending(), 0u);
    EXPECT_EQ(tracker.unmatched(), 1u);
}

TEST(TxTracker, UdpKeysCountSends) {
    std::vector<TxRecord> records(2);
    TxTracker tracker(Proto::kUdp, &records);
    tracker.sent(0, 1000);
    tracker.sent(1, 1000);
    tracker.on_stamp(stamp(1, TxStampKind::kSched, 5));
    EXPECT_EQ(records[1].sched_ns, 5);
    EXPECT_EQ(records[0].sched_ns, 0);
    EXPECT_EQ(tracker.pending(), 2u);
}

TEST(TxTracker, KeepsTheFirstStampOfRetransmittedBytes) {
    std::vector<TxRecord> records(1);
    TxTracker tracker(Proto::kTcp, &records);
    tracker.sent(0, 64);
    tracker.on_stamp(stamp(63, TxStampKind::kSched, 1));
    tracker.on_stamp(stamp(63, TxStampKind::kSched, 2));
    EXPECT_EQ(records[0].sched_ns, 1);
    EXPECT_EQ(tracker.unmatched(), 1u);
}

TEST(TxTracker, TcpKeysWrapLikeTheKernelsCounter) {
    std::vector<TxRecord> records(70000);
    TxTracker tracker(Proto::kTcp, &records);
    const std::size_t size = 65536;
    for (std::uint64_t seq = 0; seq < 65537; ++seq) tracker.sent(seq, size);
    // Message 65536 ends at byte 65537 * 65536 - 1, which is 65535 modulo 2^32.
    tracker.on_stamp(stamp(65535, TxStampKind::kSched, 9));
    EXPECT_EQ(records[65536].sched_ns, 9);
}

TEST(Wire, HeaderRoundTripsAndRejectsGarbage) {
    MessageHeader header;
    header.size = 64;
    header.seq = 12345;
    header.send_ns = 42;
    header.flags = kFlagWarmup | kFlagReplyWanted;
    char buf[kMinMessageSize];
    encode_header(header, buf);
    auto decoded = decode_header(buf, sizeof buf);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->seq, 12345u);
    EXPECT_EQ(decoded->send_ns, 42);
    EXPECT_EQ(decoded->flags, kFlagWarmup | kFlagReplyWanted);
    EXPECT_FALSE(decode_header(buf, sizeof buf - 1));
    buf[0] ^= 0xff;
    EXPECT_FALSE(decode_header(buf, sizeof buf));
}

}  // namespace
}  // namespace netlat_load
