/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * netlat.h: the one description of netlatd's stages, segments and histogram layout, shared by the
 * BPF programs (C) and the daemon (C++). Adding a stage or a segment is an edit here and nowhere else:
 * names, enum values and metric label values are all generated from the X-macro tables below.
 */
#ifndef NETLAT_H
#define NETLAT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Directions: tx = data being sent, rx = data being received. */
#define NETLAT_DIRECTIONS(X) \
    X(TX, tx)                \
    X(RX, rx)

/*
 * Stages in the order a packet passes them, per direction.
 * X(enum name, direction, label, layer)
 */
#define NETLAT_STAGES(X)                    \
    X(TX_SOCKET, TX, socket, "L5")          \
    X(TX_TRANSPORT, TX, transport, "L4")    \
    X(TX_NETWORK, TX, network, "L3")        \
    X(TX_DEVICE, TX, device, "L2")          \
    X(TX_DRIVER, TX, driver, "L2")          \
    X(RX_DRIVER, RX, driver, "L2")          \
    X(RX_DEVICE, RX, device, "L2")          \
    X(RX_NETWORK, RX, network, "L3")        \
    X(RX_TRANSPORT, RX, transport, "L4")    \
    X(RX_QUEUED, RX, queued, "L4->L5")      \
    X(RX_SOCKET, RX, socket, "L5")

/*
 * Segments: the time between two stages. Consecutive segments are named after their end stage's
 * predecessor and the end stage; when a stage has no hook, the segment ending at the next present
 * stage spans the gap (its "from" is the last present stage before it). Composite segments follow:
 * tx total, rx stack (kernel work and waits), rx transport_to_socket (L4 to the application's read:
 * where the kernel's RX_SOFTWARE stamp sits for TCP, whose skbs carry a delivery time past the
 * driver) and rx total.
 * X(enum name, direction, label, from stage, to stage)
 */
#define NETLAT_SEGMENTS(X)                                                           \
    X(TX_SOCKET_TO_TRANSPORT, TX, socket_to_transport, TX_SOCKET, TX_TRANSPORT)      \
    X(TX_TRANSPORT_TO_NETWORK, TX, transport_to_network, TX_TRANSPORT, TX_NETWORK)   \
    X(TX_NETWORK_TO_DEVICE, TX, network_to_device, TX_NETWORK, TX_DEVICE)            \
    X(TX_DEVICE_TO_DRIVER, TX, device_to_driver, TX_DEVICE, TX_DRIVER)               \
    X(TX_TOTAL, TX, total, TX_SOCKET, TX_DRIVER)                                     \
    X(RX_DRIVER_TO_DEVICE, RX, driver_to_device, RX_DRIVER, RX_DEVICE)               \
    X(RX_DEVICE_TO_NETWORK, RX, device_to_network, RX_DEVICE, RX_NETWORK)            \
    X(RX_NETWORK_TO_TRANSPORT, RX, network_to_transport, RX_NETWORK, RX_TRANSPORT)   \
    X(RX_TRANSPORT_TO_QUEUED, RX, transport_to_queued, RX_TRANSPORT, RX_QUEUED)      \
    X(RX_QUEUED_TO_SOCKET, RX, queued_to_socket, RX_QUEUED, RX_SOCKET)               \
    X(RX_STACK, RX, stack, RX_DRIVER, RX_QUEUED)                                     \
    X(RX_TRANSPORT_TO_SOCKET, RX, transport_to_socket, RX_TRANSPORT, RX_SOCKET)      \
    X(RX_TOTAL, RX, total, RX_DRIVER, RX_SOCKET)

/*
 * Why a segment's end saw no matching start. X(enum name, label)
 * no_start:    the end stage found no entry of the start stage (not seen, filtered late, or evicted)
 * stale:       the entry was older than the staleness bound (a reused key or a lost packet)
 * retransmit:  a TCP retransmission: kept out of first-transmission latency
 * coalesced:   more calls ended in one skb than an skb entry can carry (or one's skb was missed)
 * dropped:     the packet was freed (kfree_skb) before reaching the end stage
 * unseen_read: TCP data taken by a read no hook sees (splice, zero-copy receive): not timed later
 * skipped:     the kernel skipped netlatd's kprobe programs for this packet (a kprobe handler,
 *              another BPF program or a BPF map syscall held the CPU's current_kprobe or
 *              bpf_prog_active): not followed
 */
#define NETLAT_UNMATCHED_REASONS(X) \
    X(NO_START, no_start)           \
    X(STALE, stale)                 \
    X(RETRANSMIT, retransmit)       \
    X(COALESCED, coalesced)         \
    X(DROPPED, dropped)             \
    X(UNSEEN_READ, unseen_read)     \
    X(SKIPPED, skipped)

/* Correlation maps whose evictions are exported. X(enum name, BPF map name) */
#define NETLAT_MAPS(X)          \
    X(TX_THREAD, tx_thread)     \
    X(TX_SKB, tx_skb)           \
    X(TX_RING, tx_ring)         \
    X(RX_SKB, rx_skb)           \
    X(RX_RING, rx_ring)         \
    X(PENDING, pending)         \
    X(HIST, hist)

#define NETLAT_ENUM_DIR(name, label) NETLAT_DIR_##name,
enum netlat_direction { NETLAT_DIRECTIONS(NETLAT_ENUM_DIR) NETLAT_DIR_COUNT };
#undef NETLAT_ENUM_DIR

#define NETLAT_ENUM_STAGE(name, dir, label, layer) NETLAT_STAGE_##name,
enum netlat_stage { NETLAT_STAGES(NETLAT_ENUM_STAGE) NETLAT_STAGE_COUNT };
#undef NETLAT_ENUM_STAGE

#define NETLAT_ENUM_SEGMENT(name, dir, label, from, to) NETLAT_SEG_##name,
enum netlat_segment { NETLAT_SEGMENTS(NETLAT_ENUM_SEGMENT) NETLAT_SEG_COUNT };
#undef NETLAT_ENUM_SEGMENT

#define NETLAT_ENUM_REASON(name, label) NETLAT_UNMATCHED_##name,
enum netlat_unmatched_reason { NETLAT_UNMATCHED_REASONS(NETLAT_ENUM_REASON) NETLAT_UNMATCHED_COUNT };
#undef NETLAT_ENUM_REASON

#define NETLAT_ENUM_MAP(name, label) NETLAT_MAP_##name,
enum netlat_map_id { NETLAT_MAPS(NETLAT_ENUM_MAP) NETLAT_MAP_COUNT };
#undef NETLAT_ENUM_MAP

enum netlat_protocol { NETLAT_PROTO_TCP = 0, NETLAT_PROTO_UDP = 1, NETLAT_PROTO_COUNT };
enum netlat_family { NETLAT_FAMILY_IPV4 = 0, NETLAT_FAMILY_IPV6 = 1, NETLAT_FAMILY_COUNT };

/*
 * Counters, one per-CPU array of u64 indexed as follows:
 *   [stage]                                         events seen at a stage (tracked packets/calls)
 *   STAGE_COUNT + segment * UNMATCHED_COUNT + reason  unmatched ends
 *   ... + map                                       entries inserted into a correlation map
 *   ... + map                                       entries deleted explicitly from it
 */
/* (int) casts: C++20 deprecates arithmetic between different enumeration types. */
#define NETLAT_CTR_STAGE(stage) ((int)(stage))
#define NETLAT_CTR_UNMATCHED(seg, reason) \
    ((int)NETLAT_STAGE_COUNT + (int)(seg) * (int)NETLAT_UNMATCHED_COUNT + (int)(reason))
#define NETLAT_CTR_MAP_INSERT(map) \
    ((int)NETLAT_STAGE_COUNT + (int)NETLAT_SEG_COUNT * (int)NETLAT_UNMATCHED_COUNT + (int)(map))
#define NETLAT_CTR_MAP_DELETE(map) (NETLAT_CTR_MAP_INSERT(NETLAT_MAP_COUNT) + (int)(map))
#define NETLAT_CTR_COUNT NETLAT_CTR_MAP_DELETE(NETLAT_MAP_COUNT)

/*
 * Histogram slots: log-linear over nanoseconds, 16 sub-buckets per power of two, so no slot is wider
 * than 1/16 of its lower edge. A slot holds values in (lower edge, upper edge]: value v > 0 goes to
 * raw_slot(v - 1), so every upper edge is an exact Prometheus "le" bound. Slots 0..15 are single
 * nanoseconds; the last slot also takes everything above its edge (the +Inf overflow).
 */
#define NETLAT_SUB_BITS 4
#define NETLAT_SUBS (1u << NETLAT_SUB_BITS)
#define NETLAT_MAX_MSB 35 /* values up to 2^36 ns, about 68.7 s */
#define NETLAT_SLOTS ((NETLAT_MAX_MSB - NETLAT_SUB_BITS + 2) * NETLAT_SUBS)

static inline unsigned int netlat_msb64(__u64 v)
{
    unsigned int r = 0;
    if (v >> 32) { v >>= 32; r += 32; }
    if (v >> 16) { v >>= 16; r += 16; }
    if (v >> 8) { v >>= 8; r += 8; }
    if (v >> 4) { v >>= 4; r += 4; }
    if (v >> 2) { v >>= 2; r += 2; }
    if (v >> 1) { r += 1; }
    return r;
}

/* Flow sampling: whether the flow of a port pair (local, remote; host order) is one of the 1 in
 * `every` measured: a multiplicative hash of the pair, the same at every stage. */
static inline int netlat_flow_sampled(__u16 local_port, __u16 remote_port, __u32 every)
{
    if (every <= 1) return 1;
    __u32 h = (((__u32)local_port << 16) | remote_port) * 2654435761u;
    return (h >> 16) % every == 0;
}

/* The slot that holds value_ns. */
static inline unsigned int netlat_slot(__u64 value_ns)
{
    if (value_ns <= NETLAT_SUBS) return value_ns == 0 ? 0 : (unsigned int)(value_ns - 1);
    __u64 v = value_ns - 1;
    unsigned int msb = netlat_msb64(v);
    if (msb > NETLAT_MAX_MSB) return NETLAT_SLOTS - 1;
    unsigned int sub = (unsigned int)(v >> (msb - NETLAT_SUB_BITS)) & (NETLAT_SUBS - 1);
    return (msb - NETLAT_SUB_BITS + 1) * NETLAT_SUBS + sub;
}

/* The largest value a slot holds (its "le" bound) in ns. The last slot's is nominal: it overflows. */
static inline __u64 netlat_slot_upper_ns(unsigned int slot)
{
    if (slot < NETLAT_SUBS) return (__u64)slot + 1;
    unsigned int msb = slot / NETLAT_SUBS + NETLAT_SUB_BITS - 1;
    __u64 sub = slot % NETLAT_SUBS;
    return ((NETLAT_SUBS + sub + 1) << (msb - NETLAT_SUB_BITS));
}

/* Histogram key: which series a sample belongs to. netns is 0 unless the netns label is enabled. */
struct netlat_hist_key {
    __u8 segment;  /* enum netlat_segment */
    __u8 protocol; /* enum netlat_protocol */
    __u8 family;   /* enum netlat_family */
    __u8 pad;
    __u32 netns; /* network namespace inode, or 0 */
};

/* Series without the netns label live in a per-CPU array, one slot per (segment, protocol,
 * family); the netns-labelled ones in a per-CPU hash keyed by struct netlat_hist_key. */
#define NETLAT_FLAT_SERIES ((int)NETLAT_SEG_COUNT * (int)NETLAT_PROTO_COUNT * (int)NETLAT_FAMILY_COUNT)
static inline __u32 netlat_series_index(unsigned int segment, unsigned int protocol, unsigned int family)
{
    return (segment * NETLAT_PROTO_COUNT + protocol) * NETLAT_FAMILY_COUNT + family;
}

/*
 * Histogram value, per CPU. Slot counters are 32-bit and wrap: readers take differences modulo 2^32
 * between drains, which is exact while fewer than 2^32 samples land in one slot on one CPU between
 * two drains.
 */
struct netlat_hist {
    __u64 count;
    __u64 sum_ns;
    __u32 slots[NETLAT_SLOTS];
};

/* Interface filter: names, IFNAMSIZ each. */
#define NETLAT_MAX_IFACES 8
#define NETLAT_IFNAMSIZ 16
/* Port filters: a bitmap over all 65536 ports is too big for rodata; take a short list. */
#define NETLAT_MAX_PORTS 16
#define NETLAT_MAX_NETNS 16
#define NETLAT_SEND_SYSCALLS 5 /* sendto, sendmsg, sendmmsg, write, writev */
#define NETLAT_SYSCALL_SENDMMSG 2 /* its index in that list */

#endif /* NETLAT_H */
