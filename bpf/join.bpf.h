/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* join.bpf.h: correlation state shared by both directions: per-skb entries and per-socket rings. */
#ifndef NETLAT_JOIN_BPF_H
#define NETLAT_JOIN_BPF_H

#include "core.bpf.h"
#include "packet.bpf.h"

/* ---- correlation state ---- */

/* One skb between stages, keyed by its address. */
#define TX_CALLS_PER_SKB 4
struct skb_entry {
    __u64 ts_first; /* rx: driver stage (0: the packet was first seen later); tx: unused */
    __u64 ts_prev;  /* the last present stage */
    union {
        __u64 ts_socket[TX_CALLS_PER_SKB]; /* tx: socket stage of each call whose last byte rides here */
        __u64 ts_stage[4];                 /* rx: driver, device, network, transport (0: not seen) */
    };
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
    __u64 last_skb; /* UDP: the newest datagram given a position, and its last stage's time */
    __u64 last_ts;  /* (0: untracked), which tell it from a later skb at the same address */
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

/* Empty values to insert from: rings are too large for the BPF stack. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct ring);
} ring_zero SEC(".maps");

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
/*
 * A sent skb that software GSO splits (validate_xmit_skb, between the device and driver stages:
 * the device cannot segment it) is consumed, and its segments, new skbs that carry the same
 * socket, go to the driver right after on the same CPU. Its entry waits here for the first of
 * them: the driver stage of a segmented skb is its first segment's hand-off.
 */
struct tx_segmented {
    __u64 sk;
    __u64 ts; /* when the original was consumed */
    struct skb_entry e;
};
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct tx_segmented);
} tx_gso SEC(".maps");
#define TX_GSO_WAIT_NS 1000000 /* segments follow within microseconds; then the entry is dropped */

/* An skb is freed: forget it, so a reused address never matches a stale entry. */
static __always_inline void skb_freed(const struct sk_buff *skb, int dropped)
{
    __u64 key = (__u64)skb;
    struct skb_entry *e = bpf_map_lookup_elem(&tx_skb, &key);
    if (e) {
        if (dropped) count_unmatched(segment_into(e->prev_stage + 1), NETLAT_UNMATCHED_DROPPED);
        else if (e->prev_stage == NETLAT_STAGE_TX_DEVICE && !e->untimed) {
            __u32 zero = 0;
            struct tx_segmented *g = bpf_map_lookup_elem(&tx_gso, &zero);
            if (g) {
                if (g->sk) /* the previous one's segments never reached a driver */
                    count_unmatched(NETLAT_SEG_TX_DEVICE_TO_DRIVER, NETLAT_UNMATCHED_DROPPED);
                g->sk = (__u64)BPF_CORE_READ(skb, sk);
                g->ts = bpf_ktime_get_ns();
                g->e = *e;
            }
        }
        if (!bpf_map_delete_elem(&tx_skb, &key)) count(NETLAT_CTR_MAP_DELETE(NETLAT_MAP_TX_SKB));
    }
    e = bpf_map_lookup_elem(&rx_skb, &key);
    if (e) {
        if (dropped && e->prev_stage < NETLAT_STAGE_RX_SOCKET)
            count_unmatched(segment_into(e->prev_stage + 1), NETLAT_UNMATCHED_DROPPED);
        if (!bpf_map_delete_elem(&rx_skb, &key)) count(NETLAT_CTR_MAP_DELETE(NETLAT_MAP_RX_SKB));
    }
}


#endif /* NETLAT_JOIN_BPF_H */
