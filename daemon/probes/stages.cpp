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

HookCandidate netfilter(std::string program, int hooknum, int priority) {
    return {HookKind::Netfilter, "tcp+udp", {{std::move(program), "", false}}, {hooknum, priority}};
}

}  // namespace

std::string_view mode_label(HookKind kind) {
    switch (kind) {
        case HookKind::Fentry: return "fentry";
        case HookKind::Kprobe: return "kprobe";
        case HookKind::TpBtf:
        case HookKind::Tracepoint: return "tracepoint";
        case HookKind::Netfilter: return "netfilter";
    }
    return "none";
}

const std::vector<StageHooks>& stage_table() {
    static const std::vector<StageHooks> table = [] {
        std::vector<StageHooks> t;
        HookCandidate sys_enter{HookKind::Tracepoint, "tcp+udp", {}, {}};
        for (const char* sc : {"sendto", "sendmsg", "sendmmsg", "write", "writev"})
            sys_enter.programs.push_back({std::string("tp_sys_enter_") + sc,
                                          std::string("syscalls/sys_enter_") + sc, false});
        t.push_back({NETLAT_STAGE_TX_SOCKET, {sys_enter}});
        t.push_back({NETLAT_STAGE_TX_TRANSPORT, {tp_btf("tcp", {"tcp_sendmsg_locked"})}});
        t.push_back({NETLAT_STAGE_TX_NETWORK,
                     {netfilter("nf_tx_network", NF_INET_POST_ROUTING, kFirstPriority)}});
        t.push_back({NETLAT_STAGE_TX_DEVICE, {tp_btf("tcp+udp", {"net_dev_queue"})}});
        t.push_back({NETLAT_STAGE_TX_DRIVER, {tp_btf("tcp+udp", {"net_dev_start_xmit"})}});
        t.push_back({NETLAT_STAGE_RX_DRIVER,
                     {tp_btf("tcp+udp",
                             {"netif_rx", "napi_gro_receive_entry", "netif_receive_skb_entry",
                              "netif_receive_skb_list_entry"},
                             true)}});
        t.push_back({NETLAT_STAGE_RX_DEVICE, {tp_btf("tcp+udp", {"netif_receive_skb"})}});
        t.push_back({NETLAT_STAGE_RX_NETWORK,
                     {netfilter("nf_rx_network", NF_INET_PRE_ROUTING, kFirstPriority)}});
        t.push_back({NETLAT_STAGE_RX_TRANSPORT,
                     {netfilter("nf_rx_transport", NF_INET_LOCAL_IN, kLastPriority)}});
        // TCP's segments are joined to the socket where TCP takes them (tcp_probe) and are queued
        // when the reader is woken (sk_data_ready): both are needed for the TCP queued stage.
        auto queued = tp_btf("tcp+udp", {"sk_data_ready", "tcp_probe"});
        t.push_back({NETLAT_STAGE_RX_QUEUED, {queued}});
        t.push_back({NETLAT_STAGE_RX_SOCKET, {tp_btf("tcp+udp", {"sock_recv_length"})}});
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
