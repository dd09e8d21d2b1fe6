// The hook candidates of every stage, in the order auto mode tries them. One table: the loader,
// the logs, netlatd_stage_info and docs/KERNELS.md all read it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "bpf/netlat.h"

namespace netlatd {

// How a candidate attaches.
enum class HookKind {
    Fentry,      // SEC("fentry/...") or fexit: BPF trampoline on a kernel function
    Kprobe,      // SEC("kprobe/...") or kretprobe
    TpBtf,       // SEC("tp_btf/..."): a raw tracepoint found by name in BTF, no tracefs needed
    Netfilter,   // BPF_PROG_TYPE_NETFILTER link on a hook, per network namespace
};

// The metric label of a kind: netlatd_stage_info{mode=...}.
std::string_view mode_label(HookKind kind);

struct NetfilterHook {
    int hooknum;   // NF_INET_*
    int priority;  // within the hook
};

// One program of a candidate: the BPF program (by its function name in netlat.bpf.c) and the kernel
// object it attaches to (function, tracepoint or netfilter hook).
struct HookProgram {
    std::string program;
    std::string target;  // "tcp_sendmsg", "tcp_sendmsg_locked", "sys_enter", ...
    bool optional = false;  // the candidate still works if this one is missing (e.g. one of several
                            // driver entry points)
    bool fallback = false;  // used only where the program before it is unusable (a function the
                            // kernel inlines: its caller instead)
};

struct HookCandidate {
    HookKind kind;
    std::string protocols;  // "tcp+udp", "tcp", "udp": what this candidate covers
    std::vector<HookProgram> programs;
    NetfilterHook netfilter{};  // for HookKind::Netfilter
};

struct StageHooks {
    netlat_stage stage;
    std::vector<HookCandidate> candidates;  // in order of preference
    // Its tracepoint candidate is taken in every probe mode (and listed first): the function
    // hooks of the stage miss paths the tracepoints cover.
    bool tracepoint_in_every_mode = false;
};

// The stage table. Candidates of several protocols may be chosen together (TCP and UDP transport).
const std::vector<StageHooks>& stage_table();

// Programs every mode needs regardless of stages (entry cleanup on skb free).
const std::vector<HookProgram>& support_programs();

}  // namespace netlatd
