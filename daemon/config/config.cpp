// Reading, validating and writing netlatd's YAML configuration.
//
// Every key is one row of kFields: its dotted path, how to read and check it, how to write it. The
// same table drives unknown-key errors (with the list of allowed keys), parsing and to_yaml(), so a
// new key is one row here plus its documented default in config/netlatd.yaml.
#include "daemon/config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
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

namespace netlatd {
namespace {

constexpr std::array<std::pair<ProbeMode, std::string_view>, 4> kProbeModes{{
    {ProbeMode::Auto, "auto"},
    {ProbeMode::Fentry, "fentry"},
    {ProbeMode::Kprobe, "kprobe"},
    {ProbeMode::Tracepoint, "tracepoint"},
}};
// The names alone, for choices and messages (a loop: clang 14 cannot compile libstdc++ 12's
// std::views::values over pairs).
constexpr std::array<std::string_view, kProbeModes.size()> kProbeModeNames = [] {
    std::array<std::string_view, kProbeModes.size()> names{};
    for (size_t i = 0; i < names.size(); ++i) names[i] = kProbeModes[i].second;
    return names;
}();
constexpr std::array<std::string_view, 5> kLogLevels{"trace", "debug", "info", "warn", "error"};

constexpr double kMaxBucketSeconds = 60.0;
constexpr size_t kMaxBounds = 200;
// The default config is 4 KiB; anything past 1 MiB is not a netlatd config.
constexpr size_t kMaxConfigBytes = size_t{1} << 20;

template <typename Names>
std::string join(const Names& names) {
    std::string out;
    for (std::string_view name : names) {
        if (!out.empty()) out += ", ";
        out += name;
    }
    return out;
}

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
constexpr std::string_view kDurationForms =
    "e.g. 250ns, 10us, 1.5ms, 2s, 1m; a plain number is seconds";

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

std::string_view kind_of(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Null:
            return "nothing";
        case YAML::NodeType::Scalar:
            return "a single value";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Map:
            return "a mapping";
        default:
            return "an undefined node";
    }
}

// One value in the document with its dotted key, for reading and for one-line errors.
class Value {
  public:
    Value(const YAML::Node& node, std::string key, const std::string& prefix)
        : node_(node), key_(std::move(key)), prefix_(prefix) {}

    [[noreturn]] void fail(const std::string& detail) const {
        throw ConfigError(prefix_ + key_ + ": " + detail);
    }

    std::string scalar(std::string_view expected) const {
        if (node_.IsNull()) fail("needs a value (" + std::string(expected) + ")");
        if (!node_.IsScalar()) {
            fail("expected " + std::string(expected) + ", got " + std::string(kind_of(node_)));
        }
        return node_.Scalar();
    }

    int64_t integer(int64_t lo, int64_t hi) const {
        const std::string text = scalar("an integer");
        int64_t number = 0;
        const char* end = text.data() + text.size();
        auto [ptr, ec] = std::from_chars(text.data(), end, number);
        if (ptr != end || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
            fail(quote(text) + " is not an integer");
        }
        if (ec != std::errc() || number < lo || number > hi) {
            fail(printable(text) + " is out of range (allowed " + std::to_string(lo) + ".." +
                 std::to_string(hi) + ")");
        }
        return number;
    }

    double duration(double lo_seconds, double hi_seconds) const {
        const std::string text = scalar("a duration");
        const auto seconds = parse_duration_seconds(text);
        if (!seconds)
            fail(quote(text) + " is not a duration (" + std::string(kDurationForms) + ")");
        if (*seconds < lo_seconds || *seconds > hi_seconds) {
            fail(printable(text) + " is out of range (allowed " + format_duration(lo_seconds) +
                 ".." + format_duration(hi_seconds) + ")");
        }
        return *seconds;
    }

    bool boolean() const {
        const std::string text = scalar("true or false");
        bool result = false;
        if (!YAML::convert<bool>::decode(node_, result)) {
            fail(quote(text) + " is not a boolean (allowed true, false)");
        }
        return result;
    }

    template <typename Names>
    std::string choice(const Names& names) const {
        const std::string text = scalar("one of " + join(names));
        for (std::string_view name : names) {
            if (text == name) return text;
        }
        fail(quote(text) + " is not one of " + join(names));
    }

    // Items of a list (nothing = empty list), each keyed "key[i]".
    std::vector<Value> list(size_t max_items) const {
        std::vector<Value> items;
        if (node_.IsNull()) return items;
        if (!node_.IsSequence()) fail("expected a list, got " + std::string(kind_of(node_)));
        if (node_.size() > max_items) {
            fail("has " + std::to_string(node_.size()) + " entries (allowed at most " +
                 std::to_string(max_items) + ")");
        }
        for (size_t i = 0; i < node_.size(); ++i) {
            items.emplace_back(node_[i], key_ + "[" + std::to_string(i) + "]", prefix_);
        }
        return items;
    }

  private:
    YAML::Node node_;
    std::string key_;
    const std::string& prefix_;
};

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
     [](const Value& v, Config& c) { c.sampling = v.integer(1, 65536); },
     [](const Config& c) { return YAML::Node(c.sampling); }},
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

// Where each document starts, and nothing else.
struct DocumentStarts : YAML::EventHandler {
    std::vector<YAML::Mark> starts;
    void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

// The one document of the text (null if there is none). Not YAML::LoadAll: in yaml-cpp 0.7 it
// loops forever, taking memory, on a token that cannot start a node, such as a lone ','
// (jbeder/yaml-cpp#1040, fixed upstream after 0.8). Here a document that starts where the one
// before it started is that token. Throws ConfigError or YAML::Exception.
YAML::Node load_one_document(std::string_view text, const std::string& prefix) {
    std::istringstream stream{std::string(text)};
    YAML::Parser parser(stream);
    DocumentStarts documents;
    while (parser.HandleNextDocument(documents)) {
        const auto& starts = documents.starts;
        if (starts.size() > 1 && starts.back().pos == starts[starts.size() - 2].pos) {
            throw YAML::ParserException(starts.back(),
                                        "unexpected " + quote(text.substr(starts.back().pos, 1)));
        }
    }
    if (documents.starts.size() > 1) {
        throw ConfigError(prefix + "has " + std::to_string(documents.starts.size()) +
                          " YAML documents (allowed one)");
    }
    return documents.starts.empty() ? YAML::Node() : YAML::Load(std::string(text));
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
    // YAML has no NUL characters; yaml-cpp would keep them inside values.
    if (const size_t nul = yaml_text.find('\0'); nul != std::string_view::npos) {
        const auto line = std::count(yaml_text.begin(), yaml_text.begin() + nul, '\n') + 1;
        throw ConfigError(prefix + "has a NUL byte in line " + std::to_string(line) +
                          " (not a text file)");
    }
    YAML::Node document;
    try {
        document = load_one_document(yaml_text, prefix);
    } catch (const YAML::ParserException& e) {
        // yaml-cpp says "bad file" when nesting goes past its depth guard.
        const std::string what =
            dynamic_cast<const YAML::DeepRecursion*>(&e) ? "nested too deeply" : printable(e.msg);
        throw ConfigError(prefix + "invalid YAML at line " + std::to_string(e.mark.line + 1) +
                          ", column " + std::to_string(e.mark.column + 1) + ": " + what);
    } catch (const YAML::Exception& e) {
        throw ConfigError(prefix + "invalid YAML: " + printable(e.msg));
    }
    Config config;
    if (document.IsNull()) return config;
    if (!document.IsMap()) {
        throw ConfigError(prefix + "expected a mapping of " + allowed_keys("") + ", got " +
                          std::string(kind_of(document)));
    }
    read_section(document, "", prefix, config);
    check_across_keys(config, prefix);
    return config;
}

Config load_config_file(const std::string& path) {
    const std::string prefix = message_prefix(path);
    const auto cannot_read = [&] {
        return ConfigError(prefix + "cannot read: " + std::strerror(errno));
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw cannot_read();
    // Reading stops past the limit: a huge file or /dev/zero is refused, not slurped.
    std::string text;
    char buf[8192];
    while (text.size() <= kMaxConfigBytes) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            const ConfigError error = cannot_read();
            ::close(fd);
            throw error;
        }
        text.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    if (text.size() > kMaxConfigBytes) {
        throw ConfigError(prefix + "larger than " + std::to_string(kMaxConfigBytes >> 20) +
                          " MiB (" + std::to_string(kMaxConfigBytes) +
                          " bytes), the most a config file may be");
    }
    return parse_config(text, path);
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
