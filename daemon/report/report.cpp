#include "daemon/report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "daemon/model/names.h"
#include "daemon/report/histogram_stats.h"

namespace netlatd {
namespace {

using nlohmann::json;

constexpr int kBarWidth = 52;  // bpftrace's

std::string label(std::string_view view) {
    return std::string(view);
}

std::string stage_name(netlat_stage stage) {
    return label(names::kStages[stage].stage);
}

std::string bar(uint64_t count, uint64_t largest, int width) {
    const int filled = largest == 0
                           ? 0
                           : static_cast<int>(std::lround(static_cast<double>(count) * width /
                                                          static_cast<double>(largest)));
    return "|" + std::string(filled, '@') + std::string(width - filled, ' ') + "|";
}

std::string printf_string(const char* format, auto... args) {
    char text[512];
    std::snprintf(text, sizeof text, format, args...);
    return text;
}

json optional_number(const std::optional<double>& value) {
    return value ? json(std::round(*value * 10) / 10) : json(nullptr);
}

json stats_json(const LatencyStats& stats) {
    return {{"count", stats.count},
            {"sum_ns", stats.sum_ns},
            {"mean_ns", optional_number(stats.mean_ns)},
            {"p50_ns", optional_number(stats.p50_ns)},
            {"p90_ns", optional_number(stats.p90_ns)},
            {"p99_ns", optional_number(stats.p99_ns)},
            {"max_ns", optional_number(stats.max_ns)}};
}

// The hooks of one stage, "tcp_sendmsg_locked (tracepoint), udp:none (none)".
std::string hooks_of(const ReportContext& context, unsigned stage) {
    std::string out;
    for (const StageInfo& info : context.stages) {
        if (info.direction != names::direction_of_stage(stage) ||
            info.stage != names::kStages[stage].stage) {
            continue;
        }
        if (!out.empty()) out += ", ";
        out += info.hook + " (" + info.mode + ")";
    }
    return out.empty() ? "-" : out;
}

std::string segment_title(unsigned segment) {
    const auto& s = names::kSegments[segment];
    return label(names::kDirections[s.direction]) + " " + label(s.segment) + " (" +
           stage_name(s.from) + " " + label(names::kStages[s.from].layer) + " -> " +
           stage_name(s.to) + " " + label(names::kStages[s.to].layer) + ")";
}

}  // namespace

std::string terminal_report(const LatencySnapshot& snapshot, const ReportContext& context) {
    std::ostringstream out;
    const double seconds = std::chrono::duration<double>(snapshot.elapsed).count();
    out << "netlatd " << context.version << " on kernel " << context.kernel << ": "
        << printf_string("%.1f", seconds) << " s measured, " << snapshot.drains
        << " drains, probe mode " << context.probe_mode << "\n";
    out << "stage hooks:\n";
    for (unsigned stage = 0; stage < NETLAT_STAGE_COUNT; ++stage) {
        out << printf_string("  %-3s %-10s %-7s ", names::direction_of_stage(stage).data(),
                             stage_name(static_cast<netlat_stage>(stage)).c_str(),
                             label(names::kStages[stage].layer).c_str())
            << hooks_of(context, stage) << "\n";
    }
    out << "(" << kAccuracyNote << ")\n";

    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        const SeriesCounts series = snapshot.merged(segment);
        const auto& protocols = snapshot.total[segment];
        out << "\n@" << segment_title(segment) << ": " << series.count << " samples (tcp "
            << protocols[NETLAT_PROTO_TCP].count << ", udp " << protocols[NETLAT_PROTO_UDP].count
            << ")\n";
        const std::vector<Log2Bucket> buckets = log2_buckets(series.slots);
        if (buckets.empty()) {
            out << "  no samples\n";
            continue;
        }
        uint64_t largest = 0;
        for (const Log2Bucket& bucket : buckets) largest = std::max(largest, bucket.count);
        for (const Log2Bucket& bucket : buckets) {
            out << printf_string("%-20s %8llu ", bucket.label.c_str(),
                                 static_cast<unsigned long long>(bucket.count))
                << bar(bucket.count, largest, kBarWidth) << "\n";
        }
    }

    out << "\nlatency per segment, tcp and udp together:\n";
    out << printf_string("%-3s %-22s %10s %9s %9s %9s %9s\n", "dir", "segment", "count", "p50",
                         "p90", "p99", "max");
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        const LatencyStats stats = stats_of(snapshot.merged(segment));
        out << printf_string("%-3s %-22s %10llu %9s %9s %9s %9s\n",
                             names::direction_of_segment(segment).data(),
                             label(names::kSegments[segment].segment).c_str(),
                             static_cast<unsigned long long>(stats.count),
                             format_ns(stats.p50_ns).c_str(), format_ns(stats.p90_ns).c_str(),
                             format_ns(stats.p99_ns).c_str(), format_ns(stats.max_ns).c_str());
    }

    out << "\nwhere the time goes\n(" << kShareFormula << ";\n " << share_scope_note() << ")\n";
    const auto shares = layer_shares(snapshot);
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        if (!is_layer_segment(segment)) continue;
        const double share = shares[segment].value_or(0);
        out << printf_string("%-3s %-22s %6.1f%% ", names::direction_of_segment(segment).data(),
                             label(names::kSegments[segment].segment).c_str(), share * 100)
            << bar(static_cast<uint64_t>(std::lround(share * 1000)), 1000, 40) << "\n";
    }

    std::string unmatched;
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        for (unsigned reason = 0; reason < NETLAT_UNMATCHED_COUNT; ++reason) {
            if (const uint64_t n = snapshot.unmatched[segment][reason]; n != 0) {
                unmatched += " " + label(names::direction_of_segment(segment)) + "/" +
                             label(names::kSegments[segment].segment) + "/" +
                             label(names::kUnmatchedReasons[reason]) + "=" + std::to_string(n);
            }
        }
    }
    std::string evictions;
    for (unsigned map = 0; map < NETLAT_MAP_COUNT; ++map) {
        if (snapshot.evictions[map] != 0)
            evictions +=
                " " + label(names::kMaps[map]) + "=" + std::to_string(snapshot.evictions[map]);
    }
    out << "\nunmatched ends:" << (unmatched.empty() ? " none" : unmatched) << "\n";
    out << "map evictions:" << (evictions.empty() ? " none" : evictions) << "\n";
    return out.str();
}

json json_report(const LatencySnapshot& snapshot, const ReportContext& context) {
    json doc;
    doc["netlatd"] = context.version;
    doc["kernel"] = context.kernel;
    doc["probe_mode"] = context.probe_mode;
    doc["interval_ms"] = context.interval.count();
    doc["elapsed_seconds"] =
        std::round(std::chrono::duration<double>(snapshot.elapsed).count() * 1000) / 1000;
    doc["drains"] = snapshot.drains;
    doc["accuracy"] = kAccuracyNote;
    doc["share"] = std::string(kShareFormula) + "; " + share_scope_note();

    json stages = json::array();
    for (unsigned stage = 0; stage < NETLAT_STAGE_COUNT; ++stage) {
        json hooks = json::array();
        for (const StageInfo& info : context.stages) {
            if (info.direction == names::direction_of_stage(stage) &&
                info.stage == names::kStages[stage].stage) {
                hooks.push_back({{"hook", info.hook}, {"mode", info.mode}});
            }
        }
        stages.push_back({{"direction", names::direction_of_stage(stage)},
                          {"stage", names::kStages[stage].stage},
                          {"layer", names::kStages[stage].layer},
                          {"events", snapshot.stage_events[stage]},
                          {"hooks", std::move(hooks)}});
    }
    doc["stages"] = std::move(stages);

    const auto shares = layer_shares(snapshot);
    json directions = json::array();
    for (unsigned direction = 0; direction < NETLAT_DIR_COUNT; ++direction) {
        json segments = json::array();
        for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
            const auto& s = names::kSegments[segment];
            if (s.direction != direction) continue;
            const SeriesCounts series = snapshot.merged(segment);
            json entry = stats_json(stats_of(series));
            entry["segment"] = s.segment;
            entry["from"] = stage_name(s.from);
            entry["to"] = stage_name(s.to);
            entry["layer"] = is_layer_segment(segment);
            entry["share"] = shares[segment] ? json(*shares[segment]) : json(nullptr);
            json buckets = json::array();
            for (const Log2Bucket& bucket : log2_buckets(series.slots)) {
                buckets.push_back({{"lo_ns", bucket.lo_ns},
                                   {"hi_ns", bucket.hi_ns},
                                   {"label", bucket.label},
                                   {"count", bucket.count}});
            }
            entry["log2"] = std::move(buckets);
            json protocols = json::object();
            SeriesCounts last;
            for (unsigned protocol = 0; protocol < NETLAT_PROTO_COUNT; ++protocol) {
                protocols[label(names::kProtocols[protocol])] =
                    stats_json(stats_of(snapshot.total[segment][protocol]));
                last += snapshot.last[segment][protocol];
            }
            entry["protocols"] = std::move(protocols);
            entry["last"] = stats_json(stats_of(last));
            json unmatched = json::object();
            for (unsigned reason = 0; reason < NETLAT_UNMATCHED_COUNT; ++reason)
                unmatched[label(names::kUnmatchedReasons[reason])] =
                    snapshot.unmatched[segment][reason];
            entry["unmatched"] = std::move(unmatched);
            segments.push_back(std::move(entry));
        }
        const std::optional<unsigned> total = total_segment(direction);
        directions.push_back(
            {{"direction", names::kDirections[direction]},
             {"total_segment", total ? json(names::kSegments[*total].segment) : json(nullptr)},
             {"segments", std::move(segments)}});
    }
    doc["directions"] = std::move(directions);

    json evictions = json::object();
    for (unsigned map = 0; map < NETLAT_MAP_COUNT; ++map)
        evictions[label(names::kMaps[map])] = snapshot.evictions[map];
    doc["evictions"] = std::move(evictions);
    return doc;
}

std::vector<std::string> summary_lines(const LatencySnapshot& now, const LatencySnapshot* before) {
    std::vector<std::string> lines;
    for (unsigned direction = 0; direction < NETLAT_DIR_COUNT; ++direction) {
        const std::optional<unsigned> segment = total_segment(direction);
        if (!segment) continue;
        SeriesCounts series = now.merged(*segment);
        if (before != nullptr) series = series.since(before->merged(*segment));
        const LatencyStats stats = stats_of(series);
        lines.push_back(segment_title(*segment) + ": " + std::to_string(stats.count) +
                        " samples, p50 " + format_ns(stats.p50_ns) + ", p99 " +
                        format_ns(stats.p99_ns));
    }
    return lines;
}

}  // namespace netlatd
