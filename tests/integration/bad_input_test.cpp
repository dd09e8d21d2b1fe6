// Bad configs and command lines, one table row each: netlatd exits non-zero with exactly one line
// on stderr that names the problem, prints nothing on stdout, does not crash (no signal, no
// "terminate called", no sanitizer report) and leaves no BPF program or link behind. Root only:
// the interface check searches every network namespace, and leftovers are looked up with bpftool.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

using namespace netlatd::test;

namespace {

// In `args`, "{file}" is the path of a file holding `file` and "{dir}" a directory.
struct BadInput {
    std::string name;
    std::vector<std::string> args;
    std::string file;
    std::string expected;  // a part of the one line
};

// For test names and failure messages: the row's name, not its bytes.
void PrintTo(const BadInput& row, std::ostream* out) {
    *out << row.name;
}

// Deterministic bytes 1..255 (no NUL: that has a row of its own).
std::string garbage(size_t size) {
    std::string out;
    uint32_t x = 2463534242u;
    while (out.size() < size) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        if (x & 0xff) out += static_cast<char>(x & 0xff);
    }
    return out;
}

std::string repeat(const std::string& text, size_t times) {
    std::string out;
    for (size_t i = 0; i < times; ++i) out += text;
    return out;
}

const std::vector<std::string> kCheck = {"--check-config", "--config", "{file}"};
// The start path (config, interface check, probes) with no HTTP port; a row that wrongly starts
// ends after a second with exit 0 and fails.
const std::vector<std::string> kStart = {"--once", "--duration", "1s", "--config", "{file}"};
// The same start path with the file as the web config (its TLS files are checked there too).
const std::vector<std::string> kStartWeb = {"--once", "--duration", "1s", "--web.config.file",
                                            "{file}"};

std::vector<BadInput> bad_inputs() {
    return {
        // Files that are no config at all.
        {"bad_yaml", kCheck, "listen: 127.0.0.1:9810\nfilters:\n  local_ports: [80, 443\n",
         "invalid YAML at line 4, column 1: end of sequence flow not found"},
        {"bad_yaml_at_start", kStart, "{{{{\n", "invalid YAML at line"},
        {"binary_garbage", kCheck, garbage(4096), "expected a mapping of listen, probe_mode"},
        {"nul_bytes", kCheck, std::string("listen: 127.0.0.1:9810\n\0\0\0\n", 27),
         "has a NUL byte in line 2"},
        {"directory", {"--check-config", "--config", "{dir}"}, "", "cannot read: Is a directory"},
        {"three_megabytes", kCheck, repeat("# padding\n", 314573), "larger than 1 MiB"},
        {"dev_zero", {"--check-config", "--config", "/dev/zero"}, "", "larger than 1 MiB"},
        {"missing_file",
         {"--config", "/nonexistent/netlatd.yaml"},
         "",
         "/nonexistent/netlatd.yaml: cannot read: No such file or directory"},
        {"not_a_mapping", kCheck, "- listen\n- 127.0.0.1:9810\n",
         "expected a mapping of listen, probe_mode"},
        {"lone_comma", kStart, ",\n", "invalid YAML at line 1, column 1: unexpected ','"},
        {"two_documents", kCheck, "sampling: 1\n---\nsampling: 2\n", "has 2 YAML documents"},
        {"deep_nesting", kCheck, std::string(100000, '['), "nested too deeply"},
        // Keys.
        {"unknown_key", kStart, "lables:\n  family: true\n", "unknown key 'lables' (allowed: "},
        {"unknown_nested_key", kCheck, "buckets:\n  minimum: 1us\n",
         "unknown key 'buckets.minimum' (allowed: min, max, per_octave, bounds)"},
        {"duplicate_key", kCheck, "sampling: 1\nsampling: 2\n", "duplicate key 'sampling'"},
        // Types.
        {"wrong_type_boolean", kCheck, "labels:\n  family: sometimes\n",
         "labels.family: 'sometimes' is not a boolean"},
        {"wrong_type_list", kCheck, "interval: [1s]\n",
         "interval: expected a duration, got a list"},
        {"wrong_type_section", kCheck, "filters: 5\n", "filters: expected a mapping of"},
        {"wrong_type_port", kCheck, "filters:\n  local_ports: [http]\n",
         "filters.local_ports[0]: 'http' is not an integer"},
        // Ranges.
        {"per_octave_out_of_range", kCheck, "buckets:\n  per_octave: 40\n",
         "buckets.per_octave: 40 is out of range (allowed 1..16)"},
        {"sampling_zero", kStart, "sampling: 0\n",
         "sampling: 0 is out of range (allowed 1..65536)"},
        {"interval_too_short", kCheck, "interval: 10us\n", "interval: 10us is out of range"},
        {"integer_overflow", kCheck, "maps:\n  skb_entries: 99999999999999999999999\n",
         "maps.skb_entries: 99999999999999999999999 is out of range"},
        {"port_out_of_range", kCheck, "filters:\n  remote_ports: [70000]\n",
         "filters.remote_ports[0]: 70000 is out of range (allowed 1..65535)"},
        {"log_level", kCheck, "log_level: verbose\n", "log_level: 'verbose' is not one of trace"},
        // Listen addresses, in the file and on the command line.
        {"listen_without_port", kCheck, "listen: localhost\n",
         "listen: 'localhost' is not HOST:PORT"},
        {"listen_port_out_of_range",
         {"--check-config", "--listen", "127.0.0.1:99999"},
         "",
         "--listen: '127.0.0.1:99999' has port '99999' (allowed 1..65535)"},
        {"listen_ipv6_without_brackets",
         {"--listen", "::1:9810"},
         "",
         "has an IPv6 address without brackets"},
        {"listen_bad_host",
         {"--listen", "no host:80"},
         "",
         "'no host', which is not an IPv4 address or a hostname"},
        // Bucket lists.
        {"bounds_not_increasing", kCheck, "buckets:\n  bounds: [1ms, 2ms, 2ms]\n",
         "buckets.bounds[2]: 2ms is not greater than the bound before it"},
        {"bounds_negative", kCheck, "buckets:\n  bounds: [-1ms]\n",
         "buckets.bounds[0]: -1ms is out of range (allowed 1ns..60s)"},
        {"bounds_not_durations", kCheck, "buckets:\n  bounds: [fast, slow]\n",
         "buckets.bounds[0]: 'fast' is not a duration"},
        {"bounds_too_many", kCheck, "buckets:\n  bounds: [" + repeat("1s, ", 201) + "]\n",
         "buckets.bounds: has 201 entries (allowed at most 200)"},
        {"bounds_min_above_max", kCheck, "buckets:\n  min: 1s\n  max: 1ms\n",
         "buckets.min: 1s is not less than buckets.max (1ms)"},
        // Command lines: unknown, incomplete and conflicting options.
        {"unknown_option", {"--foo"}, "", "unknown option '--foo' (see --help)"},
        {"unexpected_argument", {"netlatd.yaml"}, "", "unexpected argument 'netlatd.yaml'"},
        {"option_without_value", {"--config"}, "", "--config requires a value"},
        {"flag_with_value", {"--check-config=yes"}, "", "--check-config does not take a value"},
        {"json_without_once", {"--json"}, "", "--json needs --once"},
        {"duration_without_once", {"--duration", "5s"}, "", "--duration needs --once"},
        {"duration_out_of_range",
         {"--once", "--duration", "0s"},
         "",
         "--duration: 0s is out of range (allowed 100ms..24h)"},
        {"control_characters", {"--lis\nten\x1b[2J"}, "", "unknown option '--lis\\nten\\x1b[2J'"},
        // Probe modes.
        {"unknown_probe_mode_option",
         {"--probe-mode", "ebpf"},
         "",
         "--probe-mode: 'ebpf' is not one of auto, fentry, kprobe, tracepoint"},
        {"unknown_probe_mode_file", kCheck, "probe_mode: kprobes\n",
         "probe_mode: 'kprobes' is not one of auto, fentry, kprobe, tracepoint"},
        // Interface filters: bad names, and names no namespace has (checked at start).
        {"interface_bad_name", kCheck, "filters:\n  interfaces: [eth/0]\n",
         "filters.interfaces[0]: 'eth/0' is not an interface name"},
        {"interface_too_many", kCheck, "filters:\n  interfaces: [a, b, c, d, e, f, g, h, i]\n",
         "filters.interfaces: has 9 entries (allowed at most 8)"},
        {"interface_missing", kStart, "filters:\n  interfaces: [lo, nosuchif0]\n",
         "filters.interfaces[1]: 'nosuchif0' is not an interface in any network namespace"},
        // Web config files (--web.config.file, the exporter-toolkit format), at start.
        {"web_config_not_yaml", kStartWeb, ",\n", "invalid YAML at line 1, column 1: unexpected ','"},
        {"web_config_directory", {"--once", "--duration", "1s", "--web.config.file", "{dir}"}, "",
         "cannot read: Is a directory"},
        {"web_config_unknown_key", kStartWeb, "unknown: 1\n",
         "unknown key 'unknown' (allowed: tls_server_config, http_server_config, basic_auth_users)"},
        {"web_config_wrong_type", kStartWeb, "tls_server_config: [1]\n",
         "tls_server_config: expected a mapping of cert_file, key_file"},
        {"web_config_cert_without_key", kStartWeb, "tls_server_config:\n  cert_file: /etc/hostname\n",
         "tls_server_config: needs both cert_file and key_file"},
        {"web_config_missing_cert", kStartWeb,
         "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
         "tls_server_config.cert_file: /nonexistent.crt: cannot read: No such file or directory"},
        {"web_config_plaintext_password", kStartWeb, "basic_auth_users:\n  u: secret\n",
         "basic_auth_users.u: is not a bcrypt hash"},
        {"web_config_header_not_allowed", kStartWeb,
         "http_server_config:\n  headers:\n    Set-Cookie: x\n",
         "unknown key 'http_server_config.headers.Set-Cookie'"},
    };
}

// Programs and links the kernel has now that nobody holds, other than `before`: left attached or
// pinned. Objects of a process that just exited take a moment to go (RCU): they are given 5 s.
std::set<int> leftovers(const std::string& kind, const std::set<int>& before) {
    std::set<int> left;
    for (int attempt = 0; attempt < 50; ++attempt) {
        left.clear();
        const std::set<int> held = bpf_ids_held(kind);
        for (int id : bpf_ids_present(kind))
            if (!before.count(id) && !held.count(id)) left.insert(id);
        if (left.empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return left;
}

class BadInputTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(BadInputTest, ExitsNonZeroWithOneLineNamingTheProblem) {
    const BadInput& row = GetParam();
    char tmpl[] = "/tmp/netlatd-bad-input-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    const std::string file = dir + "/netlatd.yaml";
    std::ofstream(file, std::ios::binary) << row.file;
    std::vector<std::string> argv = {"timeout", "-s", "KILL", "60", netlatd_path()};
    for (const std::string& arg : row.args)
        argv.push_back(arg == "{file}" ? file : arg == "{dir}" ? dir : arg);

    const std::set<int> progs = bpf_ids_present("prog"), links = bpf_ids_present("link");
    const CommandResult r = run_command(argv);
    std::filesystem::remove_all(dir);

    EXPECT_GE(r.exit_code, 1) << r.err;
    EXPECT_LT(r.exit_code, 124) << "killed by a signal or the timeout: " << r.err;
    EXPECT_EQ(r.out, "");
    std::string line = r.err;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.find('\n'), std::string::npos) << "more than one line:\n" << r.err;
    EXPECT_NE(line.find(row.expected), std::string::npos)
        << "expected a line containing\n  " << row.expected << "\ngot\n  " << line;
    for (const char* crash : {"terminate called", "Aborted", "Sanitizer", "runtime error"})
        EXPECT_EQ(r.err.find(crash), std::string::npos) << r.err;
    EXPECT_EQ(leftovers("prog", progs), std::set<int>{}) << "BPF programs left behind";
    EXPECT_EQ(leftovers("link", links), std::set<int>{}) << "BPF links left behind";
}

INSTANTIATE_TEST_SUITE_P(Table, BadInputTest, ::testing::ValuesIn(bad_inputs()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
