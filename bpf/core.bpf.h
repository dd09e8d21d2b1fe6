/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* core.bpf.h: configuration from the daemon, histograms, counters and the small helpers every stage uses. */
#ifndef NETLAT_CORE_BPF_H
#define NETLAT_CORE_BPF_H

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
const volatile __u8 cfg_netns_label = 0;
const volatile __u32 cfg_hooked_stages = ~0u; /* bit per enum netlat_stage that has a hook */
const volatile __u32 cfg_kprobe_stages = 0;    /* bit per enum netlat_stage hooked by kprobes */
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

/* ---- set by the daemon while running ---- */
/* Measure 1 in N flows, chosen by port pair (flow_sampled): the config's sampling, raised by the
 * overhead budget when the programs cost more than it allows. */
volatile __u32 flow_sample_every = 1;

/* ---- histograms and counters ----
 * Per-CPU data is updated with plain increments, not atomic ones: no other CPU writes it. A program
 * interrupted on its CPU by another that updates the same value (a softirq arriving inside a
 * process-context program, between its load and its store) can lose that one increment: a rare
 * undercount, bought for several atomic instructions per sample. */

/* Series without the netns label: one slot per (segment, protocol, family), no hashing. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, NETLAT_FLAT_SERIES);
    __type(key, __u32);
    __type(value, struct netlat_hist);
} hist_flat SEC(".maps");

/* Series with the netns label (cfg_netns_label). The daemon sizes it from labels.max_series (1
 * entry when the label is off) and preallocates it when kprobe programs are loaded: kernels before
 * 6.1 warn about, and PREEMPT_RT kernels refuse, run-time allocated hash maps in kprobe programs. */
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

/* ---- small helpers ---- */

/* Reads a chain of fields, as BPF_CORE_READ(src, a, ...) does. Programs whose arguments are typed
 * kernel pointers (tp_btf, fentry/fexit, netfilter: btf = 1) load them directly, with the same CO-RE
 * relocations; kprobes (btf = 0), whose arguments are plain addresses, need a probe read per
 * pointer. btf is a constant of each entry point, so each program keeps only its own kind. */
#define READ(btf, src, a, ...)                                                       \
    ((btf) ? (___type((src), a, ##__VA_ARGS__))___arrow((src), a, ##__VA_ARGS__)     \
           : BPF_CORE_READ((src), a, ##__VA_ARGS__))

static __always_inline void count_n(__u32 idx, __u64 n)
{
    __u64 *c = bpf_map_lookup_elem(&counters, &idx);
    if (c) *c += n;
}

static __always_inline void count(__u32 idx) { count_n(idx, 1); }

/* Inserts or replaces an entry; only a new key counts as an insert, so the daemon's eviction
 * estimate (inserts - deletes - live entries) is not inflated by keys written again. Returns 1 for
 * a new key. */
static __always_inline int upsert_key(void *map, int map_id, const void *key, const void *value)
{
    if (!bpf_map_update_elem(map, key, value, BPF_NOEXIST)) {
        count(NETLAT_CTR_MAP_INSERT(map_id));
        return 1;
    }
    bpf_map_update_elem(map, key, value, BPF_EXIST);
    return 0;
}

static __always_inline void upsert(void *map, int map_id, __u64 key, void *value)
{
    upsert_key(map, map_id, &key, value);
}

static __always_inline void count_unmatched(int seg, int reason)
{
    count(NETLAT_CTR_UNMATCHED(seg, reason));
}

/* The histogram of a series (created on first use when the netns label is on). */
static __always_inline struct netlat_hist *hist_of(int seg, __u8 proto, __u8 family, __u32 netns)
{
    if (!cfg_netns_label) {
        __u32 i = netlat_series_index(seg, proto, family);
        return bpf_map_lookup_elem(&hist_flat, &i);
    }
    struct netlat_hist_key key = {.segment = seg, .protocol = proto, .family = family, .netns = netns};
    struct netlat_hist *h = bpf_map_lookup_elem(&hist, &key);
    if (h) return h;
    __u32 zero = 0;
    struct netlat_hist *z = bpf_map_lookup_elem(&hist_zero, &zero);
    if (!z) return 0;
    bpf_map_update_elem(&hist, &key, z, BPF_NOEXIST);
    return bpf_map_lookup_elem(&hist, &key);
}

static __always_inline void record(int seg, __u8 proto, __u8 family, __u32 netns, __u64 now, __u64 then)
{
    if (!then) { /* the packet's start stage did not run for it (e.g. a late start at rx device) */
        count_unmatched(seg, NETLAT_UNMATCHED_NO_START);
        return;
    }
    if (then > now) return;
    __u64 delta = now - then;
    struct netlat_hist *h = hist_of(seg, proto, family, netns);
    if (!h) return;
    /* 64-bit and behind a barrier: older verifiers (6.1) lose a bound checked on a 32-bit copy. */
    __u64 slot = netlat_slot(delta);
    barrier_var(slot);
    if (slot >= NETLAT_SLOTS) return;
    h->count += 1;
    h->sum_ns += delta;
    h->slots[slot] += 1;
}

/* Calls cb(i, ctx) for i = 0, 1, ... until it returns non-zero, at most max times: bpf_loop (5.17+)
 * where the kernel has it, else a bounded loop of LOOP_FALLBACK calls (the rest waits for the next
 * event). ctx must be on the caller's stack. */
#define LOOP_FALLBACK 64
static __always_inline void loop(__u32 max, long (*cb)(__u32, void *), void *ctx)
{
    if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_loop)) {
        bpf_loop(max, cb, ctx, 0);
        return;
    }
    for (__u32 i = 0; i < LOOP_FALLBACK && i < max; i++)
        if (cb(i, ctx)) break;
}

/* The consecutive segment that ends at a stage (it spans any stage without a hook before it). */
static __always_inline int segment_into(int stage)
{
    if (stage <= NETLAT_STAGE_TX_DRIVER)
        return NETLAT_SEG_TX_SOCKET_TO_TRANSPORT + (stage - NETLAT_STAGE_TX_TRANSPORT);
    return NETLAT_SEG_RX_DRIVER_TO_DEVICE + (stage - NETLAT_STAGE_RX_DEVICE);
}

static __always_inline int seq_before_eq(__u32 a, __u32 b) { return (__s32)(a - b) <= 0; }


/* Whether a flow (local and remote port) is measured: every packet and call of a flow gets the same
 * answer at every stage in both directions, so a measured flow's joins stay whole. */
static __always_inline int flow_sampled(__u16 lport, __u16 rport)
{
    return netlat_flow_sampled(lport, rport, flow_sample_every);
}


#endif /* NETLAT_CORE_BPF_H */
