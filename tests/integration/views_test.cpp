// The views without Prometheus, on real BPF and loopback traffic. Root only.
// - `netlatd --once` (text and --json): every segment of the table in bpf/netlat.h is reported with
//   data, and the tx/rx totals count the messages sent; SIGINT ends it early with a report; no HTTP
//   port is opened.
// - The page at /: loaded in headless Chromium under traffic, every segment of both directions
//   renders with data; a screenshot is kept in the build directory (artifacts/page.png).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "daemon/model/names.h"
#include "harness.h"

using namespace netlatd::test;
namespace names = netlatd::names;

namespace {

constexpr int kMessages = 300;

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Segments a protocol has on this kernel: UDP tx has no transport hook here (tx transport UDP is
// `none`), so its socket_to_transport has no samples; the next segment spans the gap.
bool expected_for(unsigned segment, const std::string& protocol) {
    return !(protocol == "udp" && segment == NETLAT_SEG_TX_SOCKET_TO_TRANSPORT);
}

// Only the test server's port: tx is its replies, rx what it reads, so counts equal messages.
std::string port_config(int port, const std::string& listen = "") {
    std::string yaml = "interval: 200ms\nfilters:\n  local_ports: [" + std::to_string(port) + "]\n";
    if (!listen.empty()) yaml += "listen: " + listen + "\n";
    return yaml;
}

void send_messages(int port, int messages) {
    run_request_response({true, false, messages, 64, port, std::chrono::microseconds(200)});
    run_request_response({false, false, messages, 64, port, std::chrono::microseconds(200)});
}

bool port_accepts(int port) {
    return http_request("127.0.0.1", port, "/").has_value();
}

// `netlatd --once ARGS --config <port filter>` as a child; `during` runs once netlatd logged that
// it is ready (hooks attached, first drain done), with its pid.
struct OnceResult {
    int exit_code = -1;
    std::string out, err;
};
template <typename During>
OnceResult run_once(const std::string& config, std::vector<std::string> args, During during) {
    char tmpl[] = "/tmp/netlatd-once-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    std::ofstream(dir + "/netlatd.yaml") << config;
    std::vector<std::string> argv = {netlatd_path(), "--once", "--config", dir + "/netlatd.yaml"};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string out_path = dir + "/out", err_path = dir + "/err";
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), 1);
        dup2(open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), 2);
        std::vector<char*> cargs;
        for (auto& a : argv) cargs.push_back(a.data());
        cargs.push_back(nullptr);
        execv(cargs[0], cargs.data());
        _exit(127);
    }
    OnceResult result;
    bool ready = false;
    for (int i = 0; i < 600 && !ready; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        ready = read_file(err_path).find("ready: ") != std::string::npos;
        if (waitpid(pid, nullptr, WNOHANG) == pid) break;
    }
    if (ready) during(pid);
    int status = 0;
    for (int i = 0; i < 600; i++) {  // up to 30 s
        if (waitpid(pid, &status, WNOHANG) == pid) {
            result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (result.exit_code == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    result.out = read_file(out_path);
    result.err = read_file(err_path);
    std::filesystem::remove_all(dir);
    return result;
}

void expect_total_near(double count, const std::string& what) {
    EXPECT_GE(count, kMessages * 0.98) << what << ": " << count << " for " << kMessages;
    EXPECT_LE(count, kMessages * 1.02 + 4) << what << ": " << count << " for " << kMessages;
}

TEST(Once, JsonHasEverySegmentAndTotalsFollowMessages) {
    const int port = free_tcp_port(), http_port = free_tcp_port();
    bool listened = true;
    const OnceResult r = run_once(port_config(port, "127.0.0.1:" + std::to_string(http_port)),
                                  {"--duration", "4s", "--json"}, [&](pid_t) {
                                      send_messages(port, kMessages);
                                      listened = port_accepts(http_port);
                                  });
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_FALSE(listened) << "--once opened the configured HTTP port without --listen";
    const auto doc = nlohmann::json::parse(r.out);

    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        const std::string direction(names::direction_of_segment(segment));
        const std::string name(names::kSegments[segment].segment);
        const nlohmann::json* found = nullptr;
        for (const auto& d : doc.at("directions")) {
            if (d.at("direction") != direction) continue;
            for (const auto& s : d.at("segments"))
                if (s.at("segment") == name) found = &s;
        }
        ASSERT_NE(found, nullptr) << direction << " " << name << " missing";
        for (const std::string protocol : {"tcp", "udp"}) {
            if (!expected_for(segment, protocol)) continue;
            const auto& p = found->at("protocols").at(protocol);
            EXPECT_GT(p.at("count").get<double>(), 0)
                << direction << " " << name << " " << protocol;
            EXPECT_FALSE(p.at("p99_ns").is_null()) << direction << " " << name << " " << protocol;
        }
        EXPECT_FALSE(found->at("log2").empty()) << direction << " " << name;
        if (name == "total") {
            for (const std::string protocol : {"tcp", "udp"})
                expect_total_near(found->at("protocols").at(protocol).at("count").get<double>(),
                                  direction + " total " + protocol);
        }
    }
    EXPECT_EQ(doc.at("stages").size(), size_t{NETLAT_STAGE_COUNT});
    EXPECT_NE(doc.at("accuracy").get<std::string>().find("1/16"), std::string::npos);
}

// "tx total (socket L5 -> driver L2): 603 samples (tcp 301, udp 302)": the samples of each
// protocol under a segment's histogram header.
std::map<std::string, std::pair<double, double>> headers(const std::string& text) {
    std::map<std::string, std::pair<double, double>> out;
    const std::regex header(R"(\n@(\w+ \w+) \([^)]*\): (\d+) samples \(tcp (\d+), udp (\d+)\))");
    for (std::sregex_iterator it(text.begin(), text.end(), header), end; it != end; ++it)
        out[(*it)[1]] = {std::stod((*it)[3]), std::stod((*it)[4])};
    return out;
}

TEST(Once, TextHasHistogramsPercentilesAndSharesOfEverySegment) {
    const int port = free_tcp_port();
    const OnceResult r = run_once(port_config(port), {"--duration", "4s"},
                                  [&](pid_t) { send_messages(port, kMessages); });
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto seen = headers(r.out);
    std::string table = r.out.substr(r.out.find("\nlatency per segment"));
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        const std::string direction(names::direction_of_segment(segment));
        const std::string name(names::kSegments[segment].segment);
        const auto it = seen.find(direction + " " + name);
        ASSERT_NE(it, seen.end()) << direction << " " << name << " has no histogram\n" << r.out;
        if (expected_for(segment, "tcp")) {
            EXPECT_GT(it->second.first, 0) << direction << " " << name << " tcp";
        }
        if (expected_for(segment, "udp")) {
            EXPECT_GT(it->second.second, 0) << direction << " " << name << " udp";
        }
        // Its row in the table: count, p50, p90, p99, max, all with a value.
        const std::regex row(
            "\n" + direction + R"( +)" + name +
            R"( +([1-9]\d*) +[\d.]+[nmu]?s +[\d.]+[nmu]?s +[\d.]+[nmu]?s +[\d.]+[nmu]?s\n)");
        EXPECT_TRUE(std::regex_search(table, row)) << direction << " " << name << "\n" << table;
    }
    for (const char* direction : {"tx", "rx"}) {
        const auto& total = seen.at(std::string(direction) + " total");
        expect_total_near(total.first, std::string(direction) + " total tcp");
        expect_total_near(total.second, std::string(direction) + " total udp");
    }
    EXPECT_NE(r.out.find("|@@@"), std::string::npos) << "bars";
    EXPECT_NE(r.out.find("where the time goes"), std::string::npos);
    EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\n\[\d+[nu]s, \d+[nu]s\) +\d+ \|@)")))
        << "bpftrace-style rows with readable units\n"
        << r.out;
}

// Also: with --listen, --once serves the page while it measures.
TEST(Once, SigintPrintsWhatWasCollectedAndExitsZero) {
    const int port = free_tcp_port(), http_port = free_tcp_port();
    const auto started = std::chrono::steady_clock::now();
    std::optional<HttpAnswer> page;
    const OnceResult r = run_once(
        port_config(port),
        {"--duration", "60s", "--json", "--listen", "127.0.0.1:" + std::to_string(http_port)},
        [&](pid_t pid) {
            send_messages(port, kMessages);
            page = http_request("127.0.0.1", http_port, "/");
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            kill(pid, SIGINT);
        });
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(page.has_value()) << "--once --listen serves the page";
    EXPECT_EQ(page->status, 200);
    const auto doc = nlohmann::json::parse(r.out);
    for (const auto& d : doc.at("directions")) {
        for (const auto& s : d.at("segments")) {
            if (s.at("segment") == d.at("total_segment"))
                expect_total_near(s.at("protocols").at("tcp").at("count").get<double>(),
                                  d.at("direction").get<std::string>() + " total tcp");
        }
    }
}

TEST(Once, BadValuesAreOneLineAndExitTwo) {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"--once", "--duration", "0"},
          std::vector<std::string>{"--once", "--duration", "abc"},
          std::vector<std::string>{"--json"}}) {
        std::vector<std::string> argv = {netlatd_path()};
        argv.insert(argv.end(), args.begin(), args.end());
        const auto r = run_command(argv);
        EXPECT_EQ(r.exit_code, 2) << args.back();
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_EQ(r.err.rfind("netlatd: ", 0), 0u) << r.err;
        EXPECT_EQ(r.out, "");
    }
}

// The page and its JSON in headless Chromium: https://chromium.googlesource.com/chromium/src/+/
// main/headless/README.md. --virtual-time-budget lets the page's fetches and timers run before the
// DOM is dumped.
std::vector<std::string> chromium_command(const std::string& profile) {
    return {"timeout",
            "120",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--user-data-dir=" + profile,
            "--virtual-time-budget=6000"};
}

// The attributes of the element with this id ("seg-tx-total"), or "" if absent.
std::string element_with_id(const std::string& dom, const std::string& id) {
    const size_t at = dom.find("id=\"" + id + "\"");
    if (at == std::string::npos) return "";
    const size_t start = dom.rfind('<', at);
    return dom.substr(start, dom.find('>', at) - start);
}

double data_count(const std::string& element) {
    std::smatch match;
    if (!std::regex_search(element, match, std::regex(R"(data-count="(\d+)\")"))) return -1;
    return std::stod(match[1]);
}

TEST(Page, EverySegmentOfBothDirectionsRendersWithData) {
    if (run_command({"sh", "-c", "command -v chromium"}).exit_code != 0)
        GTEST_SKIP() << "chromium is not installed (tools/deps.sh installs it)";
    const int port = free_tcp_port();
    Daemon d(port_config(port));
    ASSERT_TRUE(d.running()) << d.log();

    // Self-contained: no scripts, styles, fonts or images from anywhere, not even the same server
    // (the only URL is the SVG namespace, an identifier that is never fetched).
    const auto page = http_request("127.0.0.1", d.port(), "/");
    ASSERT_TRUE(page && page->status == 200);
    std::string html = page->body;
    for (const char* forbidden : {"src=", "<link", "@import", "url(", "//fonts", "<iframe"})
        EXPECT_EQ(html.find(forbidden), std::string::npos) << forbidden;
    const std::string svg_namespace = "http://www.w3.org/2000/svg";
    for (size_t at; (at = html.find(svg_namespace)) != std::string::npos;)
        html.erase(at, svg_namespace.size());
    EXPECT_EQ(html.find("http:"), std::string::npos);
    EXPECT_EQ(html.find("https:"), std::string::npos);

    // TCP and UDP side by side for about 8 s: across the page's loads and both browser runs.
    std::vector<std::thread> traffic;
    for (bool tcp : {true, false}) {
        traffic.emplace_back([port, tcp] {
            run_request_response({tcp, false, 6000, 64, port, std::chrono::microseconds(1000)});
        });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // several drains with traffic
    char tmpl[] = "/tmp/netlatd-chromium-XXXXXX";
    const std::string profile = mkdtemp(tmpl);
    const std::string url = "http://127.0.0.1:" + std::to_string(d.port()) + "/";
    auto dump = chromium_command(profile);
    dump.insert(dump.end(), {"--dump-dom", url});
    const auto dom = run_command(dump);

    const std::string artifacts = NETLATD_ARTIFACTS_DIR;
    std::filesystem::create_directories(artifacts);
    const std::string screenshot = artifacts + "/page.png";
    std::filesystem::remove(screenshot);
    auto shot = chromium_command(profile);
    shot.insert(shot.end(), {"--window-size=1280,1600", "--screenshot=" + screenshot, url});
    const auto shot_result = run_command(shot);
    for (std::thread& t : traffic) t.join();
    std::filesystem::remove_all(profile);

    ASSERT_EQ(dom.exit_code, 0) << dom.err;
    for (unsigned segment = 0; segment < NETLAT_SEG_COUNT; ++segment) {
        const std::string id = "seg-" + std::string(names::direction_of_segment(segment)) + "-" +
                               std::string(names::kSegments[segment].segment);
        const std::string element = element_with_id(dom.out, id);
        ASSERT_FALSE(element.empty()) << id << " not rendered\n" << dom.out.substr(0, 4000);
        EXPECT_GT(data_count(element), 0) << id << ": " << element;
        // Its histogram has bars, and its percentile lines have a path each.
        const size_t at = dom.out.find("id=\"" + id + "\"");
        const std::string card = dom.out.substr(at, dom.out.find("class=\"seg", at + 1) - at);
        const size_t histogram = card.find("class=\"hist\"");
        ASSERT_NE(histogram, std::string::npos) << id;
        EXPECT_NE(card.substr(histogram, card.find("</svg>", histogram) - histogram).find("<rect"),
                  std::string::npos)
            << id << " histogram without bars";
        EXPECT_NE(card.find("class=\"p99\""), std::string::npos) << id << " no p99 line";
    }
    for (const char* direction : {"tx", "rx"}) {
        EXPECT_FALSE(element_with_id(dom.out, std::string("share-") + direction).empty())
            << direction << " per-layer breakdown";
    }
    for (unsigned stage = 0; stage < NETLAT_STAGE_COUNT; ++stage) {
        const std::string key = "data-stage=\"" + std::string(names::direction_of_stage(stage)) +
                                "/" + std::string(names::kStages[stage].stage) + "\"";
        EXPECT_NE(dom.out.find(key), std::string::npos) << key;
    }
    for (std::string_view map : names::kMaps)
        EXPECT_NE(dom.out.find("data-map=\"" + std::string(map) + "\""), std::string::npos) << map;
    EXPECT_NE(dom.out.find("href=\"/metrics\""), std::string::npos);
    EXPECT_NE(dom.out.find("href=\"/healthz\""), std::string::npos);
    EXPECT_NE(element_with_id(dom.out, "status").find("class=\"note\""), std::string::npos)
        << "the page reports an error: " << element_with_id(dom.out, "status");

    EXPECT_EQ(shot_result.exit_code, 0) << shot_result.err;
    ASSERT_TRUE(std::filesystem::exists(screenshot)) << shot_result.err;
    EXPECT_GT(std::filesystem::file_size(screenshot), 20000u) << "a blank page is smaller";
    EXPECT_EQ(read_file(screenshot).substr(1, 3), "PNG");
    EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(Page, JsonEndpointAnswersNextToMetrics) {
    Daemon d;
    const auto json = http_request("127.0.0.1", d.port(), "/api/latency.json");
    ASSERT_TRUE(json && json->status == 200);
    const auto doc = nlohmann::json::parse(json->body);
    EXPECT_EQ(doc.at("directions").size(), size_t{NETLAT_DIR_COUNT});
    const auto missing = http_request("127.0.0.1", d.port(), "/nothing-here");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
}

// The periodic log summary: one line per direction with samples, p50 and p99 of its total.
TEST(LogSummary, OneLinePerDirectionEveryPeriodAndOff) {
    const int port = free_tcp_port();
    Daemon d(port_config(port) + "log_summary: 1s\n");
    ASSERT_TRUE(d.running()) << d.log();
    send_messages(port, kMessages);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    EXPECT_EQ(d.stop(), 0) << d.log();
    const std::string log = d.log();
    for (unsigned direction = 0; direction < NETLAT_DIR_COUNT; ++direction) {
        const std::regex line(
            "summary of the last 1s: " + std::string(names::kDirections[direction]) +
            R"( total \([^)]*\): [1-9]\d* samples, p50 [\d.]+[nmu]?s, p99 [\d.]+[nmu]?s)");
        EXPECT_TRUE(std::regex_search(log, line)) << names::kDirections[direction] << "\n" << log;
    }
    Daemon quiet(port_config(port) + "log_summary: off\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_EQ(quiet.stop(), 0);
    EXPECT_EQ(quiet.log().find("summary of the last"), std::string::npos) << quiet.log();
}

}  // namespace
