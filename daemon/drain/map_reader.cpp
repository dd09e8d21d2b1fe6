#include "daemon/drain/map_reader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "daemon/model/names.h"

namespace netlatd {
namespace {

constexpr size_t round_up8(size_t n) {
    return (n + 7) / 8 * 8;
}

std::string describe(const std::string& map, const std::string& operation, int error,
                     const std::string& detail) {
    return "bpf map '" + map + "': " + operation + ": " +
           (detail.empty() ? std::string(std::strerror(error)) : detail);
}

struct MapInfo {
    std::string name;
    bpf_map_info info{};
};

// fallback_name is used in errors until the kernel told us the map's own name.
MapInfo map_info(int fd, const std::string& fallback_name) {
    MapInfo result;
    uint32_t length = sizeof(result.info);
    if (int err = bpf_obj_get_info_by_fd(fd, &result.info, &length); err != 0) {
        throw BpfMapError(fallback_name, "get info", -err);
    }
    result.name = result.info.name[0] != '\0' ? std::string(result.info.name) : fallback_name;
    return result;
}

void expect(const MapInfo& map, bool ok, const std::string& what) {
    if (!ok) throw BpfMapError(map.name, "layout", EINVAL, what);
}

std::string sizes(const char* what, uint32_t actual, size_t expected) {
    return std::string(what) + " " + std::to_string(actual) + ", netlat.h has " +
           std::to_string(expected);
}

// A per-CPU array of value_size values with at least min_entries entries.
void expect_percpu_array(const MapInfo& map, size_t value_size, uint32_t min_entries) {
    expect(map, map.info.type == BPF_MAP_TYPE_PERCPU_ARRAY,
           "type " + std::to_string(map.info.type) + " is not a per-CPU array");
    expect(map, map.info.value_size == value_size, sizes("value size", map.info.value_size, value_size));
    expect(map, map.info.max_entries >= min_entries,
           sizes("max entries", map.info.max_entries, min_entries));
}

}  // namespace

ProgramStats MapReader::program_stats(const std::string& name, int prog_fd) {
    bpf_prog_info info{};
    uint32_t length = sizeof(info);
    if (int err = bpf_obj_get_info_by_fd(prog_fd, &info, &length); err != 0) {
        throw std::runtime_error("bpf program '" + name + "': get info: " + std::strerror(-err));
    }
    return {info.run_time_ns, info.run_cnt, info.recursion_misses};
}

BpfMapError::BpfMapError(std::string map, std::string operation, int error,
                         const std::string& detail)
    : std::runtime_error(describe(map, operation, error, detail)),
      map_(std::move(map)),
      operation_(std::move(operation)),
      error_(error) {}

BpfMapReader::BpfMapReader(int hist_fd, int hist_flat_fd, int counters_fd,
                           std::array<int, NETLAT_MAP_COUNT> entry_count_fds) {
    const int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0) throw BpfMapError("hist", "count possible CPUs", -ncpus);
    ncpus_ = static_cast<unsigned>(ncpus);

    const MapInfo hist = map_info(hist_fd, "hist");
    expect(hist,
           hist.info.type == BPF_MAP_TYPE_PERCPU_HASH ||
               hist.info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH,
           "type " + std::to_string(hist.info.type) + " is not a per-CPU hash");
    expect(hist, hist.info.key_size == sizeof(netlat_hist_key),
           sizes("key size", hist.info.key_size, sizeof(netlat_hist_key)));
    expect(hist, hist.info.value_size == sizeof(netlat_hist),
           sizes("value size", hist.info.value_size, sizeof(netlat_hist)));
    hist_ = {hist_fd, hist.name, hist.info.key_size, hist.info.max_entries};

    if (hist_flat_fd >= 0) {
        const MapInfo flat = map_info(hist_flat_fd, "hist_flat");
        expect_percpu_array(flat, sizeof(netlat_hist), NETLAT_FLAT_SERIES);
        hist_flat_ = {hist_flat_fd, flat.name, flat.info.key_size, flat.info.max_entries};
    }

    const MapInfo counters = map_info(counters_fd, "counters");
    expect_percpu_array(counters, sizeof(uint64_t), NETLAT_CTR_COUNT);
    counters_ = {counters_fd, counters.name, counters.info.key_size, counters.info.max_entries};

    uint32_t largest_key = sizeof(netlat_hist_key);
    for (unsigned map = 0; map < NETLAT_MAP_COUNT; ++map) {
        const int fd = entry_count_fds[map];
        if (fd < 0) continue;
        const MapInfo info = map_info(fd, std::string(names::kMaps[map]));
        entry_maps_[map] = {fd, info.name, info.info.key_size, info.info.max_entries};
        largest_key = std::max(largest_key, info.info.key_size);
    }

    percpu_buffer_.resize(round_up8(sizeof(netlat_hist)) * ncpus_);
    key_buffer_.resize(largest_key);
    next_key_buffer_.resize(largest_key);
}

HistSnapshot BpfMapReader::read_histograms() {
    static_assert(sizeof(netlat_hist_key) == sizeof(uint64_t));
    HistSnapshot snapshot;
    // A key deleted (LRU eviction) between two get_next_key calls makes the kernel restart from the
    // first key: skip keys already read, and bound the walk.
    std::unordered_set<uint64_t> seen;
    const uint64_t max_steps = 2 * static_cast<uint64_t>(hist_.max_entries) + 2;
    netlat_hist_key key{}, next{};
    bool first = true;
    for (uint64_t step = 0; step < max_steps; ++step) {
        int err = bpf_map_get_next_key(hist_.fd, first ? nullptr : &key, &next);
        if (err == -ENOENT) break;
        if (err != 0) throw BpfMapError(hist_.name, "get next key", -err);
        first = false;
        key = next;
        uint64_t packed;
        std::memcpy(&packed, &key, sizeof(packed));
        if (!seen.insert(packed).second) continue;

        err = bpf_map_lookup_elem(hist_.fd, &key, percpu_buffer_.data());
        if (err == -ENOENT) continue;  // deleted since get_next_key
        if (err != 0) throw BpfMapError(hist_.name, "lookup", -err);
        add_series(key, snapshot);
    }
    if (hist_flat_.fd < 0) return snapshot;
    for (uint32_t index = 0; index < static_cast<uint32_t>(NETLAT_FLAT_SERIES); ++index) {
        const int err = bpf_map_lookup_elem(hist_flat_.fd, &index, percpu_buffer_.data());
        if (err != 0) throw BpfMapError(hist_flat_.name, "lookup", -err);
        netlat_hist_key flat{};
        constexpr uint32_t protocols = NETLAT_PROTO_COUNT, families = NETLAT_FAMILY_COUNT;
        flat.segment = static_cast<uint8_t>(index / (protocols * families));
        flat.protocol = static_cast<uint8_t>(index / families % protocols);
        flat.family = static_cast<uint8_t>(index % families);
        add_series(flat, snapshot);
    }
    return snapshot;
}

bool BpfMapReader::add_series(const netlat_hist_key& key, HistSnapshot& snapshot) {
    const size_t stride = round_up8(sizeof(netlat_hist));
    HistTotals totals;
    netlat_hist cpu_value;
    for (unsigned cpu = 0; cpu < ncpus_; ++cpu) {
        std::memcpy(&cpu_value, percpu_buffer_.data() + cpu * stride, sizeof(cpu_value));
        totals.count += cpu_value.count;
        totals.sum_ns += cpu_value.sum_ns;
        for (unsigned slot = 0; slot < NETLAT_SLOTS; ++slot) {
            totals.slots[slot] += cpu_value.slots[slot];  // modulo 2^32
        }
    }
    if (totals.count == 0) return false;
    snapshot.emplace_back(key, totals);
    return true;
}

std::vector<uint64_t> BpfMapReader::read_counters() {
    std::vector<uint64_t> values(NETLAT_CTR_COUNT, 0);
    for (uint32_t index = 0; index < NETLAT_CTR_COUNT; ++index) {
        const int err = bpf_map_lookup_elem(counters_.fd, &index, percpu_buffer_.data());
        if (err == -ENOENT) continue;
        if (err != 0) throw BpfMapError(counters_.name, "lookup", -err);
        for (unsigned cpu = 0; cpu < ncpus_; ++cpu) {
            uint64_t value;
            std::memcpy(&value, percpu_buffer_.data() + cpu * sizeof(uint64_t), sizeof(value));
            values[index] += value;
        }
    }
    return values;
}

std::vector<uint64_t> BpfMapReader::map_entry_counts() {
    std::vector<uint64_t> counts(NETLAT_MAP_COUNT, 0);
    for (unsigned map = 0; map < NETLAT_MAP_COUNT; ++map) {
        if (entry_maps_[map].fd >= 0) counts[map] = count_entries(entry_maps_[map]);
    }
    return counts;
}

// Walks the keys. A key deleted under the walk makes the kernel restart from the first key: stop
// when the first key comes round again, and never count past max_entries. The result is the live
// count within the churn of one walk, which is what the eviction estimate needs.
uint64_t BpfMapReader::count_entries(const MapRef& map) {
    uint8_t* key = key_buffer_.data();
    uint8_t* next = next_key_buffer_.data();
    std::vector<uint8_t>& first_key = first_key_buffer_;
    first_key.assign(map.key_size, 0);
    uint64_t count = 0;
    while (count < map.max_entries) {
        const int err = bpf_map_get_next_key(map.fd, count == 0 ? nullptr : key, next);
        if (err == -ENOENT) break;
        if (err != 0) throw BpfMapError(map.name, "get next key", -err);
        if (count == 0) {
            std::memcpy(first_key.data(), next, map.key_size);
        } else if (std::memcmp(first_key.data(), next, map.key_size) == 0) {
            break;
        }
        std::memcpy(key, next, map.key_size);
        ++count;
    }
    return count;
}

}  // namespace netlatd
