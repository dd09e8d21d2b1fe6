#include "daemon/probes/stages.h"

#include <climits>

namespace netlatd {

namespace {

constexpr int NF_INET_PRE_ROUTING = 0;
constexpr int NF_INET_LOCAL_IN = 1;
constexpr int NF_INET_POST_ROUTING = 4;
// The kernel rejects the extreme priorities (NF_IP_PRI_FIRST/LAST) for BPF links.
constexpr int kFirstPriority = INT_MIN + 1;
constexpr int kLastPriority = INT_MAX - 1;

HookCandidate tp_btf(std::string protocols, std::vector<std::string> tracepoints,
                     bool each_optional = false) {
    HookCandidate c{HookKind::TpBtf, std::move(protocols), {}, {}};
    for (auto& tp : tracepoints)
        c.programs.push_back({"tp_" + tp, tp, each_optional});
    return c;
}

// The same kernel functions as fentry and as kprobe programs (fe_<fn> / kp_<fn> in netlat.bpf.c):
// fns are needed, optional_fns are used where the kernel has them, and each {fn, fallback} of
// fns_or is needed, its fallback taken where the kernel lacks fn.
std::vector<HookCandidate> functions(std::string protocols, std::vector<std::string> fns,
                                     std::vector<std::string> optional_fns = {},
                                     std::vector<std::pair<std::string, std::string>> fns_or = {}) {
    HookCandidate fentry{HookKind::Fentry, protocols, {}, {}};
    HookCandidate kprobe{HookKind::Kprobe, protocols, {}, {}};
    auto add = [&](const std::string& fn, bool optional, bool fallback) {
        fentry.programs.push_back({"fe_" + fn, fn, optional, fallback});
        kprobe.programs.push_back({"kp_" + fn, fn, optional, fallback});
    };
    for (const auto& fn : fns) add(fn, false, false);
    for (const auto& fn : optional_fns) add(fn, true, false);
    for (const auto& [fn, fallback] : fns_or) {
        add(fn, false, false);
        add(fallback, false, true);
    }
    return {fentry, kprobe};
}

// Reads: fexit, or a kprobe and kretprobe pair, on each function; optional_fns where the kernel
// has them.
std::vector<HookCandidate> read_functions(std::vector<std::string> fns,
                                          std::vector<std::string> optional_fns = {}) {
    HookCandidate fexit{HookKind::Fentry, "tcp+udp", {}, {}};
    HookCandidate kprobe{HookKind::Kprobe, "tcp+udp", {}, {}};
    auto add = [&](const std::vector<std::string>& list, bool optional) {
        for (const auto& fn : list) {
            fexit.programs.push_back({"fx_" + fn, fn, optional});
            kprobe.programs.push_back({"kp_" + fn, fn, optional});
            kprobe.programs.push_back({"krp_" + fn, fn, optional});
        }
    };
    add(fns, false);
    add(optional_fns, true);
    return {fexit, kprobe};
}

std::vector<HookCandidate> operator+(std::vector<HookCandidate> a, std::vector<HookCandidate> b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::vector<HookCandidate> operator+(std::vector<HookCandidate> a, HookCandidate b) {
    a.push_back(std::move(b));
    return a;
}

HookCandidate netfilter(std::string program, int hooknum, int priority) {
    return {HookKind::Netfilter, "tcp+udp", {{std::move(program), "", false}}, {hooknum, priority}};
}

}  // namespace

std::string_view mode_label(HookKind kind) {
    switch (kind) {
        case HookKind::Fentry: return "fentry";
        case HookKind::Kprobe: return "kprobe";
        case HookKind::TpBtf: return "tracepoint";
        case HookKind::Netfilter: return "netfilter";
    }
    return "none";
}

const std::vector<StageHooks>& stage_table() {
    static const std::vector<StageHooks> table = [] {
        std::vector<StageHooks> t;
        // Since "net: prevent rewrite of msg_name in sock_sendmsg()" (6.6, backported to 6.1.56)
        // the send syscalls call __sock_sendmsg; sock_sendmsg is left to in-kernel senders.
        // Before 6.5, sendfile and splice to a socket call kernel_sendpage (then, on TCP,
        // tcp_sendpage) once per page, past both: optional entry points of the function modes.
        // Without function hooks: the raw sys_enter tracepoint, by name through BTF (no tracefs),
        // filtered on the send syscalls in the program.
        t.push_back({NETLAT_STAGE_TX_SOCKET,
                     functions("tcp+udp", {"__sock_sendmsg"}, {"kernel_sendpage"}) +
                         functions("tcp+udp", {"sock_sendmsg"}, {"kernel_sendpage"}) +
                         tp_btf("tcp+udp", {"sys_enter"})});
        t.push_back({NETLAT_STAGE_TX_TRANSPORT,
                     functions("tcp+udp", {"tcp_sendmsg", "udp_sendmsg", "udpv6_sendmsg"},
                               {"tcp_sendpage"}) +
                         tp_btf("tcp", {"tcp_sendmsg_locked"})});
        t.push_back({NETLAT_STAGE_TX_NETWORK,
                     functions("tcp+udp", {"ip_output", "ip6_output"}) +
                         netfilter("nf_tx_network", NF_INET_POST_ROUTING, kFirstPriority)});
        t.push_back({NETLAT_STAGE_TX_DEVICE,
                     functions("tcp+udp", {"__dev_queue_xmit"}) + tp_btf("tcp+udp", {"net_dev_queue"})});
        t.push_back({NETLAT_STAGE_TX_DRIVER, functions("tcp+udp", {"dev_hard_start_xmit"}) +
                                                 tp_btf("tcp+udp", {"net_dev_start_xmit"})});
        // Receive from drivers and devices: the net:* tracepoints in every mode. The functions
        // miss paths: since 6.15 napi_gro_receive is an inline wrapper of gro_receive_skb; GRO's
        // output goes gro_normal_list -> __netif_receive_skb_list_core, past
        // __netif_receive_skb; napi_gro_frags drivers (gve, mlx4, sfc) call neither. The
        // function hooks stay as the fallback of kernels built without these tracepoints.
        // Loopback and veth hand packets over with __netif_rx; NICs with napi_gro_receive,
        // napi_gro_frags or netif_receive_skb(_list); plain netif_rx is the old entry of the others.
        t.push_back({NETLAT_STAGE_RX_DRIVER,
                     std::vector<HookCandidate>{tp_btf("tcp+udp",
                                                       {"netif_rx", "napi_gro_receive_entry",
                                                        "napi_gro_frags_entry",
                                                        "netif_receive_skb_entry",
                                                        "netif_receive_skb_list_entry"},
                                                       true)} +
                         functions("tcp+udp", {},
                                   {"__netif_rx", "netif_rx", "napi_gro_receive",
                                    "netif_receive_skb"}),
                     true});
        t.push_back({NETLAT_STAGE_RX_DEVICE,
                     std::vector<HookCandidate>{tp_btf("tcp+udp", {"netif_receive_skb"})} +
                         functions("tcp+udp", {"__netif_receive_skb"}),
                     true});
        // GRO's list receive goes ip_list_rcv -> ip_sublist_rcv (ipv6_list_rcv ->
        // ipv6_sublist_rcv), past ip_rcv and ipv6_rcv; both paths call ip_rcv_core and
        // ip6_rcv_core (static: a kernel may inline them into their callers).
        t.push_back({NETLAT_STAGE_RX_NETWORK,
                     functions("tcp+udp", {}, {},
                               {{"ip_rcv_core", "ip_rcv"}, {"ip6_rcv_core", "ipv6_rcv"}}) +
                         netfilter("nf_rx_network", NF_INET_PRE_ROUTING, kFirstPriority)});
        t.push_back({NETLAT_STAGE_RX_TRANSPORT,
                     functions("tcp+udp", {"tcp_v4_rcv", "tcp_v6_rcv", "udp_rcv", "udpv6_rcv"}) +
                         netfilter("nf_rx_transport", NF_INET_LOCAL_IN, kLastPriority)});
        // TCP's segments are joined to the socket where TCP takes them (tcp_rcv_established /
        // tcp_probe) and are queued when the reader is woken (sock_def_readable / sk_data_ready):
        // both are needed for the queued stage.
        t.push_back({NETLAT_STAGE_RX_QUEUED,
                     functions("tcp+udp", {"sock_def_readable", "tcp_rcv_established"}) +
                         tp_btf("tcp+udp", {"sk_data_ready", "tcp_probe"})});
        // splice from a TCP socket reads through tcp_splice_read, and kTLS takes its records off
        // TCP with tcp_read_done (6.0+), both past tcp_recvmsg: the function modes hook them too.
        // Tracepoint mode has sock_recv_length for kTLS, and counts what a splice took
        // (unseen_read) at the socket's next read.
        t.push_back({NETLAT_STAGE_RX_SOCKET,
                     read_functions({"tcp_recvmsg", "udp_recvmsg", "udpv6_recvmsg"},
                                    {"tcp_splice_read", "tcp_read_done"}) +
                         tp_btf("tcp+udp", {"sock_recv_length"})});
        return t;
    }();
    return table;
}

const std::vector<HookProgram>& support_programs() {
    static const std::vector<HookProgram> programs = {
        {"tp_kfree_skb", "kfree_skb", false},
        {"tp_consume_skb", "consume_skb", false},
    };
    return programs;
}

}  // namespace netlatd
