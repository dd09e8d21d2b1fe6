/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* tx.bpf.h: the send direction: socket -> transport -> network -> device -> driver. */
#ifndef NETLAT_TX_BPF_H
#define NETLAT_TX_BPF_H

#include "join.bpf.h"

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


/* ================= tx ================= */

/* socket stage: a thread enters a send call on sk (now: taken first thing in the hook). */
static __always_inline void tx_socket(int btf, const struct sock *sk, __u64 now)
{
    __u8 proto, family;
    if (!sk || sock_kind(btf, sk, &proto, &family) || !sock_wanted(btf, sk)) return;
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

/* The syscall number in the user registers, per architecture (CO-RE picks the one that exists). */
struct pt_regs___x86 {
    unsigned long orig_ax;
} __attribute__((preserve_access_index));
struct pt_regs___arm64 {
    int syscallno;
} __attribute__((preserve_access_index));

/* The number of the syscall the current thread is in (-1 outside one); `assumed` where the kernel
 * cannot tell (before 5.15 there is no bpf_task_pt_regs; an architecture not listed above): the
 * check is then skipped. */
static __always_inline long current_syscall(long assumed)
{
    if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs)) return assumed;
    struct task_struct *task = bpf_get_current_task_btf();
    const void *regs = (const void *)bpf_task_pt_regs(task);
    if (bpf_core_field_exists(((struct pt_regs___x86 *)0)->orig_ax))
        return READ(1, (const struct pt_regs___x86 *)regs, orig_ax);
    if (bpf_core_field_exists(((struct pt_regs___arm64 *)0)->syscallno))
        return READ(1, (const struct pt_regs___arm64 *)regs, syscallno);
    return assumed;
}

/* The current thread's send call on sk, if this is it: known by its socket (function hooks), or
 * by the syscall it is still in (syscall hooks; the socket is bound on first use). A syscall
 * entry is only good while the thread is still in that syscall: a later send that did not pass the
 * syscall hook (sendfile, splice, io_uring) must not inherit an old write()'s time.
 * `flow_known`: the caller has checked the packet's flow against the filters (tx_join), which for
 * an unconnected UDP socket is the only check that knows the remote port. */
static __always_inline struct tx_thread_val *tx_call_of(int btf, const struct sock *sk, __u64 id,
                                                        int flow_known)
{
    struct tx_thread_val *t = bpf_map_lookup_elem(&tx_thread, &id);
    if (!t) return 0;
    if (t->syscall >= 0 && current_syscall(t->syscall) != t->syscall) return 0;
    if (t->sk) return t->sk == (__u64)sk ? t : 0;
    if (t->syscall < 0) return 0;
    if (!flow_known && !sock_wanted(btf, sk)) return 0;
    t->sk = (__u64)sk;
    count(NETLAT_CTR_STAGE(NETLAT_STAGE_TX_SOCKET));
    return t;
}

/* transport stage, TCP: the first pass of a call records where its data ends in the byte stream.
 * `call` tells a new call from a later pass of the same one (tcp_sendmsg's msghdr, tcp_sendpage's
 * page); `bytes` is what the call sends. */
static __always_inline void tx_transport_tcp_call(int btf, const struct sock *sk, __u64 call,
                                                  __u64 bytes)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct tx_thread_val *t = tx_call_of(btf, sk, id, 0);
    if (!t) {
        __u8 proto, family;
        if (!sock_kind(btf, sk, &proto, &family) && sock_wanted(btf, sk))
            count_unmatched(NETLAT_SEG_TX_SOCKET_TO_TRANSPORT, NETLAT_UNMATCHED_NO_START);
        return;
    }
    /* A later pass of the same call, except under sendmmsg, which passes one msghdr (at the same
     * address) per message: there every pass is a message. */
    if (t->msg == call && t->syscall != cfg_send_syscalls[NETLAT_SYSCALL_SENDMMSG]) return;
    __u64 now = bpf_ktime_get_ns();
    t->msg = call;
    t->ts_transport = now;
    count(NETLAT_CTR_STAGE(NETLAT_STAGE_TX_TRANSPORT));

    const struct tcp_sock *tp = (const struct tcp_sock *)sk;
    __u32 write_seq = BPF_CORE_READ(tp, write_seq);
    __u64 left = bytes;
    if (!left) return;
    struct sock_state *r =
        sock_state_get(btf, &tx_ring, NETLAT_MAP_TX_RING, sk, 1, NETLAT_SEG_TX_TRANSPORT_TO_NETWORK);
    if (!r) return;
    __u8 proto, family;
    if (sock_kind(btf, sk, &proto, &family)) return;
    struct pending p = {.t0 = t->ts_socket, .t1 = now, .end = write_seq + (__u32)left, .family = family};
    pending_push(r, PENDING_TX_CALL, &p);
}

static __always_inline void tx_transport_tcp(int btf, const struct sock *sk, const struct msghdr *msg)
{
    tx_transport_tcp_call(btf, sk, (__u64)msg, READ(btf, msg, msg_iter.count));
}

/* transport stage, UDP (kprobe and fentry modes: 6.18 has no UDP send tracepoint). */
static __always_inline void tx_transport_udp(int btf, const struct sock *sk)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct tx_thread_val *t = tx_call_of(btf, sk, id, 0);
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


/* Why a TCP packet went by unjoined. Every TCP packet passes ip_output / ip6_output: where they are
 * kprobes, one they did not see is one the kernel skipped (rx.bpf.h: current_kprobe and
 * bpf_prog_active; TCP sends from softirq too, on ACKs); otherwise it went out where no hook was
 * yet (a new namespace). */
static __always_inline int tx_unjoined_reason(void)
{
    return cfg_kprobe_stages & (1u << NETLAT_STAGE_TX_NETWORK) ? NETLAT_UNMATCHED_SKIPPED
                                                               : NETLAT_UNMATCHED_COALESCED;
}

/* The walk of a TCP packet over its socket's pending calls: those whose last byte it carries. */
struct tx_walk {
    struct pending_walk w;
    struct skb_entry e;
    int stage;
    __u32 start; /* the packet's first sequence */
};

static long tx_join_call(__u32 i, void *ctx)
{
    struct tx_walk *c = ctx;
    int stop, in_slot;
    struct pending *p = pending_next(&c->w, &stop, &in_slot); /* stops at a call ending in a later packet */
    if (stop) return 1;
    if (p) {
        __u64 t0 = p->t0, t1 = p->t1;
        __u32 end = p->end;
        if (pending_take(&c->w.k, p, in_slot)) {
            if (seq_before_eq(end, c->start)) /* its packet went by unjoined */
                count_unmatched(NETLAT_SEG_TX_TOTAL, tx_unjoined_reason());
            else
                tx_call_joined(&c->e, t0, t1, c->stage, c->w.now);
        }
    }
    c->w.k.pos++;
    return 0;
}

/* A segment arrives on a TCP socket (tcp_rcv_established), kprobe mode: send calls whose bytes the
 * peer has acknowledged (snd_una) and that still wait for their packet went out in packets the
 * network stage's kprobe did not see. tx_join counts them when a later packet of the socket passes
 * them; at the end of a stream no later packet comes, so the acknowledgement counts them. Under
 * the socket, as tx_join: in the softirq that owns it, or in process context from its backlog. */
static __always_inline void tx_acked(int btf, const struct sock *sk)
{
    if (!(cfg_kprobe_stages & (1u << NETLAT_STAGE_TX_NETWORK))) return;
    struct sock_state *r =
        sock_state_get(btf, &tx_ring, NETLAT_MAP_TX_RING, sk, 0, NETLAT_SEG_TX_TRANSPORT_TO_NETWORK);
    if (!r || r->tail == r->head) return;
    __u32 una = BPF_CORE_READ((const struct tcp_sock *)sk, snd_una);
    struct tx_walk c = {.w = {.k = {.owner = r->id, .pos = r->tail, .kind = PENDING_TX_CALL},
                              .head = r->head, .seq = una, .r = r},
                        .start = una}; /* every call it takes ends at or before its start */
    loop(PENDING_WALK_MAX, tx_join_call, &c);
    r->tail = c.w.k.pos;
}

/* The join of calls to the skb that carries them, at the network stage, or at the device stage
 * when the network stage did not run for this skb (no netfilter hook in its namespace yet, or none
 * on this kernel): then the segment ending at the device stage spans the gap. */
static __always_inline void tx_join(int btf, const struct sk_buff *skb, int stage, __u64 now)
{
    const struct sock *sk = READ(btf, skb, sk);
    if (!sk) return; /* forwarded, not ours */
    /* Not a send of this socket: not TCP or UDP, or a tunnel's outer packet (VXLAN, geneve, ...
     * send it with the inner packet's socket, in the same skb: the entry is the inner packet's,
     * timed up to the bottom device's driver). */
    struct pkt p = {};
    __u8 sk_proto, sk_family;
    if (!parse_l3(btf, skb, skb_network(btf, skb), &p) || sock_kind(btf, sk, &sk_proto, &sk_family) ||
        sk_proto != p.proto || READ(btf, sk, __sk_common.skc_num) != p.src_port)
        return;
    /* A send not timed: a flow filtered or sampled out, a pure ACK, SYN or FIN (no data). What an
     * earlier packet left at its address (freed where no hook sees it) is forgotten, so that the
     * later stages do not join this one to it. */
    __u32 netns = netns_of_sock(btf, sk); /* the route's device is in the socket's namespace */
    if (!flow_wanted(p.src_port, p.dst_port, netns) ||
        (cfg_n_ifaces && !dev_wanted(skb_out_dev(btf, skb))) ||
        (p.proto == NETLAT_PROTO_TCP && !p.payload)) {
        skb_forget(TX_SKBS, (__u64)skb);
        return;
    }

    struct skb_entry e = {.ts_prev = now, .netns = netns, .proto = p.proto, .family = p.family,
                          .prev_stage = stage, .sk = (__u64)sk};

    if (p.proto == NETLAT_PROTO_TCP) {
        const struct tcp_sock *tp = (const struct tcp_sock *)sk;
        if ((__s32)(p.seq - BPF_CORE_READ(tp, snd_nxt)) < 0) {
            count_unmatched(segment_into(stage), NETLAT_UNMATCHED_RETRANSMIT);
            e.untimed = 1;
            skb_keep(TX_SKBS, (__u64)skb, &e);
            return;
        }
        struct sock_state *r =
            sock_state_get(btf, &tx_ring, NETLAT_MAP_TX_RING, sk, 0, NETLAT_SEG_TX_TRANSPORT_TO_NETWORK);
        if (r) {
            struct tx_walk c = {.w = {.k = {.owner = r->id, .pos = r->tail, .kind = PENDING_TX_CALL},
                                      .head = r->head, .seq = p.seq + p.payload, .now = now, .r = r},
                                .e = e, .stage = stage, .start = p.seq};
            loop(PENDING_WALK_MAX, tx_join_call, &c);
            r->tail = c.w.k.pos;
            e = c.e;
        }
        if (!e.n_calls) {
            /* Data whose call was not seen, or the middle of a call that spans segments. */
            count_unmatched(segment_into(stage), NETLAT_UNMATCHED_NO_START);
        }
    } else {
        struct tx_thread_val *t = tx_call_of(btf, sk, current_pid_tgid(), 1);
        if (t)
            tx_call_joined(&e, t->ts_socket, t->ts_transport, stage, now);
        else
            count_unmatched(segment_into(stage), NETLAT_UNMATCHED_NO_START);
    }
    count(NETLAT_CTR_STAGE(stage));
    skb_keep(TX_SKBS, (__u64)skb, &e);
}

/* device stage: __dev_queue_xmit, before the qdisc. */
static __always_inline void tx_device(int btf, const struct sk_buff *skb)
{
    __u64 now = bpf_ktime_get_ns();
    struct skb_entry *e = skb_lookup(TX_SKBS, (__u64)skb, NETLAT_STAGE_TX_DEVICE, now);
    if (!e)
        tx_join(btf, skb, NETLAT_STAGE_TX_DEVICE, now);
    else if (e->prev_stage < NETLAT_STAGE_TX_DEVICE)
        skb_stage(e, NETLAT_STAGE_TX_DEVICE, now);
    /* else: a lower device's queue under a stacked one (macvlan, bridge, bond): still the device
     * layer, which began at the upper device */
}

static __always_inline void tx_network(int btf, const struct sk_buff *skb)
{
    tx_join(btf, skb, NETLAT_STAGE_TX_NETWORK, bpf_ktime_get_ns());
}

/* The segments (and totals) of the calls an skb carried, at its driver stage. */
static __always_inline void tx_driven(struct skb_entry *e, __u64 now)
{
    skb_stage(e, NETLAT_STAGE_TX_DRIVER, now);
    for (int i = 0; i < TX_CALLS_PER_SKB; i++) {
        if (i >= e->n_calls) break;
        record(NETLAT_SEG_TX_TOTAL, e->proto, e->family, e->netns, now, e->ts_socket[i]);
    }
}

/* driver stage of an skb without an entry: the first segment of a software-segmented one (tx_gso)? */
static __always_inline void tx_driver_segment(int btf, const struct sk_buff *skb, __u64 now)
{
    __u32 zero = 0;
    struct tx_segmented *g = bpf_map_lookup_elem(&tx_gso, &zero);
    if (!g || !g->sk || g->sk != (__u64)READ(btf, skb, sk)) return;
    if (now - g->ts > TX_GSO_WAIT_NS) {
        count_unmatched(NETLAT_SEG_TX_DEVICE_TO_DRIVER, NETLAT_UNMATCHED_STALE);
    } else if (!dev_is_stacked(btf, READ(btf, skb, dev))) {
        tx_driven(&g->e, now);
    } else {
        return; /* segmented at a stacked device: wait for the bottom one */
    }
    g->sk = 0;
}

/* driver stage: the skb is handed to the driver. The end of tx. */
static __always_inline void tx_driver(int btf, const struct sk_buff *skb)
{
    __u64 now = bpf_ktime_get_ns();
    __u64 key = (__u64)skb;
    struct skb_entry *e = skb_lookup(TX_SKBS, key, NETLAT_STAGE_TX_DRIVER, now);
    if (!e) {
        tx_driver_segment(btf, skb, now);
        return;
    }
    if (dev_is_stacked(btf, READ(btf, skb, dev))) return;
    tx_driven(e, now);
    skb_forget(TX_SKBS, key);
}


#endif /* NETLAT_TX_BPF_H */
