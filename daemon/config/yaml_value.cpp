#include "daemon/config/yaml_value.h"

#include <fcntl.h>
#include <unistd.h>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace netlatd {

namespace {

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

}  // namespace

YAML::Node load_yaml_document(std::string_view yaml_text, const std::string& prefix) {
    // YAML has no NUL characters; yaml-cpp would keep them inside values.
    if (const size_t nul = yaml_text.find('\0'); nul != std::string_view::npos) {
        const auto line = std::count(yaml_text.begin(), yaml_text.begin() + nul, '\n') + 1;
        throw ConfigError(prefix + "has a NUL byte in line " + std::to_string(line) +
                          " (not a text file)");
    }
    try {
        return load_one_document(yaml_text, prefix);
    } catch (const YAML::ParserException& e) {
        // yaml-cpp says "bad file" when nesting goes past its depth guard.
        const std::string what =
            dynamic_cast<const YAML::DeepRecursion*>(&e) ? "nested too deeply" : printable(e.msg);
        throw ConfigError(prefix + "invalid YAML at line " + std::to_string(e.mark.line + 1) +
                          ", column " + std::to_string(e.mark.column + 1) + ": " + what);
    } catch (const YAML::Exception& e) {
        throw ConfigError(prefix + "invalid YAML: " + printable(e.msg));
    }
}

std::string read_text_file(const std::string& path, const std::string& what) {
    const auto cannot_read = [&] {
        return ConfigError(what + ": cannot read: " + std::strerror(errno));
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
        throw ConfigError(what + ": larger than " + std::to_string(kMaxConfigBytes >> 20) + " MiB (" +
                          std::to_string(kMaxConfigBytes) + " bytes), the most a config file may be");
    }
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

void Value::fail_range(const std::string& text, const std::string& lo, const std::string& hi) const {
    fail(printable(text) + " is out of range (allowed " + lo + ".." + hi + ")");
}

int64_t Value::integer(int64_t lo, int64_t hi) const {
    const std::string text = scalar("an integer");
    int64_t number = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, number);
    if (ptr != end || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
        fail(quote(text) + " is not an integer");
    }
    if (ec != std::errc() || number < lo || number > hi)
        fail_range(text, std::to_string(lo), std::to_string(hi));
    return number;
}

double Value::duration(double lo_seconds, double hi_seconds) const {
    const std::string text = scalar("a duration");
    const auto seconds = parse_duration_seconds(text);
    if (!seconds) fail(quote(text) + " is not a duration (" + std::string(kDurationForms) + ")");
    if (*seconds < lo_seconds || *seconds > hi_seconds)
        fail_range(text, format_duration(lo_seconds), format_duration(hi_seconds));
    return *seconds;
}

double Value::number(double lo, double hi) const {
    const std::string text = scalar("a number");
    double result = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, result);
    if (ec != std::errc() || ptr != end || !std::isfinite(result)) {
        fail(quote(text) + " is not a number");
    }
    if (result < lo || result > hi) {
        std::ostringstream low, high;
        low << lo;
        high << hi;
        fail_range(text, low.str(), high.str());
    }
    return result;
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
