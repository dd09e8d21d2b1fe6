/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* packet.bpf.h: what a packet, socket or device is: header parsing, namespaces and the filters. */
#ifndef NETLAT_PACKET_BPF_H
#define NETLAT_PACKET_BPF_H

#include "core.bpf.h"

static __always_inline __u32 netns_of_dev(const struct net_device *dev)
{
    return BPF_CORE_READ(dev, nd_net.net, ns.inum);
}

static __always_inline __u32 netns_of_sock(const struct sock *sk)
{
    return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
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
    /* netfilter programs (6.4+) have no bpf_get_current_pid_tgid, and every kernel that has them has
     * bpf_get_current_task_btf (5.11+); older kernels take the plain helper. */
    if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf))
        return bpf_get_current_pid_tgid();
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

/* The device a locally sent skb leaves through: its route's (skb->dev is set only inside ip_output). */
static __always_inline const struct net_device *skb_out_dev(const struct sk_buff *skb)
{
    unsigned long refdst = BPF_CORE_READ(skb, _skb_refdst);
    const struct dst_entry *dst = (const struct dst_entry *)(refdst & ~1UL);
    const struct net_device *dev = dst ? BPF_CORE_READ(dst, dev) : 0;
    return dev ? dev : BPF_CORE_READ(skb, dev);
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


#endif /* NETLAT_PACKET_BPF_H */
