// Reading netlatd's BPF maps: histograms, counters and the live-entry counts of correlation maps.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bpf/netlat.h"

namespace netlatd {

// One histogram key's value summed over CPUs. Slots are summed modulo 2^32, like the per-CPU
// counters they come from, so differences between reads stay exact modulo 2^32.
struct HistTotals {
    uint64_t count = 0, sum_ns = 0;
    std::array<uint32_t, NETLAT_SLOTS> slots{};
};

using HistSnapshot = std::vector<std::pair<netlat_hist_key, HistTotals>>;

// Cumulative kernel BPF statistics of one program: run time and runs (zero while kernel BPF stats
// are disabled), and the runs the kernel skipped (recursion_misses, always counted; 5.12+).
struct ProgramStats {
    uint64_t run_time_ns = 0, run_cnt = 0, misses = 0;
};

class MapReader {
  public:
    virtual ~MapReader() = default;
    virtual HistSnapshot read_histograms() = 0;
    virtual std::vector<uint64_t> read_counters() = 0;  // NETLAT_CTR_COUNT values, summed over CPUs
    virtual std::vector<uint64_t> map_entry_counts() = 0;  // NETLAT_MAP_COUNT live-entry counts
    // bpf_obj_get_info_by_fd on a program fd; throws std::runtime_error naming the program.
    virtual ProgramStats program_stats(const std::string& name, int prog_fd);
};

// A failed BPF map operation: "bpf map 'hist': lookup: Bad file descriptor". With a detail, the
// detail replaces the errno text: "bpf map 'hist': layout: value size 2000, netlat.h has 2128".
class BpfMapError : public std::runtime_error {
  public:
    BpfMapError(std::string map, std::string operation, int error, const std::string& detail = {});
    const std::string& map() const { return map_; }
    const std::string& operation() const { return operation_; }
    int error() const { return error_; }  // positive errno

  private:
    std::string map_, operation_;
    int error_;
};

// MapReader over the daemon's BPF maps, by fd (the fds stay owned by the caller and must outlive
// the reader). The constructor checks each map's type, key and value size against netlat.h and
// throws BpfMapError on a mismatch.
//   hist_fd:     BPF_MAP_TYPE_(LRU_)PERCPU_HASH, key netlat_hist_key, value netlat_hist
//   hist_flat_fd: BPF_MAP_TYPE_PERCPU_ARRAY of netlat_hist, NETLAT_FLAT_SERIES entries indexed by
//                netlat_series_index (the series without netns), or -1; a series appears in the
//                snapshot once it has a sample
//   counters_fd: BPF_MAP_TYPE_PERCPU_ARRAY of u64 with at least NETLAT_CTR_COUNT entries
//   entry_count_fds: per enum netlat_map_id, the map whose live entries are counted (any map type
//                    with keys; -1 = not loaded, counted as 0). The HIST entry may be hist_fd.
// Reads tolerate concurrent updates and deletions by BPF programs (-ENOENT is skipped); other
// errors throw BpfMapError.
class BpfMapReader : public MapReader {
  public:
    BpfMapReader(int hist_fd, int hist_flat_fd, int counters_fd,
                 std::array<int, NETLAT_MAP_COUNT> entry_count_fds);

    HistSnapshot read_histograms() override;
    std::vector<uint64_t> read_counters() override;
    std::vector<uint64_t> map_entry_counts() override;

  private:
    struct MapRef {
        int fd = -1;
        std::string name;
        uint32_t key_size = 0, max_entries = 0;
    };

    uint64_t count_entries(const MapRef& map);

    // Adds one series' value summed over CPUs to the snapshot; false if the series has no sample.
    bool add_series(const netlat_hist_key& key, HistSnapshot& snapshot);

    MapRef hist_, hist_flat_, counters_;
    std::array<MapRef, NETLAT_MAP_COUNT> entry_maps_;
    unsigned ncpus_;
    std::vector<uint8_t> percpu_buffer_;  // one lookup's value: 8-byte-rounded value size * ncpus
    std::vector<uint8_t> key_buffer_, next_key_buffer_, first_key_buffer_;
};

}  // namespace netlatd
