#include "daemon/config/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace netlatd {
namespace {

using namespace std::chrono_literals;

// The one-line message parse_config() throws for `yaml`, or "" if it parses.
std::string error_of(std::string_view yaml) {
    try {
        parse_config(yaml, "test.yaml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

#define EXPECT_CONFIG_ERROR(yaml, message)                       \
    do {                                                         \
        const std::string error = error_of(yaml);                \
        EXPECT_EQ(error, message);                               \
        EXPECT_EQ(error.find('\n'), std::string::npos) << error; \
    } while (0)

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

TEST(Config, EmbeddedDefaultEqualsStructDefaults) {
    EXPECT_EQ(default_config(), Config{}) << to_yaml(default_config());
}

TEST(Config, EmbeddedDefaultIsTheRepositoryFile) {
    EXPECT_EQ(embedded_default_config_yaml(), read_file(NETLATD_CONFIG_DIR "/netlatd.yaml"));
    EXPECT_EQ(load_config_file(NETLATD_CONFIG_DIR "/netlatd.yaml"), Config{});
}

TEST(Config, EmptyDocumentMeansDefaults) {
    EXPECT_EQ(parse_config("", "x"), Config{});
    EXPECT_EQ(parse_config("# only a comment\n", "x"), Config{});
    EXPECT_EQ(parse_config("buckets:\nfilters:\n", "x"), Config{});
}

TEST(Config, ReadsEveryKey) {
    const Config c = parse_config(R"(
listen: "[::1]:9100"
probe_mode: tracepoint
interval: 250ms
buckets:
  min: 1us
  max: 2.5
  per_octave: 4
  bounds: [10us, 0.001, 1.5ms, 2]
labels: {family: true, netns: yes, max_series: 10}
filters:
  local_ports: [80, 443]
  remote_ports: [5201]
  interfaces: [lo, veth-a]
  netns: [4026531840]
sampling: 100
maps: {skb_entries: 1024, thread_entries: 64, socket_entries: 128, stale_after: 1.5ms}
log_level: debug
log_summary: 30s
bpf_stats: true
)",
                                  "x");
    EXPECT_EQ(c.listen, "[::1]:9100");
    EXPECT_EQ(c.probe_mode, ProbeMode::Tracepoint);
    EXPECT_EQ(c.interval, 250ms);
    EXPECT_EQ(c.buckets.min_seconds, 1e-6);
    EXPECT_EQ(c.buckets.max_seconds, 2.5);
    EXPECT_EQ(c.buckets.per_octave, 4u);
    EXPECT_EQ(c.buckets.bounds, (std::vector<double>{10e-6, 0.001, 1.5e-3, 2.0}));
    EXPECT_TRUE(c.labels.family);
    EXPECT_TRUE(c.labels.netns);
    EXPECT_EQ(c.labels.max_series, 10u);
    EXPECT_EQ(c.filters.local_ports, (std::vector<uint16_t>{80, 443}));
    EXPECT_EQ(c.filters.remote_ports, (std::vector<uint16_t>{5201}));
    EXPECT_EQ(c.filters.interfaces, (std::vector<std::string>{"lo", "veth-a"}));
    EXPECT_EQ(c.filters.netns, (std::vector<uint32_t>{4026531840u}));
    EXPECT_EQ(c.sampling, 100u);
    EXPECT_EQ(c.maps.skb_entries, 1024u);
    EXPECT_EQ(c.maps.thread_entries, 64u);
    EXPECT_EQ(c.maps.socket_entries, 128u);
    EXPECT_EQ(c.maps.stale_after, 1500us);
    EXPECT_EQ(c.log_level, "debug");
    EXPECT_EQ(c.log_summary, 30s);
    EXPECT_TRUE(c.bpf_stats);
}

TEST(Config, LogSummaryOff) {
    EXPECT_EQ(parse_config("log_summary: off\n", "x").log_summary, 0ms);
    EXPECT_EQ(parse_config("log_summary: 0\n", "x").log_summary, 0ms);
    EXPECT_EQ(parse_config("log_summary: 2m\n", "x").log_summary, 120s);
    EXPECT_EQ(Config{}.log_summary, 60s);
    Config off;
    off.log_summary = 0ms;
    EXPECT_EQ(parse_config(to_yaml(off), "round trip"), off);
}

TEST(Config, MissingKeysKeepDefaults) {
    const Config c = parse_config("buckets: {per_octave: 8}\n", "x");
    Config expected;
    expected.buckets.per_octave = 8;
    EXPECT_EQ(c, expected);
}

TEST(Config, Durations) {
    const auto seconds = [](std::string_view text) {
        return parse_config("buckets: {min: 1ns, max: " + std::string(text) + "}", "x")
            .buckets.max_seconds;
    };
    EXPECT_EQ(seconds("250ns"), 250e-9);
    EXPECT_EQ(seconds("10us"), 10e-6);
    EXPECT_EQ(seconds("1.5ms"), 1.5e-3);
    EXPECT_EQ(seconds("2"), 2.0);
    EXPECT_EQ(seconds("0.25"), 0.25);
    EXPECT_EQ(seconds("1s"), 1.0);
    EXPECT_EQ(seconds("1m"), 60.0);
    EXPECT_EQ(seconds("1e-3"), 1e-3);
    const auto stale = [](std::string_view text) {
        return parse_config("maps: {stale_after: " + std::string(text) + "}", "x").maps.stale_after;
    };
    EXPECT_EQ(stale("2500000ns"), 2500us);
    EXPECT_EQ(stale("1500us"), 1500us);
    EXPECT_EQ(stale("1.5ms"), 1500us);
    EXPECT_EQ(stale("2"), 2s);
    EXPECT_EQ(stale("0.5"), 500ms);
    EXPECT_EQ(stale("2m"), 120s);
    EXPECT_EQ(parse_config("interval: 2", "x").interval, 2s);
    EXPECT_EQ(parse_config("interval: 0.1", "x").interval, 100ms);
    EXPECT_EQ(parse_config("interval: 1.5s", "x").interval, 1500ms);
}

TEST(Config, RoundTrip) {
    Config c;
    c.listen = "[fe80::1]:1234";
    c.probe_mode = ProbeMode::Kprobe;
    c.interval = 1500ms;
    c.buckets.min_seconds = 1.5e-6;
    c.buckets.max_seconds = 0.75;
    c.buckets.per_octave = 16;
    c.buckets.bounds = {1e-9, 2.5e-7, 1e-5, 0.0015, 0.1, 1.0 / 3, 60};
    c.labels = {true, true, 99999};
    c.filters.local_ports = {1, 65535};
    c.filters.remote_ports = {22};
    c.filters.interfaces = {"eth0", "yes", "null", "123"};
    c.filters.netns = {1, 4294967295u};
    c.sampling = 65536;
    c.maps = {1, 2, 16777216, 3600s};
    c.log_level = "trace";
    c.log_summary = 1500ms;
    c.bpf_stats = true;
    const std::string yaml = to_yaml(c);
    EXPECT_EQ(parse_config(yaml, "round trip"), c) << yaml;
    EXPECT_EQ(parse_config(to_yaml(Config{}), "round trip"), Config{});
}

TEST(Config, WritesReadableDurations) {
    const std::string yaml = to_yaml(Config{});
    EXPECT_NE(yaml.find("interval: 1s"), std::string::npos) << yaml;
    EXPECT_NE(yaml.find("min: 250ns"), std::string::npos) << yaml;
    EXPECT_NE(yaml.find("max: 4s"), std::string::npos) << yaml;
    EXPECT_NE(yaml.find("stale_after: 5s"), std::string::npos) << yaml;
}

TEST(ConfigErrors, BadYamlNamesLineAndColumn) {
    const std::string error =
        error_of("listen: 127.0.0.1:9810\nfilters:\n  local_ports: [80, 443\n");
    EXPECT_TRUE(error.starts_with("config test.yaml: invalid YAML at line ")) << error;
    EXPECT_NE(error.find(", column "), std::string::npos) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
    EXPECT_CONFIG_ERROR("a: 1\n---\nb: 2\n",
                        "config test.yaml: has 2 YAML documents (allowed one)");
}

// Text that is not a config at all: still one printable line, never a crash.
TEST(ConfigErrors, NotText) {
    EXPECT_CONFIG_ERROR(std::string_view("listen: 1\0\n", 11),
                        "config test.yaml: has a NUL byte in line 1 (not a text file)");
    EXPECT_CONFIG_ERROR("a: \"\\\xff\"\n",
                        "config test.yaml: invalid YAML at line 1, column 7: unknown escape "
                        "character: \\xff");
    // yaml-cpp 0.7's LoadAll never returns on these (found by tests/fuzz).
    EXPECT_CONFIG_ERROR(",", "config test.yaml: invalid YAML at line 1, column 1: unexpected ','");
    EXPECT_CONFIG_ERROR("# comment\n  , 50us\n",
                        "config test.yaml: invalid YAML at line 2, column 3: unexpected ','");
    EXPECT_CONFIG_ERROR(std::string(100000, '[') + std::string(100000, ']'),
                        "config test.yaml: invalid YAML at line 1, column 1: nested too deeply");
    EXPECT_CONFIG_ERROR("sampling: " + std::string(100, '9') + "\n",
                        "config test.yaml: sampling: " + std::string(64, '9') +
                            "... is out of range (allowed 1..65536)");
    EXPECT_CONFIG_ERROR("listen: \"\xc3\xa9:80\"\n",
                        "config test.yaml: listen: '\\xc3\\xa9:80' has '\\xc3\\xa9', which is not "
                        "an IPv4 address or a hostname (letters, digits, '-', '.')");
    try {
        parse_config("x: 1", "a\nb.yaml");
        ADD_FAILURE() << "parsed";
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(),
                     "config a\\nb.yaml: unknown key 'x' (allowed: listen, probe_mode, "
                     "interval, buckets, labels, filters, sampling, maps, log_level, "
                     "log_summary, bpf_stats)");
    }
}

TEST(Printable, EscapesAndCuts) {
    EXPECT_EQ(printable("a\tb\nc\x01\x7f\xe2\x82\xac"), "a\\tb\\nc\\x01\\x7f\\xe2\\x82\\xac");
    EXPECT_EQ(printable("abcdef", 3), "abc...");
    EXPECT_EQ(printable("abc", 3), "abc");
    EXPECT_EQ(quote(std::string(65, 'x')), "'" + std::string(64, 'x') + "...'");
}

TEST(ConfigErrors, UnknownKeys) {
    EXPECT_CONFIG_ERROR("lables: {}\n",
                        "config test.yaml: unknown key 'lables' (allowed: listen, probe_mode, "
                        "interval, buckets, labels, filters, sampling, maps, log_level, "
                        "log_summary, bpf_stats)");
    EXPECT_CONFIG_ERROR("buckets: {per_octav: 2}\n",
                        "config test.yaml: unknown key 'buckets.per_octav' (allowed: min, max, "
                        "per_octave, bounds)");
    EXPECT_CONFIG_ERROR("maps: {skb: 2}\n",
                        "config test.yaml: unknown key 'maps.skb' (allowed: skb_entries, "
                        "thread_entries, socket_entries, stale_after)");
    EXPECT_CONFIG_ERROR("buckets.min: 1us\n",
                        "config test.yaml: unknown key 'buckets.min' (allowed: listen, probe_mode, "
                        "interval, buckets, labels, filters, sampling, maps, log_level, "
                        "log_summary, bpf_stats)");
    EXPECT_CONFIG_ERROR("sampling: 2\nsampling: 3\n", "config test.yaml: duplicate key 'sampling'");
}

TEST(ConfigErrors, WrongTypes) {
    EXPECT_CONFIG_ERROR(
        "- listen\n",
        "config test.yaml: expected a mapping of listen, probe_mode, interval, "
        "buckets, labels, filters, sampling, maps, log_level, log_summary, bpf_stats, got a list");
    EXPECT_CONFIG_ERROR("buckets: 5\n",
                        "config test.yaml: buckets: expected a mapping of min, max, per_octave, "
                        "bounds, got a single value");
    EXPECT_CONFIG_ERROR("labels: {family: sometimes}\n",
                        "config test.yaml: labels.family: 'sometimes' is not a boolean (allowed "
                        "true, false)");
    EXPECT_CONFIG_ERROR("sampling: ten\n", "config test.yaml: sampling: 'ten' is not an integer");
    EXPECT_CONFIG_ERROR("sampling: 2.5\n", "config test.yaml: sampling: '2.5' is not an integer");
    EXPECT_CONFIG_ERROR("sampling: [1]\n",
                        "config test.yaml: sampling: expected an integer, got a list");
    EXPECT_CONFIG_ERROR("sampling:\n", "config test.yaml: sampling: needs a value (an integer)");
    EXPECT_CONFIG_ERROR("interval: soon\n",
                        "config test.yaml: interval: 'soon' is not a duration (e.g. 250ns, 10us, "
                        "1.5ms, 2s, 1m; a plain number is seconds)");
    EXPECT_CONFIG_ERROR("interval: 5 s\n",
                        "config test.yaml: interval: '5 s' is not a duration (e.g. 250ns, 10us, "
                        "1.5ms, 2s, 1m; a plain number is seconds)");
    EXPECT_CONFIG_ERROR(
        "filters: {local_ports: 80}\n",
        "config test.yaml: filters.local_ports: expected a list, got a single value");
    EXPECT_CONFIG_ERROR("filters: {local_ports: [80, http]}\n",
                        "config test.yaml: filters.local_ports[1]: 'http' is not an integer");
    EXPECT_CONFIG_ERROR("probe_mode: kprob\n",
                        "config test.yaml: probe_mode: 'kprob' is not one of auto, fentry, kprobe, "
                        "tracepoint");
    EXPECT_CONFIG_ERROR("log_level: verbose\n",
                        "config test.yaml: log_level: 'verbose' is not one of trace, debug, info, "
                        "warn, error");
    EXPECT_CONFIG_ERROR("log_level: \"a\\nb\"\n",
                        "config test.yaml: log_level: 'a\\nb' is not one of trace, debug, info, "
                        "warn, error");
}

TEST(ConfigErrors, OutOfRange) {
    EXPECT_CONFIG_ERROR("buckets: {per_octave: 40}\n",
                        "config test.yaml: buckets.per_octave: 40 is out of range (allowed 1..16)");
    EXPECT_CONFIG_ERROR("buckets: {per_octave: 0}\n",
                        "config test.yaml: buckets.per_octave: 0 is out of range (allowed 1..16)");
    EXPECT_CONFIG_ERROR("sampling: -1\n",
                        "config test.yaml: sampling: -1 is out of range (allowed 1..65536)");
    EXPECT_CONFIG_ERROR("sampling: 99999999999999999999999\n",
                        "config test.yaml: sampling: 99999999999999999999999 is out of range "
                        "(allowed 1..65536)");
    EXPECT_CONFIG_ERROR("interval: 50ms\n",
                        "config test.yaml: interval: 50ms is out of range (allowed 100ms..60s)");
    EXPECT_CONFIG_ERROR("interval: 100.5ms\n",
                        "config test.yaml: interval: must be whole milliseconds");
    EXPECT_CONFIG_ERROR(
        "log_summary: 500ms\n",
        "config test.yaml: log_summary: 500ms is out of range (allowed 1s..86400s)");
    EXPECT_CONFIG_ERROR("log_summary: never\n",
                        "config test.yaml: log_summary: 'never' is not a duration (e.g. 250ns, "
                        "10us, 1.5ms, 2s, 1m; a plain number is seconds)");
    EXPECT_CONFIG_ERROR("buckets: {min: 0.5ns}\n",
                        "config test.yaml: buckets.min: 0.5ns is out of range (allowed 1ns..60s)");
    EXPECT_CONFIG_ERROR("buckets: {max: 2m}\n",
                        "config test.yaml: buckets.max: 2m is out of range (allowed 1ns..60s)");
    EXPECT_CONFIG_ERROR("buckets: {min: 1s, max: 1s}\n",
                        "config test.yaml: buckets.min: 1s is not less than buckets.max (1s)");
    EXPECT_CONFIG_ERROR(
        "maps: {stale_after: -1s}\n",
        "config test.yaml: maps.stale_after: -1s is out of range (allowed 1ms..3600s)");
    EXPECT_CONFIG_ERROR(
        "maps: {skb_entries: 0}\n",
        "config test.yaml: maps.skb_entries: 0 is out of range (allowed 1..16777216)");
    EXPECT_CONFIG_ERROR("filters: {remote_ports: [0]}\n",
                        "config test.yaml: filters.remote_ports[0]: 0 is out of range (allowed "
                        "1..65535)");
    EXPECT_CONFIG_ERROR("filters: {netns: [0]}\n",
                        "config test.yaml: filters.netns[0]: 0 is out of range (allowed "
                        "1..4294967295)");
    EXPECT_CONFIG_ERROR(
        "filters: {local_ports: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]}\n",
        "config test.yaml: filters.local_ports: has 17 entries (allowed at most 16)");
    EXPECT_CONFIG_ERROR("filters: {interfaces: [a, b, c, d, e, f, g, h, i]}\n",
                        "config test.yaml: filters.interfaces: has 9 entries (allowed at most 8)");
    EXPECT_CONFIG_ERROR("filters: {interfaces: [averyveryverylong]}\n",
                        "config test.yaml: filters.interfaces[0]: 'averyveryverylong' is not an "
                        "interface name (1..15 characters, no '/', ':' or spaces)");
    EXPECT_CONFIG_ERROR("filters: {interfaces: [\"a/b\"]}\n",
                        "config test.yaml: filters.interfaces[0]: 'a/b' is not an interface name "
                        "(1..15 characters, no '/', ':' or spaces)");
}

TEST(ConfigErrors, BucketBounds) {
    EXPECT_CONFIG_ERROR("buckets: {bounds: [1ms, 2ms, 2ms]}\n",
                        "config test.yaml: buckets.bounds[2]: 2ms is not greater than the bound "
                        "before it (2ms); bounds must be strictly increasing");
    EXPECT_CONFIG_ERROR("buckets: {bounds: [1ms, 500us]}\n",
                        "config test.yaml: buckets.bounds[1]: 500us is not greater than the bound "
                        "before it (1ms); bounds must be strictly increasing");
    EXPECT_CONFIG_ERROR(
        "buckets: {bounds: [0, 1ms]}\n",
        "config test.yaml: buckets.bounds[0]: 0 is out of range (allowed 1ns..60s)");
    EXPECT_CONFIG_ERROR(
        "buckets: {bounds: [1ms, 61]}\n",
        "config test.yaml: buckets.bounds[1]: 61 is out of range (allowed 1ns..60s)");
    std::string many = "buckets: {bounds: [";
    for (int i = 1; i <= 201; ++i) many += std::to_string(i) + "us, ";
    many += "]}";
    EXPECT_CONFIG_ERROR(many,
                        "config test.yaml: buckets.bounds: has 201 entries (allowed at most 200)");
    std::string two_hundred = "buckets: {bounds: [";
    for (int i = 1; i <= 200; ++i) two_hundred += std::to_string(i) + "us, ";
    two_hundred += "]}";
    EXPECT_EQ(parse_config(two_hundred, "x").buckets.bounds.size(), 200u);
}

TEST(ConfigErrors, Listen) {
    for (const char* good : {"0.0.0.0:9810", "127.0.0.1:1", "[::]:65535", "[::1]:9810",
                             "localhost:9810", "node-1.example.com:80", "[fe80::1]:80"}) {
        EXPECT_EQ(error_of(std::string("listen: \"") + good + "\""), "") << good;
    }
    const auto listen_error = [](std::string_view value) {
        return error_of("listen: \"" + std::string(value) + "\"");
    };
    EXPECT_EQ(listen_error("localhost"),
              "config test.yaml: listen: 'localhost' is not HOST:PORT (HOST: IPv4 address, [IPv6 "
              "address] or hostname)");
    EXPECT_EQ(listen_error("127.0.0.1:0"),
              "config test.yaml: listen: '127.0.0.1:0' has port '0' (allowed 1..65535)");
    EXPECT_EQ(listen_error("127.0.0.1:65536"),
              "config test.yaml: listen: '127.0.0.1:65536' has port '65536' (allowed 1..65535)");
    EXPECT_EQ(listen_error("127.0.0.1:http"),
              "config test.yaml: listen: '127.0.0.1:http' has port 'http' (allowed 1..65535)");
    EXPECT_EQ(listen_error("127.0.0.1:"),
              "config test.yaml: listen: '127.0.0.1:' has port '' (allowed 1..65535)");
    EXPECT_EQ(listen_error("::1:9810"),
              "config test.yaml: listen: '::1:9810' has an IPv6 address without brackets (write "
              "[ADDRESS]:PORT)");
    EXPECT_EQ(listen_error("[::g]:80"),
              "config test.yaml: listen: '[::g]:80' has '::g', which is not an IPv6 address");
    EXPECT_EQ(listen_error("[::1]9810"),
              "config test.yaml: listen: '[::1]9810' is not [IPv6]:PORT");
    EXPECT_EQ(listen_error("300.1.1.1:80"),
              "config test.yaml: listen: '300.1.1.1:80' has '300.1.1.1', which is not an IPv4 "
              "address");
    EXPECT_EQ(listen_error("a_b:80"),
              "config test.yaml: listen: 'a_b:80' has 'a_b', which is not an IPv4 address or a "
              "hostname (letters, digits, '-', '.')");
    EXPECT_EQ(listen_error(":9810"),
              "config test.yaml: listen: ':9810' has no host (use 0.0.0.0 or [::] for all "
              "addresses)");
}

TEST(ListenAddress, Splits) {
    const ListenAddress v6 = parse_listen_address("[::1]:9810");
    EXPECT_EQ(v6.host, "::1");
    EXPECT_EQ(v6.port, 9810);
    EXPECT_TRUE(v6.ipv6);
    const ListenAddress v4 = parse_listen_address("10.0.0.1:80");
    EXPECT_EQ(v4.host, "10.0.0.1");
    EXPECT_EQ(v4.port, 80);
    EXPECT_FALSE(v4.ipv6);
}

TEST(ConfigErrors, Files) {
    const std::string dir = NETLATD_TEST_DATA_DIR "/config/";
    const auto file_error = [](const std::string& path) {
        try {
            load_config_file(path);
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_EQ(file_error("/nonexistent/netlatd.yaml"),
              "config /nonexistent/netlatd.yaml: cannot read: No such file or directory");
    EXPECT_EQ(file_error("/"), "config /: cannot read: Is a directory");
    const std::string bad_yaml = file_error(dir + "bad_yaml.yaml");
    EXPECT_TRUE(bad_yaml.starts_with("config " + dir + "bad_yaml.yaml: invalid YAML at line "))
        << bad_yaml;
    EXPECT_EQ(file_error(dir + "unknown_key.yaml"),
              "config " + dir +
                  "unknown_key.yaml: unknown key 'lables' (allowed: listen, probe_mode, interval, "
                  "buckets, labels, filters, sampling, maps, log_level, log_summary, bpf_stats)");
    EXPECT_EQ(file_error(dir + "wrong_type.yaml"),
              "config " + dir +
                  "wrong_type.yaml: labels.family: 'sometimes' is not a boolean (allowed true, "
                  "false)");
    EXPECT_EQ(file_error(dir + "out_of_range.yaml"),
              "config " + dir +
                  "out_of_range.yaml: buckets.per_octave: 40 is out of range (allowed 1..16)");
    // At most 1 MiB is read, so /dev/zero ends too.
    const std::string big = ::testing::TempDir() + "netlatd-big.yaml";
    std::ofstream(big) << std::string((1 << 20) - 1, '#') << "\n";
    EXPECT_EQ(file_error(big), "");
    std::ofstream(big, std::ios::app) << "\n";
    EXPECT_EQ(file_error(big), "config " + big +
                                   ": larger than 1 MiB (1048576 bytes), the most a config file "
                                   "may be");
    std::remove(big.c_str());
    EXPECT_EQ(file_error("/dev/zero"),
              "config /dev/zero: larger than 1 MiB (1048576 bytes), the most a config file may be");
    for (const char* name : {"bad_yaml", "unknown_key", "wrong_type", "out_of_range"}) {
        EXPECT_EQ(file_error(dir + name + ".yaml").find('\n'), std::string::npos) << name;
    }
}

TEST(ProbeMode, Names) {
    for (ProbeMode mode :
         {ProbeMode::Auto, ProbeMode::Fentry, ProbeMode::Kprobe, ProbeMode::Tracepoint}) {
        EXPECT_EQ(probe_mode_from_string(to_string(mode)), mode);
    }
    EXPECT_EQ(probe_mode_from_string("Auto"), std::nullopt);
    EXPECT_EQ(probe_mode_choices(), "auto, fentry, kprobe, tracepoint");
}

}  // namespace
}  // namespace netlatd
