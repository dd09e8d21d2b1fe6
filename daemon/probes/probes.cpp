#include "daemon/probes/probes.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <set>
#include <thread>

#include "daemon/model/names.h"
#include "netlat.skel.h"

namespace netlatd {

namespace {

constexpr int kNfprotoIpv4 = 2;
constexpr int kNfprotoIpv6 = 10;

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
    std::string out;
    for (const auto& part : parts) out += (out.empty() ? "" : separator) + part;
    return out;
}

std::string stage_name(netlat_stage stage) {
    return std::string(names::direction_of_stage(stage)) + "/" +
           std::string(names::kStages[stage].stage);
}

// bpf(BPF_LINK_CREATE) for a netfilter hook, laid out as the kernel's union bpf_attr.
int netfilter_link_create(int prog_fd, int pf, int hooknum, int priority) {
    struct {
        uint32_t prog_fd, target_fd, attach_type, flags;
        uint32_t pf, hooknum;
        int32_t priority;
        uint32_t nf_flags;
        uint8_t pad[128];
    } attr{};
    attr.prog_fd = static_cast<uint32_t>(prog_fd);
    attr.attach_type = kAttachNetfilter;
    attr.pf = static_cast<uint32_t>(pf);
    attr.hooknum = static_cast<uint32_t>(hooknum);
    attr.priority = priority;
    int fd = static_cast<int>(syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr)));
    return fd < 0 ? -errno : fd;
}

int libbpf_log(enum libbpf_print_level level, const char* format, va_list args) {
    // Whole messages: a verifier log is one message of many lines.
    va_list copy;
    va_copy(copy, args);
    const int size = vsnprintf(nullptr, 0, format, copy);
    va_end(copy);
    if (size <= 0) return 0;
    std::string line(static_cast<size_t>(size) + 1, '\0');
    vsnprintf(line.data(), line.size(), format, args);
    line.resize(static_cast<size_t>(size));
    while (!line.empty() && line.back() == '\n') line.pop_back();
    if (level == LIBBPF_WARN)
        spdlog::debug("libbpf: {}", line);  // failures are reported by us, with context
    else
        spdlog::trace("libbpf: {}", line);
    return 0;
}

}  // namespace

KernelFeatures::Btf::~Btf() { btf__free(vmlinux); }

bool KernelFeatures::has_tp_btf(const std::string& tracepoint) const {
    return btf && btf->vmlinux &&
           btf__find_by_name_kind(btf->vmlinux, ("btf_trace_" + tracepoint).c_str(),
                                  BTF_KIND_TYPEDEF) >= 0;
}

std::string KernelFeatures::unusable(const HookCandidate& c, const HookProgram& p) const {
    const std::string what = std::string(mode_label(c.kind)) + " " + p.target + ": ";
    switch (c.kind) {
        case HookKind::Fentry:
            if (!fentry) return what + fentry_reason;
            if (!has_function(p.target)) return what + "not a function in the kernel's BTF";
            return "";
        case HookKind::Kprobe:
            if (!kprobe) return what + kprobe_reason;
            if (!has_function(p.target)) return what + "not a function in the kernel's BTF";
            return "";
        case HookKind::TpBtf:
            return has_tp_btf(p.target) ? "" : what + "no such tracepoint in the kernel's BTF";
        case HookKind::Netfilter:
            return netfilter_link ? ""
                                  : "netfilter " + p.program +
                                        ": the kernel has no netfilter BPF links (6.4+)";
    }
    return what + "unknown hook kind";
}

bool KernelFeatures::has_function(const std::string& function) const {
    return btf && btf->vmlinux &&
           btf__find_by_name_kind(btf->vmlinux, function.c_str(), BTF_KIND_FUNC) >= 0;
}

KernelFeatures KernelFeatures::probe() {
    KernelFeatures k;
    k.btf = std::make_shared<Btf>();
    k.btf->vmlinux = btf__load_vmlinux_btf();
    if (!k.btf->vmlinux)
        throw ProbeError("kernel BTF not found (/sys/kernel/btf/vmlinux): netlatd needs a kernel "
                         "built with CONFIG_DEBUG_INFO_BTF");
    k.netfilter_link =
        btf__find_by_name_kind(k.btf->vmlinux, "bpf_nf_ctx", BTF_KIND_STRUCT) >= 0;

    std::error_code ec;
    k.kprobe = std::filesystem::exists("/sys/bus/event_source/devices/kprobe/type", ec);
    if (!k.kprobe)
        k.kprobe_reason = "the kernel has no kprobe support (CONFIG_KPROBES is off: "
                          "no /sys/bus/event_source/devices/kprobe)";

    // fentry: load a do-nothing program on a traced function and attach it.
    int btf_id = btf__find_by_name_kind(k.btf->vmlinux, "tcp_sendmsg", BTF_KIND_FUNC);
    if (btf_id < 0) {
        k.fentry_reason = "tcp_sendmsg, the test target, is not in the kernel's BTF";
    } else {
        struct bpf_insn insns[] = {
            {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
            {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
        };
        LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_FENTRY,
                    .attach_btf_id = static_cast<__u32>(btf_id));
        int prog = bpf_prog_load(BPF_PROG_TYPE_TRACING, "netlat_probe", "GPL", insns, 2, &opts);
        if (prog < 0) {
            k.fentry_reason = "the kernel refuses fentry programs (" + errno_text(errno) +
                              "; BPF trampolines or the function tracer are unavailable)";
        } else {
            int link = bpf_link_create(prog, 0, BPF_TRACE_FENTRY, nullptr);
            if (link < 0) {
                k.fentry_reason =
                    "a test attach to tcp_sendmsg failed (" + errno_text(errno) + ")";
            } else {
                k.fentry = true;
                close(link);
            }
            close(prog);
        }
    }
    return k;
}

Probes::Probes(const Config& config) {
    libbpf_set_print(libbpf_log);
    KernelFeatures kernel = KernelFeatures::probe();
    choices_ = choose_stages(config.probe_mode, kernel);
    skel_ = netlat__open();
    if (!skel_) throw ProbeError("cannot open the BPF object: " + errno_text(errno));
    try {
        configure(config);
        load(config.bpf_stats);
        attach(std::string(to_string(config.probe_mode)));
    } catch (...) {
        detach_all();
        throw;
    }
}

void Probes::detach_all() {
    // Each detach waits for an RCU grace period; detaching concurrently lets them share grace
    // periods, so stopping takes tens of milliseconds instead of seconds.
    std::vector<std::thread> workers;
    for (bpf_link* l : links_) workers.emplace_back([l] { bpf_link__destroy(l); });
    if (netfilter_)
        for (int fd : netfilter_->release_all()) workers.emplace_back([fd] { close(fd); });
    for (auto& w : workers) w.join();
    links_.clear();
    if (stats_fd_ >= 0) close(stats_fd_);
    stats_fd_ = -1;
    netlat__destroy(skel_);
    skel_ = nullptr;
}

Probes::~Probes() { detach_all(); }

std::vector<StageChoice> choose_stages(ProbeMode mode, const KernelFeatures& kernel) {
    if (mode == ProbeMode::Fentry && !kernel.fentry)
        throw ProbeError("--probe-mode fentry: fentry: " + kernel.fentry_reason);
    if (mode == ProbeMode::Kprobe && !kernel.kprobe)
        throw ProbeError("--probe-mode kprobe: kprobes: " + kernel.kprobe_reason);

    auto allowed = [&](HookKind kind) {
        switch (mode) {
            case ProbeMode::Auto: return true;
            case ProbeMode::Fentry: return kind == HookKind::Fentry;
            case ProbeMode::Kprobe: return kind == HookKind::Kprobe;
            case ProbeMode::Tracepoint:
                return kind == HookKind::TpBtf || kind == HookKind::Netfilter;
        }
        return false;
    };

    std::vector<StageChoice> choices;
    for (const StageHooks& stage : stage_table()) {
        StageChoice choice{stage.stage, nullptr, {}, {}};
        std::vector<std::string> tried;  // why each candidate tried is unusable
        for (const HookCandidate& c : stage.candidates) {
            if (!allowed(c.kind) && !(stage.tracepoint_in_every_mode && c.kind == HookKind::TpBtf))
                continue;
            std::vector<const HookProgram*> have;
            bool complete = true;
            for (size_t i = 0; i < c.programs.size(); i++) {
                const HookProgram& p = c.programs[i];
                if (p.fallback && !have.empty() && have.back() == &c.programs[i - 1]) continue;
                std::string why = kernel.unusable(c, p);
                const bool has_fallback = i + 1 < c.programs.size() && c.programs[i + 1].fallback;
                if (why.empty()) {
                    have.push_back(&p);
                } else {
                    tried.push_back(why);
                    if (!p.optional && !has_fallback) complete = false;
                }
            }
            if (complete && !have.empty()) {
                choice.candidate = &c;
                choice.programs = std::move(have);
                break;
            }
        }
        if (!choice.candidate)
            choice.reason = tried.empty() ? "no hook in probe mode " + std::string(to_string(mode))
                                          : join(tried, "; ");
        choices.push_back(std::move(choice));
    }
    return choices;
}

void Probes::set_flow_sampling(uint32_t every) {
    // A plain store to the object's .data, which the programs map: they see it at their next run.
    __atomic_store_n(&skel_->data->flow_sample_every, every, __ATOMIC_RELAXED);
}

void Probes::configure(const Config& config) {
    auto* ro = skel_->rodata;
    skel_->data->flow_sample_every = config.sampling;
    ro->cfg_netns_label = config.labels.netns ? 1 : 0;
    __u32 hooked = 0, kprobed = 0;
    for (const StageChoice& c : choices_) {
        if (c.candidate) hooked |= 1u << c.stage;
        if (c.candidate && c.candidate->kind == HookKind::Kprobe) kprobed |= 1u << c.stage;
    }
    ro->cfg_hooked_stages = hooked;
    ro->cfg_kprobe_stages = kprobed;
    // The receive state in socket local storage unless a program that uses it is a kprobe.
    ro->cfg_rx_sk_storage =
        (kprobed & (1u << NETLAT_STAGE_RX_QUEUED | 1u << NETLAT_STAGE_RX_SOCKET)) ? 0 : 1;
    if (kprobed) {
        // For the rx check of kprobe skips (bpf/rx.bpf.h); unreadable or absent: the check is off.
        std::ifstream kallsyms("/proc/kallsyms");
        std::string line;
        while (std::getline(kallsyms, line)) {
            std::istringstream fields(line);
            std::string address, type, name;
            fields >> address >> type >> name;
            __u64 value = std::strtoull(address.c_str(), nullptr, 16);
            if (name == "bpf_prog_active") ro->cfg_bpf_prog_active = value;
            else if (name == "current_kprobe") ro->cfg_current_kprobe = value;
            else if (name == "__per_cpu_offset") ro->cfg_per_cpu_offset = value;
        }
    }
    ro->cfg_stale_ns = static_cast<__u64>(config.maps.stale_after.count());
    const auto& f = config.filters;
    ro->cfg_n_local_ports = static_cast<__u32>(f.local_ports.size());
    for (size_t i = 0; i < f.local_ports.size() && i < NETLAT_MAX_PORTS; i++)
        ro->cfg_local_ports[i] = f.local_ports[i];
    ro->cfg_n_remote_ports = static_cast<__u32>(f.remote_ports.size());
    for (size_t i = 0; i < f.remote_ports.size() && i < NETLAT_MAX_PORTS; i++)
        ro->cfg_remote_ports[i] = f.remote_ports[i];
    ro->cfg_n_ifaces = static_cast<__u32>(f.interfaces.size());
    for (size_t i = 0; i < f.interfaces.size() && i < NETLAT_MAX_IFACES; i++)
        std::strncpy(const_cast<char*>(ro->cfg_ifaces[i]), f.interfaces[i].c_str(),
                     NETLAT_IFNAMSIZ - 1);
    const long send_syscalls[] = {SYS_sendto, SYS_sendmsg, SYS_sendmmsg, SYS_write, SYS_writev};
    static_assert(NETLAT_SYSCALL_SENDMMSG == 2);  // send_syscalls[2]
    static_assert(std::size(send_syscalls) == NETLAT_SEND_SYSCALLS);
    for (size_t i = 0; i < std::size(send_syscalls); i++) ro->cfg_send_syscalls[i] = send_syscalls[i];
    ro->cfg_n_netns = static_cast<__u32>(f.netns.size());
    for (size_t i = 0; i < f.netns.size() && i < NETLAT_MAX_NETNS; i++)
        ro->cfg_netns[i] = f.netns[i];

    auto size = [](bpf_map* map, uint32_t entries) {
        if (int err = bpf_map__set_max_entries(map, entries))
            throw ProbeError(std::string("map ") + bpf_map__name(map) +
                             ": cannot size: " + errno_text(err));
    };
    size(skel_->maps.tx_skb, config.maps.skb_entries);
    size(skel_->maps.rx_skb, config.maps.skb_entries);
    size(skel_->maps.pending, config.maps.skb_entries);
    size(skel_->maps.tx_thread, config.maps.thread_entries);
    size(skel_->maps.tx_ring, config.maps.socket_entries);
    size(skel_->maps.rx_ring, config.maps.socket_entries);
    // netns-labelled series only; without the label every series is in hist_flat.
    size(skel_->maps.hist, config.labels.netns ? std::max(64u, config.labels.max_series * 2) : 1);

    // Only the chosen entry points load.
    std::set<std::string> wanted;
    bool kprobes = false;
    for (const StageChoice& c : choices_) {
        for (const HookProgram* p : c.programs) wanted.insert(p->program);
        kprobes |= c.candidate && c.candidate->kind == HookKind::Kprobe;
    }
    // Kprobe programs get a preallocated hist (kernels before 6.1 warn about run-time allocation
    // there, PREEMPT_RT kernels refuse it); its memory is then entries x CPUs x one histogram.
    if (kprobes) bpf_map__set_map_flags(skel_->maps.hist, 0);
    for (const HookProgram& p : support_programs()) wanted.insert(p.program);
    for (const std::string& name : wanted)
        if (!bpf_object__find_program_by_name(skel_->obj, name.c_str()))
            throw ProbeError("the BPF object has no program " + name +
                             " (daemon/probes/stages.cpp and bpf/netlat.bpf.c disagree)");
    bpf_program* prog;
    bpf_object__for_each_program(prog, skel_->obj) {
        bool on = wanted.count(bpf_program__name(prog)) > 0;
        bpf_program__set_autoload(prog, on);
        if (std::string(bpf_program__section_name(prog)) == "netfilter") {
            bpf_program__set_type(prog, static_cast<bpf_prog_type>(kProgTypeNetfilter));
            bpf_program__set_expected_attach_type(prog,
                                                  static_cast<bpf_attach_type>(kAttachNetfilter));
        }
    }
}

void Probes::load(bool bpf_stats) {
    if (int err = netlat__load(skel_))
        throw ProbeError("cannot load the BPF programs: " + errno_text(err) +
                         " (run with log_level: debug for the verifier's log)");
    // Statistics slow down every BPF program of the host, so they are on only when asked for.
    if (!bpf_stats) return;
    stats_fd_ = bpf_enable_stats(BPF_STATS_RUN_TIME);
    if (stats_fd_ < 0)
        spdlog::warn("kernel BPF run-time statistics unavailable ({}): "
                     "netlatd_bpf_program_run_seconds_total stays 0",
                     errno_text(errno));
}

std::vector<int> attach_netfilter(int prog_fd, const HookCandidate& c) {
    std::vector<int> fds;
    for (int pf : {kNfprotoIpv4, kNfprotoIpv6}) {
        // A priority holds one BPF program per hook (EBUSY): another netlatd, or another tool,
        // may have ours; step inwards until a free one.
        const int step = c.netfilter.priority < 0 ? 1 : -1;
        int fd = -EBUSY;
        for (int i = 0; i < 64 && fd == -EBUSY; i++)
            fd = netfilter_link_create(prog_fd, pf, c.netfilter.hooknum,
                                       c.netfilter.priority + i * step);
        if (fd < 0) {
            for (int f : fds) close(f);
            throw ProbeError("netfilter link for " + c.programs.front().program + " (" +
                             (pf == kNfprotoIpv4 ? "ipv4" : "ipv6") + "): " + errno_text(fd));
        }
        fds.push_back(fd);
    }
    return fds;
}

std::vector<int> Probes::netfilter_links(const StageChoice& choice) const {
    const HookCandidate& c = *choice.candidate;
    bpf_program* prog =
        bpf_object__find_program_by_name(skel_->obj, c.programs.front().program.c_str());
    return attach_netfilter(bpf_program__fd(prog), c);
}

void Probes::sync_namespaces() {
    if (netfilter_) netfilter_->sync();
}

// A forced mode whose kernel feature is missing failed in choose(); here, as in auto mode, a stage
// without a hook of the allowed kinds is disabled with its reason, and netlatd runs on. Nothing
// attached at all is an error.
void Probes::attach(const std::string& mode) {
    std::vector<int> own_netfilter;
    for (StageChoice& choice : choices_) {
        const std::string name = stage_name(choice.stage);
        if (!choice.candidate) {
            spdlog::warn("stage {}: disabled: {}", name, choice.reason);
            continue;
        }
        try {
            if (choice.candidate->kind == HookKind::Netfilter) {
                auto fds = netfilter_links(choice);
                own_netfilter.insert(own_netfilter.end(), fds.begin(), fds.end());
            } else {
                for (const HookProgram* p : choice.programs) {
                    bpf_program* prog =
                        bpf_object__find_program_by_name(skel_->obj, p->program.c_str());
                    bpf_link* link = bpf_program__attach(prog);
                    if (!link)
                        throw ProbeError(std::string(mode_label(choice.candidate->kind)) + " " +
                                         p->target + ": attach failed: " + errno_text(errno));
                    links_.push_back(link);
                }
            }
        } catch (const ProbeError& e) {
            choice.reason = e.what();
            choice.candidate = nullptr;
            choice.programs.clear();
            spdlog::warn("stage {}: disabled: {}", name, choice.reason);
            continue;
        }
        spdlog::info("stage {}: {} {} ({})", name, mode_label(choice.candidate->kind),
                     hook_label(choice), choice.candidate->protocols);
    }
    if (std::none_of(choices_.begin(), choices_.end(),
                     [](const StageChoice& c) { return c.candidate != nullptr; }))
        throw ProbeError("probe mode " + mode + ": no stage could be hooked on this kernel");

    // Other namespaces get the same netfilter stages, as they are found.
    netfilter_ = std::make_unique<NamespaceHooks>([this] {
        std::vector<int> all;
        try {
            for (const StageChoice& c : choices_) {
                if (!c.candidate || c.candidate->kind != HookKind::Netfilter) continue;
                auto fds = netfilter_links(c);
                all.insert(all.end(), fds.begin(), fds.end());
            }
        } catch (...) {
            for (int fd : all) close(fd);
            throw;
        }
        return all;
    });
    netfilter_->adopt_own(std::move(own_netfilter));
    netfilter_->sync();

    for (const HookProgram& p : support_programs()) {
        bpf_program* prog = bpf_object__find_program_by_name(skel_->obj, p.program.c_str());
        bpf_link* link = bpf_program__attach(prog);
        if (!link)
            throw ProbeError("tracepoint " + p.target + ": attach failed: " + errno_text(errno));
        links_.push_back(link);
    }
}

std::string hook_label(const StageChoice& c) {
    std::string label;
    if (c.candidate->kind == HookKind::Netfilter) {
        static const char* hooks[] = {"PRE_ROUTING", "LOCAL_IN", "FORWARD", "LOCAL_OUT",
                                      "POST_ROUTING"};
        label = std::string("nf:") + hooks[c.candidate->netfilter.hooknum];
    }
    for (const HookProgram* p : c.programs)
        if (!p->target.empty()) label += (label.empty() ? "" : ",") + p->target;
    return label;
}

std::vector<StageInfo> Probes::stage_info() const {
    std::vector<StageInfo> out;
    for (const StageChoice& c : choices_) {
        StageInfo info{std::string(names::direction_of_stage(c.stage)),
                       std::string(names::kStages[c.stage].stage), "none", "none"};
        if (c.candidate) {
            info.mode = mode_label(c.candidate->kind);
            info.hook = hook_label(c);
            out.push_back(info);
            if (c.candidate->protocols != "tcp+udp") {
                // The protocol this hook does not see: its next segment spans the gap.
                std::string other = c.candidate->protocols == "tcp" ? "udp" : "tcp";
                out.push_back({info.direction, info.stage, other + ":none", "none"});
            }
        } else {
            info.hook = c.reason;
            out.push_back(info);
        }
    }
    return out;
}

std::vector<ProgramRef> Probes::programs() const {
    std::vector<ProgramRef> out;
    bpf_program* prog;
    bpf_object__for_each_program(prog, skel_->obj) {
        if (bpf_program__fd(prog) >= 0) out.push_back({bpf_program__name(prog), bpf_program__fd(prog)});
    }
    return out;
}

MapFds Probes::map_fds() const {
    MapFds fds;
    fds.hist = bpf_map__fd(skel_->maps.hist);
    fds.hist_flat = bpf_map__fd(skel_->maps.hist_flat);
    fds.counters = bpf_map__fd(skel_->maps.counters);
    fds.entries[NETLAT_MAP_TX_THREAD] = bpf_map__fd(skel_->maps.tx_thread);
    fds.entries[NETLAT_MAP_TX_SKB] = bpf_map__fd(skel_->maps.tx_skb);
    fds.entries[NETLAT_MAP_TX_RING] = bpf_map__fd(skel_->maps.tx_ring);
    fds.entries[NETLAT_MAP_RX_SKB] = bpf_map__fd(skel_->maps.rx_skb);
    fds.entries[NETLAT_MAP_RX_RING] = bpf_map__fd(skel_->maps.rx_ring);
    fds.entries[NETLAT_MAP_PENDING] = bpf_map__fd(skel_->maps.pending);
    fds.entries[NETLAT_MAP_HIST] = bpf_map__fd(skel_->maps.hist);
    return fds;
}

}  // namespace netlatd
