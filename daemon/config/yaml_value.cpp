#include "daemon/config/yaml_value.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace netlatd {

std::string quote(std::string_view text) {
    constexpr size_t kMaxShown = 64;
    std::string out = "'";
    for (size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        } else {
            out += static_cast<char>(c);
        }
    }
    if (text.size() > kMaxShown) out += "...";
    return out + "'";
}

YAML::Node load_yaml_document(std::string_view yaml_text, const std::string& prefix) {
    std::vector<YAML::Node> documents;
    try {
        documents = YAML::LoadAll(std::string(yaml_text));
    } catch (const YAML::ParserException& e) {
        throw ConfigError(prefix + "invalid YAML at line " + std::to_string(e.mark.line + 1) +
                          ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg);
    } catch (const YAML::Exception& e) {
        throw ConfigError(prefix + "invalid YAML: " + e.msg);
    }
    if (documents.size() > 1) {
        throw ConfigError(prefix + "has " + std::to_string(documents.size()) +
                          " YAML documents (allowed one)");
    }
    return documents.empty() ? YAML::Node() : documents[0];
}

std::string read_text_file(const std::string& path, const std::string& what) {
    const auto cannot_read = [&] {
        return ConfigError(what + ": cannot read: " + std::strerror(errno));
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw cannot_read();
    std::string text;
    char buf[8192];
    for (;;) {
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
    return text;
}

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

void Value::fail(const std::string& detail) const {
    throw ConfigError(prefix_ + (key_.empty() ? "" : key_ + ": ") + detail);
}

std::string Value::scalar(std::string_view expected) const {
    if (node_.IsNull()) fail("needs a value (" + std::string(expected) + ")");
    if (!node_.IsScalar()) {
        fail("expected " + std::string(expected) + ", got " + std::string(kind_of(node_)));
    }
    return node_.Scalar();
}

int64_t Value::integer(int64_t lo, int64_t hi) const {
    const std::string text = scalar("an integer");
    int64_t number = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, number);
    if (ptr != end || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
        fail(quote(text) + " is not an integer");
    }
    if (ec != std::errc() || number < lo || number > hi) {
        fail(text + " is out of range (allowed " + std::to_string(lo) + ".." + std::to_string(hi) +
             ")");
    }
    return number;
}

double Value::duration(double lo_seconds, double hi_seconds) const {
    const std::string text = scalar("a duration");
    const auto seconds = parse_duration_seconds(text);
    if (!seconds) fail(quote(text) + " is not a duration (" + std::string(kDurationForms) + ")");
    if (*seconds < lo_seconds || *seconds > hi_seconds) {
        fail(text + " is out of range (allowed " + format_duration(lo_seconds) + ".." +
             format_duration(hi_seconds) + ")");
    }
    return *seconds;
}

bool Value::boolean() const {
    const std::string text = scalar("true or false");
    bool result = false;
    if (!YAML::convert<bool>::decode(node_, result)) {
        fail(quote(text) + " is not a boolean (allowed true, false)");
    }
    return result;
}

std::vector<Value> Value::list(size_t max_items) const {
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

}  // namespace netlatd
