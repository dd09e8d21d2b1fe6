/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* rx.bpf.h: the receive direction: driver -> device -> network -> transport -> queued -> socket. */
#ifndef NETLAT_RX_BPF_H
#define NETLAT_RX_BPF_H

#include "join.bpf.h"

/*
 * UDP datagrams on a socket's receive queue are pending items by position (kind PENDING_RX_DGRAM).
 * Datagrams get positions in queue order when the reader is woken (rx_queued_udp), tracked or not,
 * so that the newest has position head - 1. A read that leaves n datagrams queued took position
 * head - n - 1: the join depends only on the queue as it is, so a read or datagram netlatd did
 * not see (queued before it started, peeked, dropped) cannot shift later pairs.
 */

/* ================= rx ================= */

/*
 * A socket's receive state lives in the socket itself (socket local storage, freed with it) when
 * every program that uses it is a tracing program (tp_btf, fentry/fexit: btf = 1), which the
 * daemon says before load (cfg_rx_sk_storage: no stage of rx queued and rx socket is a kprobe).
 * Kprobe programs cannot call bpf_sk_storage_get; there, and wherever one of those stages is a
 * kprobe, it is in rx_ring, keyed by the socket's address, as on the send side (tx_ring, which
 * netfilter programs use). The storage saves a hash lookup per use and the check that the state
 * is this socket's and not a freed one's at the same address.
 */
const volatile __u8 cfg_rx_sk_storage = 0;
struct {
    __uint(type, BPF_MAP_TYPE_SK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct sock_state);
} rx_sk_state SEC(".maps");

/* A socket's receive state (created on first use if `create`). */
static __always_inline struct sock_state *rx_state(int btf, const struct sock *sk, int create)
{
    /* Tracing programs may use socket storage since 5.11, the release that also brought task
     * storage (whose helper tells the kernel apart here); before it, the branch is dead. */
    if (btf && cfg_rx_sk_storage &&
        bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_storage_get)) {
        struct sock_state *r = bpf_sk_storage_get(&rx_sk_state, (struct sock *)sk, 0, 0);
        if (r || !create) return r;
        struct sock_state fresh = sock_state_fresh(sock_ino(btf, sk));
        return bpf_sk_storage_get(&rx_sk_state, (struct sock *)sk, &fresh,
                                  BPF_SK_STORAGE_GET_F_CREATE);
    }
    return sock_state_get(btf, &rx_ring, NETLAT_MAP_RX_RING, sk, create, NETLAT_SEG_RX_QUEUED_TO_SOCKET);
}

/* What the packet at skb->data (its IP header) is. RX_HEADLESS: its headers are not all in the
 * skb's linear part yet: a driver that leaves them in a page fragment until GRO pulls them
 * (virtio-net's mergeable buffers copy only the Ethernet header of a large frame; napi_gro_frags
 * drivers). RX_NO_PORTS: a UDP packet whose IP header is in the linear part and whose UDP header
 * is not (GRO pulls only the IP header of a datagram for a socket without UDP_GRO): p has its
 * protocol and family, not its ports. The bytes past the linear part are not the packet's: what
 * parse_l3 read there is not used. */
enum { RX_OTHER, RX_PARSED, RX_HEADLESS, RX_NO_PORTS };
static __always_inline int rx_parse(int btf, const struct sk_buff *skb, struct pkt *p)
{
    __u32 linear = READ(btf, skb, len) - READ(btf, skb, data_len);
    if (linear < sizeof(struct iphdr)) return RX_HEADLESS;
    if (!parse_l3(btf, skb, READ(btf, skb, data), p))
        return linear < sizeof(struct iphdr) + sizeof(struct udphdr) ? RX_HEADLESS : RX_OTHER;
    if (p->headers <= linear) return RX_PARSED;
    if (p->proto == NETLAT_PROTO_UDP && p->headers - sizeof(struct udphdr) <= linear)
        return RX_NO_PORTS;
    return RX_HEADLESS;
}

/* e->headless: what an entry still waits for before it is known to be a measured packet. */
enum { RX_KNOWN, RX_WAITS_HEADERS, RX_WAITS_PORTS };

/* A packet an upper device passes up again (a bridge: br_pass_frame_up -> netif_receive_skb) runs
 * the driver stage a second time: the same skb with the same data buffer (skb->head), after its
 * device stage at the lower device (and, with br_netfilter, the IPv4 PRE_ROUTING hooks the bridge
 * runs for it: the network stage) and before any transport stage. It keeps its first driver time,
 * so rx `total` and `driver_to_device` include the lower device's wait and the upper device. A
 * new packet at a reused address (an skb freed where no hook sees it) is not taken for one: GRO
 * merges never reach the device stage, segments TCP coalesces on its backlog are past the
 * transport stage, and a new skb gets its own data buffer. A packet handed to another namespace
 * (a bridge port's veth peer) starts afresh there. Returns the first driver time, or 0. */
static __always_inline __u64 rx_reinjected(__u64 key, __u64 head, __u32 netns, __u64 now)
{
    struct skb_entry *old = skb_find(RX_SKBS, key);
    if (!old || old->headless || !old->ts_first || old->head != head || old->netns != netns ||
        now - old->ts_prev > cfg_stale_ns)
        return 0;
    if (old->prev_stage != NETLAT_STAGE_RX_DEVICE && old->prev_stage != NETLAT_STAGE_RX_NETWORK)
        return 0;
    return old->ts_first;
}

/* Starts following a received skb at `stage`: at the driver stage, or at the device stage for a
 * packet whose driver hand-off no hook saw. A packet whose headers the driver stage cannot read
 * gets a headless entry, its time only, which the device stage completes or deletes
 * (rx_identify). Anything else at that address is forgotten: skbs are also freed through paths no
 * hook sees (GRO merges, the NAPI skb cache), so an untracked packet (ARP, ICMP, filtered, sampled
 * out) must not inherit a freed packet's entry; a re-injected packet keeps its first driver time
 * (rx_reinjected). */
static __always_inline void rx_start(int btf, const struct sk_buff *skb, int stage)
{
    __u64 key = (__u64)skb;
    struct pkt p = {};
    const struct net_device *dev = READ(btf, skb, dev);
    __u32 netns = netns_of_dev(btf, dev);
    int what = dev_wanted(dev) ? rx_parse(btf, skb, &p) : RX_OTHER;
    int headless = stage == NETLAT_STAGE_RX_DRIVER
                       ? (what == RX_HEADLESS || what == RX_NO_PORTS ? RX_WAITS_HEADERS : RX_KNOWN)
                       : (what == RX_NO_PORTS ? RX_WAITS_PORTS : RX_KNOWN);
    if (!headless && (what != RX_PARSED || !flow_wanted(p.dst_port, p.src_port, netns))) {
        if (stage == NETLAT_STAGE_RX_DRIVER) skb_forget(RX_SKBS, key);
        return;
    }
    __u64 now = bpf_ktime_get_ns();
    struct skb_entry e = {.ts_prev = now, .netns = netns, .proto = p.proto, .family = p.family,
                          .prev_stage = stage, .headless = headless};
    e.ts_stage[stage - NETLAT_STAGE_RX_DRIVER] = now;
    e.lport = p.dst_port;
    if (stage == NETLAT_STAGE_RX_DRIVER) {
        e.head = (__u64)READ(btf, skb, head);
        __u64 first = rx_reinjected(key, e.head, netns, now);
        e.ts_first = first ? first : now;
        e.ts_stage[0] = e.ts_first;
    }
    skb_keep(RX_SKBS, key, &e);
    if (!headless) count(NETLAT_CTR_STAGE(stage));
}

/* A headless entry at the next stage. At the device stage GRO has pulled the packet's headers
 * into the linear part (gro_pull_from_frag0) and skb->data is at the IP header: the packet is
 * what they say, followed from its driver time if wanted. GRO merges later frames into the skb
 * it holds, the first, so that is the first frame's time. A UDP datagram whose ports are still
 * outside waits for UDP's own pull (the receive queue: rx_ports_known), passing the network and
 * transport stages meanwhile. Returns 0 when the entry is gone. */
static __always_inline int rx_identify(int btf, const struct sk_buff *skb, struct skb_entry *e,
                                       int stage)
{
    if (e->headless == RX_WAITS_PORTS) return 1;
    struct pkt p = {};
    int what = stage == NETLAT_STAGE_RX_DEVICE ? rx_parse(btf, skb, &p) : RX_OTHER;
    if (what == RX_PARSED && flow_wanted(p.dst_port, p.src_port, e->netns)) {
        e->headless = RX_KNOWN;
        e->proto = p.proto;
        e->family = p.family;
        e->lport = p.dst_port;
        count(NETLAT_CTR_STAGE(NETLAT_STAGE_RX_DRIVER));
        return 1;
    }
    if (what == RX_NO_PORTS) {
        e->headless = RX_WAITS_PORTS;
        e->proto = p.proto;
        e->family = p.family;
        return 1;
    }
    __u64 key = (__u64)skb;
    skb_forget(RX_SKBS, key);
    return 0;
}

/* A datagram that waited for its ports (RX_WAITS_PORTS), on a UDP socket's receive queue: UDP has
 * pulled its header (__udp4_lib_rcv / __udp6_lib_rcv: pskb_may_pull) and the transport header
 * points at it. Followed from here as any other if its flow is wanted (its stage events counted
 * now), else forgotten. Returns 0 when the entry is gone. */
static __always_inline int rx_ports_known(struct skb_entry *e, __u64 key, __u16 lport)
{
    const struct sk_buff *skb = (const struct sk_buff *)key;
    unsigned char *head = BPF_CORE_READ(skb, head);
    __u16 th = BPF_CORE_READ(skb, transport_header);
    __be16 sport = 0;
    if (!head || bpf_probe_read_kernel(&sport, sizeof(sport), head + th) ||
        !flow_wanted(lport, bpf_ntohs(sport), e->netns)) {
        skb_forget(RX_SKBS, key);
        return 0;
    }
    e->headless = RX_KNOWN;
    e->lport = lport;
    for (int s = NETLAT_STAGE_RX_DRIVER; s <= NETLAT_STAGE_RX_TRANSPORT; s++)
        if (e->ts_stage[(s - NETLAT_STAGE_RX_DRIVER) & 3]) count(NETLAT_CTR_STAGE(s));
    return 1;
}

/*
 * The kernel runs no kprobe program on a CPU while either of two per-CPU holds is on:
 * - current_kprobe, set for the whole of a kprobe's handler (kprobe_ftrace_handler, the int3 and
 *   optimized handlers, a kretprobe's return handler): a kprobe hit meanwhile finds kprobe_running()
 *   and only counts in the kprobe's own nmissed, which BPF does not export;
 * - bpf_prog_active, held while a kprobe program runs (trace_call_bpf) and by a BPF map syscall
 *   (bpf_disable_instrumentation: netlatd's drain too, while it copies a value).
 * Kernels before 6.7 count none of these skips as BPF misses. Both are taken in process context
 * with interrupts on (a function-entry kprobe is ftrace-based where CONFIG_KPROBES_ON_FTRACE, as on
 * Debian), so a receive softirq run on the interrupt's exit can find either. It cannot end before
 * the holder resumes, so a packet that finds one held at the device stage (a tracepoint, which
 * neither stops) passes its kprobe stages on this CPU unseen. A TCP segment is then not followed
 * (tcp_rcv_established would not take it) and, if it carries data, counted rx total/skipped; a UDP
 * datagram still is: the next wakeup's walk of the receive queue finds it, and its unseen stages
 * count no_start. A UDP GSO super-datagram is not (its split datagrams are new skbs): each of its
 * datagrams counts skipped. Only tracepoint programs look (a kprobe at the device stage would
 * find its own holds).
 */
#define RX_STAGES_AFTER_DEVICE                                                                  \
    ((1u << NETLAT_STAGE_RX_NETWORK) | (1u << NETLAT_STAGE_RX_TRANSPORT) |                      \
     (1u << NETLAT_STAGE_RX_QUEUED))
/* The addresses of bpf_prog_active (a per-CPU int), current_kprobe (a per-CPU pointer) and
 * __per_cpu_offset, set by the daemon from /proc/kallsyms when kprobe stages are loaded (0:
 * unknown; without __per_cpu_offset the check is off). Not ksyms: libbpf fails the whole load
 * when it cannot read /proc/kallsyms (a sandboxed service), and typed ones fail on kernels
 * without CONFIG_KALLSYMS_ALL. */
const volatile __u64 cfg_bpf_prog_active = 0;
const volatile __u64 cfg_current_kprobe = 0;
const volatile __u64 cfg_per_cpu_offset = 0;
static __always_inline int cpu_kprobes_held(void)
{
    if (!cfg_per_cpu_offset || (!cfg_bpf_prog_active && !cfg_current_kprobe)) return 0;
    __u64 base = 0;
    const __u64 *offsets = (const __u64 *)cfg_per_cpu_offset;
    if (bpf_probe_read_kernel(&base, sizeof(base), offsets + bpf_get_smp_processor_id())) return 0;
    int active = 0;
    __u64 kprobe = 0;
    if (cfg_bpf_prog_active)
        bpf_probe_read_kernel(&active, sizeof(active), (const void *)(base + cfg_bpf_prog_active));
    if (cfg_current_kprobe)
        bpf_probe_read_kernel(&kprobe, sizeof(kprobe), (const void *)(base + cfg_current_kprobe));
    return active || kprobe;
}
/* UDP datagrams whose kprobe stages the kernel will not run (found held at the device stage), per
 * receiving port and namespace. Such a datagram is not positioned by its own wakeup (rx_queued_udp),
 * so its read finds no item, and the read is where it is counted: a read that finds none takes one
 * from its socket's bucket and counts rx total/skipped; only with none left does it count
 * queued_to_socket/no_start. Counted at the device stage instead, a datagram read before another
 * wakeup walks the queue would be counted twice. A skipped datagram the socket drops unread leaves
 * its count for the next unpositioned read of that port. One whose ports the device stage cannot
 * read (RX_WAITS_PORTS: a large datagram on virtio-net) goes under port 0, which any read in its
 * namespace takes from when its own port's count is 0. */
#define UDP_SKIPPED_BUCKETS 65536
__u32 udp_skipped[UDP_SKIPPED_BUCKETS];

static __always_inline __u32 *udp_skipped_of(__u16 lport, __u32 netns)
{
    __u64 b = lport ^ ((netns * 2654435761u) >> 16);
    barrier_var(b); /* masked as 64 bits after the barrier: 6.1's verifier loses a 32-bit bound */
    return &udp_skipped[b & (UDP_SKIPPED_BUCKETS - 1)];
}

/* The reason a UDP read found no item for its datagram. */
static __always_inline int udp_read_unpositioned(int btf, const struct sock *sk)
{
    if (!(cfg_kprobe_stages & RX_STAGES_AFTER_DEVICE)) return NETLAT_UNMATCHED_NO_START;
    __u32 netns = netns_of_sock(btf, sk);
    __u32 *n = udp_skipped_of(READ(btf, sk, __sk_common.skc_num), netns);
    __u32 v = *n;
    if (!v) {
        n = udp_skipped_of(0, netns);
        v = *n;
    }
    if (v && __sync_val_compare_and_swap(n, v, v - 1) == v) return NETLAT_UNMATCHED_SKIPPED;
    return NETLAT_UNMATCHED_NO_START;
}

/* A UDP datagram at the device stage with the kprobes held: not followed, its read counts it
 * (udp_skipped). A UDP GSO super-datagram (a veth peer with tx-udp-segmentation) is split by the
 * receiving UDP (udp_rcv_segment, past the udp_rcv kprobe that would hand its times to the
 * datagrams, rx_gso) into gso_segs new skbs, each read on its own: that many (a UDP_GRO socket reads
 * it whole: one read takes one, the rest wait for later reads), and rx_gso is cleared so that they
 * do not take the previous super-datagram's times. */
static __always_inline void rx_udp_kprobes_skipped(const struct sk_buff *skb, __u64 key,
                                                   const struct skb_entry *e)
{
    __u64 head = 0;
    __u32 end = 0;
    __u16 segs = 0;
    if (!BPF_CORE_READ_INTO(&head, skb, head) && !BPF_CORE_READ_INTO(&end, skb, end) && head) {
        const struct skb_shared_info *shinfo = (const struct skb_shared_info *)(head + end);
        if (BPF_CORE_READ_INTO(&segs, shinfo, gso_segs)) segs = 0;
    }
    if (segs >= 2) {
        __u32 zero = 0;
        struct rx_segmented *g = bpf_map_lookup_elem(&rx_gso, &zero);
        if (g) g->ts = 0;
    }
    __sync_fetch_and_add(udp_skipped_of(e->lport, e->netns), segs >= 2 ? segs : 1);
    skb_forget(RX_SKBS, key);
}

static __always_inline void rx_kprobes_skipped(int btf, const struct sk_buff *skb)
{
    if (!btf || !(cfg_kprobe_stages & RX_STAGES_AFTER_DEVICE) || !cpu_kprobes_held()) return;
    __u64 key = (__u64)skb;
    struct skb_entry *e = skb_find(RX_SKBS, key);
    /* A datagram whose ports are still outside the linear part (RX_WAITS_PORTS) is counted under
     * port 0 of its namespace, which reads of any port there take from after their own. */
    if (!e || (e->headless && e->headless != RX_WAITS_PORTS)) return;
    if (e->proto == NETLAT_PROTO_UDP) {
        rx_udp_kprobes_skipped(skb, key, e);
        return;
    }
    if (e->proto != NETLAT_PROTO_TCP) return;
    struct pkt p = {};
    if (rx_parse(btf, skb, &p) == RX_PARSED && p.payload)
        count_unmatched(NETLAT_SEG_RX_TOTAL, NETLAT_UNMATCHED_SKIPPED);
    skb_forget(RX_SKBS, key);
}

static __always_inline void rx_driver(int btf, const struct sk_buff *skb)
{
    rx_start(btf, skb, NETLAT_STAGE_RX_DRIVER);
}

/* device, network and transport stages: the same skb moves on. Their segments are recorded when
 * the packet is delivered to a local socket (rx_delivered): forwarded packets, which pass the
 * same stages on their way out, stay out of the receive histograms. */
static __always_inline void rx_skb_stage(int btf, const struct sk_buff *skb, int stage)
{
    __u64 now = bpf_ktime_get_ns(), key = (__u64)skb;
    struct skb_entry *e = skb_lookup(RX_SKBS, key, stage, now);
    if (e && e->headless && !rx_identify(btf, skb, e, stage)) return;
    if (!e) {
        if (stage != NETLAT_STAGE_RX_DEVICE) return;
        rx_start(btf, skb, stage);
    } else {
        if (e->prev_stage >= stage) return;
        e->ts_stage[(stage - NETLAT_STAGE_RX_DRIVER) & 3] = now;
        e->ts_prev = now;
        e->prev_stage = stage;
        if (!e->headless) count(NETLAT_CTR_STAGE(stage));
    }
    if (stage == NETLAT_STAGE_RX_DEVICE) rx_kprobes_skipped(btf, skb);
}

/* The per-layer segments of a packet a local socket takes (TCP: tcp_probe / tcp_rcv_established;
 * UDP: its reader is woken). A segment is recorded when its start stage ran for this packet or had
 * no hook at all (then it spans the gap, as its name says); a start stage that has a hook but did
 * not see this packet (a path it is not on) leaves the segment unmatched, never mislabelled. */
static __always_inline void rx_delivered(const struct skb_entry *e)
{
    __u64 prev = e->ts_stage[0];
    int prev_stage = NETLAT_STAGE_RX_DRIVER;
    for (int s = NETLAT_STAGE_RX_DEVICE; s <= NETLAT_STAGE_RX_TRANSPORT; s++) {
        __u64 t = e->ts_stage[(s - NETLAT_STAGE_RX_DRIVER) & 3];
        if (!t) continue;
        __u32 between = (1u << s) - (2u << prev_stage); /* stages strictly between the two */
        if (prev && !(cfg_hooked_stages & between))
            record(segment_into(s), e->proto, e->family, e->netns, t, prev);
        else
            count_unmatched(segment_into(s), NETLAT_UNMATCHED_NO_START);
        prev = t;
        prev_stage = s;
    }
}

/* TCP takes the segment for an established socket: move it from its skb address to the socket's
 * pending segments, by end sequence, because the receive queue may coalesce it into another skb. */
static __always_inline void rx_tcp_owned(int btf, const struct sock *sk, const struct sk_buff *skb)
{
    __u64 key = (__u64)skb;
    struct skb_entry *e =
        skb_lookup(RX_SKBS, key, NETLAT_STAGE_RX_QUEUED, bpf_ktime_get_ns());
    if (!e || e->proto != NETLAT_PROTO_TCP) return;
    rx_delivered(e);
    const struct tcp_skb_cb *cb = (const struct tcp_skb_cb *)&skb->cb[0];
    __u32 seq = READ(btf, cb, seq), end = READ(btf, cb, end_seq);
    if (end != seq) {
        struct sock_state *r =
            rx_state(btf, sk, 1);
        if (r) {
            r->netns = e->netns;
            struct pending p = {.t0 = e->ts_first, .t1 = e->ts_prev, .end = end, .netns = e->netns,
                                .family = e->family};
            pending_push(r, PENDING_RX_SEGMENT, &p);
        }
    }
    skb_forget(RX_SKBS, key);
}

/* queued stage, TCP: everything up to rcv_nxt is on the receive queue and the reader is woken. */
static long queue_segment(__u32 i, void *ctx)
{
    struct pending_walk *w = ctx;
    int stop, in_slot;
    struct pending *p = pending_next(w, &stop, &in_slot);
    if (stop) return 1;
    if (p && !p->t2) {
        p->t2 = w->now;
        record(NETLAT_SEG_RX_TRANSPORT_TO_QUEUED, NETLAT_PROTO_TCP, p->family, p->netns, w->now, p->t1);
        record(NETLAT_SEG_RX_STACK, NETLAT_PROTO_TCP, p->family, p->netns, w->now, p->t0);
        count(NETLAT_CTR_STAGE(NETLAT_STAGE_RX_QUEUED));
    }
    w->k.pos++;
    return 0;
}

static __always_inline void rx_queued_tcp(int btf, const struct sock *sk, __u64 now)
{
    struct sock_state *r = rx_state(btf, sk, 0);
    if (!r) return;
    __u32 from = (__s32)(r->queued - r->tail) > 0 ? r->queued : r->tail;
    struct pending_walk w = {.k = {.owner = r->id, .pos = from, .kind = PENDING_RX_SEGMENT},
                             .head = r->head,
                             .seq = BPF_CORE_READ((const struct tcp_sock *)sk, rcv_nxt),
                             .now = now, .r = r};
    loop(PENDING_WALK_MAX, queue_segment, &w);
    r->queued = w.k.pos;
}

/* queued stage, UDP: the reader is woken for the newest datagrams on the receive queue. One wakeup
 * can stand for a batch (6.18 splices per-NUMA producer queues), so walk back from the tail to the
 * newest datagram positioned before, and position the new ones oldest first. Datagrams netlatd does
 * not track (queued before it started, evicted) take positions too, without times. */
#define UDP_QUEUE_WALK 32
struct udp_positions {
    __u64 found[UDP_QUEUE_WALK]; /* newest first */
    __u64 now, tail_ts;
    __u16 lport;
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
struct udp_positions_ctx {
    struct sock_state *r;
};

static long position_datagram(__u32 i, void *ctx)
{
    __u32 zero = 0;
    struct udp_positions *c = bpf_map_lookup_elem(&udp_positions_scratch, &zero);
    if (!c) return 1;
    __u32 idx = c->n - 1 - i;
    if (idx >= UDP_QUEUE_WALK) return 1;
    /* masked again, behind a barrier the compiler cannot see through: 6.1's verifier loses the
     * bound above when idx is spilled to the stack */
    __u64 at = idx;
    barrier_var(at);
    __u64 key = c->found[at & (UDP_QUEUE_WALK - 1)];
    struct skb_entry *e = skb_find(RX_SKBS, key);
    if (!e) {
        struct rx_segmented *g = bpf_map_lookup_elem(&rx_gso, &zero);
        if (!g || g->e.lport != c->lport || c->now - g->ts > TX_GSO_WAIT_NS) return 0;
        e = &g->e; /* a datagram split from a tracked one: its times */
    } else {
        if (e->prev_stage >= NETLAT_STAGE_RX_QUEUED || e->proto != NETLAT_PROTO_UDP) return 0;
        if (e->headless == RX_WAITS_PORTS && !rx_ports_known(e, key, c->lport)) return 0;
        if (e->headless) return 0;
        rx_delivered(e);
    }
    if (idx == 0) c->tail_ts = e->ts_prev;
    record(NETLAT_SEG_RX_TRANSPORT_TO_QUEUED, NETLAT_PROTO_UDP, e->family, e->netns, c->now, e->ts_prev);
    record(NETLAT_SEG_RX_STACK, NETLAT_PROTO_UDP, e->family, e->netns, c->now, e->ts_first);
    count(NETLAT_CTR_STAGE(NETLAT_STAGE_RX_QUEUED));
    struct pending d = {.t0 = e->ts_first, .t1 = e->ts_prev, .t2 = c->now, .netns = e->netns,
                        .family = e->family};
    pending_put(((struct udp_positions_ctx *)ctx)->r, PENDING_RX_DGRAM, c->base + i, &d);
    skb_forget(RX_SKBS, key);
    return 0;
}

/* The walk back from the tail of a receive queue: one datagram per call (a bpf_loop callback,
 * verified once: unrolled, the verifier's states for its 32 steps, one pointer each, came within
 * one instruction of its limit of a million on 6.18). */
struct udp_queue_walk {
    __u64 skb, q, rq; /* the next skb back, the receive queue's and the reader queue's heads */
    __u64 last, last_ts;
    __u32 n;
};

static long walk_back(__u32 i, void *ctx)
{
    struct udp_queue_walk *w = ctx;
    __u64 key = w->skb;
    if (!key || key == w->q || key == w->rq || i >= UDP_QUEUE_WALK) return 1;
    if (key == w->last) {
        /* The same skb, unless a tracked datagram now lives at that address. */
        struct skb_entry *e = skb_find(RX_SKBS, key);
        if (!e || e->ts_prev == w->last_ts) return 1;
    }
    __u32 zero = 0;
    struct udp_positions *c = bpf_map_lookup_elem(&udp_positions_scratch, &zero);
    if (!c) return 1;
    __u64 at = i;
    barrier_var(at);
    c->found[at & (UDP_QUEUE_WALK - 1)] = key;
    w->n = i + 1;
    w->skb = (__u64)BPF_CORE_READ((const struct sk_buff *)key, prev);
    return 0;
}

static __always_inline void rx_queued_udp(int btf, const struct sock *sk, __u64 now)
{
    const struct sk_buff_head *q = &sk->sk_receive_queue;
    const struct sk_buff_head *rq = &((const struct udp_sock *)sk)->reader_queue;
    const struct sk_buff *tail = READ(btf, q, prev);
    if (!tail || (const void *)tail == (const void *)q || !sock_wanted(btf, sk)) return;
    struct sock_state *r = rx_state(btf, sk, 1);
    if (!r) return;
    __u32 zero = 0;
    struct udp_positions *c = bpf_map_lookup_elem(&udp_positions_scratch, &zero);
    if (!c) return;
    __u64 last = r->last_skb;
    struct udp_queue_walk walk = {.skb = (__u64)tail, .q = (__u64)q, .rq = (__u64)rq,
                                  .last = last, .last_ts = r->last_ts};
    loop(UDP_QUEUE_WALK, walk_back, &walk);
    __u32 n = walk.n;
    if (!n) return;
    /* Another CPU woke the reader for the same datagrams: it positions them. */
    if (__sync_val_compare_and_swap(&r->last_skb, last, (__u64)tail) != last) return;
    c->n = n;
    c->base = __sync_fetch_and_add(&r->head, n);
    c->now = now;
    c->tail_ts = 0;
    c->lport = READ(btf, sk, __sk_common.skc_num);
    struct udp_positions_ctx ctx = {.r = r};
    loop(n, position_datagram, &ctx);
    r->last_ts = c->tail_ts;
}

static __always_inline void rx_queued(int btf, const struct sock *sk)
{
    __u8 proto, family;
    if (!sk || sock_kind(btf, sk, &proto, &family)) return;
    __u64 now = bpf_ktime_get_ns();
    if (proto == NETLAT_PROTO_TCP)
        rx_queued_tcp(btf, sk, now);
    else
        rx_queued_udp(btf, sk, now);
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

/* socket stage, TCP: the reader has passed (copied_seq) the end of each pending segment taken. A
 * read takes the bytes [copied_seq - ret, copied_seq): a segment that ends before them was taken
 * by a read no hook sees (splice or another tcp_read_sock user, zero-copy receive), and is
 * counted, not timed by this later read. */
struct rx_read_walk {
    struct pending_walk w;
    __u32 first; /* the read's first byte */
};

static long read_segment(__u32 i, void *ctx)
{
    struct rx_read_walk *c = ctx;
    int stop, in_slot;
    struct pending *p = pending_next(&c->w, &stop, &in_slot);
    if (stop) return 1;
    if (p) {
        struct pending d = *p;
        if (pending_take(&c->w.k, p, in_slot)) {
            if (seq_before_eq(d.end, c->first))
                count_unmatched(NETLAT_SEG_RX_QUEUED_TO_SOCKET, NETLAT_UNMATCHED_UNSEEN_READ);
            else
                rx_read_sample(NETLAT_PROTO_TCP, d.family, d.netns, d.t0, d.t1, d.t2, c->w.now);
        }
    }
    c->w.k.pos++;
    return 0;
}

/* A UDP read whose datagram has no item: counted under its reason (udp_read_unpositioned); a
 * no_start only if `no_start_counted`. */
static __always_inline void rx_read_unjoined(int btf, const struct sock *sk, int no_start_counted)
{
    int reason = udp_read_unpositioned(btf, sk);
    if (reason == NETLAT_UNMATCHED_SKIPPED)
        count_unmatched(NETLAT_SEG_RX_TOTAL, reason);
    else if (no_start_counted)
        count_unmatched(NETLAT_SEG_RX_QUEUED_TO_SOCKET, reason);
}

/* socket stage, UDP: a read took one datagram (possibly empty); the datagrams still queued tell
 * which (rx_dgram). */
static __always_inline void rx_socket_udp(int btf, const struct sock *sk)
{
    struct sock_state *r = rx_state(btf, sk, 0);
    if (!r) {
        if (sock_wanted(btf, sk)) rx_read_unjoined(btf, sk, 1);
        return;
    }
    __u32 queued = READ(btf, sk, sk_receive_queue.qlen) +
                   BPF_CORE_READ((const struct udp_sock *)sk, reader_queue.qlen);
    struct pending_key k = {.owner = r->id, .pos = r->head - queued - 1, .kind = PENDING_RX_DGRAM};
    int in_slot;
    struct pending *p = pending_find(r, &k, &in_slot);
    if (!p) {
        /* Queued before netlatd started, untracked, its kprobe stages skipped, or not positioned
         * yet; under flow sampling also a datagram of a flow left out, which cannot be told apart
         * here: not counted then, unless it is a skipped one. */
        rx_read_unjoined(btf, sk, flow_sample_every <= 1);
        return;
    }
    struct pending d = *p;
    if (!pending_take(&k, p, in_slot)) return; /* a concurrent read on the socket took it */
    __u64 now = bpf_ktime_get_ns();
    if (now - d.t0 > cfg_stale_ns)
        count_unmatched(NETLAT_SEG_RX_QUEUED_TO_SOCKET, NETLAT_UNMATCHED_STALE);
    else
        rx_read_sample(NETLAT_PROTO_UDP, d.family, d.netns, d.t0, d.t1, d.t2, now);
}

/* socket stage: a read on sk returned `ret` bytes. TCP: every pending segment whose end the reader
 * has passed (copied_seq) is read. UDP: one datagram (0 bytes: an empty one). */
static __always_inline void rx_socket(int btf, const struct sock *sk, int ret, int flags)
{
    if (ret < 0 || (flags & (MSG_PEEK | MSG_ERRQUEUE))) return;
    __u8 proto, family;
    if (!sk || sock_kind(btf, sk, &proto, &family)) return;
    if (proto == NETLAT_PROTO_UDP) {
        rx_socket_udp(btf, sk);
        return;
    }
    if (!ret) return;
    struct sock_state *r = rx_state(btf, sk, 0);
    if (!r) return;
    __u32 copied = BPF_CORE_READ((const struct tcp_sock *)sk, copied_seq);
    struct rx_read_walk c = {
        .w = {.k = {.owner = r->id, .pos = r->tail, .kind = PENDING_RX_SEGMENT},
              .head = r->head, .seq = copied, .now = bpf_ktime_get_ns(), .r = r},
        .first = copied - (__u32)ret};
    loop(PENDING_WALK_MAX, read_segment, &c);
    r->tail = c.w.k.pos;
}


#endif /* NETLAT_RX_BPF_H */
