// Label values of netlatd's metrics, generated from the X-macro tables of bpf/netlat.h so that a
// new stage, segment, reason or map is one edit there.
#pragma once

#include <array>
#include <string_view>

#include "bpf/netlat.h"

namespace netlatd::names {

inline constexpr std::array<std::string_view, NETLAT_DIR_COUNT> kDirections = {
#define NETLAT_NAME_DIR(name, label) #label,
    NETLAT_DIRECTIONS(NETLAT_NAME_DIR)
#undef NETLAT_NAME_DIR
};

struct StageName {
    netlat_direction direction;
    std::string_view stage;
    std::string_view layer;
};
inline constexpr std::array<StageName, NETLAT_STAGE_COUNT> kStages = {{
#define NETLAT_NAME_STAGE(name, dir, label, layer) {NETLAT_DIR_##dir, #label, layer},
    NETLAT_STAGES(NETLAT_NAME_STAGE)
#undef NETLAT_NAME_STAGE
}};

struct SegmentName {
    netlat_direction direction;
    std::string_view segment;
    netlat_stage from, to;
};
inline constexpr std::array<SegmentName, NETLAT_SEG_COUNT> kSegments = {{
#define NETLAT_NAME_SEGMENT(name, dir, label, from, to) \
    {NETLAT_DIR_##dir, #label, NETLAT_STAGE_##from, NETLAT_STAGE_##to},
    NETLAT_SEGMENTS(NETLAT_NAME_SEGMENT)
#undef NETLAT_NAME_SEGMENT
}};

inline constexpr std::array<std::string_view, NETLAT_UNMATCHED_COUNT> kUnmatchedReasons = {
#define NETLAT_NAME_REASON(name, label) #label,
    NETLAT_UNMATCHED_REASONS(NETLAT_NAME_REASON)
#undef NETLAT_NAME_REASON
};

// BPF map names, also the `map` label of netlatd_map_evictions_total.
inline constexpr std::array<std::string_view, NETLAT_MAP_COUNT> kMaps = {
#define NETLAT_NAME_MAP(name, label) #label,
    NETLAT_MAPS(NETLAT_NAME_MAP)
#undef NETLAT_NAME_MAP
};

// netlat.h has plain enums (no tables) for protocols and families; the names follow the enum order.
inline constexpr std::array<std::string_view, NETLAT_PROTO_COUNT> kProtocols = {"tcp", "udp"};
static_assert(NETLAT_PROTO_TCP == 0 && NETLAT_PROTO_UDP == 1);
inline constexpr std::array<std::string_view, NETLAT_FAMILY_COUNT> kFamilies = {"ipv4", "ipv6"};
static_assert(NETLAT_FAMILY_IPV4 == 0 && NETLAT_FAMILY_IPV6 == 1);

constexpr std::string_view direction_of_segment(unsigned segment) {
    return kDirections[kSegments[segment].direction];
}
constexpr std::string_view direction_of_stage(unsigned stage) {
    return kDirections[kStages[stage].direction];
}

}  // namespace netlatd::names
