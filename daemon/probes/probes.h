// Loading and attaching netlatd's BPF object: choose a hook for every stage (probe mode, kernel
// features), switch off the entry points not chosen, load once, attach, and own every attachment
// through a file descriptor so that nothing outlives the process.
#pragma once

#include <array>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bpf/netlat.h"
#include "daemon/config/config.h"
#include "daemon/model/types.h"
#include "daemon/probes/netns.h"
#include "daemon/probes/stages.h"

struct netlat;  // the bpftool skeleton
struct bpf_link;
struct btf;

namespace netlatd {

// A start-up failure: one line naming what is missing or what failed.
struct ProbeError : std::runtime_error {
    using runtime_error::runtime_error;
};

// What the kernel offers, probed once (BTF, program types, a test attach). Nothing here needs
// tracefs or debugfs: tracepoints are found by name in BTF.
struct KernelFeatures {
    bool fentry = false;
    bool kprobe = false;
    bool netfilter_link = false;
    std::string fentry_reason;  // why not, when false
    std::string kprobe_reason;
    bool has_tp_btf(const std::string& tracepoint) const;
    bool has_function(const std::string& function) const;  // in BTF (fentry) and attachable
    // Why program p of candidate c cannot be used on this kernel ("tracepoint sys_enter: no such
    // tracepoint in the kernel's BTF"), or "" if it can.
    std::string unusable(const HookCandidate& c, const HookProgram& p) const;
    static KernelFeatures probe();

    struct Btf {  // the kernel's BTF (tests build one)
        ::btf* vmlinux = nullptr;
        ~Btf();
    };
    std::shared_ptr<Btf> btf;
};

// The hook chosen for a stage, or why it has none.
struct StageChoice {
    netlat_stage stage;
    const HookCandidate* candidate = nullptr;  // nullptr: disabled
    std::vector<const HookProgram*> programs;  // those available on this kernel
    std::string reason;                        // when disabled, or what a candidate does not cover
};

// Per stage, the first candidate of a kind allowed by the mode whose programs this kernel has; a
// stage with none is disabled with the reason. Throws ProbeError when a forced mode's kernel
// feature is missing.
std::vector<StageChoice> choose_stages(ProbeMode mode, const KernelFeatures& kernel);

// Debian 12's libbpf (1.1) predates netfilter programs: the numbers are from the kernel's uapi.
constexpr int kProgTypeNetfilter = 32;  // BPF_PROG_TYPE_NETFILTER
constexpr int kAttachNetfilter = 45;    // BPF_NETFILTER

// Links netfilter program prog_fd to candidate c's hook for IPv4 and IPv6 in the current network
// namespace; the fds own the links. Throws ProbeError.
std::vector<int> attach_netfilter(int prog_fd, const HookCandidate& c);

// "tcp_sendmsg_locked", "nf:POST_ROUTING", ...: the stage_info hook label of a chosen stage.
std::string hook_label(const StageChoice& choice);

class Probes {
public:
    // Throws ProbeError.
    explicit Probes(const Config& config);
    ~Probes();
    Probes(const Probes&) = delete;
    Probes& operator=(const Probes&) = delete;

    const std::vector<StageChoice>& choices() const { return choices_; }
    std::vector<StageInfo> stage_info() const;
    std::vector<ProgramRef> programs() const;
    MapFds map_fds() const;
    // Hooks the netfilter stages into network namespaces that appeared since the last call and
    // releases those of namespaces that are gone.
    void sync_namespaces();

    // Measures 1 in `every` flows (by port pair) from now on; the programs read it at each packet.
    void set_flow_sampling(uint32_t every);

private:
    void configure(const Config& config);
    void load(bool bpf_stats);
    void attach(const std::string& mode);
    std::vector<int> netfilter_links(const StageChoice& choice) const;  // in the current netns
    void detach_all();

    netlat* skel_ = nullptr;
    std::vector<StageChoice> choices_;
    std::vector<bpf_link*> links_;
    std::unique_ptr<NamespaceHooks> netfilter_;  // netfilter links, per network namespace
    int stats_fd_ = -1;  // kernel BPF run-time stats stay on while this is open (bpf_stats: true)
};

}  // namespace netlatd
