// Reading, validating and writing netlatd's YAML configuration.
//
// Every key is one row of kFields: its dotted path, how to read and check it, how to write it. The
// same table drives unknown-key errors (with the list of allowed keys), parsing and to_yaml(), so a
// new key is one row here plus its documented default in config/netlatd.yaml.
#include "daemon/config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <utility>

#include "bpf/netlat.h"
#include "daemon/config/yaml_value.h"

namespace netlatd {
namespace {

constexpr std::array<std::pair<ProbeMode, std::string_view>, 4> kProbeModes{{
    {ProbeMode::Auto, "auto"},
    {ProbeMode::Fentry, "fentry"},
    {ProbeMode::Kprobe, "kprobe"},
    {ProbeMode::Tracepoint, "tracepoint"},
}};
constexpr auto kProbeModeNames = names_of(kProbeModes);
constexpr std::array<std::string_view, 5> kLogLevels{"trace", "debug", "info", "warn", "error"};

constexpr double kMaxBucketSeconds = 60.0;
constexpr size_t kMaxBounds = 200;

// Duration units: seconds = number * multiply / divide (both exact, so "250ns" is the double
// nearest to 250e-9). Longer suffixes first: "ms" also ends in "s".
struct DurationUnit {
    std::string_view suffix;
    double multiply, divide;
};
constexpr std::array<DurationUnit, 5> kDurationUnits{{
    {"ns", 1, 1e9},
    {"us", 1, 1e6},
    {"ms", 1, 1e3},
    {"s", 1, 1},
    {"m", 60, 1},
}};

}  // namespace

// Public (config.h): the one way user text gets into a message.
std::string printable(std::string_view text, size_t max_shown) {
    std::string out;
    for (size_t i = 0; i < text.size() && i < max_shown; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c >= 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        } else {
            out += static_cast<char>(c);
        }
    }
    if (text.size() > max_shown) out += "...";
    return out;
}

std::string quote(std::string_view text) {
    return "'" + printable(text) + "'";
}

// Public (config.h): --duration takes the same syntax.
std::optional<double> parse_duration_seconds(std::string_view text) {
    double multiply = 1, divide = 1;
    for (const auto& unit : kDurationUnits) {
        if (text.ends_with(unit.suffix)) {
            text.remove_suffix(unit.suffix.size());
            multiply = unit.multiply;
            divide = unit.divide;
            break;
        }
    }
    double number = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, number);
    if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(number)) return {};
    return number * multiply / divide;
}

static std::string shortest(double value) {
    char buf[64];
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, value);
    return std::string(buf, ec == std::errc() ? ptr : buf);
}

std::string format_duration(double seconds) {
    for (std::string_view suffix : {"s", "ms", "us", "ns"}) {
        const auto& unit = *std::find_if(kDurationUnits.begin(), kDurationUnits.end(),
                                         [&](const DurationUnit& u) { return u.suffix == suffix; });
        const double in_unit = seconds * unit.divide;
        if (in_unit < 1) continue;
        std::string text = shortest(in_unit);
        const auto dot = text.find('.');
        if (text.find('e') != std::string::npos) continue;
        if (dot != std::string::npos && text.size() - dot - 1 > 3) continue;
        text += suffix;
        if (parse_duration_seconds(text) == seconds) return text;
    }
    return shortest(seconds);
}

namespace {

template <typename T>
std::vector<T> integer_list(const Value& value, size_t max_items, int64_t lo, int64_t hi) {
    std::vector<T> out;
    for (const Value& item : value.list(max_items)) {
        out.push_back(static_cast<T>(item.integer(lo, hi)));
    }
    return out;
}

template <typename T>
YAML::Node flow_list(const std::vector<T>& items) {
    YAML::Node node(YAML::NodeType::Sequence);
    for (const auto& item : items) node.push_back(item);
    node.SetStyle(YAML::EmitterStyle::Flow);
    return node;
}

// Linux's dev_valid_name(): 1..IFNAMSIZ-1 characters, not "." or "..", no '/', ':' or whitespace.
bool valid_interface_name(std::string_view name) {
    if (name.empty() || name.size() >= NETLAT_IFNAMSIZ || name == "." || name == "..") return false;
    return std::none_of(name.begin(), name.end(), [](char c) {
        return c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c));
    });
}

void read_bounds(const Value& value, Config& config) {
    std::vector<double> bounds;
    for (const Value& item : value.list(kMaxBounds)) {
        const double bound = item.duration(1e-9, kMaxBucketSeconds);
        if (!bounds.empty() && bound <= bounds.back()) {
            item.fail(format_duration(bound) + " is not greater than the bound before it (" +
                      format_duration(bounds.back()) + "); bounds must be strictly increasing");
        }
        bounds.push_back(bound);
    }
    config.buckets.bounds = std::move(bounds);
}

YAML::Node duration_node(double seconds) {
    return YAML::Node(format_duration(seconds));
}

struct Field {
    std::string_view path;  // dotted; a section (mapping of further keys) when read is null
    void (*read)(const Value&, Config&);
    YAML::Node (*write)(const Config&);
};

// clang-format off
const Field kFields[] = {
    {"listen",
     [](const Value& v, Config& c) {
         c.listen = v.scalar("HOST:PORT");
         try {
             parse_listen_address(c.listen);
         } catch (const std::invalid_argument& e) {
             v.fail(e.what());
         }
     },
     [](const Config& c) { return YAML::Node(c.listen); }},
    {"probe_mode",
     [](const Value& v, Config& c) {
         c.probe_mode = *probe_mode_from_string(v.choice(kProbeModeNames));
     },
     [](const Config& c) { return YAML::Node(std::string(to_string(c.probe_mode))); }},
    {"interval",
     [](const Value& v, Config& c) {
         const double ms = v.duration(0.1, 60) * 1e3;
         if (std::abs(ms - std::round(ms)) > 1e-6) v.fail("must be whole milliseconds");
         c.interval = std::chrono::milliseconds(std::llround(ms));
     },
     [](const Config& c) { return duration_node(c.interval.count() / 1e3); }},
    {"buckets", nullptr, nullptr},
    {"buckets.min",
     [](const Value& v, Config& c) { c.buckets.min_seconds = v.duration(1e-9, kMaxBucketSeconds); },
     [](const Config& c) { return duration_node(c.buckets.min_seconds); }},
    {"buckets.max",
     [](const Value& v, Config& c) { c.buckets.max_seconds = v.duration(1e-9, kMaxBucketSeconds); },
     [](const Config& c) { return duration_node(c.buckets.max_seconds); }},
    {"buckets.per_octave",
     [](const Value& v, Config& c) { c.buckets.per_octave = v.integer(1, 16); },
     [](const Config& c) { return YAML::Node(c.buckets.per_octave); }},
    {"buckets.bounds", read_bounds,
     [](const Config& c) {
         YAML::Node node(YAML::NodeType::Sequence);
         for (double bound : c.buckets.bounds) node.push_back(format_duration(bound));
         node.SetStyle(YAML::EmitterStyle::Flow);
         return node;
     }},
    {"labels", nullptr, nullptr},
    {"labels.family",
     [](const Value& v, Config& c) { c.labels.family = v.boolean(); },
     [](const Config& c) { return YAML::Node(c.labels.family); }},
    {"labels.netns",
     [](const Value& v, Config& c) { c.labels.netns = v.boolean(); },
     [](const Config& c) { return YAML::Node(c.labels.netns); }},
    {"labels.max_series",
     [](const Value& v, Config& c) { c.labels.max_series = v.integer(1, 100000); },
     [](const Config& c) { return YAML::Node(c.labels.max_series); }},
    {"filters", nullptr, nullptr},
    {"filters.local_ports",
     [](const Value& v, Config& c) {
         c.filters.local_ports = integer_list<uint16_t>(v, NETLAT_MAX_PORTS, 1, 65535);
     },
     [](const Config& c) { return flow_list(c.filters.local_ports); }},
    {"filters.remote_ports",
     [](const Value& v, Config& c) {
         c.filters.remote_ports = integer_list<uint16_t>(v, NETLAT_MAX_PORTS, 1, 65535);
     },
     [](const Config& c) { return flow_list(c.filters.remote_ports); }},
    {"filters.interfaces",
     [](const Value& v, Config& c) {
         c.filters.interfaces.clear();
         for (const Value& item : v.list(NETLAT_MAX_IFACES)) {
             std::string name = item.scalar("an interface name");
             if (!valid_interface_name(name)) {
                 item.fail(quote(name) + " is not an interface name (1.." +
                           std::to_string(NETLAT_IFNAMSIZ - 1) +
                           " characters, no '/', ':' or spaces)");
             }
             c.filters.interfaces.push_back(std::move(name));
         }
     },
     [](const Config& c) { return flow_list(c.filters.interfaces); }},
    {"filters.netns",
     [](const Value& v, Config& c) {
         c.filters.netns = integer_list<uint32_t>(v, NETLAT_MAX_NETNS, 1, UINT32_MAX);
     },
     [](const Config& c) { return flow_list(c.filters.netns); }},
    {"sampling",
     [](const Value& v, Config& c) { c.sampling = v.integer(1, kMaxSampling); },
     [](const Config& c) { return YAML::Node(c.sampling); }},
    {"budget", nullptr, nullptr},
    {"budget.cpu",
     [](const Value& v, Config& c) { c.budget.cpu = v.number(0, 1); },
     [](const Config& c) { return YAML::Node(c.budget.cpu); }},
    {"budget.event_cost",
     [](const Value& v, Config& c) {
         c.budget.event_cost = std::chrono::nanoseconds(std::llround(v.duration(1e-9, 1e-3) * 1e9));
     },
     [](const Config& c) { return duration_node(c.budget.event_cost.count() / 1e9); }},
    {"maps", nullptr, nullptr},
    {"maps.skb_entries",
     [](const Value& v, Config& c) { c.maps.skb_entries = v.integer(1, 1 << 24); },
     [](const Config& c) { return YAML::Node(c.maps.skb_entries); }},
    {"maps.thread_entries",
     [](const Value& v, Config& c) { c.maps.thread_entries = v.integer(1, 1 << 24); },
     [](const Config& c) { return YAML::Node(c.maps.thread_entries); }},
    {"maps.socket_entries",
     [](const Value& v, Config& c) { c.maps.socket_entries = v.integer(1, 1 << 24); },
     [](const Config& c) { return YAML::Node(c.maps.socket_entries); }},
    {"maps.stale_after",
     [](const Value& v, Config& c) {
         c.maps.stale_after = std::chrono::nanoseconds(std::llround(v.duration(1e-3, 3600) * 1e9));
     },
     [](const Config& c) { return duration_node(c.maps.stale_after.count() / 1e9); }},
    {"log_level",
     [](const Value& v, Config& c) { c.log_level = v.choice(kLogLevels); },
     [](const Config& c) { return YAML::Node(c.log_level); }},
    {"log_summary",
     [](const Value& v, Config& c) {
         const std::string text = v.scalar("a duration or off");
         if (text == "off" || text == "0") {
             c.log_summary = std::chrono::milliseconds(0);
             return;
         }
         const double ms = v.duration(1, 86400) * 1e3;
         if (std::abs(ms - std::round(ms)) > 1e-6) v.fail("must be whole milliseconds");
         c.log_summary = std::chrono::milliseconds(std::llround(ms));
     },
     [](const Config& c) {
         return c.log_summary.count() == 0 ? YAML::Node("off")
                                           : duration_node(c.log_summary.count() / 1e3);
     }},
    {"bpf_stats",
     [](const Value& v, Config& c) { c.bpf_stats = v.boolean(); },
     [](const Config& c) { return YAML::Node(c.bpf_stats); }},
};
// clang-format on

std::string_view parent_of(std::string_view path) {
    const auto dot = path.rfind('.');
    return dot == std::string_view::npos ? std::string_view() : path.substr(0, dot);
}

std::string_view leaf_of(std::string_view path) {
    const auto dot = path.rfind('.');
    return dot == std::string_view::npos ? path : path.substr(dot + 1);
}

const Field* find_field(std::string_view section, std::string_view name) {
    for (const Field& field : kFields) {
        if (parent_of(field.path) == section && leaf_of(field.path) == name) return &field;
    }
    return nullptr;
}

std::string allowed_keys(std::string_view section) {
    std::vector<std::string_view> names;
    for (const Field& field : kFields) {
        if (parent_of(field.path) == section) names.push_back(leaf_of(field.path));
    }
    return join(names);
}

void read_section(const YAML::Node& map, const std::string& section, const std::string& prefix,
                  Config& config) {
    std::vector<std::string> seen;
    for (const auto& entry : map) {
        const std::string name = entry.first.IsScalar() ? entry.first.Scalar() : "";
        const std::string path = section.empty() ? name : section + "." + name;
        if (!entry.first.IsScalar()) {
            throw ConfigError(prefix + (section.empty() ? "" : section + ": ") +
                              "keys must be names, got " + std::string(kind_of(entry.first)));
        }
        if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
            throw ConfigError(prefix + "duplicate key " + quote(path));
        }
        seen.push_back(name);
        const Field* field = find_field(section, name);
        if (field == nullptr) {
            throw ConfigError(prefix + "unknown key " + quote(path) +
                              " (allowed: " + allowed_keys(section) + ")");
        }
        const Value value(entry.second, path, prefix);
        if (field->read != nullptr) {
            field->read(value, config);
        } else if (!entry.second.IsNull()) {
            if (!entry.second.IsMap()) {
                value.fail("expected a mapping of " + allowed_keys(path) + ", got " +
                           std::string(kind_of(entry.second)));
            }
            read_section(entry.second, path, prefix, config);
        }
    }
}

// Checks that involve more than one key.
void check_across_keys(const Config& config, const std::string& prefix) {
    if (config.buckets.min_seconds >= config.buckets.max_seconds) {
        throw ConfigError(prefix + "buckets.min: " + format_duration(config.buckets.min_seconds) +
                          " is not less than buckets.max (" +
                          format_duration(config.buckets.max_seconds) + ")");
    }
}

// "config SOURCE: ", which starts every message about a config.
std::string message_prefix(std::string_view source) {
    return "config " + printable(source, std::string_view::npos) + ": ";
}

bool is_hostname(std::string_view host) {
    if (host.empty() || host.size() > 253) return false;
    size_t start = 0;
    while (start <= host.size()) {
        const size_t dot = std::min(host.find('.', start), host.size());
        const std::string_view label = host.substr(start, dot - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
            return false;
        }
        for (char c : label) {
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
        }
        start = dot + 1;
    }
    return true;
}

}  // namespace

std::string_view to_string(ProbeMode mode) {
    for (const auto& [value, name] : kProbeModes) {
        if (value == mode) return name;
    }
    return "unknown";
}

std::optional<ProbeMode> probe_mode_from_string(std::string_view text) {
    for (const auto& [value, name] : kProbeModes) {
        if (name == text) return value;
    }
    return std::nullopt;
}

std::string probe_mode_choices() {
    return join(kProbeModeNames);
}

ListenAddress parse_listen_address(std::string_view host_port) {
    const auto invalid = [&](const std::string& why) {
        return std::invalid_argument(quote(host_port) + " " + why);
    };
    ListenAddress address;
    std::string_view port;
    if (host_port.starts_with('[')) {
        const auto close = host_port.find(']');
        if (close == std::string_view::npos || host_port.substr(close + 1, 1) != ":") {
            throw invalid("is not [IPv6]:PORT");
        }
        address.host = host_port.substr(1, close - 1);
        address.ipv6 = true;
        port = host_port.substr(close + 2);
    } else {
        const auto colon = host_port.rfind(':');
        if (colon == std::string_view::npos) {
            throw invalid("is not HOST:PORT (HOST: IPv4 address, [IPv6 address] or hostname)");
        }
        address.host = host_port.substr(0, colon);
        port = host_port.substr(colon + 1);
        if (address.host.find(':') != std::string::npos) {
            throw invalid("has an IPv6 address without brackets (write [ADDRESS]:PORT)");
        }
    }
    if (address.host.empty()) {
        throw invalid("has no host (use 0.0.0.0 or [::] for all addresses)");
    }
    unsigned char buf[sizeof(in6_addr)];
    if (address.ipv6) {
        if (inet_pton(AF_INET6, address.host.c_str(), buf) != 1) {
            throw invalid("has " + quote(address.host) + ", which is not an IPv6 address");
        }
    } else if (address.host.find_first_not_of("0123456789.") == std::string::npos) {
        if (inet_pton(AF_INET, address.host.c_str(), buf) != 1) {
            throw invalid("has " + quote(address.host) + ", which is not an IPv4 address");
        }
    } else if (!is_hostname(address.host)) {
        throw invalid("has " + quote(address.host) +
                      ", which is not an IPv4 address or a hostname (letters, digits, '-', '.')");
    }
    unsigned number = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || number < 1 ||
        number > 65535) {
        throw invalid("has port " + quote(port) + " (allowed 1..65535)");
    }
    address.port = static_cast<uint16_t>(number);
    return address;
}

Config parse_config(std::string_view yaml_text, std::string_view source) {
    const std::string prefix = message_prefix(source);
    const YAML::Node root = load_yaml_document(yaml_text, prefix);
    Config config;
    if (root.IsNull()) return config;
    if (!root.IsMap()) {
        throw ConfigError(prefix + "expected a mapping of " + allowed_keys("") + ", got " +
                          std::string(kind_of(root)));
    }
    read_section(root, "", prefix, config);
    check_across_keys(config, prefix);
    return config;
}

Config load_config_file(const std::string& path) {
    return parse_config(read_text_file(path, "config " + printable(path, std::string_view::npos)),
                        path);
}

Config default_config() {
    return parse_config(embedded_default_config_yaml(), "<built-in default>");
}

std::string to_yaml(const Config& config) {
    YAML::Node root(YAML::NodeType::Map);
    for (const Field& field : kFields) {
        if (field.write == nullptr) continue;
        const std::string section(parent_of(field.path));
        const std::string name(leaf_of(field.path));
        if (section.empty()) {
            root[name] = field.write(config);
        } else {
            root[section][name] = field.write(config);
        }
    }
    YAML::Emitter out;
    out << root;
    return std::string(out.c_str()) + "\n";
}

}  // namespace netlatd
