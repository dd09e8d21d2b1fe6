/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* packet.bpf.h: what a packet, socket or device is: header parsing, namespaces and the filters. */
#ifndef NETLAT_PACKET_BPF_H
#define NETLAT_PACKET_BPF_H

#include "core.bpf.h"

static __always_inline __u32 netns_of_dev(int btf, const struct net_device *dev)
{
    return READ(btf, dev, nd_net.net, ns.inum);
}

static __always_inline __u32 netns_of_sock(int btf, const struct sock *sk)
{
    return READ(btf, sk, __sk_common.skc_net.net, ns.inum);
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
static __always_inline int flow_filtered(__u16 lport, __u16 rport, __u32 netns)
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

/* A packet's flow: in the filters, and measured by flow sampling. */
static __always_inline int flow_wanted(__u16 lport, __u16 rport, __u32 netns)
{
    return flow_sampled(lport, rport) && flow_filtered(lport, rport, netns);
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
    __u32 headers; /* bytes from the IP header to the end of the TCP/UDP header's fixed part */
};

/* The IP header and the TCP/UDP header right after it, as one read: 60 bytes from the network
 * header stay inside the skb's head buffer (skb_shared_info follows the data). */
struct l3_l4 {
    union {
        struct iphdr v4;
        struct ipv6hdr v6;
    } ip;
    struct tcphdr l4; /* where it is without IPv4 options (for IPv4, at ip.v4 + 20) */
};

/* Parses the IPv4/IPv6 + TCP/UDP headers at l3 (inside skb). Returns 0 for anything else. One
 * probe read, a second only for IPv4 options. */
static __always_inline int parse_l3(int btf, const struct sk_buff *skb, const unsigned char *l3,
                                    struct pkt *p)
{
    struct l3_l4 h;
    if (bpf_probe_read_kernel(&h, sizeof(h), l3)) return 0;
    const unsigned char *l4;
    __u8 l4proto;
    struct tcphdr th; /* or the UDP header, in its first 8 bytes */
    if (h.ip.v4.version == 4) {
        if (h.ip.v4.frag_off & bpf_htons(0x1fff)) return 0; /* not the first fragment: no ports */
        l4proto = h.ip.v4.protocol;
        __u32 ihl = h.ip.v4.ihl * 4;
        l4 = l3 + ihl;
        p->family = NETLAT_FAMILY_IPV4;
        if (ihl == sizeof(struct iphdr))
            __builtin_memcpy(&th, (const __u8 *)&h + sizeof(struct iphdr), sizeof(th));
        else if (bpf_probe_read_kernel(&th, sizeof(th), l4))
            return 0;
    } else if (h.ip.v4.version == 6) {
        l4proto = h.ip.v6.nexthdr;
        l4 = l3 + sizeof(struct ipv6hdr);
        p->family = NETLAT_FAMILY_IPV6;
        th = h.l4;
    } else {
        return 0;
    }
    p->headers = (__u32)(l4 - l3) + (l4proto == IPPROTO_TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr));
    if (l4proto == IPPROTO_TCP) {
        p->proto = NETLAT_PROTO_TCP;
        p->seq = bpf_ntohl(th.seq);
        unsigned char *data = READ(btf, skb, data);
        __u32 len = READ(btf, skb, len);
        __u32 hdrs = (__u32)(l4 - data) + th.doff * 4;
        p->payload = len > hdrs ? len - hdrs : 0;
    } else if (l4proto == IPPROTO_UDP) {
        p->proto = NETLAT_PROTO_UDP;
    } else {
        return 0;
    }
    /* Ports are the first 4 bytes of both headers. */
    p->src_port = bpf_ntohs(th.source);
    p->dst_port = bpf_ntohs(th.dest);
    return 1;
}

static __always_inline const unsigned char *skb_network(int btf, const struct sk_buff *skb)
{
    return READ(btf, skb, head) + READ(btf, skb, network_header);
}

static __always_inline __u64 current_pid_tgid(void)
{
    /* netfilter programs (6.4+) have no bpf_get_current_pid_tgid, and every kernel that has them has
     * bpf_get_current_task_btf (5.11+); older kernels take the plain helper. */
    if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf))
        return bpf_get_current_pid_tgid();
    struct task_struct *t = bpf_get_current_task_btf();
    return ((__u64)READ(1, t, tgid) << 32) | (__u32)READ(1, t, pid);
}

/* TCP or UDP over IPv4/IPv6: the protocol and family of a socket, or -1. */
static __always_inline int sock_kind(int btf, const struct sock *sk, __u8 *proto, __u8 *family)
{
    __u16 fam = READ(btf, sk, __sk_common.skc_family);
    __u16 p = READ(btf, sk, sk_protocol);
    if (fam == AF_INET) *family = NETLAT_FAMILY_IPV4;
    else if (fam == AF_INET6) *family = NETLAT_FAMILY_IPV6;
    else return -1;
    if (p == IPPROTO_TCP) *proto = NETLAT_PROTO_TCP;
    else if (p == IPPROTO_UDP) *proto = NETLAT_PROTO_UDP;
    else return -1;
    return 0;
}

/* A socket's traffic: in the filters and, for TCP, measured by flow sampling. A UDP socket's
 * remote port is 0 unless it is connected, so UDP flows are sampled, and an unconnected socket's
 * traffic is filtered by remote port, by their packets' ports, at the stages that see packets (tx
 * network or device, rx driver or device); the others follow. */
static __always_inline int sock_wanted(int btf, const struct sock *sk)
{
    __u16 lport = READ(btf, sk, __sk_common.skc_num);
    __u16 rport = bpf_ntohs(READ(btf, sk, __sk_common.skc_dport));
    if (READ(btf, sk, sk_protocol) == IPPROTO_TCP && !flow_sampled(lport, rport)) return 0;
    if (cfg_n_remote_ports && !rport) /* any remote port: the packets say */
        return flow_filtered(lport, cfg_remote_ports[0], netns_of_sock(btf, sk));
    return flow_filtered(lport, rport, netns_of_sock(btf, sk));
}

/* The inode of a socket's file, which identifies it for its lifetime (0 for kernel sockets). */
static __always_inline __u64 sock_ino(int btf, const struct sock *sk)
{
    const struct socket *sock = READ(btf, sk, sk_socket);
    if (!sock) return 0;
    return BPF_CORE_READ((const struct socket_alloc *)sock, vfs_inode.i_ino);
}

/* The device a locally sent skb leaves through: its route's (skb->dev is set only inside ip_output). */
static __always_inline const struct net_device *skb_out_dev(int btf, const struct sk_buff *skb)
{
    unsigned long refdst = READ(btf, skb, _skb_refdst);
    const struct dst_entry *dst = (const struct dst_entry *)(refdst & ~1UL);
    const struct net_device *dev = dst ? BPF_CORE_READ(dst, dev) : 0;
    return dev ? dev : READ(btf, skb, dev);
}
/* A device that hands its packets to a lower device (macvlan, VLAN, bond, bridge: it has lower
 * devices); the packet's driver stage is the bottom device's transmit. A tunnel (VXLAN) has none:
 * its own transmit is the driver stage of the inner packet. */
static __always_inline int dev_is_stacked(int btf, const struct net_device *dev)
{
    if (!dev) return 0;
    const struct list_head *lower = &dev->adj_list.lower;
    return READ(btf, dev, adj_list.lower.next) != lower;
}


#endif /* NETLAT_PACKET_BPF_H */
