// BpfMapReader against real BPF maps and a real program (root): per-CPU sums, wrap of u32 slots,
// live-entry counts, layout checks, kernel run statistics.
#include "daemon/drain/map_reader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace netlatd {
namespace {

struct Fd {
    int fd;
    explicit Fd(int value) : fd(value) {}
    ~Fd() {
        if (fd >= 0) close(fd);
    }
};

int create_map(bpf_map_type type, const char* name, uint32_t key_size, uint32_t value_size,
               uint32_t max_entries) {
    const int fd = bpf_map_create(type, name, key_size, value_size, max_entries, nullptr);
    EXPECT_GE(fd, 0) << name << ": " << std::strerror(-fd);
    return fd;
}

unsigned ncpus() {
    return static_cast<unsigned>(libbpf_num_possible_cpus());
}

std::array<int, NETLAT_MAP_COUNT> no_entry_maps() {
    std::array<int, NETLAT_MAP_COUNT> fds;
    fds.fill(-1);
    return fds;
}

class BpfMapReaderTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_FAIL() << "needs root to create BPF maps";
    }
    Fd hist{create_map(BPF_MAP_TYPE_PERCPU_HASH, "hist", sizeof(netlat_hist_key),
                       sizeof(netlat_hist), 64)};
    Fd counters{create_map(BPF_MAP_TYPE_PERCPU_ARRAY, "counters", sizeof(uint32_t),
                           sizeof(uint64_t), NETLAT_CTR_COUNT)};
};

TEST_F(BpfMapReaderTest, SumsHistogramsOverCpusModulo2To32) {
    ASSERT_GE(ncpus(), 1u);
    netlat_hist_key key{};
    key.segment = NETLAT_SEG_RX_STACK;
    key.protocol = NETLAT_PROTO_UDP;
    key.netns = 4026531840u;
    std::vector<netlat_hist> values(ncpus());
    for (unsigned cpu = 0; cpu < ncpus(); ++cpu) {
        values[cpu] = {};
        values[cpu].count = 10 + cpu;
        values[cpu].sum_ns = 1000 * (cpu + 1);
        values[cpu].slots[7] = 0xf0000000u;
        values[cpu].slots[NETLAT_SLOTS - 1] = cpu + 1;
    }
    ASSERT_EQ(bpf_map_update_elem(hist.fd, &key, values.data(), BPF_ANY), 0);
    netlat_hist_key other{};
    other.segment = NETLAT_SEG_TX_TOTAL;
    ASSERT_EQ(
        bpf_map_update_elem(hist.fd, &other, std::vector<netlat_hist>(ncpus()).data(), BPF_ANY), 0);

    BpfMapReader reader(hist.fd, -1, counters.fd, no_entry_maps());
    const HistSnapshot snapshot = reader.read_histograms();
    ASSERT_EQ(snapshot.size(), 1u);  // `other` has no sample yet
    bool found = false;
    for (const auto& [read_key, totals] : snapshot) {
        if (std::memcmp(&read_key, &key, sizeof(key)) != 0) continue;
        found = true;
        uint64_t count = 0, sum = 0;
        uint32_t slot7 = 0, last = 0;
        for (unsigned cpu = 0; cpu < ncpus(); ++cpu) {
            count += values[cpu].count;
            sum += values[cpu].sum_ns;
            slot7 += values[cpu].slots[7];
            last += values[cpu].slots[NETLAT_SLOTS - 1];
        }
        EXPECT_EQ(totals.count, count);
        EXPECT_EQ(totals.sum_ns, sum);
        EXPECT_EQ(totals.slots[7], slot7);  // wrapped modulo 2^32 with 2 or more CPUs
        EXPECT_EQ(totals.slots[NETLAT_SLOTS - 1], last);
        EXPECT_EQ(totals.slots[8], 0u);
    }
    EXPECT_TRUE(found);
}

TEST_F(BpfMapReaderTest, ReadsSeriesWithoutNetnsFromTheFlatArrayByIndex) {
    Fd flat{create_map(BPF_MAP_TYPE_PERCPU_ARRAY, "hist_flat", sizeof(uint32_t),
                       sizeof(netlat_hist), NETLAT_FLAT_SERIES)};
    const uint32_t index =
        netlat_series_index(NETLAT_SEG_RX_QUEUED_TO_SOCKET, NETLAT_PROTO_UDP, NETLAT_FAMILY_IPV6);
    std::vector<netlat_hist> values(ncpus());
    for (unsigned cpu = 0; cpu < ncpus(); ++cpu) {
        values[cpu].count = 1 + cpu;
        values[cpu].sum_ns = 100;
        values[cpu].slots[3] = 1 + cpu;
    }
    ASSERT_EQ(bpf_map_update_elem(flat.fd, &index, values.data(), BPF_ANY), 0);
    netlat_hist_key hashed{};
    hashed.segment = NETLAT_SEG_TX_TOTAL;
    hashed.netns = 4026531840u;
    values[0].count = 7;
    ASSERT_EQ(bpf_map_update_elem(hist.fd, &hashed, values.data(), BPF_ANY), 0);

    BpfMapReader reader(hist.fd, flat.fd, counters.fd, no_entry_maps());
    const HistSnapshot snapshot = reader.read_histograms();
    ASSERT_EQ(snapshot.size(), 2u);  // the one flat series with samples, and the hashed one
    const auto& [key, totals] = snapshot.back();
    EXPECT_EQ(key.segment, NETLAT_SEG_RX_QUEUED_TO_SOCKET);
    EXPECT_EQ(key.protocol, NETLAT_PROTO_UDP);
    EXPECT_EQ(key.family, NETLAT_FAMILY_IPV6);
    EXPECT_EQ(key.netns, 0u);
    EXPECT_EQ(totals.count, ncpus() * (ncpus() + 1) / 2);
    EXPECT_EQ(totals.slots[3], ncpus() * (ncpus() + 1) / 2);
    EXPECT_EQ(totals.sum_ns, 100u * ncpus());
}

TEST_F(BpfMapReaderTest, SumsCountersOverCpus) {
    const uint32_t index = NETLAT_CTR_MAP_INSERT(NETLAT_MAP_RX_SKB);
    std::vector<uint64_t> per_cpu(ncpus());
    for (unsigned cpu = 0; cpu < ncpus(); ++cpu) per_cpu[cpu] = (uint64_t{1} << 40) + cpu;
    ASSERT_EQ(bpf_map_update_elem(counters.fd, &index, per_cpu.data(), BPF_ANY), 0);
    BpfMapReader reader(hist.fd, -1, counters.fd, no_entry_maps());
    const std::vector<uint64_t> values = reader.read_counters();
    ASSERT_EQ(values.size(), static_cast<size_t>(NETLAT_CTR_COUNT));
    uint64_t expected = 0;
    for (uint64_t value : per_cpu) expected += value;
    EXPECT_EQ(values[index], expected);
    EXPECT_EQ(values[0], 0u);
}

TEST_F(BpfMapReaderTest, CountsLiveEntries) {
    Fd lru{create_map(BPF_MAP_TYPE_LRU_HASH, "tx_skb", sizeof(uint64_t), sizeof(uint64_t), 1024)};
    Fd empty{create_map(BPF_MAP_TYPE_HASH, "rx_skb", sizeof(uint64_t), sizeof(uint64_t), 16)};
    for (uint64_t key = 1; key <= 300; ++key) {
        ASSERT_EQ(bpf_map_update_elem(lru.fd, &key, &key, BPF_ANY), 0);
    }
    std::array<int, NETLAT_MAP_COUNT> fds = no_entry_maps();
    fds[NETLAT_MAP_TX_SKB] = lru.fd;
    fds[NETLAT_MAP_RX_SKB] = empty.fd;
    fds[NETLAT_MAP_HIST] = hist.fd;
    BpfMapReader reader(hist.fd, -1, counters.fd, fds);
    const std::vector<uint64_t> counts = reader.map_entry_counts();
    ASSERT_EQ(counts.size(), static_cast<size_t>(NETLAT_MAP_COUNT));
    EXPECT_EQ(counts[NETLAT_MAP_TX_SKB], 300u);
    EXPECT_EQ(counts[NETLAT_MAP_RX_SKB], 0u);
    EXPECT_EQ(counts[NETLAT_MAP_HIST], 0u);
    EXPECT_EQ(counts[NETLAT_MAP_TX_THREAD], 0u);  // not loaded
}

TEST_F(BpfMapReaderTest, RejectsAMapThatDoesNotMatchNetlatH) {
    Fd wrong{create_map(BPF_MAP_TYPE_PERCPU_HASH, "hist", sizeof(netlat_hist_key), 64, 8)};
    try {
        BpfMapReader reader(wrong.fd, -1, counters.fd, no_entry_maps());
        FAIL() << "expected BpfMapError";
    } catch (const BpfMapError& error) {
        EXPECT_EQ(std::string(error.what()),
                  "bpf map 'hist': layout: value size 64, netlat.h has " +
                      std::to_string(sizeof(netlat_hist)));
    }
    try {
        BpfMapReader reader(hist.fd, -1, 9999, no_entry_maps());
        FAIL() << "expected BpfMapError";
    } catch (const BpfMapError& error) {
        // The errno of a closed fd differs between kernels (EBADF, EBADFD).
        EXPECT_EQ(std::string(error.what()),
                  "bpf map 'counters': get info: " + std::string(std::strerror(error.error())));
        EXPECT_EQ(error.operation(), "get info");
    }
}

TEST_F(BpfMapReaderTest, ReadsProgramRunStatistics) {
    // r0 = 0; exit
    const bpf_insn program[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    Fd prog{bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "netlat_test", "GPL", program, 2, nullptr)};
    ASSERT_GE(prog.fd, 0) << std::strerror(-prog.fd);
    Fd stats{bpf_enable_stats(BPF_STATS_RUN_TIME)};
    ASSERT_GE(stats.fd, 0) << std::strerror(-stats.fd);

    BpfMapReader reader(hist.fd, -1, counters.fd, no_entry_maps());
    const ProgramStats before = reader.program_stats("netlat_test", prog.fd);
    char packet[64] = {};
    LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = packet, .data_size_in = sizeof(packet),
                .repeat = 100);
    ASSERT_EQ(bpf_prog_test_run_opts(prog.fd, &run), 0);
    const ProgramStats after = reader.program_stats("netlat_test", prog.fd);
    EXPECT_EQ(after.run_cnt - before.run_cnt, 100u);
    EXPECT_GT(after.run_time_ns, before.run_time_ns);

    EXPECT_THROW(reader.program_stats("gone", 9999), std::runtime_error);
}

}  // namespace
}  // namespace netlatd
