// The system calls that send and read, across a veth pair: sendmmsg (each message is a send),
// recvmmsg (each datagram a read), writev, sendfile, splice, io_uring send and recv. Calls that do
// not pass the send-syscall hook of tracepoint mode (sendfile, splice, io_uring) are each timed or
// counted no_start at their first join, never timed from another call (docs/SEMANTICS.md).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <functional>

#include "paths.h"

using namespace netlatd::test;

namespace {

constexpr int kMessages = 200;
constexpr size_t kSize = 64;

// A veth pair, netlatd on both namespaces, and a UDP or TCP flow from A to B, warmed up.
class Calls : public ::testing::TestWithParam<bool> {
  protected:
    void SetUp() override {
        ASSERT_TRUE(d.running()) << d.log();
        flow.ping(20);
    }
    bool tcp() const { return GetParam(); }
    std::string proto() const { return tcp() ? "tcp" : "udp"; }

    // `send` sends message i (kSize bytes) on flow.tx; `read` reads it on flow.rx (default: one
    // read()). Each message is sent, then read; both directions' counts are checked.
    Window run(const std::function<void(int)>& send, const std::function<void()>& read = {}) {
        Window w(d);
        for (int i = 0; i < kMessages; i++) {
            send(i);
            if (read)
                read();
            else
                EXPECT_EQ(flow.receive(kSize), kSize) << "message " << i;
        }
        w.close();
        return w;
    }

    // Calls the socket stage does not see are timed or counted no_start where they are first
    // joined (TCP: socket_to_transport; UDP, with no transport hook: transport_to_network), and
    // each read is joined.
    void expect_timed_or_no_start(const Window& w, const std::string& what) {
        const std::string first = tcp() ? "socket_to_transport" : "transport_to_network";
        const double timed = w.samples("tx", "total", proto());
        const double no_start = w.unmatched("tx", "no_start", first);
        EXPECT_LE(timed, kMessages * 1.01) << what << ": a call timed twice";
        EXPECT_GE(timed + no_start, kMessages * 0.99)
            << what << ": " << timed << " timed, " << no_start << " no_start at " << first
            << "; unmatched " << w.unmatched_summary("tx");
        expect_joined(w, "rx", "total", proto(), kMessages, what);
    }

    NetnsPair pair;
    const std::string a = NetnsPair::path(pair.ns_a), b = NetnsPair::path(pair.ns_b);
    Daemon d{paths_config({a, b})};
    Flow flow{GetParam(), a, b, pair.addr_b};
    const std::string payload = std::string(kSize, 'c');
};

std::string proto_name(const ::testing::TestParamInfo<bool>& info) {
    return info.param ? "Tcp" : "Udp";
}

// sendmmsg of 10 messages: each message is a send call, timed once.
TEST_P(Calls, SendmmsgTimesEachMessage) {
    constexpr int kBatch = 10;
    iovec iov{const_cast<char*>(payload.data()), kSize};
    std::vector<mmsghdr> batch(kBatch);
    for (auto& m : batch) {
        m.msg_hdr.msg_iov = &iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    Window w(d);
    for (int i = 0; i < kMessages / kBatch; i++) {
        ASSERT_EQ(sendmmsg(flow.tx, batch.data(), kBatch, 0), kBatch);
        if (tcp())
            ASSERT_EQ(flow.receive(kSize * kBatch), kSize * kBatch);
        else
            for (int m = 0; m < kBatch; m++) ASSERT_EQ(flow.receive(kSize), kSize);
    }
    w.close();
    expect_joined(w, "tx", "total", proto(), kMessages, "sendmmsg");
    // TCP: the receiver may take several messages in one skb; UDP: one datagram each.
    if (!tcp()) expect_joined(w, "rx", "total", proto(), kMessages, "sendmmsg");
}

// writev of three pieces: one send call.
TEST_P(Calls, WritevIsOneCall) {
    Window w = run([&](int) {
        iovec iov[3] = {{const_cast<char*>(payload.data()), 20},
                        {const_cast<char*>(payload.data()) + 20, 20},
                        {const_cast<char*>(payload.data()) + 40, kSize - 40}};
        ASSERT_EQ(writev(flow.tx, iov, 3), static_cast<ssize_t>(kSize));
    });
    expect_each_message_joined(w, flow, kMessages, "writev");
}

// sendfile from a file and splice from a pipe (TCP: the usual use; UDP takes them too).
TEST_P(Calls, SendfileIsTimedOrCountedNoStart) {
    char path[] = "/tmp/netlatd-paths-XXXXXX";
    const int file = mkstemp(path);
    ASSERT_GE(file, 0);
    unlink(path);
    ASSERT_EQ(write(file, payload.data(), kSize), static_cast<ssize_t>(kSize));
    Window w = run([&](int) {
        off_t offset = 0;
        ASSERT_EQ(sendfile(flow.tx, file, &offset, kSize), static_cast<ssize_t>(kSize));
    });
    close(file);
    expect_timed_or_no_start(w, "sendfile");
    expect_later_messages_join(d, flow);
}

TEST_P(Calls, SpliceIsTimedOrCountedNoStart) {
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    Window w = run([&](int) {
        ASSERT_EQ(write(pipe_fds[1], payload.data(), kSize), static_cast<ssize_t>(kSize));
        ASSERT_EQ(splice(pipe_fds[0], nullptr, flow.tx, nullptr, kSize, 0),
                  static_cast<ssize_t>(kSize));
    });
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    expect_timed_or_no_start(w, "splice");
    expect_later_messages_join(d, flow);
}

// io_uring send and recv, each completed before the next message.
TEST_P(Calls, IoUringSendAndRecv) {
    io_uring ring;
    ASSERT_EQ(io_uring_queue_init(8, &ring, 0), 0);
    std::vector<char> buf(kSize);
    auto submit = [&](const std::function<void(io_uring_sqe*)>& prep) {
        prep(io_uring_get_sqe(&ring));
        ASSERT_EQ(io_uring_submit(&ring), 1);
        io_uring_cqe* cqe = nullptr;
        ASSERT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
        EXPECT_GT(cqe->res, 0) << "io_uring: " << cqe->res;
        io_uring_cqe_seen(&ring, cqe);
    };
    Window w = run(
        [&](int) {
            submit(
                [&](io_uring_sqe* s) { io_uring_prep_send(s, flow.tx, payload.data(), kSize, 0); });
        },
        [&] {
            submit([&](io_uring_sqe* s) {
                io_uring_prep_recv(s, flow.rx, buf.data(), kSize, MSG_WAITALL);
            });
        });
    io_uring_queue_exit(&ring);
    expect_timed_or_no_start(w, "io_uring send / recv");
    expect_later_messages_join(d, flow);
}

INSTANTIATE_TEST_SUITE_P(Paths, Calls, ::testing::Bool(), proto_name);

// recvmmsg: 10 datagrams queued, then taken by one call; each is a read, joined once.
TEST(Recvmmsg, EachDatagramIsARead) {
    NetnsPair pair;
    const std::string a = NetnsPair::path(pair.ns_a), b = NetnsPair::path(pair.ns_b);
    Daemon d(paths_config({a, b}));
    ASSERT_TRUE(d.running()) << d.log();
    Flow flow(false, a, b, pair.addr_b);
    flow.ping(20);
    constexpr int kBatch = 10;
    std::vector<std::vector<char>> bufs(kBatch, std::vector<char>(kSize));
    std::vector<iovec> iovs(kBatch);
    std::vector<mmsghdr> batch(kBatch);
    for (int m = 0; m < kBatch; m++) {
        iovs[m] = {bufs[m].data(), kSize};
        batch[m].msg_hdr.msg_iov = &iovs[m];
        batch[m].msg_hdr.msg_iovlen = 1;
    }
    const std::string payload(kSize, 'r');
    Window w(d);
    for (int i = 0; i < kMessages / kBatch; i++) {
        for (int m = 0; m < kBatch; m++)
            ASSERT_EQ(write(flow.tx, payload.data(), kSize), static_cast<ssize_t>(kSize));
        int got = 0;
        while (got < kBatch) {
            int n = recvmmsg(flow.rx, batch.data() + got, kBatch - got, 0, nullptr);
            ASSERT_GT(n, 0);
            got += n;
        }
    }
    w.close();
    expect_each_message_joined(w, flow, kMessages, "recvmmsg");
    expect_later_messages_join(d, flow);
}

}  // namespace
