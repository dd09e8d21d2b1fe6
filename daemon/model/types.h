// The vocabulary the daemon's rooms share: what probes produce and drain and metrics consume. It
// includes nothing of theirs, so every room may include it and the arrows between rooms point down:
// main -> probes -> model, main -> drain -> metrics -> model.
#pragma once

#include <array>
#include <string>

#include "bpf/netlat.h"

namespace netlatd {

// One series of netlatd_stage_info{direction,stage,hook,mode}.
struct StageInfo {
    std::string direction, stage, hook, mode;
};

// A loaded BPF program whose kernel run statistics are exported.
struct ProgramRef {
    std::string name;
    int fd;
};

// The maps the drain reads.
struct MapFds {
    int hist = -1, hist_flat = -1, counters = -1;
    std::array<int, NETLAT_MAP_COUNT> entries{};  // per netlat_map_id, for live-entry counts
};

}  // namespace netlatd
