// netlat-floor: the floor of netlatd's overhead. It attaches a BPF program that does nothing
// (returns at once; netfilter programs accept) to every hook netlatd attaches in tracepoint mode on
// this kernel: the same stage table, the same per-stage choice (choose_stages) and the same
// netfilter links, so the floor cannot drift from netlatd's hooks. What netlatd costs above the
// floor is the work of its programs; the floor is what any tool on these hooks pays.
//
//   netlat-floor        (as root; runs until SIGINT or SIGTERM, prints "ready" once attached)
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "daemon/probes/probes.h"
#include "daemon/probes/stages.h"

namespace {

using netlatd::HookCandidate;
using netlatd::HookKind;
using netlatd::ProbeError;

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
    Fd(const Fd&) = delete;
    ~Fd() {
        if (fd >= 0) close(fd);
    }
};

std::string errno_text() { return std::strerror(errno); }

// r0 = value; exit; with `stamp_map` >= 0, first: the clock into that per-CPU array's slot 0.
// `type` is an int: BPF_PROG_TYPE_NETFILTER (32) is newer than the enum of Debian 12's headers, and
// a variable of the enum type holding it is undefined behaviour.
int load_nothing(int type, bpf_attach_type attach, __u32 btf_id, int value, int stamp_map) {
    const bpf_insn stamp[] = {
        {BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ktime_get_ns},
        {BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_0, 0, 0},
        {BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, -4, 0},
        {BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0},
        {BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4},
        {BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, stamp_map},
        {0, 0, 0, 0, 0},
        {BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem},
        {BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 1, 0},
        {BPF_STX | BPF_MEM | BPF_DW, BPF_REG_0, BPF_REG_6, 0, 0},
    };
    const bpf_insn ret[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, value},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    std::vector<bpf_insn> insns;
    if (stamp_map >= 0) insns.assign(std::begin(stamp), std::end(stamp));
    insns.insert(insns.end(), std::begin(ret), std::end(ret));
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = attach, .attach_btf_id = btf_id);
    return bpf_prog_load(static_cast<bpf_prog_type>(type), "netlat_floor", "GPL", insns.data(),
                         insns.size(), &opts);
}

class Floor {
public:
    explicit Floor(bool stamp) : vmlinux_(btf__load_vmlinux_btf(), btf__free) {
        if (!vmlinux_) throw ProbeError("kernel BTF not found (/sys/kernel/btf/vmlinux)");
        if (!stamp) return;
        Fd map(bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "netlat_stamp", 4, 8, 1, nullptr));
        if (map.fd < 0) throw ProbeError("stamp map: create: " + errno_text());
        stamp_map_ = map.fd;
        fds_.push_back(std::move(map));
    }

    // A tp_btf program on a raw tracepoint, found by name in BTF as netlatd finds it.
    void tracepoint(const std::string& name) {
        const int id =
            btf__find_by_name_kind(vmlinux_.get(), ("btf_trace_" + name).c_str(), BTF_KIND_TYPEDEF);
        if (id < 0) throw ProbeError("tracepoint " + name + ": not in the kernel's BTF");
        Fd prog(load_nothing(BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, static_cast<__u32>(id), 0,
                             stamp_map_));
        if (prog.fd < 0) throw ProbeError("tracepoint " + name + ": load: " + errno_text());
        Fd link(bpf_raw_tracepoint_open(nullptr, prog.fd));
        if (link.fd < 0) throw ProbeError("tracepoint " + name + ": attach: " + errno_text());
        own(std::move(prog), std::move(link));
        attached_.push_back(name);
    }

    void netfilter(const HookCandidate& c) {
        Fd prog(load_nothing(netlatd::kProgTypeNetfilter,
                             static_cast<bpf_attach_type>(netlatd::kAttachNetfilter), 0,
                             1 /* NF_ACCEPT */, stamp_map_));
        if (prog.fd < 0) throw ProbeError("netfilter program: load: " + errno_text());
        for (int fd : netlatd::attach_netfilter(prog.fd, c)) fds_.emplace_back(fd);
        fds_.push_back(std::move(prog));
        static const char* hooks[] = {"PRE_ROUTING", "LOCAL_IN", "FORWARD", "LOCAL_OUT",
                                      "POST_ROUTING"};
        attached_.push_back(std::string("nf:") + hooks[c.netfilter.hooknum]);  // IPv4 and IPv6
    }

    const std::vector<std::string>& attached() const { return attached_; }
    void attached_all() { vmlinux_.reset(); }  // the kernel's BTF is large: not kept while waiting

private:
    void own(Fd prog, Fd link) {
        fds_.push_back(std::move(prog));
        fds_.push_back(std::move(link));
    }

    std::unique_ptr<btf, void (*)(btf*)> vmlinux_;
    int stamp_map_ = -1;
    std::vector<Fd> fds_;
    std::vector<std::string> attached_;
};

}  // namespace

int main(int argc, char** argv) {
    const bool stamp = argc == 2 && std::strcmp(argv[1], "--stamp") == 0;
    if (argc > 2 || (argc == 2 && !stamp)) {
        std::fprintf(stderr,
                     "usage: %s [--stamp]: attaches do-nothing BPF programs (--stamp: each stores "
                     "the clock) to netlatd's tracepoint-mode hooks until SIGINT/SIGTERM\n",
                     argv[0]);
        return 2;
    }
    libbpf_set_print(nullptr);
    sigset_t stop_signals;  // taken by sigwait, blocked before anything is attached
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
    try {
        Floor floor(stamp);
        for (const auto& choice : netlatd::choose_stages(netlatd::ProbeMode::Tracepoint,
                                                         netlatd::KernelFeatures::probe())) {
            if (!choice.candidate) continue;  // netlatd disables it too
            if (choice.candidate->kind == HookKind::Netfilter) {
                floor.netfilter(*choice.candidate);
                continue;
            }
            for (const auto* program : choice.programs) floor.tracepoint(program->target);
        }
        const size_t stage_hooks = floor.attached().size();
        for (const auto& program : netlatd::support_programs()) floor.tracepoint(program.target);
        floor.attached_all();

        for (size_t i = 0; i < floor.attached().size(); i++)
            std::printf("%s hook: %s\n", i < stage_hooks ? "stage" : "support",
                        floor.attached()[i].c_str());
        std::printf("ready\n");
        std::fflush(stdout);
        int signal = 0;
        sigwait(&stop_signals, &signal);
    } catch (const ProbeError& e) {
        std::fprintf(stderr, "netlat-floor: %s\n", e.what());
        return 1;
    }
    return 0;
}
