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

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define MSG_PEEK 2
#define MSG_ERRQUEUE 0x2000
#define NF_ACCEPT 1
#define NF_INET_PRE_ROUTING 0
#define NF_INET_LOCAL_IN 1
#define NF_INET_POST_ROUTING 4

/* ---- configuration, set by the daemon before load ---- */
const volatile __u32 cfg_sample_every = 1; /* track 1 in N packets/calls */
const volatile __u8 cfg_netns_label = 0;
const volatile __u64 cfg_stale_ns = 5000000000ULL;
const volatile __u32 cfg_n_local_ports = 0;
const volatile __u16 cfg_local_ports[NETLAT_MAX_PORTS] = {};
const volatile __u32 cfg_n_remote_ports = 0;
const volatile __u16 cfg_remote_ports[NETLAT_MAX_PORTS] = {};
const volatile __u32 cfg_n_ifaces = 0;
const volatile char cfg_ifaces[NETLAT_MAX_IFACES][NETLAT_IFNAMSIZ] = {};
const volatile __u32 cfg_n_netns = 0;
const volatile __u32 cfg_netns[NETLAT_MAX_NETNS] = {};
/* sendto, sendmsg, sendmmsg, write, writev: filled by the daemon; -1 never matches */
const volatile long cfg_send_syscalls[NETLAT_SEND_SYSCALLS] = {-1, -1, -1, -1, -1};

/* ---- histograms and counters ---- */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 2048);
    __type(key, struct netlat_hist_key);
    __type(value, struct netlat_hist);
} hist SEC(".maps");

/* A zeroed histogram to create new series from (too large for the BPF stack). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct netlat_hist);
} hist_zero SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, NETLAT_CTR_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

/* ---- correlation state ---- */

/* A thread inside a send call: socket stage -> transport (TCP, UDP) or -> network (UDP). */
struct tx_thread_val {
    __u64 ts_socket;
    __u64 ts_transport; /* 0 until the transport stage ran for this call */
    __u64 sk;           /* 0 until known: the syscall hooks do not resolve the fd */
    __u64 msg; /* the msghdr the transport stage saw last: a new one is a new call (sendmmsg) */
    __s64 syscall; /* the send syscall's number (syscall hooks), -1 for function hooks */
};
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64); /* pid_tgid */
    __type(value, struct tx_thread_val);
} tx_thread SEC(".maps");

/* One skb between stages, keyed by its address. */
#define TX_CALLS_PER_SKB 4
struct skb_entry {
    __u64 ts_first;                       /* rx: driver stage; tx: unused */
    __u64 ts_prev;                        /* the last present stage */
    __u64 ts_socket[TX_CALLS_PER_SKB];    /* tx: socket stage of each call whose last byte rides here */
    __u32 netns;
    __u8 proto;
    __u8 family;
    __u8 prev_stage;
    __u8 n_calls;
    __u8 untimed; /* a TCP retransmission: followed so later stages do not join it again, not timed */
    __u8 pad[7];
};
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct skb_entry);
} tx_skb SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct skb_entry);
} rx_skb SEC(".maps");

/*
 * Per-socket rings of pending data, for joins that skb addresses cannot make:
 *  tx (TCP): send calls waiting for the segment that carries their last byte, tagged by end sequence;
 *  rx (TCP): received segments waiting to be read, tagged by end sequence (copied_seq passes them).
 * For UDP sockets the rx ring holds only the position counter of the socket's datagrams (rx_dgram).
 * A slot's tag is written last by its single writer and claimed with compare-and-swap by readers.
 */
#define RING_SLOTS 16
struct ring_slot {
    __u64 tag; /* (key << 32) | family << 1 | 1; 0 = empty */
    __u64 t0;  /* tx: socket stage; rx: driver stage */
    __u64 t1;  /* tx: transport stage; rx: last stage before the ring */
    __u64 t2;  /* rx: queued stage */
};
struct ring {
    struct ring_slot slot[RING_SLOTS];
    __u32 next;   /* TCP: next slot to write */
    __u32 pushed; /* UDP: positions given to the socket's datagrams so far */
    __u32 netns;
    __u32 pad;
    __u64 owner; /* the socket's inode: a socket reallocated at the same address starts afresh */
    __u64 last_skb; /* UDP: the newest datagram given a position, and its driver time (0: */
    __u64 last_ts;  /* untracked), which tell it from a later skb at the same address */
};
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64); /* struct sock * */
    __type(value, struct ring);
} tx_ring SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64);
    __type(value, struct ring);
} rx_ring SEC(".maps");

/*
 * UDP datagrams on a socket's receive queue, by position: (socket inode, position) -> times.
 * Datagrams get positions in queue order when the reader is woken (rx_queued_udp), tracked or not,
 * so that the newest has position pushed - 1. A read that leaves n datagrams queued took position
 * pushed - n - 1: the join depends only on the queue as it is, so a read or datagram netlatd did
 * not see (queued before it started, peeked, dropped) cannot shift later pairs.
 */
struct dgram_key {
    __u64 owner; /* socket inode */
    __u32 pos;
    __u32 pad;
};
struct dgram {
    __u64 t0, t1, t2; /* driver, transport, queued */
    __u32 netns;
    __u8 family;
    __u8 pad[3];
};
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct dgram_key);
    __type(value, struct dgram);
} rx_dgram SEC(".maps");

/* Empty values to insert from: rings are too large for the BPF stack. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct ring);
} ring_zero SEC(".maps");

/* ---- small helpers ---- */

static __always_inline void count(__u32 idx)
{
    __u64 *c = bpf_map_lookup_elem(&counters, &idx);
    if (c) __sync_fetch_and_add(c, 1);
}

/* Inserts or replaces an entry; only a new key counts as an insert, so the daemon's eviction
 * estimate (inserts - deletes - live entries) is not inflated by keys written again. */
static __always_inline void upsert_key(void *map, int map_id, const void *key, void *value)
{
    if (!bpf_map_update_elem(map, key, value, BPF_NOEXIST))
        count(NETLAT_CTR_MAP_INSERT(map_id));
    else
        bpf_map_update_elem(map, key, value, BPF_EXIST);
}

static __always_inline void upsert(void *map, int map_id, __u64 key, void *value)
{
    upsert_key(map, map_id, &key, value);
}

static __always_inline void count_unmatched(int seg, int reason)
{
    count(NETLAT_CTR_UNMATCHED(seg, reason));
}

static __always_inline void record(int seg, __u8 proto, __u8 family, __u32 netns, __u64 now, __u64 then)
{
    if (!then || then > now) return;
    __u64 delta = now - then;
    struct netlat_hist_key key = {
        .segment = seg, .protocol = proto, .family = family, .netns = cfg_netns_label ? netns : 0};
    struct netlat_hist *h = bpf_map_lookup_elem(&hist, &key);
    if (!h) {
        __u32 zero = 0;
        struct netlat_hist *z = bpf_map_lookup_elem(&hist_zero, &zero);
        if (!z) return;
        bpf_map_update_elem(&hist, &key, z, BPF_NOEXIST);
        h = bpf_map_lookup_elem(&hist, &key);
        if (!h) return;
    }
    /* 64-bit and behind a barrier: older verifiers (6.1) lose a bound checked on a 32-bit copy. */
    __u64 slot = netlat_slot(delta);
    barrier_var(slot);
    if (slot >= NETLAT_SLOTS) return;
    __sync_fetch_and_add(&h->count, 1);
    __sync_fetch_and_add(&h->sum_ns, delta);
    __sync_fetch_and_add(&h->slots[slot], 1);
}

/* The consecutive segment that ends at a stage (it spans any stage without a hook before it). */
static __always_inline int segment_into(int stage)
{
    if (stage <= NETLAT_STAGE_TX_DRIVER)
        return NETLAT_SEG_TX_SOCKET_TO_TRANSPORT + (stage - NETLAT_STAGE_TX_TRANSPORT);
    return NETLAT_SEG_RX_DRIVER_TO_DEVICE + (stage - NETLAT_STAGE_RX_DEVICE);
}

static __always_inline int seq_before_eq(__u32 a, __u32 b) { return (__s32)(a - b) <= 0; }

static __always_inline __u64 ring_tag(__u32 key, __u8 family) { return ((__u64)key << 32) | family << 1 | 1; }

static __always_inline __u32 netns_of_dev(const struct net_device *dev)
{
    return BPF_CORE_READ(dev, nd_net.net, ns.inum);
}

static __always_inline __u32 netns_of_sock(const struct sock *sk)
{
    return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline int sampled(void)
{
    return cfg_sample_every <= 1 || bpf_get_prandom_u32() % cfg_sample_every == 0;
}

static __always_inline int port_in(const volatile __u16 *list, __u32 n, __u16 port)
{
    for (__u32 i = 0; i < NETLAT_MAX_PORTS; i++) {
        if (i >= n) break;
        if (list[i] == port) return 1;
    }
    return 0;
}

/* Port and namespace filters; local and remote ports in host order. */
static __always_inline int flow_wanted(__u16 lport, __u16 rport, __u32 netns)
{
    if (cfg_n_local_ports && !port_in(cfg_local_ports, cfg_n_local_ports, lport)) return 0;
    if (cfg_n_remote_ports && !port_in(cfg_remote_ports, cfg_n_remote_ports, rport)) return 0;
    if (cfg_n_netns) {
        int hit = 0;
        for (__u32 i = 0; i < NETLAT_MAX_NETNS; i++) {
            if (i >= cfg_n_netns) break;
            if (cfg_netns[i] == netns) hit = 1;
        }
        if (!hit) return 0;
    }
    return 1;
}

static __always_inline int dev_wanted(const struct net_device *dev)
{
    if (!cfg_n_ifaces) return 1;
    char name[NETLAT_IFNAMSIZ] = {};
    bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(dev, name));
    for (__u32 i = 0; i < NETLAT_MAX_IFACES; i++) {
        if (i >= cfg_n_ifaces) break;
        int same = 1;
        for (int j = 0; j < NETLAT_IFNAMSIZ; j++) {
            if (name[j] != cfg_ifaces[i][j]) { same = 0; break; }
            if (!name[j]) break;
        }
        if (same) return 1;
    }
    return 0;
}

/* What a packet is, read from its IP header. */
struct pkt {
    __u8 proto;
    __u8 family;
    __u16 src_port; /* host order */
    __u16 dst_port;
    __u32 seq;     /* TCP only */
    __u32 payload; /* TCP only: bytes of data (skb->len based, so GSO skbs count whole) */
};

/* Parses the IPv4/IPv6 + TCP/UDP headers at l3 (inside skb). Returns 0 for anything else. */
static __always_inline int parse_l3(const struct sk_buff *skb, const unsigned char *l3, struct pkt *p)
{
    __u8 vihl;
    if (bpf_probe_read_kernel(&vihl, 1, l3)) return 0;
    const unsigned char *l4;
    __u8 l4proto;
    if ((vihl >> 4) == 4) {
        struct iphdr ip;
        if (bpf_probe_read_kernel(&ip, sizeof(ip), l3)) return 0;
        if (ip.frag_off & bpf_htons(0x1fff)) return 0; /* not the first fragment: no ports */
        l4proto = ip.protocol;
        l4 = l3 + (ip.ihl & 0xf) * 4;
        p->family = NETLAT_FAMILY_IPV4;
    } else if ((vihl >> 4) == 6) {
        struct ipv6hdr ip6;
        if (bpf_probe_read_kernel(&ip6, sizeof(ip6), l3)) return 0;
        l4proto = ip6.nexthdr;
        l4 = l3 + sizeof(ip6);
        p->family = NETLAT_FAMILY_IPV6;
    } else {
        return 0;
    }
    if (l4proto == IPPROTO_TCP) {
        struct tcphdr th;
        if (bpf_probe_read_kernel(&th, sizeof(th), l4)) return 0;
        p->proto = NETLAT_PROTO_TCP;
        p->src_port = bpf_ntohs(th.source);
        p->dst_port = bpf_ntohs(th.dest);
        p->seq = bpf_ntohl(th.seq);
        unsigned char *data = BPF_CORE_READ(skb, data);
        __u32 len = BPF_CORE_READ(skb, len);
        __u32 hdrs = (__u32)(l4 - data) + th.doff * 4;
        p->payload = len > hdrs ? len - hdrs : 0;
        return 1;
    }
    if (l4proto == IPPROTO_UDP) {
        struct udphdr uh;
        if (bpf_probe_read_kernel(&uh, sizeof(uh), l4)) return 0;
        p->proto = NETLAT_PROTO_UDP;
        p->src_port = bpf_ntohs(uh.source);
        p->dst_port = bpf_ntohs(uh.dest);
        return 1;
    }
    return 0;
}

static __always_inline const unsigned char *skb_network(const struct sk_buff *skb)
{
    return BPF_CORE_READ(skb, head) + BPF_CORE_READ(skb, network_header);
}

static __always_inline __u64 current_pid_tgid(void)
{
    struct task_struct *t = bpf_get_current_task_btf();
    return ((__u64)BPF_CORE_READ(t, tgid) << 32) | (__u32)BPF_CORE_READ(t, pid);
}

/* TCP or UDP over IPv4/IPv6: the protocol and family of a socket, or -1. */
static __always_inline int sock_kind(const struct sock *sk, __u8 *proto, __u8 *family)
{
    __u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
    __u16 p = BPF_CORE_READ(sk, sk_protocol);
    if (fam == AF_INET) *family = NETLAT_FAMILY_IPV4;
    else if (fam == AF_INET6) *family = NETLAT_FAMILY_IPV6;
    else return -1;
    if (p == IPPROTO_TCP) *proto = NETLAT_PROTO_TCP;
    else if (p == IPPROTO_UDP) *proto = NETLAT_PROTO_UDP;
    else return -1;
    return 0;
}

static __always_inline int sock_wanted(const struct sock *sk)
{
    __u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
    __u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
    return flow_wanted(lport, rport, netns_of_sock(sk));
}

/* The inode of a socket's file, which identifies it for its lifetime (0 for kernel sockets). */
static __always_inline __u64 sock_ino(const struct sock *sk)
{
    const struct socket *sock = BPF_CORE_READ(sk, sk_socket);
    if (!sock) return 0;
    return BPF_CORE_READ((const struct socket_alloc *)sock, vfs_inode.i_ino);
}

/* The ring of a socket. A ring left by a closed socket whose memory now holds another socket is
 * stale (its pending entries belong to the old one): it is reset, and its entries counted stale. */
static __always_inline struct ring *ring_get(void *map, int map_id, const struct sock *sk, int create,
                                             int seg_stale)
{
    __u64 key = (__u64)sk, ino = sock_ino(sk);
    struct ring *r = bpf_map_lookup_elem(map, &key);
    if (r && r->owner == ino) return r;
    if (r && !r->owner) { /* made before accept() gave the socket its file */
        r->owner = ino;
        return r;
    }
    if (!create) return 0;
    __u32 zero = 0;
    struct ring *z = bpf_map_lookup_elem(&ring_zero, &zero);
    if (!z) return 0;
    if (r) count_unmatched(seg_stale, NETLAT_UNMATCHED_STALE);
    bpf_map_update_elem(map, &key, z, r ? BPF_EXIST : BPF_NOEXIST);
    if (!r) count(NETLAT_CTR_MAP_INSERT(map_id));
    r = bpf_map_lookup_elem(map, &key);
    if (r) r->owner = ino;
    return r;
}

/* Writes a TCP ring slot (single writer per socket: the socket lock or the softirq that owns it). */
static __always_inline void ring_push_seq(struct ring *r, __u64 tag, __u64 t0, __u64 t1, int seg_lost)
{
    __u32 i = r->next++ % RING_SLOTS;
    struct ring_slot *s = &r->slot[i];
    if (__sync_lock_test_and_set(&s->tag, 0)) count_unmatched(seg_lost, NETLAT_UNMATCHED_RING_FULL);
    s->t0 = t0;
    s->t1 = t1;
    s->t2 = 0;
    __sync_lock_test_and_set(&s->tag, tag);
}

/* Claims a slot whose tag is still t; its times were read before, so they belong to that tag. */
static __always_inline int ring_claim(struct ring_slot *s, __u64 t)
{
    return __sync_val_compare_and_swap(&s->tag, t, 0) == t;
}

/* ================= tx ================= */

/* socket stage: a thread enters a send call on sk (now: taken first thing in the hook). */
static __always_inline void tx_socket(const struct sock *sk, __u64 now)
{
    __u8 proto, family;
    if (!sk || sock_kind(sk, &proto, &family) || !sock_wanted(sk) || !sampled()) return;
    __u64 id = bpf_get_current_pid_tgid();
    struct tx_thread_val v = {.ts_socket = now, .sk = (__u64)sk, .syscall = -1};
    upsert(&tx_thread, NETLAT_MAP_TX_THREAD, id, &v);
    count(NETLAT_CTR_STAGE(NETLAT_STAGE_TX_SOCKET));
}

/* socket stage from a send syscall's entry (tracepoint mode): which socket the fd is, and whether
 * it is one at all, is left to the stage that joins it (transport, or network for UDP), which
 * knows the socket and checks that the thread is still inside this syscall. Resolving the fd here
 * cost more than the rest of the handler, on every write(2) of the system. */
static __always_inline void tx_syscall(long nr, __u64 now)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct tx_thread_val *t = bpf_map_lookup_elem(&tx_thread, &id);
    if (!sampled()) {
        /* Not recorded: the thread's previous call must not stand in for this one. */
        if (t) {
            t->sk = 0;
            t->syscall = -1;
        }
        return;
    }
    if (t) {
        t->ts_socket = now;
        t->ts_transport = 0;
        t->sk = 0;
        t->msg = 0;
        t->syscall = nr;
        return;
    }
    struct tx_thread_val v = {.ts_socket = now, .syscall = nr};
    upsert(&tx_thread, NETLAT_MAP_TX_THREAD, id, &v);
}

/* The number of the syscall the current thread is in (-1 outside one). */
static __always_inline long current_syscall(void)
{
    struct task_struct *task = bpf_get_current_task_btf();
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
    return BPF_CORE_READ(regs, orig_ax);
}

/* The current thread's send call on sk, if this is it: known by its socket (function hooks), or
 * by the syscall it is still in (syscall hooks; the socket is bound on first use). A syscall
 * entry is only good while the thread is still in that syscall: a later send that did not pass the
 * syscall hook (sendfile, splice, io_uring) must not inherit an old write()'s time. */
static __always_inline struct tx_thread_val *tx_call_of(const struct sock *sk, __u64 id)
{
    struct tx_thread_val *t = bpf_map_lookup_elem(&tx_thread, &id);
    if (!t) return 0;
    if (t->syscall >= 0 && current_syscall() != t->syscall) return 0;
    if (t->sk) return t->sk == (__u64)sk ? t : 0;
    if (t->syscall < 0) return 0;
    if (!sock_wanted(sk)) return 0;
    t->sk = (__u64)sk;
    count(NETLAT_CTR_STAGE(NETLAT_STAGE_TX_SOCKET));
    return t;
}

/* transport stage, TCP: the first pass of a call records where its data ends in the byte stream. */
static __always_inline void tx_transport_tcp(const struct sock *sk, const struct msghdr *msg)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct tx_thread_val *t = tx_call_of(sk, id);
    if (!t) {
        __u8 proto, family;
        if (!sock_kind(sk, &proto, &family) && sock_wanted(sk))
            count_unmatched(NETLAT_SEG_TX_SOCKET_TO_TRANSPORT, NETLAT_UNMATCHED_NO_START);
        return;
    }
    if (t->msg == (__u64)msg) return; /* a later pass of the same call */
    __u64 now = bpf_ktime_get_ns();
    t->msg = (__u64)msg;
    t->ts_transport = now;
    count(NETLAT_CTR_STAGE(NETLAT_STAGE_TX_TRANSPORT));

    const struct tcp_sock *tp = (const struct tcp_sock *)sk;
    __u32 write_seq = BPF_CORE_READ(tp, write_seq);
    __u64 left = BPF_CORE_READ(msg, msg_iter.count);
    if (!left) return;
    struct ring *r = ring_get(&tx_ring, NETLAT_MAP_TX_RING, sk, 1, NETLAT_SEG_TX_TRANSPORT_TO_NETWORK);
    if (!r) return;
    __u8 proto, family;
    if (sock_kind(sk, &proto, &family)) return;
    ring_push_seq(r, ring_tag(write_seq + (__u32)left, family), t->ts_socket, now,
                  NETLAT_SEG_TX_TRANSPORT_TO_NETWORK);
}

/* transport stage, UDP (kprobe and fentry modes: 6.18 has no UDP send tracepoint). */
static __always_inline void tx_transport_udp(const struct sock *sk)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct tx_thread_val *t = tx_call_of(sk, id);
    if (!t) return;
    t->ts_transport = bpf_ktime_get_ns();
    count(NETLAT_CTR_STAGE(NETLAT_STAGE_TX_TRANSPORT));
}

/* Emits the per-call segments of a call joined to its skb at `stage` (network, or device). */
static __always_inline void tx_call_joined(struct skb_entry *e, __u64 t_socket, __u64 t_transport,
                                           int stage, __u64 now)
{
    record(NETLAT_SEG_TX_SOCKET_TO_TRANSPORT, e->proto, e->family, e->netns, t_transport, t_socket);
    record(segment_into(stage), e->proto, e->family, e->netns, now,
           t_transport ? t_transport : t_socket);
    if (e->n_calls < TX_CALLS_PER_SKB) {
        __u8 n = e->n_calls & (TX_CALLS_PER_SKB - 1);
        e->ts_socket[n] = t_socket;
        e->n_calls++;
    } else {
        count_unmatched(NETLAT_SEG_TX_TOTAL, NETLAT_UNMATCHED_COALESCED);
    }
}

/* The device a locally sent skb leaves through: its route's (skb->dev is set only inside ip_output). */
static __always_inline const struct net_device *skb_out_dev(const struct sk_buff *skb)
{
    unsigned long refdst = BPF_CORE_READ(skb, _skb_refdst);
    const struct dst_entry *dst = (const struct dst_entry *)(refdst & ~1UL);
    const struct net_device *dev = dst ? BPF_CORE_READ(dst, dev) : 0;
    return dev ? dev : BPF_CORE_READ(skb, dev);
}

/* The join of calls to the skb that carries them, at the network stage, or at the device stage
 * when the network stage did not run for this skb (no netfilter hook in its namespace yet, or none
 * on this kernel): then the segment ending at the device stage spans the gap. */
static __always_inline void tx_join(const struct sk_buff *skb, int stage, __u64 now)
{
    const struct sock *sk = BPF_CORE_READ(skb, sk);
    if (!sk) return; /* forwarded, not ours */
    struct pkt p = {};
    if (!parse_l3(skb, skb_network(skb), &p)) return;
    /* A tunnel (VXLAN, geneve, ...) sends its outer packet with the inner packet's socket: that
     * packet is not a send of the socket, whose own packet was timed up to the tunnel device. */
    __u8 sk_proto, sk_family;
    if (sock_kind(sk, &sk_proto, &sk_family) || sk_proto != p.proto ||
        BPF_CORE_READ(sk, __sk_common.skc_num) != p.src_port)
        return;
    const struct net_device *dev = skb_out_dev(skb);
    __u32 netns = netns_of_dev(dev);
    if (!flow_wanted(p.src_port, p.dst_port, netns) || !dev_wanted(dev)) return;
    if (p.proto == NETLAT_PROTO_TCP && !p.payload) return; /* pure ACK, SYN, FIN: no data to time */

    struct skb_entry e = {.ts_prev = now, .netns = netns, .proto = p.proto, .family = p.family,
                          .prev_stage = stage};

    if (p.proto == NETLAT_PROTO_TCP) {
        const struct tcp_sock *tp = (const struct tcp_sock *)sk;
        if ((__s32)(p.seq - BPF_CORE_READ(tp, snd_nxt)) < 0) {
            count_unmatched(segment_into(stage), NETLAT_UNMATCHED_RETRANSMIT);
            e.untimed = 1;
            upsert(&tx_skb, NETLAT_MAP_TX_SKB, (__u64)skb, &e);
            return;
        }
        struct ring *r = ring_get(&tx_ring, NETLAT_MAP_TX_RING, sk, 0, NETLAT_SEG_TX_TRANSPORT_TO_NETWORK);
        if (r) {
            __u32 end = p.seq + p.payload;
            for (int i = 0; i < RING_SLOTS; i++) {
                struct ring_slot *s = &r->slot[i];
                __u64 tag = s->tag;
                if (!tag) continue;
                __u32 call_end = tag >> 32;
                if (seq_before_eq(call_end, p.seq) || !seq_before_eq(call_end, end)) continue;
                __u64 t0 = s->t0, t1 = s->t1;
                if (!ring_claim(s, tag)) continue;
                tx_call_joined(&e, t0, t1, stage, now);
            }
        }
        if (!e.n_calls) {
            /* Data whose call was not seen, or the middle of a call that spans segments. */
            count_unmatched(segment_into(stage), NETLAT_UNMATCHED_NO_START);
        }
    } else {
        struct tx_thread_val *t = tx_call_of(sk, current_pid_tgid());
        if (t)
            tx_call_joined(&e, t->ts_socket, t->ts_transport, stage, now);
        else
            count_unmatched(segment_into(stage), NETLAT_UNMATCHED_NO_START);
    }
    count(NETLAT_CTR_STAGE(stage));
    upsert(&tx_skb, NETLAT_MAP_TX_SKB, (__u64)skb, &e);
}

/* Looks up an skb entry and checks it is fresh; counts stale ones. */
static __always_inline struct skb_entry *skb_lookup(void *map, int map_id, __u64 key, int stage,
                                                    __u64 now)
{
    struct skb_entry *e = bpf_map_lookup_elem(map, &key);
    if (!e) return 0;
    if (now - e->ts_prev > cfg_stale_ns) {
        count_unmatched(segment_into(stage), NETLAT_UNMATCHED_STALE);
        if (!bpf_map_delete_elem(map, &key))
            count(NETLAT_CTR_MAP_DELETE(map_id));
        return 0;
    }
    return e;
}

static __always_inline void skb_stage(struct skb_entry *e, int stage, __u64 now)
{
    if (!e->untimed) record(segment_into(stage), e->proto, e->family, e->netns, now, e->ts_prev);
    e->ts_prev = now;
    e->prev_stage = stage;
    count(NETLAT_CTR_STAGE(stage));
}

/* device stage: __dev_queue_xmit, before the qdisc. */
static __always_inline void tx_device(const struct sk_buff *skb)
{
    __u64 now = bpf_ktime_get_ns();
    struct skb_entry *e = skb_lookup(&tx_skb, NETLAT_MAP_TX_SKB, (__u64)skb, NETLAT_STAGE_TX_DEVICE, now);
    if (!e)
        tx_join(skb, NETLAT_STAGE_TX_DEVICE, now);
    else if (e->prev_stage < NETLAT_STAGE_TX_DEVICE)
        skb_stage(e, NETLAT_STAGE_TX_DEVICE, now);
    /* else: a lower device's queue under a stacked one (macvlan, bridge, bond): still the device
     * layer, which began at the upper device */
}

/* A device that hands its packets to a lower device (macvlan, VLAN, bond, bridge: it has lower
 * devices); the packet's driver stage is the bottom device's transmit. A tunnel (VXLAN) has none:
 * its own transmit is the driver stage of the inner packet. */
static __always_inline int dev_is_stacked(const struct net_device *dev)
{
    if (!dev) return 0;
    const struct list_head *lower = &dev->adj_list.lower;
    return BPF_CORE_READ(dev, adj_list.lower.next) != lower;
}

static __always_inline void tx_network(const struct sk_buff *skb)
{
    tx_join(skb, NETLAT_STAGE_TX_NETWORK, bpf_ktime_get_ns());
}

/* driver stage: the skb is handed to the driver. The end of tx. */
static __always_inline void tx_driver(const struct sk_buff *skb)
{
    __u64 now = bpf_ktime_get_ns();
    __u64 key = (__u64)skb;
    struct skb_entry *e = skb_lookup(&tx_skb, NETLAT_MAP_TX_SKB, key, NETLAT_STAGE_TX_DRIVER, now);
    if (!e || dev_is_stacked(BPF_CORE_READ(skb, dev))) return;
    skb_stage(e, NETLAT_STAGE_TX_DRIVER, now);
    for (int i = 0; i < TX_CALLS_PER_SKB; i++) {
        if (i >= e->n_calls) break;
        record(NETLAT_SEG_TX_TOTAL, e->proto, e->family, e->netns, now, e->ts_socket[i]);
    }
    if (!bpf_map_delete_elem(&tx_skb, &key)) count(NETLAT_CTR_MAP_DELETE(NETLAT_MAP_TX_SKB));
}

/* ================= rx ================= */

/* driver stage: the driver hands the skb to the stack (skb->data is at the IP header). */
static __always_inline void rx_driver(const struct sk_buff *skb)
{
    struct pkt p = {};
    if (!parse_l3(skb, BPF_CORE_READ(skb, data), &p)) return;
    const struct net_device *dev = BPF_CORE_READ(skb, dev);
    __u32 netns = netns_of_dev(dev);
    if (!flow_wanted(p.dst_port, p.src_port, netns) || !dev_wanted(dev)) return;
    /* UDP reads are joined by their position on the socket's queue, which every datagram takes:
     * sampling applies to TCP, whose reads are joined by sequence. */
    if (p.proto == NETLAT_PROTO_TCP && !sampled()) return;
    __u64 now = bpf_ktime_get_ns();
    struct skb_entry e = {.ts_first = now, .ts_prev = now, .netns = netns, .proto = p.proto,
                          .family = p.family, .prev_stage = NETLAT_STAGE_RX_DRIVER};
    upsert(&rx_skb, NETLAT_MAP_RX_SKB, (__u64)skb, &e);
    count(NETLAT_CTR_STAGE(NETLAT_STAGE_RX_DRIVER));
}

/* device, network and transport stages: the same skb moves on. */
static __always_inline void rx_skb_stage(const struct sk_buff *skb, int stage)
{
    __u64 now = bpf_ktime_get_ns();
    struct skb_entry *e = skb_lookup(&rx_skb, NETLAT_MAP_RX_SKB, (__u64)skb, stage, now);
    if (e && e->prev_stage < stage) skb_stage(e, stage, now);
}

/* TCP takes the segment for an established socket: move it from its skb address to the socket's
 * ring, keyed by end sequence, because the receive queue may coalesce it into another skb. */
static __always_inline void rx_tcp_owned(const struct sock *sk, const struct sk_buff *skb)
{
    __u64 key = (__u64)skb;
    struct skb_entry *e = bpf_map_lookup_elem(&rx_skb, &key);
    if (!e) return;
    const struct tcp_skb_cb *cb = (const struct tcp_skb_cb *)&skb->cb[0];
    __u32 seq = BPF_CORE_READ(cb, seq), end = BPF_CORE_READ(cb, end_seq);
    if (end != seq) {
        struct ring *r = ring_get(&rx_ring, NETLAT_MAP_RX_RING, sk, 1, NETLAT_SEG_RX_QUEUED_TO_SOCKET);
        if (r) {
            r->netns = e->netns;
            ring_push_seq(r, ring_tag(end, e->family), e->ts_first, e->ts_prev,
                          NETLAT_SEG_RX_TRANSPORT_TO_QUEUED);
        }
    }
    if (!bpf_map_delete_elem(&rx_skb, &key)) count(NETLAT_CTR_MAP_DELETE(NETLAT_MAP_RX_SKB));
}

/* queued stage, TCP: everything up to rcv_nxt is on the receive queue and the reader is woken. */
static __always_inline void rx_queued_tcp(const struct sock *sk, __u64 now)
{
    struct ring *r = ring_get(&rx_ring, NETLAT_MAP_RX_RING, sk, 0, NETLAT_SEG_RX_QUEUED_TO_SOCKET);
    if (!r) return;
    __u32 rcv_nxt = BPF_CORE_READ((const struct tcp_sock *)sk, rcv_nxt);
    for (int i = 0; i < RING_SLOTS; i++) {
        struct ring_slot *s = &r->slot[i];
        __u64 tag = s->tag;
        if (!tag || s->t2 || !seq_before_eq(tag >> 32, rcv_nxt)) continue;
        s->t2 = now;
        __u8 family = (tag >> 1) & 1;
        record(NETLAT_SEG_RX_TRANSPORT_TO_QUEUED, NETLAT_PROTO_TCP, family, r->netns, now, s->t1);
        record(NETLAT_SEG_RX_STACK, NETLAT_PROTO_TCP, family, r->netns, now, s->t0);
        count(NETLAT_CTR_STAGE(NETLAT_STAGE_RX_QUEUED));
    }
}

/* queued stage, UDP: the reader is woken for the newest datagrams on the receive queue. One wakeup
 * can stand for a batch (6.18 splices per-NUMA producer queues), so walk back from the tail to the
 * newest datagram positioned before, and position the new ones oldest first. Datagrams netlatd does
 * not track (queued before it started, evicted) take positions too, without times. */
#define UDP_QUEUE_WALK 32
struct udp_positions {
    __u64 found[UDP_QUEUE_WALK]; /* newest first */
    __u64 owner, now, tail_ts;
    __u32 n, base;
};

/* The walk's state, too large for the BPF stack: one slot per CPU, written before each use. A
 * program does not nest on its CPU (the kernel skips a recursive run), so one slot is enough. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct udp_positions);
} udp_positions_scratch SEC(".maps");

/* One datagram of a wakeup, oldest first (a bpf_loop callback: verified once, not per iteration;
 * its context must be on the stack, so the state is found again in the per-CPU slot). */
static long position_datagram(__u32 i, void *unused)
{
    __u32 zero = 0;
    struct udp_positions *c = bpf_map_lookup_elem(&udp_positions_scratch, &zero);
    if (!c) return 1;
    __u32 idx = c->n - 1 - i;
    if (idx >= UDP_QUEUE_WALK) return 1;
    __u64 key = c->found[idx];
    struct skb_entry *e = bpf_map_lookup_elem(&rx_skb, &key);
    if (!e || e->prev_stage >= NETLAT_STAGE_RX_QUEUED || e->proto != NETLAT_PROTO_UDP) return 0;
    if (idx == 0) c->tail_ts = e->ts_first;
    record(NETLAT_SEG_RX_TRANSPORT_TO_QUEUED, NETLAT_PROTO_UDP, e->family, e->netns, c->now, e->ts_prev);
    record(NETLAT_SEG_RX_STACK, NETLAT_PROTO_UDP, e->family, e->netns, c->now, e->ts_first);
    count(NETLAT_CTR_STAGE(NETLAT_STAGE_RX_QUEUED));
    struct dgram_key k = {.owner = c->owner, .pos = c->base + i};
    struct dgram d = {.t0 = e->ts_first, .t1 = e->ts_prev, .t2 = c->now, .netns = e->netns,
                      .family = e->family};
    upsert_key(&rx_dgram, NETLAT_MAP_RX_DGRAM, &k, &d);
    if (!bpf_map_delete_elem(&rx_skb, &key)) count(NETLAT_CTR_MAP_DELETE(NETLAT_MAP_RX_SKB));
    return 0;
}

static __always_inline void rx_queued_udp(const struct sock *sk, __u64 now)
{
    const struct sk_buff_head *q = &sk->sk_receive_queue;
    const struct sk_buff_head *rq = &((const struct udp_sock *)sk)->reader_queue;
    const struct sk_buff *tail = BPF_CORE_READ(q, prev);
    if (!tail || (const void *)tail == (const void *)q || !sock_wanted(sk)) return;
    struct ring *r = ring_get(&rx_ring, NETLAT_MAP_RX_RING, sk, 1, NETLAT_SEG_RX_QUEUED_TO_SOCKET);
    if (!r) return;
    __u32 zero = 0;
    struct udp_positions *c = bpf_map_lookup_elem(&udp_positions_scratch, &zero);
    if (!c) return;
    __u64 last = r->last_skb, last_ts = r->last_ts;
    __u32 n = 0;
    const struct sk_buff *skb = tail;
    for (int i = 0; i < UDP_QUEUE_WALK; i++) {
        if (!skb || (const void *)skb == (const void *)q || (const void *)skb == (const void *)rq) break;
        __u64 key = (__u64)skb;
        if (key == last) {
            /* The same skb, unless a tracked datagram now lives at that address. */
            struct skb_entry *e = bpf_map_lookup_elem(&rx_skb, &key);
            if (!e || e->ts_first == last_ts) break;
        }
        c->found[i] = key;
        n = i + 1;
        skb = BPF_CORE_READ(skb, prev);
    }
    if (!n) return;
    /* Another CPU woke the reader for the same datagrams: it positions them. */
    if (__sync_val_compare_and_swap(&r->last_skb, last, (__u64)tail) != last) return;
    c->n = n;
    c->base = __sync_fetch_and_add(&r->pushed, n);
    c->owner = r->owner;
    c->now = now;
    c->tail_ts = 0;
    int unused = 0;
    bpf_loop(n, position_datagram, &unused, 0);
    r->last_ts = c->tail_ts;
}

static __always_inline void rx_queued(const struct sock *sk)
{
    __u8 proto, family;
    if (!sk || sock_kind(sk, &proto, &family)) return;
    __u64 now = bpf_ktime_get_ns();
    if (proto == NETLAT_PROTO_TCP)
        rx_queued_tcp(sk, now);
    else
        rx_queued_udp(sk, now);
}

static __always_inline void rx_read_sample(__u8 proto, __u8 family, __u32 netns, __u64 t0, __u64 t1,
                                           __u64 t2, __u64 now)
{
    /* t2 = 0: the wakeup hook did not see it; the segment then spans from transport. */
    record(NETLAT_SEG_RX_QUEUED_TO_SOCKET, proto, family, netns, now, t2 ? t2 : t1);
    record(NETLAT_SEG_RX_TRANSPORT_TO_SOCKET, proto, family, netns, now, t1);
    record(NETLAT_SEG_RX_TOTAL, proto, family, netns, now, t0);
    count(NETLAT_CTR_STAGE(NETLAT_STAGE_RX_SOCKET));
}

/* socket stage, UDP: a read took one datagram (possibly empty); the datagrams still queued tell
 * which (rx_dgram). */
static __always_inline void rx_socket_udp(const struct sock *sk)
{
    struct ring *r = ring_get(&rx_ring, NETLAT_MAP_RX_RING, sk, 0, NETLAT_SEG_RX_QUEUED_TO_SOCKET);
    if (!r) {
        if (sock_wanted(sk)) count_unmatched(NETLAT_SEG_RX_QUEUED_TO_SOCKET, NETLAT_UNMATCHED_NO_START);
        return;
    }
    __u32 queued = BPF_CORE_READ(sk, sk_receive_queue.qlen) +
                   BPF_CORE_READ((const struct udp_sock *)sk, reader_queue.qlen);
    struct dgram_key k = {.owner = r->owner, .pos = r->pushed - queued - 1};
    struct dgram *p = bpf_map_lookup_elem(&rx_dgram, &k);
    if (!p) {
        /* Queued before netlatd started, untracked, or not positioned yet. */
        count_unmatched(NETLAT_SEG_RX_QUEUED_TO_SOCKET, NETLAT_UNMATCHED_NO_START);
        return;
    }
    struct dgram d = *p;
    if (bpf_map_delete_elem(&rx_dgram, &k)) return; /* a concurrent read on the socket took it */
    count(NETLAT_CTR_MAP_DELETE(NETLAT_MAP_RX_DGRAM));
    __u64 now = bpf_ktime_get_ns();
    if (now - d.t0 > cfg_stale_ns)
        count_unmatched(NETLAT_SEG_RX_QUEUED_TO_SOCKET, NETLAT_UNMATCHED_STALE);
    else
        rx_read_sample(NETLAT_PROTO_UDP, d.family, d.netns, d.t0, d.t1, d.t2, now);
}

/* socket stage: a read on sk returned `ret` bytes. TCP: every pending segment whose end the reader
 * has passed (copied_seq) is read. UDP: one datagram (0 bytes: an empty one). */
static __always_inline void rx_socket(const struct sock *sk, int ret, int flags)
{
    if (ret < 0 || (flags & (MSG_PEEK | MSG_ERRQUEUE))) return;
    __u8 proto, family;
    if (!sk || sock_kind(sk, &proto, &family)) return;
    if (proto == NETLAT_PROTO_UDP) {
        rx_socket_udp(sk);
        return;
    }
    if (!ret) return;
    struct ring *r = ring_get(&rx_ring, NETLAT_MAP_RX_RING, sk, 0, NETLAT_SEG_RX_QUEUED_TO_SOCKET);
    if (!r) return;
    __u64 now = bpf_ktime_get_ns();
    __u32 copied = BPF_CORE_READ((const struct tcp_sock *)sk, copied_seq);
    for (int i = 0; i < RING_SLOTS; i++) {
        struct ring_slot *s = &r->slot[i];
        __u64 tag = s->tag;
        if (!tag || !seq_before_eq(tag >> 32, copied)) continue;
        __u64 t0 = s->t0, t1 = s->t1, t2 = s->t2;
        if (ring_claim(s, tag))
            rx_read_sample(NETLAT_PROTO_TCP, (tag >> 1) & 1, r->netns, t0, t1, t2, now);
    }
}

/* An skb is freed: forget it, so a reused address never matches a stale entry. */
static __always_inline void skb_freed(const struct sk_buff *skb, int dropped)
{
    __u64 key = (__u64)skb;
    struct skb_entry *e = bpf_map_lookup_elem(&tx_skb, &key);
    if (e) {
        if (dropped) count_unmatched(segment_into(e->prev_stage + 1), NETLAT_UNMATCHED_DROPPED);
        if (!bpf_map_delete_elem(&tx_skb, &key)) count(NETLAT_CTR_MAP_DELETE(NETLAT_MAP_TX_SKB));
    }
    e = bpf_map_lookup_elem(&rx_skb, &key);
    if (e) {
        if (dropped && e->prev_stage < NETLAT_STAGE_RX_SOCKET)
            count_unmatched(segment_into(e->prev_stage + 1), NETLAT_UNMATCHED_DROPPED);
        if (!bpf_map_delete_elem(&rx_skb, &key)) count(NETLAT_CTR_MAP_DELETE(NETLAT_MAP_RX_SKB));
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
    tx_transport_tcp(sk, msg);
    return 0;
}

SEC("netfilter")
int nf_tx_network(struct bpf_nf_ctx *ctx)
{
    tx_network(ctx->skb);
    return NF_ACCEPT;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(tp_net_dev_queue, struct sk_buff *skb)
{
    tx_device(skb);
    return 0;
}

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(tp_net_dev_start_xmit, const struct sk_buff *skb)
{
    tx_driver(skb);
    return 0;
}

#define RX_DRIVER_TP(name)                       \
    SEC("tp_btf/" #name)                         \
    int BPF_PROG(tp_##name, struct sk_buff *skb) \
    {                                            \
        rx_driver(skb);                          \
        return 0;                                \
    }
RX_DRIVER_TP(netif_rx)
RX_DRIVER_TP(napi_gro_receive_entry)
RX_DRIVER_TP(netif_receive_skb_entry)
RX_DRIVER_TP(netif_receive_skb_list_entry)

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(tp_netif_receive_skb, struct sk_buff *skb)
{
    rx_skb_stage(skb, NETLAT_STAGE_RX_DEVICE);
    return 0;
}

SEC("netfilter")
int nf_rx_network(struct bpf_nf_ctx *ctx)
{
    rx_skb_stage(ctx->skb, NETLAT_STAGE_RX_NETWORK);
    return NF_ACCEPT;
}

SEC("netfilter")
int nf_rx_transport(struct bpf_nf_ctx *ctx)
{
    rx_skb_stage(ctx->skb, NETLAT_STAGE_RX_TRANSPORT);
    return NF_ACCEPT;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tp_tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
    rx_tcp_owned(sk, skb);
    return 0;
}

SEC("tp_btf/sk_data_ready")
int BPF_PROG(tp_sk_data_ready, const struct sock *sk)
{
    rx_queued(sk);
    return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_sock_recv_length, struct sock *sk, int ret, int flags)
{
    rx_socket(sk, ret, flags);
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

#define KPROBE_FENTRY_SKB(fn, handler)                        \
    SEC("kprobe/" #fn)                                        \
    int BPF_KPROBE(kp_##fn, struct sk_buff *skb)              \
    {                                                         \
        handler(skb);                                         \
        return 0;                                             \
    }                                                         \
    SEC("fentry/" #fn)                                        \
    int BPF_PROG(fe_##fn, struct sk_buff *skb)                \
    {                                                         \
        handler(skb);                                         \
        return 0;                                             \
    }

/* Functions whose skb is not the first argument: (net, sk, skb) and (napi, skb). */
#define KPROBE_FENTRY_SKB3(fn, handler)                                          \
    SEC("kprobe/" #fn)                                                           \
    int BPF_KPROBE(kp_##fn, void *net, void *sk, struct sk_buff *skb)            \
    {                                                                            \
        handler(skb);                                                            \
        return 0;                                                                \
    }                                                                            \
    SEC("fentry/" #fn)                                                           \
    int BPF_PROG(fe_##fn, void *net, void *sk, struct sk_buff *skb)              \
    {                                                                            \
        handler(skb);                                                            \
        return 0;                                                                \
    }

static __always_inline void tx_socket_of(const struct socket *sock)
{
    __u64 now = bpf_ktime_get_ns();
    tx_socket(BPF_CORE_READ(sock, sk), now);
}

SEC("kprobe/sock_sendmsg")
int BPF_KPROBE(kp_sock_sendmsg, struct socket *sock)
{
    tx_socket_of(sock);
    return 0;
}
SEC("fentry/sock_sendmsg")
int BPF_PROG(fe_sock_sendmsg, struct socket *sock)
{
    tx_socket_of(sock);
    return 0;
}

SEC("kprobe/__sock_sendmsg")
int BPF_KPROBE(kp___sock_sendmsg, struct socket *sock)
{
    tx_socket_of(sock);
    return 0;
}
SEC("fentry/__sock_sendmsg")
int BPF_PROG(fe___sock_sendmsg, struct socket *sock)
{
    tx_socket_of(sock);
    return 0;
}

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(kp_tcp_sendmsg, struct sock *sk, struct msghdr *msg)
{
    tx_transport_tcp(sk, msg);
    return 0;
}
SEC("fentry/tcp_sendmsg")
int BPF_PROG(fe_tcp_sendmsg, struct sock *sk, struct msghdr *msg)
{
    tx_transport_tcp(sk, msg);
    return 0;
}

#define KPROBE_FENTRY_SOCK(fn, handler)             \
    SEC("kprobe/" #fn)                              \
    int BPF_KPROBE(kp_##fn, struct sock *sk)        \
    {                                               \
        handler(sk);                                \
        return 0;                                   \
    }                                               \
    SEC("fentry/" #fn)                              \
    int BPF_PROG(fe_##fn, struct sock *sk)          \
    {                                               \
        handler(sk);                                \
        return 0;                                   \
    }
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

SEC("kprobe/napi_gro_receive")
int BPF_KPROBE(kp_napi_gro_receive, void *napi, struct sk_buff *skb)
{
    rx_driver(skb);
    return 0;
}
SEC("fentry/napi_gro_receive")
int BPF_PROG(fe_napi_gro_receive, void *napi, struct sk_buff *skb)
{
    rx_driver(skb);
    return 0;
}

static __always_inline void rx_device(const struct sk_buff *skb) { rx_skb_stage(skb, NETLAT_STAGE_RX_DEVICE); }
static __always_inline void rx_network(const struct sk_buff *skb) { rx_skb_stage(skb, NETLAT_STAGE_RX_NETWORK); }
static __always_inline void rx_transport(const struct sk_buff *skb) { rx_skb_stage(skb, NETLAT_STAGE_RX_TRANSPORT); }

KPROBE_FENTRY_SKB(__netif_receive_skb, rx_device)
KPROBE_FENTRY_SKB(ip_rcv, rx_network)
KPROBE_FENTRY_SKB(ipv6_rcv, rx_network)
KPROBE_FENTRY_SKB(tcp_v4_rcv, rx_transport)
KPROBE_FENTRY_SKB(tcp_v6_rcv, rx_transport)
KPROBE_FENTRY_SKB(udp_rcv, rx_transport)
KPROBE_FENTRY_SKB(udpv6_rcv, rx_transport)

SEC("kprobe/tcp_rcv_established")
int BPF_KPROBE(kp_tcp_rcv_established, struct sock *sk, struct sk_buff *skb)
{
    rx_tcp_owned(sk, skb);
    return 0;
}
SEC("fentry/tcp_rcv_established")
int BPF_PROG(fe_tcp_rcv_established, struct sock *sk, struct sk_buff *skb)
{
    rx_tcp_owned(sk, skb);
    return 0;
}

/* Reads: the socket stage needs the return value. fexit has arguments and result together; a
 * kretprobe does not, so its kprobe keeps (sk, flags) per thread. */
struct rx_call {
    __u64 sk;
    __s32 flags;
};
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64);
    __type(value, struct rx_call);
} rx_thread SEC(".maps");

static __always_inline void rx_call_enter(struct sock *sk, int flags)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct rx_call c = {.sk = (__u64)sk, .flags = flags};
    bpf_map_update_elem(&rx_thread, &id, &c, BPF_ANY);
}

static __always_inline void rx_call_return(int ret)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct rx_call *c = bpf_map_lookup_elem(&rx_thread, &id);
    if (!c) return;
    rx_socket((const struct sock *)c->sk, ret, c->flags);
    bpf_map_delete_elem(&rx_thread, &id);
}

#define RECVMSG_ENTRY_POINTS(fn)                                                                  \
    SEC("kprobe/" #fn)                                                                            \
    int BPF_KPROBE(kp_##fn, struct sock *sk, struct msghdr *msg, size_t len, int flags)           \
    {                                                                                             \
        rx_call_enter(sk, flags);                                                                 \
        return 0;                                                                                 \
    }                                                                                             \
    SEC("kretprobe/" #fn)                                                                         \
    int BPF_KRETPROBE(krp_##fn, int ret)                                                          \
    {                                                                                             \
        rx_call_return(ret);                                                                      \
        return 0;                                                                                 \
    }                                                                                             \
    SEC("fexit/" #fn)                                                                             \
    int BPF_PROG(fx_##fn, struct sock *sk, struct msghdr *msg, size_t len, int flags,             \
                 int *addr_len, int ret)                                                          \
    {                                                                                             \
        rx_socket(sk, ret, flags);                                                                \
        return 0;                                                                                 \
    }
RECVMSG_ENTRY_POINTS(tcp_recvmsg)
RECVMSG_ENTRY_POINTS(udp_recvmsg)
RECVMSG_ENTRY_POINTS(udpv6_recvmsg)
