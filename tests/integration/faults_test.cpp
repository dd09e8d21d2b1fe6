// Faults and limits: SIGKILL at random moments of start-up and attach, a second instance beside the
// first, correlation maps too small for the traffic, network namespaces created and removed in
// quick succession while netlatd runs, and the series cap of the optional labels. Figures are
// printed for docs/RELIABILITY.md.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

using namespace netlatd::test;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// How much netlatd's RSS may grow in the churn. Under AddressSanitizer freed memory sits in the
// sanitizer's quarantine (up to 256 MiB) instead of being reused, so RSS measures ASan, not
// netlatd; there LeakSanitizer checks for leaks when netlatd exits (a report fails its exit code).
#if defined(__SANITIZE_ADDRESS__)
#define NETLAT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NETLAT_ASAN 1
#endif
#endif
#ifdef NETLAT_ASAN
constexpr long kRssGrowthKib = 64 * 1024;
#else
constexpr long kRssGrowthKib = 1024;
#endif

size_t occurrences(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1))
        ++n;
    return n;
}

// netlatd in the background on 127.0.0.1:port, stdout and stderr to log_path.
pid_t launch(int port, const std::string& log_path, const std::string& config_path = "") {
    std::vector<std::string> argv = {netlatd_path(), "--listen",
                                     "127.0.0.1:" + std::to_string(port)};
    if (!config_path.empty()) argv.insert(argv.end(), {"--config", config_path});
    return spawn_logged(argv, log_path);
}

// How long until /healthz on port answers 200; nullopt if pid exits or the timeout passes first.
std::optional<milliseconds> wait_ready(int port, pid_t pid, milliseconds timeout) {
    const auto start = Clock::now();
    while (Clock::now() - start < timeout) {
        if (waitpid(pid, nullptr, WNOHANG) == pid) return std::nullopt;
        auto health = http_request("127.0.0.1", port, "/healthz");
        if (health && health->status == 200)
            return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
        std::this_thread::sleep_for(milliseconds(5));
    }
    return std::nullopt;
}

// BPF objects ("prog", "link") as bpftool lists them.
nlohmann::json bpftool_show(const std::string& kind) {
    auto r = run_command({"bpftool", "-j", kind, "show"});
    return nlohmann::json::parse(r.out.empty() ? "[]" : r.out);
}

int newest_bpf_id(const std::string& kind) {
    int newest = 0;
    for (const auto& object : bpftool_show(kind))
        newest = std::max(newest, object["id"].get<int>());
    return newest;
}

// BPF program and link ids held by the fds of live processes ("prog_id:", "link_id:" in fdinfo;
// a link's fdinfo names its program too).
std::set<int> held_bpf_ids(const std::string& kind) {
    std::set<int> ids;
    const std::string key = kind + "_id:";
    std::error_code ec;
    for (const auto& process : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string name = process.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        for (const auto& fd : std::filesystem::directory_iterator(process.path() / "fdinfo", ec)) {
            std::ifstream in(fd.path());
            for (std::string line; std::getline(in, line);)
                if (line.rfind(key, 0) == 0) ids.insert(std::stoi(line.substr(key.size())));
        }
    }
    return ids;
}

// Programs and links newer than the given ids that no process holds and that are netlatd's
// (programs by name, links by their program's name): what a dead netlatd left attached. Objects of
// other processes that just exited are freed after an RCU grace period, so this polls for up to 5
// s.
struct Leaks {
    std::set<int> programs, links;
    bool empty() const { return programs.empty() && links.empty(); }
};
Leaks leaked(int prog_base, int link_base, const std::set<std::string>& names) {
    Leaks leaks;
    for (int attempt = 0; attempt < 50; ++attempt) {
        leaks = {};
        std::map<int, std::string> program_names;
        const auto programs = bpftool_show("prog");
        const auto links = bpftool_show("link");
        const std::set<int> held_programs = held_bpf_ids("prog");
        const std::set<int> held_links = held_bpf_ids("link");
        for (const auto& program : programs) {
            const int id = program["id"].get<int>();
            const std::string name = program.value("name", "");
            program_names[id] = name;
            if (id > prog_base && names.count(name) && !held_programs.count(id))
                leaks.programs.insert(id);
        }
        for (const auto& link : links) {
            const int id = link["id"].get<int>();
            if (id > link_base && names.count(program_names[link.value("prog_id", 0)]) &&
                !held_links.count(id))
                leaks.links.insert(id);
        }
        if (leaks.empty()) break;
        std::this_thread::sleep_for(milliseconds(100));
    }
    return leaks;
}

// The names of netlatd's BPF programs, from a running instance.
std::set<std::string> program_names_of(pid_t pid) {
    std::set<int> ids;
    for (const auto& fd :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fdinfo")) {
        std::ifstream in(fd.path());
        for (std::string line; std::getline(in, line);)
            if (line.rfind("prog_id:", 0) == 0) ids.insert(std::stoi(line.substr(8)));
    }
    std::set<std::string> names;
    for (const auto& program : bpftool_show("prog"))
        if (ids.count(program["id"].get<int>())) names.insert(program.value("name", ""));
    return names;
}

// The BPF programs and links a process holds.
struct Held {
    size_t programs = 0, links = 0;
};
Held held_by(pid_t pid) {
    Held held;
    std::error_code ec;
    for (const auto& fd :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
        const std::string target = std::filesystem::read_symlink(fd.path(), ec).string();
        held.programs += target == "anon_inode:bpf-prog";
        held.links += target == "anon_inode:bpf_link";
    }
    return held;
}

struct Resources {
    long rss_kib = 0;
    size_t fds = 0, links = 0;
};
Resources resources_of(pid_t pid) {
    Resources r;
    const std::string proc = "/proc/" + std::to_string(pid);
    std::ifstream status(proc + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmRSS:", 0) == 0) r.rss_kib = std::stol(line.substr(6));
    for (const auto& fd : std::filesystem::directory_iterator(proc + "/fd")) {
        ++r.fds;
        std::error_code ec;
        if (std::filesystem::read_symlink(fd.path(), ec).string() == "anon_inode:bpf_link")
            ++r.links;
    }
    return r;
}

// SIGKILL at random moments of start-up and attach: nothing stays attached, and netlatd restarts on
// the same port at once. kTimedRuns kill moments are spread over the measured start-up time (one
// random moment in each of kTimedRuns equal slices, plus 10% past it); loading the BPF object takes
// most of it, so kAttachRuns more kill as soon as the process holds a random number of its links.
TEST(Faults, SigkillDuringStartupLeavesNothingAttachedAndRestartIsReady) {
    constexpr int kTimedRuns = 12, kAttachRuns = 6;
    const std::string dir = std::filesystem::temp_directory_path() / "netlatd-faults-kill";
    std::filesystem::create_directories(dir);
    const int port = free_tcp_port();

    std::set<std::string> names;
    milliseconds startup{};
    size_t links = 0;
    {
        const pid_t pid = launch(port, dir + "/reference.log");
        const auto ready = wait_ready(port, pid, milliseconds(60000));
        ASSERT_TRUE(ready) << read_file(dir + "/reference.log");
        startup = *ready;
        names = program_names_of(pid);
        links = held_by(pid).links;
        kill(pid, SIGTERM);
        waitpid(pid, nullptr, 0);
        ASSERT_GT(names.size(), 10u) << "sanity: netlatd's programs are visible while it runs";
        ASSERT_GT(links, 2u) << "sanity: netlatd's links are visible while it runs";
    }
    std::printf("start-up to /healthz 200: %lld ms, %zu links\n",
                static_cast<long long>(startup.count()), links);
    std::printf(
        "| run | killed after (ms) | it held then | left attached | restart ready (ms) |\n");
    std::printf("|---|---|---|---|---|\n");

    std::mt19937 random(std::random_device{}());
    std::uniform_real_distribution<double> within(0.0, 1.0);
    std::uniform_int_distribution<size_t> some_links(1, links - 1);
    milliseconds slowest_restart{};
    for (int run = 0; run < kTimedRuns + kAttachRuns; ++run) {
        const int prog_base = newest_bpf_id("prog"), link_base = newest_bpf_id("link");
        const std::string log = dir + "/run" + std::to_string(run) + ".log";
        const auto start = Clock::now();
        const pid_t pid = launch(port, log);
        Held held;
        if (run < kTimedRuns) {
            std::this_thread::sleep_for(milliseconds(
                static_cast<long>(startup.count() * 1.1 * (run + within(random)) / kTimedRuns)));
            held = held_by(pid);
        } else {
            const size_t target = some_links(random);
            while ((held = held_by(pid)).links < target && Clock::now() - start < 4 * startup)
                std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        kill(pid, SIGKILL);
        const auto killed_after = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
        int status = 0;
        waitpid(pid, &status, 0);
        EXPECT_TRUE(WIFSIGNALED(status))
            << "run " << run << " exited by itself: " << read_file(log);
        const Leaks leaks = leaked(prog_base, link_base, names);
        EXPECT_TRUE(leaks.empty())
            << "run " << run << ": " << leaks.programs.size() << " programs and "
            << leaks.links.size() << " links left after SIGKILL";

        const std::string restart_log = dir + "/restart" + std::to_string(run) + ".log";
        const pid_t restart = launch(port, restart_log);
        const auto ready = wait_ready(port, restart, milliseconds(60000));
        EXPECT_TRUE(ready) << "restart after run " << run << ": " << read_file(restart_log);
        kill(restart, SIGTERM);
        waitpid(restart, &status, 0);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(restart_log);
        if (ready) slowest_restart = std::max(slowest_restart, *ready);
        const bool was_ready = read_file(log).find("ready: every hook") != std::string::npos;
        std::printf("| %d | %lld | %zu programs, %zu links%s | %zu programs, %zu links | %lld |\n",
                    run + 1, static_cast<long long>(killed_after.count()), held.programs,
                    held.links, was_ready ? ", ready" : "", leaks.programs.size(),
                    leaks.links.size(), ready ? static_cast<long long>(ready->count()) : -1LL);
    }
    // A restart is a normal start: allow three times the reference start-up, at least 10 s.
    EXPECT_LE(slowest_restart, std::max(milliseconds(10000), 3 * startup));
    std::filesystem::remove_all(dir);
}

// A second instance on the same port fails with one line naming the address and leaves the first
// alone; on another port both run and both measure the same traffic.
TEST(Faults, SecondInstanceOnTheSamePortFailsClearlyOnAnotherBothWork) {
    const int traffic_port = free_tcp_port();
    const std::string config =
        "interval: 200ms\nfilters:\n  local_ports: [" + std::to_string(traffic_port) + "]\n";
    Daemon first(config);
    ASSERT_TRUE(first.running()) << first.log();
    const std::set<std::string> names = program_names_of(first.pid());

    const int prog_base = newest_bpf_id("prog"), link_base = newest_bpf_id("link");
    const std::string address = "127.0.0.1:" + std::to_string(first.port());
    const auto start = Clock::now();
    const CommandResult same = run_command({netlatd_path(), "--listen", address});
    const auto failed_after = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    EXPECT_EQ(same.exit_code, 1);
    EXPECT_EQ(same.err,
              "netlatd: cannot serve /metrics on " + address + ": Address already in use\n");
    EXPECT_TRUE(leaked(prog_base, link_base, names).empty());
    std::printf("second instance on the same port: exit %d after %lld ms: %s", same.exit_code,
                static_cast<long long>(failed_after.count()), same.err.c_str());

    Daemon second(config);
    ASSERT_TRUE(second.running()) << second.log();
    EXPECT_NE(second.port(), first.port());
    constexpr int kMessages = 300;
    run_request_response(
        {true, false, kMessages, 64, traffic_port, std::chrono::microseconds(200)});
    std::this_thread::sleep_for(milliseconds(700));
    for (Daemon* daemon : {&first, &second}) {
        const auto samples = parse_metrics(daemon->scrape());
        for (const char* segment : {"network_to_transport", "total"}) {
            const double count =
                metric_value(samples, "netlatd_stack_latency_seconds_count",
                             {{"direction", "rx"}, {"segment", segment}, {"protocol", "tcp"}});
            EXPECT_GE(count, 0.98 * kMessages) << "port " << daemon->port() << " rx " << segment;
            EXPECT_LE(count, 1.02 * kMessages + 4)
                << "port " << daemon->port() << " rx " << segment;
            std::printf("instance on port %d: rx %s tcp samples %.0f (sent %d)\n", daemon->port(),
                        segment, count, kMessages);
        }
    }
    EXPECT_EQ(second.stop(), 0) << second.log();
    EXPECT_TRUE(first.running()) << first.log();
    EXPECT_EQ(first.stop(), 0) << first.log();
}

double sum_of(const std::vector<Sample>& samples, const std::string& name,
              const std::map<std::string, std::string>& match = {}) {
    return metric_value(samples, name, match);
}

// Correlation maps far too small for the traffic: entries are evicted, counted, and samples go on.
TEST(Faults, FullMapsCountEvictionsAndKeepWorking) {
    Daemon d("interval: 200ms\nmaps: {skb_entries: 4, thread_entries: 2, socket_entries: 2}\n");
    ASSERT_TRUE(d.running()) << d.log();
    constexpr int kFlows = 8, kMessages = 300;
    std::vector<std::future<int>> flows;
    for (int flow = 0; flow < kFlows; ++flow)
        flows.push_back(std::async(std::launch::async, [flow] {
            return run_request_response(
                {flow % 2 == 0, false, kMessages, 512, 0, std::chrono::microseconds(0)});
        }));
    for (auto& flow : flows) flow.get();
    std::this_thread::sleep_for(milliseconds(700));
    const auto full = parse_metrics(d.scrape());
    const double evictions = sum_of(full, "netlatd_map_evictions_total");
    EXPECT_GT(evictions, 0) << "maps of 2-4 entries under " << kFlows << " concurrent flows";
    std::printf("%d concurrent flows, maps of 2-4 entries: evictions", kFlows);
    for (const Sample& s : full)
        if (s.name == "netlatd_map_evictions_total" && s.value > 0)
            std::printf(" %s=%.0f", s.labels.at("map").c_str(), s.value);
    std::printf("\n");

    // Samples keep coming, during the overload and after it.
    const int port = free_tcp_port();
    run_request_response({true, false, 200, 64, port, std::chrono::microseconds(200)});
    std::this_thread::sleep_for(milliseconds(700));
    const auto after = parse_metrics(d.scrape());
    for (const char* direction : {"tx", "rx"}) {
        for (const char* protocol : {"tcp", "udp"}) {
            const std::map<std::string, std::string> total = {
                {"direction", direction}, {"segment", "total"}, {"protocol", protocol}};
            const double during = sum_of(full, "netlatd_stack_latency_seconds_count", total);
            EXPECT_GT(during, 0) << direction << " " << protocol << " total during the overload";
            std::printf("%s total %s samples during the overload: %.0f\n", direction, protocol,
                        during);
        }
        const std::map<std::string, std::string> tcp_total = {
            {"direction", direction}, {"segment", "total"}, {"protocol", "tcp"}};
        const double added = sum_of(after, "netlatd_stack_latency_seconds_count", tcp_total) -
                             sum_of(full, "netlatd_stack_latency_seconds_count", tcp_total);
        EXPECT_GE(added, 0.9 * 400) << direction << " tcp total after the overload";
        std::printf("%s total tcp samples after it (200 requests and 200 replies): %.0f\n",
                    direction, added);
    }
    EXPECT_EQ(http_request("127.0.0.1", d.port(), "/healthz")->status, 200);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

// labels.max_series caps the optional labels: series beyond it fold into family="other", the
// folded samples are counted, and no sample is lost.
TEST(Cardinality, SeriesBeyondMaxSeriesFoldIntoOtherAndAreCounted) {
    constexpr unsigned kMaxSeries = 4;
    constexpr int kMessages = 200;
    const int port = free_tcp_port();
    Daemon d("interval: 200ms\nlabels: {family: true, max_series: " + std::to_string(kMaxSeries) +
             "}\nfilters:\n  local_ports: [" + std::to_string(port) + "]\n");
    ASSERT_TRUE(d.running()) << d.log();
    for (bool tcp : {true, false})
        for (bool ipv6 : {false, true})
            run_request_response({tcp, ipv6, kMessages, 64, port, std::chrono::microseconds(200)});
    std::this_thread::sleep_for(milliseconds(700));
    const auto samples = parse_metrics(d.scrape());

    std::set<std::string> labelled, other;
    for (const Sample& s : samples) {
        if (s.name != "netlatd_stack_latency_seconds_count") continue;
        const std::string series =
            s.labels.at("direction") + "/" + s.labels.at("segment") + "/" + s.labels.at("protocol");
        (s.labels.at("family") == "other" ? other : labelled)
            .insert(series + "/" + s.labels.at("family"));
    }
    EXPECT_EQ(labelled.size(), kMaxSeries);
    EXPECT_FALSE(other.empty());
    const double folded = sum_of(samples, "netlatd_series_overflow_total");
    EXPECT_GT(folded, 0);
    for (const char* protocol : {"tcp", "udp"}) {
        const double total =
            sum_of(samples, "netlatd_stack_latency_seconds_count",
                   {{"direction", "rx"}, {"segment", "total"}, {"protocol", protocol}});
        EXPECT_GE(total, 0.98 * 2 * kMessages) << protocol << ": samples lost by folding";
    }
    std::printf(
        "max_series %u: %zu series with a family, %zu with family=\"other\", %.0f samples "
        "folded\n",
        kMaxSeries, labelled.size(), other.size(), folded);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

// `ip -batch` with one command per namespace.
void ip_batch(const std::string& verb, const std::vector<std::string>& namespaces) {
    char path[] = "/tmp/netlatd-netns-batch-XXXXXX";
    const int fd = mkstemp(path);
    std::string text;
    for (const std::string& ns : namespaces) text += "netns " + verb + " " + ns + "\n";
    ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
    const CommandResult r = run_command({"ip", "-batch", path});
    unlink(path);
    ASSERT_EQ(r.exit_code, 0) << "ip netns " << verb << ": " << r.err;
}

// Namespaces hooked minus released so far, from the log.
long hooked_namespaces(const std::string& log) {
    return static_cast<long>(occurrences(log, "netfilter stages hooked")) -
           static_cast<long>(occurrences(log, "netfilter hooks are released"));
}

// 100 network namespaces created and removed in quick succession, 10 at a time: every other batch
// is removed 300 ms (3 discovery intervals) after it was made, the others at once, racing with
// discovery. netlatd hooks and releases them, and its fds and memory end where they started.
TEST(Faults, NetnsChurnLeavesFdsAndMemoryStable) {
    Daemon d("interval: 100ms\n");
    ASSERT_TRUE(d.running()) << d.log();
    const auto samples = parse_metrics(d.scrape());
    size_t netfilter_stages = 0;
    for (const Sample& s : samples)
        netfilter_stages += s.name == "netlatd_stage_info" && s.labels.at("mode") == "netfilter";
    ASSERT_GT(netfilter_stages, 0u);

    const std::string prefix = "nlc-" + std::to_string(getpid()) + "-";
    auto churn = [&](int batches) {
        for (int batch = 0; batch < batches; ++batch) {
            std::vector<std::string> namespaces;
            for (int i = 0; i < 10; ++i)
                namespaces.push_back(prefix + std::to_string(batch) + "-" + std::to_string(i));
            ip_batch("add", namespaces);
            if (batch % 2 == 0) std::this_thread::sleep_for(milliseconds(300));
            ip_batch("del", namespaces);
        }
    };
    // Settled: every namespace netlatd hooked that is gone is released (others' namespaces may
    // come and go meanwhile: links are compared per hooked namespace).
    auto settle = [&] {
        std::this_thread::sleep_for(milliseconds(500));
        const std::string log = d.log();
        return std::pair{resources_of(d.pid()), hooked_namespaces(log)};
    };

    churn(1);  // first-time allocations (discovery threads, log buffers) before the baseline
    const auto [before, hooked_before] = settle();
    const size_t hooked_lines_before = occurrences(d.log(), "netfilter stages hooked");
    const auto start = Clock::now();
    churn(10);
    const auto churn_time = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    const auto [after, hooked_after] = settle();
    const size_t hooked = occurrences(d.log(), "netfilter stages hooked") - hooked_lines_before;

    EXPECT_GE(hooked, 45u) << "namespaces hooked while they existed:\n" << d.log();
    const long links_per_namespace = static_cast<long>(netfilter_stages);
    EXPECT_EQ(static_cast<long>(after.links) - links_per_namespace * hooked_after,
              static_cast<long>(before.links) - links_per_namespace * hooked_before)
        << "BPF links not released with their namespaces";
    EXPECT_EQ(after.fds - after.links, before.fds - before.links) << "fds other than BPF links";
    EXPECT_LE(after.rss_kib - before.rss_kib, kRssGrowthKib) << "resident memory grew";
    EXPECT_TRUE(d.running()) << d.log();
    std::printf(
        "100 namespaces in %lld ms, %zu hooked while they existed: fds %zu -> %zu (BPF links %zu "
        "-> %zu), VmRSS %ld -> %ld KiB\n",
        static_cast<long long>(churn_time.count()), hooked, before.fds, after.fds, before.links,
        after.links, before.rss_kib, after.rss_kib);
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
