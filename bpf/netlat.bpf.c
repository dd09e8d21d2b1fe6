// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netlatd's kernel side: one handler per stage, joined into segments through bounded maps, recorded
 * into per-CPU log-linear histograms. Entry points (tracepoints, netfilter hooks, and on kernels that
 * allow them kprobes and fentry) are thin wrappers around the handlers; the daemon switches off the
 * entry points it does not use before load. docs/SEMANTICS.md says what one sample of each segment is.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "netlat.h"
#include "core.bpf.h"
#include "packet.bpf.h"
#include "join.bpf.h"
#include "tx.bpf.h"
#include "rx.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* An skb is freed: forget it, so a reused address never matches a stale entry. */
static __always_inline void skb_freed(const struct sk_buff *skb, int dropped)
{
    __u64 key = (__u64)skb;
    struct skb_entry *e = skb_find(TX_SKBS, key);
    if (e) {
        if (dropped) count_unmatched(segment_into(e->prev_stage + 1), NETLAT_UNMATCHED_DROPPED);
        else if (e->prev_stage == NETLAT_STAGE_TX_DEVICE && !e->untimed) {
            __u32 zero = 0;
            struct tx_segmented *g = bpf_map_lookup_elem(&tx_gso, &zero);
            if (g) {
                if (g->sk) /* the previous one's segments never reached a driver */
                    count_unmatched(NETLAT_SEG_TX_DEVICE_TO_DRIVER, NETLAT_UNMATCHED_DROPPED);
                g->sk = e->sk;
                g->ts = bpf_ktime_get_ns();
                g->e = *e;
            }
        }
        skb_forget(TX_SKBS, key);
    }
    e = skb_find(RX_SKBS, key);
    if (e) {
        if (dropped && !e->headless && e->prev_stage < NETLAT_STAGE_RX_SOCKET) {
            count_unmatched(segment_into(e->prev_stage + 1), NETLAT_UNMATCHED_DROPPED);
        } else if (!dropped && !e->headless && e->proto == NETLAT_PROTO_UDP &&
                   e->prev_stage == NETLAT_STAGE_RX_TRANSPORT) {
            __u32 zero = 0;
            struct rx_segmented *g = bpf_map_lookup_elem(&rx_gso, &zero);
            if (g) {
                g->ts = bpf_ktime_get_ns();
                g->e = *e;
            }
            rx_delivered(e); /* it passed the layers as one skb, delivered to a local socket */
        }
        skb_forget(RX_SKBS, key);
    }
}

/* ================= entry points: tracepoint family ================= */

/* Every syscall's entry, by name through BTF (no tracefs): only the send syscalls go further. Their
 * numbers are the daemon's (its architecture's <sys/syscall.h>), so the test is a few compares. */
SEC("tp_btf/sys_enter")
int BPF_PROG(tp_sys_enter, struct pt_regs *regs, long id)
{
    for (int i = 0; i < NETLAT_SEND_SYSCALLS; i++) {
        if (id == cfg_send_syscalls[i]) {
            tx_syscall(id, bpf_ktime_get_ns());
            break;
        }
    }
    return 0;
}

SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(tp_tcp_sendmsg_locked, const struct sock *sk, const struct msghdr *msg)
{
    tx_transport_tcp(1, sk, msg);
    return 0;
}

SEC("netfilter")
int nf_tx_network(struct bpf_nf_ctx *ctx)
{
    tx_network(1, ctx->skb);
    return NF_ACCEPT;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(tp_net_dev_queue, struct sk_buff *skb)
{
    tx_device(1, skb);
    return 0;
}

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(tp_net_dev_start_xmit, const struct sk_buff *skb)
{
    tx_driver(1, skb);
    return 0;
}

#define RX_DRIVER_TP(name)                       \
    SEC("tp_btf/" #name)                         \
    int BPF_PROG(tp_##name, struct sk_buff *skb) \
    {                                            \
        rx_driver(1, skb);                       \
        return 0;                                \
    }
RX_DRIVER_TP(netif_rx)
RX_DRIVER_TP(napi_gro_receive_entry)
RX_DRIVER_TP(netif_receive_skb_entry)
RX_DRIVER_TP(netif_receive_skb_list_entry)
RX_DRIVER_TP(napi_gro_frags_entry)

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(tp_netif_receive_skb, struct sk_buff *skb)
{
    rx_skb_stage(1, skb, NETLAT_STAGE_RX_DEVICE);
    return 0;
}

SEC("netfilter")
int nf_rx_network(struct bpf_nf_ctx *ctx)
{
    rx_skb_stage(1, ctx->skb, NETLAT_STAGE_RX_NETWORK);
    return NF_ACCEPT;
}

SEC("netfilter")
int nf_rx_transport(struct bpf_nf_ctx *ctx)
{
    rx_skb_stage(1, ctx->skb, NETLAT_STAGE_RX_TRANSPORT);
    return NF_ACCEPT;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tp_tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
    rx_tcp_owned(1, sk, skb);
    return 0;
}

SEC("tp_btf/sk_data_ready")
int BPF_PROG(tp_sk_data_ready, const struct sock *sk)
{
    rx_queued(1, sk);
    return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_sock_recv_length, struct sock *sk, int ret, int flags)
{
    rx_socket(1, sk, ret, flags);
    return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(tp_kfree_skb, struct sk_buff *skb)
{
    skb_freed(skb, 1);
    return 0;
}

SEC("tp_btf/consume_skb")
int BPF_PROG(tp_consume_skb, struct sk_buff *skb)
{
    skb_freed(skb, 0);
    return 0;
}

/* ================= entry points: kprobe and fentry =================
 * The original project's functions and their twins. Each stage has one handler above; these only
 * unpack arguments. A function a kernel lacks (renamed, inlined) has its entry point switched off. */

/* A kprobe and an fentry program on function fn with the argument list `...`, both running `call`,
 * in which `btf` says which of the two it is (a constant of each program: READ() then keeps only
 * its own kind of load). */
#define KPROBE_FENTRY(fn, call, ...)                 \
    SEC("kprobe/" #fn)                               \
    int BPF_KPROBE(kp_##fn, __VA_ARGS__)             \
    {                                                \
        const int btf = 0;                           \
        call;                                        \
        return 0;                                    \
    }                                                \
    SEC("fentry/" #fn)                               \
    int BPF_PROG(fe_##fn, __VA_ARGS__)               \
    {                                                \
        const int btf = 1;                           \
        call;                                        \
        return 0;                                    \
    }

/* The common shapes: a function of (skb), of (net, sk, skb), of (sk), and the socket stage of a
 * send at a function of (struct socket *). */
#define KPROBE_FENTRY_SKB(fn, handler) KPROBE_FENTRY(fn, handler(btf, skb), struct sk_buff *skb)
#define KPROBE_FENTRY_SKB3(fn, handler) \
    KPROBE_FENTRY(fn, handler(btf, skb), void *net, void *sk, struct sk_buff *skb)
#define KPROBE_FENTRY_SOCK(fn, handler) KPROBE_FENTRY(fn, handler(btf, sk), struct sock *sk)
#define KPROBE_FENTRY_SOCKET(fn) KPROBE_FENTRY(fn, tx_socket_of(btf, sock), struct socket *sock)

static __always_inline void tx_socket_of(int btf, const struct socket *sock)
{
    __u64 now = bpf_ktime_get_ns(); /* first thing in the hook */
    tx_socket(btf, READ(btf, sock, sk), now);
}

KPROBE_FENTRY_SOCKET(sock_sendmsg)
KPROBE_FENTRY_SOCKET(__sock_sendmsg)
/* Before 6.5, sendfile and splice to a socket go sock_sendpage -> kernel_sendpage ->
 * inet_sendpage -> tcp_sendpage, past __sock_sendmsg and tcp_sendmsg: each call sends one page. */
KPROBE_FENTRY_SOCKET(kernel_sendpage)
KPROBE_FENTRY(tcp_sendpage, tx_transport_tcp_call(btf, sk, (__u64)page, size), struct sock *sk,
              struct page *page, int offset, size_t size)
KPROBE_FENTRY(tcp_sendmsg, tx_transport_tcp(btf, sk, msg), struct sock *sk, struct msghdr *msg)
KPROBE_FENTRY_SOCK(udp_sendmsg, tx_transport_udp)
KPROBE_FENTRY_SOCK(udpv6_sendmsg, tx_transport_udp)
KPROBE_FENTRY_SOCK(sock_def_readable, rx_queued)

KPROBE_FENTRY_SKB3(ip_output, tx_network)
KPROBE_FENTRY_SKB3(ip6_output, tx_network)
KPROBE_FENTRY_SKB(__dev_queue_xmit, tx_device)
KPROBE_FENTRY_SKB(dev_hard_start_xmit, tx_driver)

KPROBE_FENTRY_SKB(netif_rx, rx_driver)
KPROBE_FENTRY_SKB(__netif_rx, rx_driver)
KPROBE_FENTRY_SKB(netif_receive_skb, rx_driver)
KPROBE_FENTRY(napi_gro_receive, rx_driver(btf, skb), void *napi, struct sk_buff *skb)

static __always_inline void rx_device(int btf, const struct sk_buff *skb)
{
    rx_skb_stage(btf, skb, NETLAT_STAGE_RX_DEVICE);
}
static __always_inline void rx_network(int btf, const struct sk_buff *skb)
{
    rx_skb_stage(btf, skb, NETLAT_STAGE_RX_NETWORK);
}
static __always_inline void rx_transport(int btf, const struct sk_buff *skb)
{
    rx_skb_stage(btf, skb, NETLAT_STAGE_RX_TRANSPORT);
}

KPROBE_FENTRY_SKB(__netif_receive_skb, rx_device)
/* ip_rcv_core(skb, net) and ip6_rcv_core(skb, dev, net): both the single-packet entries
 * (ip_rcv, ipv6_rcv) and GRO's list receive (ip_list_rcv, ipv6_list_rcv) call them; ip_rcv and
 * ipv6_rcv are the fallback of a kernel that inlines them. */
KPROBE_FENTRY_SKB(ip_rcv_core, rx_network)
KPROBE_FENTRY_SKB(ip6_rcv_core, rx_network)
KPROBE_FENTRY_SKB(ip_rcv, rx_network)
KPROBE_FENTRY_SKB(ipv6_rcv, rx_network)
KPROBE_FENTRY_SKB(tcp_v4_rcv, rx_transport)
KPROBE_FENTRY_SKB(tcp_v6_rcv, rx_transport)
KPROBE_FENTRY_SKB(udp_rcv, rx_transport)
KPROBE_FENTRY_SKB(udpv6_rcv, rx_transport)
/* An arriving segment: its own receive join, and the socket's sends it acknowledges (tx_acked). */
static __always_inline void tcp_established_rcv(int btf, struct sock *sk, struct sk_buff *skb)
{
    tx_acked(btf, sk);
    rx_tcp_owned(btf, sk, skb);
}
KPROBE_FENTRY(tcp_rcv_established, tcp_established_rcv(btf, sk, skb), struct sock *sk,
              struct sk_buff *skb)

/* Reads: the socket stage needs the return value. fexit has arguments and result together; a
 * kretprobe does not, so its kprobe keeps (sk, flags) per thread. */
struct rx_call {
    __u64 sk;
    __s32 flags;
    __s32 len; /* the bytes read, for a function that returns none (tcp_read_done); else -1 */
};
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64);
    __type(value, struct rx_call);
} rx_thread SEC(".maps");

static __always_inline void rx_call_enter(struct sock *sk, int flags, int len)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct rx_call c = {.sk = (__u64)sk, .flags = flags, .len = len};
    bpf_map_update_elem(&rx_thread, &id, &c, BPF_ANY);
}

static __always_inline void rx_call_return(int ret)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct rx_call *c = bpf_map_lookup_elem(&rx_thread, &id);
    if (!c) return;
    rx_socket(0, (const struct sock *)c->sk, c->len >= 0 ? c->len : ret, c->flags);
    bpf_map_delete_elem(&rx_thread, &id);
}

/* Before 5.19 ("net: remove noblock parameter from recvmsg() entities") these functions took
 * (sk, msg, len, nonblock, flags, addr_len): the kernel's version picks the layout at load. */
extern int LINUX_KERNEL_VERSION __kconfig;
#define RECVMSG_HAS_NONBLOCK (LINUX_KERNEL_VERSION < KERNEL_VERSION(5, 19, 0))

#define RECVMSG_ENTRY_POINTS(fn)                                                                  \
    SEC("kprobe/" #fn)                                                                            \
    int BPF_KPROBE(kp_##fn, struct sock *sk, struct msghdr *msg, size_t len, long a4, long a5)    \
    {                                                                                             \
        /* Both loaded before the choice: a choice between two context fields would otherwise */  \
        /* become one load at a computed context offset, which the verifier refuses. */           \
        barrier_var(a4);                                                                          \
        barrier_var(a5);                                                                          \
        rx_call_enter(sk, RECVMSG_HAS_NONBLOCK ? (int)a5 : (int)a4, -1);                          \
        return 0;                                                                                 \
    }                                                                                             \
    SEC("kretprobe/" #fn)                                                                         \
    int BPF_KRETPROBE(krp_##fn, int ret)                                                          \
    {                                                                                             \
        rx_call_return(ret);                                                                      \
        return 0;                                                                                 \
    }                                                                                             \
    SEC("fexit/" #fn)                                                                             \
    int fx_##fn(unsigned long long *ctx)                                                          \
    {                                                                                             \
        const struct sock *sk = (const struct sock *)ctx[0];                                      \
        if (RECVMSG_HAS_NONBLOCK)                                                                 \
            rx_socket(1, sk, (int)ctx[6], (int)ctx[4]);                                           \
        else                                                                                      \
            rx_socket(1, sk, (int)ctx[5], (int)ctx[3]);                                           \
        return 0;                                                                                 \
    }
RECVMSG_ENTRY_POINTS(tcp_recvmsg)
RECVMSG_ENTRY_POINTS(udp_recvmsg)
RECVMSG_ENTRY_POINTS(udpv6_recvmsg)

/* splice from a TCP socket (tcp_splice_read -> tcp_read_sock) passes neither tcp_recvmsg nor
 * sock_recv_length: the function modes take its return as the read. */
SEC("kprobe/tcp_splice_read")
int BPF_KPROBE(kp_tcp_splice_read, struct socket *sock)
{
    rx_call_enter(BPF_CORE_READ(sock, sk), 0, -1);
    return 0;
}
SEC("kretprobe/tcp_splice_read")
int BPF_KRETPROBE(krp_tcp_splice_read, long ret)
{
    rx_call_return((int)ret);
    return 0;
}
SEC("fexit/tcp_splice_read")
int BPF_PROG(fx_tcp_splice_read, struct socket *sock, loff_t *ppos, struct pipe_inode_info *pipe,
             size_t len, unsigned int flags, long ret)
{
    rx_socket(1, READ(1, sock, sk), (int)ret, 0);
    return 0;
}

/* kTLS (6.0+) takes each record off TCP with tcp_read_done(sk, len) inside the application's read
 * (tls_sw_recvmsg, a module function, past tcp_recvmsg): the function modes take it as the read of
 * the record's segments (tracepoint mode has sock_recv_length at the read's return). */
SEC("kprobe/tcp_read_done")
int BPF_KPROBE(kp_tcp_read_done, struct sock *sk, size_t len)
{
    rx_call_enter(sk, 0, (int)len);
    return 0;
}
SEC("kretprobe/tcp_read_done")
int BPF_KRETPROBE(krp_tcp_read_done)
{
    rx_call_return(0);
    return 0;
}
SEC("fexit/tcp_read_done")
int BPF_PROG(fx_tcp_read_done, struct sock *sk, size_t len)
{
    rx_socket(1, sk, (int)len, 0);
    return 0;
}
