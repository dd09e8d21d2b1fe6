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
    __u8 headless; /* rx: only the driver stage's time; what the packet is waits for the device stage */
    __u16 lport; /* rx: the local port */
    __u32 pad2;
    union {
        __u64 sk;   /* tx: the sending socket (software GSO gives it to the segments, not the original) */
        __u64 head; /* rx: skb->head (the data buffer) at the driver stage: a re-injection keeps it */
    };
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
 * Per-socket state, for joins that skb addresses cannot make. Pending items get consecutive
 * positions per socket and direction, and live in `pending` keyed by (socket inode, kind,
 * position):
 *  tx (TCP): send calls waiting for the segment that carries their last byte (their end sequence);
 *  rx (TCP): received segments waiting to be queued and read (their end sequence);
 *  rx (UDP): datagrams on the receive queue (rx.bpf.h says how reads find theirs).
 * TCP joins walk from the oldest position while items end at or before the sequence that passes
 * them, so any backlog (up to the size of `pending`) is measured whole, oldest first.
 */
enum pending_kind { PENDING_RX_DGRAM, PENDING_RX_SEGMENT, PENDING_TX_CALL };
struct pending {
    __u64 t0;  /* tx: socket stage; rx: driver stage */
    __u64 t1;  /* tx: transport stage; rx: the last stage before the socket took it */
    __u64 t2;  /* rx: queued stage */
    __u32 end; /* TCP: end sequence */
    __u32 netns;
    __u8 family;
    __u8 pad[3];
    __u32 slot_pos; /* in a socket's own slots: its position + 1 (0: the slot is free) */
};

/* Pending items a socket holds in its own state, by position modulo this; the rest (a deeper
 * backlog, or a position whose slot is still taken) go to the `pending` map. A slot costs no map
 * operation; it is claimed and taken with compare-and-swap, as readers and writers of a socket's
 * receive items run on different CPUs. */
#define SOCK_SLOTS 4

struct sock_state {
    __u64 owner;    /* the socket's inode: a socket reallocated at the same address starts afresh */
    __u64 id;       /* its pending items' key: the inode, or a unique number for state made before
                     * accept() gave the socket its file (kept when the inode becomes known) */
    __u64 last_skb; /* UDP: the newest datagram given a position, and its last stage's time */
    __u64 last_ts;  /* (0: untracked), which tell it from a later skb at the same address */
    __u32 head;     /* positions given so far */
    __u32 tail;     /* TCP: the oldest position not yet joined (tx: to a packet; rx: to a read) */
    __u32 queued;   /* TCP rx: the oldest position not yet queued */
    __u32 netns;
    struct pending slots[SOCK_SLOTS]; /* the first pending items (see SOCK_SLOTS) */
};
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64); /* struct sock * */
    __type(value, struct sock_state);
} tx_ring SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64);
    __type(value, struct sock_state);
} rx_ring SEC(".maps");

struct pending_key {
    __u64 owner; /* sock_state.id */
    __u32 pos;
    __u32 kind;
};
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct pending_key);
    __type(value, struct pending);
} pending SEC(".maps");

/* A socket's state when it is first made: its pending items are keyed by its inode, or by a unique
 * number while it has none (made before accept() gave it its file). */
static __always_inline struct sock_state sock_state_fresh(__u64 ino)
{
    struct sock_state fresh = {.owner = ino, .id = ino ? ino : bpf_ktime_get_ns() | (1ULL << 63)};
    return fresh;
}

/* The state of a socket. State left by a closed socket whose memory now holds another socket is
 * stale (its pending items belong to the old one): it is reset, and counted stale. */
static __always_inline struct sock_state *sock_state_get(int btf, void *map, int map_id,
                                                         const struct sock *sk, int create,
                                                         int seg_stale)
{
    __u64 key = (__u64)sk, ino = sock_ino(btf, sk);
    struct sock_state *r = bpf_map_lookup_elem(map, &key);
    if (r && r->owner == ino) return r;
    if (r && !r->owner) { /* made before accept() gave the socket its file */
        r->owner = ino;
        return r;
    }
    if (!create) return 0;
    if (r) count_unmatched(seg_stale, NETLAT_UNMATCHED_STALE);
    struct sock_state fresh = sock_state_fresh(ino);
    bpf_map_update_elem(map, &key, &fresh, r ? BPF_EXIST : BPF_NOEXIST);
    if (!r) count(NETLAT_CTR_MAP_INSERT(map_id));
    return bpf_map_lookup_elem(map, &key);
}

#define SLOT_FILLING 0xffffffffu /* slot_pos of a slot being written */

/* Puts an item at position pos of a socket: in the socket's slot for it when that is free, else in
 * the pending map. A slot is claimed (compare-and-swap from free), written, then published with
 * its position, so a reader on another CPU never sees half an item. */
static __always_inline void pending_put(struct sock_state *r, int kind, __u32 pos, struct pending *p)
{
    struct pending *s = &r->slots[pos & (SOCK_SLOTS - 1)];
    if (!s->slot_pos && __sync_val_compare_and_swap(&s->slot_pos, 0, SLOT_FILLING) == 0) {
        p->slot_pos = SLOT_FILLING;
        *s = *p;
        __sync_lock_test_and_set(&s->slot_pos, pos + 1);
        return;
    }
    struct pending_key k = {.owner = r->id, .pos = pos, .kind = kind};
    upsert_key(&pending, NETLAT_MAP_PENDING, &k, p);
}

/* Appends a TCP item (single writer per socket and direction: the socket lock, or the softirq that
 * owns the socket): the item is in place before the head moves past it. */
static __always_inline void pending_push(struct sock_state *r, int kind, struct pending *p)
{
    __u32 pos = r->head;
    pending_put(r, kind, pos, p);
    r->head = pos + 1;
}

/* The item at k's position of socket r, wherever it is (*in_slot: in the socket's own slot). */
static __always_inline struct pending *pending_find(struct sock_state *r, struct pending_key *k,
                                                    int *in_slot)
{
    struct pending *s = &r->slots[k->pos & (SOCK_SLOTS - 1)];
    *in_slot = s->slot_pos == k->pos + 1;
    return *in_slot ? s : bpf_map_lookup_elem(&pending, k);
}

/* Takes out an item pending_find gave (copy what is needed first); 0 if another CPU took it first
 * (or it was evicted). */
static __always_inline int pending_take(struct pending_key *k, struct pending *p, int in_slot)
{
    if (in_slot) return __sync_val_compare_and_swap(&p->slot_pos, k->pos + 1, 0) == k->pos + 1;
    if (bpf_map_delete_elem(&pending, k)) return 0;
    count(NETLAT_CTR_MAP_DELETE(NETLAT_MAP_PENDING));
    return 1;
}

/* A walk over a socket's pending TCP items, oldest first (bpf_loop: verified once, any length). */
#define PENDING_WALK_MAX 4096
struct pending_walk {
    struct pending_key k; /* owner, kind, and the position the walk is at */
    __u32 head;
    __u32 seq; /* the sequence the walk goes up to */
    __u64 now;
    struct sock_state *r; /* the socket's state */
};

/* The item at the walk's position, if any (evicted ones are passed over); *stop when the walk is
 * over: the head is reached, or the item ends after the walk's sequence. */
static __always_inline struct pending *pending_next(struct pending_walk *w, int *stop, int *in_slot)
{
    *stop = w->k.pos == w->head;
    if (*stop) return 0;
    struct pending *p = pending_find(w->r, &w->k, in_slot);
    *stop = p && !seq_before_eq(p->end, w->seq);
    return *stop ? 0 : p;
}

/*
 * The skb maps' per-CPU front. A packet's stages mostly run back to back on one CPU (send: network
 * -> device -> driver in the sender's context; receive: driver -> device -> network -> transport
 * -> socket in one softirq), so the packet being followed sits in a per-CPU slot, and the hash
 * (keyed by skb address) holds only packets whose stages were interleaved with another's on that
 * CPU (a qdisc that deferred it, a burst queued to the backlog, a task moved to another CPU): the
 * next packet to start on the CPU moves the slot's one into the hash. A hit costs an array lookup
 * instead of a hash insert, lookups and a delete. The skb-address protocol is the maps': an entry
 * is found wherever it is, and forgotten in both.
 * A program interrupted on its CPU, between finding the slot's entry and writing it, by one that
 * starts another packet there (a softirq inside a process-context stage) writes into the other
 * packet's entry: a rare wrong stage time, as with the per-CPU histogram increments.
 */
struct skb_front {
    __u64 key; /* the skb address (0: empty) */
    struct skb_entry e;
};
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct skb_front);
} tx_front SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct skb_front);
} rx_front SEC(".maps");

/* The arguments that name one direction's skb state, for the functions below. */
#define TX_SKBS &tx_skb, NETLAT_MAP_TX_SKB, &tx_front
#define RX_SKBS &rx_skb, NETLAT_MAP_RX_SKB, &rx_front

/*
 * Which addresses may have an entry in a direction's hash: a counter per bucket of skb addresses,
 * raised before an entry is inserted and lowered after one is deleted, so it is never below the
 * number of entries in its bucket. A 0 answers "not in the hash" without a hash operation: the
 * lookups and deletes of the packets that stay in the front, and the skb-free hooks of every
 * packet the host frees, mostly find nothing there. Entries the LRU evicts leave their bucket's
 * count raised for good: a later miss in that bucket costs a hash lookup, as without the counters.
 * Global (one copy, not per CPU): an entry inserted on one CPU is looked up on another; only hash
 * inserts and deletes write it.
 */
#define SKB_HASHED_BUCKETS 16384
__u32 skb_hashed[2][SKB_HASHED_BUCKETS];

static __always_inline __u32 *skb_hashed_count(int map_id, __u64 key)
{
    /* skbs are slab objects of about 256 bytes: the bits above 8 tell them apart. Their low half
     * by a 32-bit move, which the verifier takes as a number (it refuses shifts of the pointer). */
    __u32 lo;
    asm volatile("%[lo] = %[key]" : [lo] "=w"(lo) : [key] "w"((__u32)key));
    __u64 b = (lo >> 8) ^ (lo >> 22);
    barrier_var(b); /* masked as 64 bits after the barrier: 6.1's verifier loses a 32-bit bound */
    return &skb_hashed[map_id == NETLAT_MAP_RX_SKB][b & (SKB_HASHED_BUCKETS - 1)];
}

static __always_inline void skb_hash_put(void *map, int map_id, __u64 key, const struct skb_entry *e)
{
    __u32 *n = skb_hashed_count(map_id, key);
    __sync_fetch_and_add(n, 1);
    if (!upsert_key(map, map_id, &key, e)) __sync_fetch_and_sub(n, 1); /* already there, and counted */
}

static __always_inline void skb_hash_delete(void *map, int map_id, __u64 key)
{
    __u32 *n = skb_hashed_count(map_id, key);
    if (!*n || bpf_map_delete_elem(map, &key)) return;
    count(NETLAT_CTR_MAP_DELETE(map_id));
    __sync_fetch_and_sub(n, 1);
}

static __always_inline struct skb_front *front_get(void *front)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(front, &zero);
}

/* The entry of the skb at `key`, if it is followed. */
static __always_inline struct skb_entry *skb_find(void *map, int map_id, void *front, __u64 key)
{
    struct skb_front *f = front_get(front);
    if (f && f->key == key) return &f->e;
    if (!*skb_hashed_count(map_id, key)) return 0;
    return bpf_map_lookup_elem(map, &key);
}

/* Starts (or restarts) following the skb at `key` with *e, in the front. */
static __always_inline void skb_keep(void *map, int map_id, void *front, __u64 key,
                                     const struct skb_entry *e)
{
    struct skb_front *f = front_get(front);
    if (!f) {
        skb_hash_put(map, map_id, key, e);
        return;
    }
    if (f->key != key) {
        if (f->key) skb_hash_put(map, map_id, f->key, &f->e); /* still on its way: to the hash */
        /* what a packet freed where no hook sees it left at this address */
        skb_hash_delete(map, map_id, key);
        f->key = key;
    }
    f->e = *e;
}

/* Stops following the skb at `key`. */
static __always_inline void skb_forget(void *map, int map_id, void *front, __u64 key)
{
    struct skb_front *f = front_get(front);
    if (f && f->key == key) {
        f->key = 0;
        return;
    }
    skb_hash_delete(map, map_id, key);
}

/* Looks up an skb entry and checks it is fresh; counts stale ones. */
static __always_inline struct skb_entry *skb_lookup(void *map, int map_id, void *front, __u64 key,
                                                    int stage, __u64 now)
{
    struct skb_entry *e = skb_find(map, map_id, front, key);
    if (!e) return 0;
    if (now - e->ts_prev > cfg_stale_ns) {
        count_unmatched(segment_into(stage), NETLAT_UNMATCHED_STALE);
        skb_forget(map, map_id, front, key);
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

/* The same on receive: a UDP socket that cannot take a GRO'd super-datagram whole splits it
 * (udp_rcv_segment) and consumes it before queueing the datagrams, on the same CPU: they take its
 * entry, as many as there are (matched by local port, within TX_GSO_WAIT_NS). */
struct rx_segmented {
    __u64 ts;
    struct skb_entry e;
};
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct rx_segmented);
} rx_gso SEC(".maps");

#endif /* NETLAT_JOIN_BPF_H */
