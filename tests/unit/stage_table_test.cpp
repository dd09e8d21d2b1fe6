// The stage table (daemon/probes/stages.cpp) against the compiled BPF object (bpf/netlat.bpf.c),
// both ways: every program the table names exists with a section of its hook kind and target, and
// every program of the object is named by the table. A misspelt name would otherwise disable a
// stage, or leave a program unused, without a word. Opening the skeleton needs no privileges.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "daemon/probes/probes.h"
#include "daemon/probes/stages.h"
#include "netlat.skel.h"

namespace netlatd {
namespace {

struct Skeleton {
    netlat* skel = netlat__open();
    ~Skeleton() { netlat__destroy(skel); }
};

// Program name -> section name, from the object.
std::map<std::string, std::string> object_programs() {
    Skeleton s;
    EXPECT_NE(s.skel, nullptr) << "netlat__open failed";
    std::map<std::string, std::string> out;
    if (!s.skel) return out;
    bpf_program* prog;
    bpf_object__for_each_program(prog, s.skel->obj) {
        out[bpf_program__name(prog)] = bpf_program__section_name(prog);
    }
    return out;
}

// The sections a program of this kind may have for target.
std::set<std::string> sections_for(HookKind kind, const std::string& target) {
    switch (kind) {
        case HookKind::Fentry:
            return {"fentry/" + target, "fexit/" + target};
        case HookKind::Kprobe:
            return {"kprobe/" + target, "kretprobe/" + target};
        case HookKind::TpBtf:
            return {"tp_btf/" + target};
        case HookKind::Netfilter:
            return {"netfilter"};
    }
    return {};
}

TEST(StageTable, EveryProgramItNamesIsInTheObjectWithItsKindAndTarget) {
    const auto programs = object_programs();
    ASSERT_FALSE(programs.empty());
    size_t checked = 0;
    for (const StageHooks& stage : stage_table()) {
        EXPECT_FALSE(stage.candidates.empty()) << "stage " << stage.stage;
        // Alternative candidates of a stage may share an optional entry point (kernel_sendpage).
        std::set<std::string> in_stage;
        for (const HookCandidate& c : stage.candidates) {
            EXPECT_FALSE(c.programs.empty()) << "stage " << stage.stage;
            for (const HookProgram& p : c.programs) {
                auto it = programs.find(p.program);
                ASSERT_NE(it, programs.end()) << "stage " << stage.stage << ": no program "
                                              << p.program << " in netlat.bpf.c";
                EXPECT_TRUE(sections_for(c.kind, p.target).count(it->second))
                    << p.program << ": section " << it->second << " does not match "
                    << mode_label(c.kind) << " " << p.target;
                if (in_stage.insert(p.program).second) checked++;
            }
        }
    }
    for (const HookProgram& p : support_programs()) {
        auto it = programs.find(p.program);
        ASSERT_NE(it, programs.end()) << "no support program " << p.program;
        EXPECT_EQ(it->second, "tp_btf/" + p.target);
        checked++;
    }
    EXPECT_EQ(checked, programs.size()) << "a program is named by two stages";
}

TEST(StageTable, EveryProgramOfTheObjectIsNamedByTheTable) {
    std::set<std::string> named;
    for (const StageHooks& stage : stage_table())
        for (const HookCandidate& c : stage.candidates)
            for (const HookProgram& p : c.programs) named.insert(p.program);
    for (const HookProgram& p : support_programs()) named.insert(p.program);
    for (const auto& [program, section] : object_programs())
        EXPECT_TRUE(named.count(program))
            << program << " (" << section << ") is in netlat.bpf.c but no stage uses it";
}

// The rx network stage's hooks in kprobe mode on a kernel whose BTF has exactly `functions`.
std::string rx_network_hook(const std::vector<std::string>& functions) {
    KernelFeatures kernel;
    kernel.kprobe = true;
    kernel.btf = std::make_shared<KernelFeatures::Btf>();
    ::btf* b = kernel.btf->vmlinux = btf__new_empty();
    EXPECT_NE(b, nullptr);
    const int proto = btf__add_func_proto(b, btf__add_int(b, "int", 4, BTF_INT_SIGNED));
    for (const auto& fn : functions) btf__add_func(b, fn.c_str(), BTF_FUNC_GLOBAL, proto);
    for (const StageChoice& c : choose_stages(ProbeMode::Kprobe, kernel))
        if (c.stage == NETLAT_STAGE_RX_NETWORK) return c.candidate ? hook_label(c) : "none";
    return "missing";
}

TEST(StageTable, AFunctionTheKernelLacksFallsBackToItsCallerAlone) {
    EXPECT_EQ(rx_network_hook({"ip_rcv_core", "ip6_rcv_core", "ip_rcv", "ipv6_rcv"}),
              "ip_rcv_core,ip6_rcv_core");
    EXPECT_EQ(rx_network_hook({"ip6_rcv_core", "ip_rcv", "ipv6_rcv"}), "ip_rcv,ip6_rcv_core");
    EXPECT_EQ(rx_network_hook({"ip_rcv_core", "ipv6_rcv"}), "ip_rcv_core,ipv6_rcv");
    EXPECT_EQ(rx_network_hook({"ip_rcv_core", "ip_rcv"}), "none");  // no IPv6 function at all
}

TEST(StageTable, EveryStageHasOneRowInTableOrder) {
    const auto& table = stage_table();
    ASSERT_EQ(table.size(), size_t{NETLAT_STAGE_COUNT});
    for (size_t i = 0; i < table.size(); i++)
        EXPECT_EQ(table[i].stage, static_cast<netlat_stage>(i));
}

}  // namespace
}  // namespace netlatd
