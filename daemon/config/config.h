// netlatd configuration: the struct the daemon runs on, read from YAML and validated in one place
// (config.cpp). The defaults below are also written out, with comments, in config/netlatd.yaml,
// which is compiled in: a unit test checks that the two agree.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace netlatd {

enum class ProbeMode { Auto, Fentry, Kprobe, Tracepoint };
std::string_view to_string(ProbeMode);
std::optional<ProbeMode> probe_mode_from_string(std::string_view);
// "auto, fentry, kprobe, tracepoint": for messages and help text.
std::string probe_mode_choices();

struct BucketConfig {             // Prometheus buckets of netlatd_stack_latency_seconds
    double min_seconds = 250e-9;  // used when bounds is empty: geometric bounds min..max,
    double max_seconds = 4.0;     //   per_octave bounds per power of two
    unsigned per_octave = 2;      // 1..16
    std::vector<double> bounds;   // explicit, seconds, strictly increasing, > 0, <= 60 s, at most
                                  // 200; overrides min/max/per_octave
    bool operator==(const BucketConfig&) const = default;
};
struct LabelConfig {
    bool family = false;
    bool netns = false;
    unsigned max_series = 2048;
    bool operator==(const LabelConfig&) const = default;
};
struct FilterConfig {
    std::vector<uint16_t> local_ports, remote_ports;  // empty = all; at most NETLAT_MAX_PORTS each
    std::vector<std::string>
        interfaces;               // names, empty = all; at most NETLAT_MAX_IFACES, < 16 chars
    std::vector<uint32_t> netns;  // netns inode numbers, empty = all; at most NETLAT_MAX_NETNS
    bool operator==(const FilterConfig&) const = default;
};
struct MapConfig {
    uint32_t skb_entries = 16384;    // tx_skb / rx_skb (in-flight packets)
    uint32_t thread_entries = 8192;  // tx_thread (threads inside a send call)
    uint32_t socket_entries = 8192;  // tx_ring; rx_ring where rx queued/socket is a kprobe
    std::chrono::nanoseconds stale_after{std::chrono::seconds(5)};
    bool operator==(const MapConfig&) const = default;
};
constexpr uint32_t kMaxSampling = 65536;  // the sparsest flow sampling: 1 in this many

// The overhead budget: the share of one CPU netlatd's BPF programs may take (0: no budget).
struct BudgetConfig {
    double cpu = 0;
    std::chrono::nanoseconds event_cost{300};  // cost per stage event without kernel BPF stats
    bool operator==(const BudgetConfig&) const = default;
};
struct Config {
    std::string listen = "0.0.0.0:9810";  // HOST:PORT, HOST may be [v6]
    ProbeMode probe_mode = ProbeMode::Auto;
    std::chrono::milliseconds interval{1000};  // drain interval, 100ms..60s
    BucketConfig buckets;
    LabelConfig labels;
    FilterConfig filters;
    uint32_t sampling = 1;  // measure 1 in N flows (port pairs), 1..65536
    BudgetConfig budget;
    MapConfig maps;
    std::string log_level = "info";  // trace|debug|info|warn|error
    std::chrono::milliseconds log_summary{60000};  // one log line per direction this often; 0: off
    bool bpf_stats = false;  // kernel BPF run-time statistics for netlatd_bpf_program_* (they
                             // slow every BPF program of the host)
    bool operator==(const Config&) const = default;
};

// One line, naming the source, the key, the bad value and what is allowed, e.g.
// "config /etc/netlatd/netlatd.yaml: buckets.per_octave: 40 is out of range (allowed 1..16)".
struct ConfigError : std::runtime_error {
    using runtime_error::runtime_error;
};

Config parse_config(std::string_view yaml_text, std::string_view source);  // throws ConfigError
// Throws ConfigError (missing file, a directory, more than 1 MiB, ...).
Config load_config_file(const std::string& path);
Config default_config();  // parses the embedded copy of config/netlatd.yaml
std::string_view
embedded_default_config_yaml();      // generated at build time from config/netlatd.yaml
std::string to_yaml(const Config&);  // the effective config, re-parseable

// Text from the user made fit for a one-line message: control characters and bytes >= 0x7f
// escaped (\n, \t, \xNN), cut after max_shown bytes with "...". quote() adds single quotes.
std::string printable(std::string_view text, size_t max_shown = 64);
std::string quote(std::string_view text);

// Durations as the file writes them: "250ns", "10us", "1.5ms", "2s", "1m" or a plain number of
// seconds. Seconds, or nullopt if the text is not a duration (negative values are returned).
std::optional<double> parse_duration_seconds(std::string_view text);
// The most readable text that parses back to exactly `seconds`: the largest unit in which the
// value is >= 1 with at most three decimals ("4s", "500ms", "1.5ms", "250ns"), else plain seconds.
std::string format_duration(double seconds);

// A listen address split into its parts: "HOST:PORT", HOST an IPv4 address, [IPv6] or a hostname,
// PORT 1..65535. The one check of `listen`, for the file and for --listen. Throws
// std::invalid_argument with the reason, quoting the value (the caller adds the key or option).
struct ListenAddress {
    std::string host;  // IPv4 address, IPv6 address without brackets, or hostname
    uint16_t port = 0;
    bool ipv6 = false;
};
ListenAddress parse_listen_address(std::string_view host_port);

}  // namespace netlatd
