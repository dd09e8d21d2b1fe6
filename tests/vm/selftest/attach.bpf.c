// SPDX-License-Identifier: GPL-2.0
// Harness self-test: one program per hook kind netlatd uses, each counting its hits.
// Proves that kprobe, fentry, tp_btf, raw_tp and cgroup_skb attach in the VM kernel.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum { H_KPROBE, H_FENTRY, H_FEXIT, H_TP_BTF, H_RAW_TP, H_CGROUP_SKB, H_MAX };

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, H_MAX);
  __type(key, __u32);
  __type(value, __u64);
} hits SEC(".maps");

static __always_inline void hit(__u32 k) {
  __u64 *v = bpf_map_lookup_elem(&hits, &k);
  if (v) __sync_fetch_and_add(v, 1);
}

SEC("kprobe/tcp_sendmsg")
int kp_tcp_sendmsg(void *ctx) { hit(H_KPROBE); return 0; }

SEC("fentry/__netif_receive_skb")
int fe_netif_receive(void *ctx) { hit(H_FENTRY); return 0; }

SEC("fexit/tcp_v4_rcv")
int fx_tcp_v4_rcv(void *ctx) { hit(H_FEXIT); return 0; }

SEC("tp_btf/net_dev_queue")
int tb_net_dev_queue(void *ctx) { hit(H_TP_BTF); return 0; }

SEC("raw_tp/netif_receive_skb")
int rt_netif_receive_skb(void *ctx) { hit(H_RAW_TP); return 0; }

SEC("cgroup_skb/ingress")
int cg_ingress(struct __sk_buff *skb) { hit(H_CGROUP_SKB); return 1; }
