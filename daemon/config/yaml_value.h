// Reading YAML values for netlatd's configuration files (netlatd.yaml, the web config): one value
// with its dotted key, read as a scalar, integer, duration, boolean, choice or list, every failure
// one ConfigError line naming the file, the key, the bad value and what is allowed.
#pragma once

#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config/config.h"

namespace netlatd {

inline constexpr std::string_view kDurationForms =
    "e.g. 250ns, 10us, 1.5ms, 2s, 1m; a plain number is seconds";

// The names of a (value, name) table, for choices and messages (a loop: clang 14 cannot compile
// libstdc++ 12's std::views::values over pairs, and the sanitized build uses clang).
template <typename Enum, size_t N>
constexpr std::array<std::string_view, N> names_of(
    const std::array<std::pair<Enum, std::string_view>, N>& table) {
    std::array<std::string_view, N> names{};
    for (size_t i = 0; i < N; ++i) names[i] = table[i].second;
    return names;
}

template <typename Names>
std::string join(const Names& names) {
    std::string out;
    for (std::string_view name : names) {
        if (!out.empty()) out += ", ";
        out += name;
    }
    return out;
}

// Files netlatd reads as configuration are at most this big (the default config is 4 KiB).
inline constexpr size_t kMaxConfigBytes = size_t{1} << 20;

// The one YAML document of a file (Null when empty). Throws ConfigError(prefix + "invalid YAML at
// line L, column C: ..." or "... has N YAML documents (allowed one)" or "... has a NUL byte ...").
YAML::Node load_yaml_document(std::string_view yaml_text, const std::string& prefix);

// The whole file, up to kMaxConfigBytes. Throws ConfigError(what + ": cannot read: " + strerror),
// or what + ": larger than 1 MiB ...", e.g.
// "config /etc/netlatd/netlatd.yaml: cannot read: No such file or directory".
std::string read_text_file(const std::string& path, const std::string& what);

// "nothing", "a single value", "a list", "a mapping": for "expected X, got Y" messages.
std::string_view kind_of(const YAML::Node& node);

// One value in the document with its dotted key; `prefix` ("config FILE: ") starts every error.
class Value {
  public:
    Value(const YAML::Node& node, std::string key, const std::string& prefix)
        : node_(node), key_(std::move(key)), prefix_(prefix) {}

    [[noreturn]] void fail(const std::string& detail) const;

    const YAML::Node& node() const { return node_; }
    const std::string& key() const { return key_; }  // "" for the document itself
    const std::string& prefix() const { return prefix_; }

    std::string scalar(std::string_view expected) const;
    int64_t integer(int64_t lo, int64_t hi) const;
    double duration(double lo_seconds, double hi_seconds) const;
    double number(double lo, double hi) const;  // a plain decimal number
    bool boolean() const;

    template <typename Names>
    std::string choice(const Names& names) const {
        const std::string text = scalar("one of " + join(names));
        for (std::string_view name : names) {
            if (text == name) return text;
        }
        fail(quote(text) + " is not one of " + join(names));
    }

    // Items of a list (nothing = empty list), each keyed "key[i]".
    std::vector<Value> list(size_t max_items) const;

  private:
    // "TEXT is out of range (allowed LO..HI)", the one wording of every range check.
    [[noreturn]] void fail_range(const std::string& text, const std::string& lo,
                                 const std::string& hi) const;

    YAML::Node node_;
    std::string key_;
    const std::string& prefix_;
};

}  // namespace netlatd
