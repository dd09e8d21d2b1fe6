#include "daemon/config/web_config.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <functional>

#include "daemon/config/config.h"
#include "daemon/config/yaml_value.h"

namespace netlatd {
namespace {

constexpr std::array<std::pair<ClientAuth, std::string_view>, 3> kClientAuthTypes{{
    {ClientAuth::NoClientCert, "NoClientCert"},
    {ClientAuth::VerifyClientCertIfGiven, "VerifyClientCertIfGiven"},
    {ClientAuth::RequireAndVerifyClientCert, "RequireAndVerifyClientCert"},
}};
constexpr std::array<std::pair<TlsVersion, std::string_view>, 4> kTlsVersions{{
    {TlsVersion::TLS10, "TLS10"},
    {TlsVersion::TLS11, "TLS11"},
    {TlsVersion::TLS12, "TLS12"},
    {TlsVersion::TLS13, "TLS13"},
}};

// exporter-toolkit's keys that netlatd does not implement: refused with this reason, so that a
// file written for another exporter never loses a protection silently.
constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kUnsupported{{
    {"tls_server_config.cert", "inline certificates are not supported, use cert_file"},
    {"tls_server_config.key", "inline keys are not supported, use key_file"},
    {"tls_server_config.client_ca", "inline CAs are not supported, use client_ca_file"},
    {"tls_server_config.cipher_suites", "is not supported (OpenSSL's default TLS 1.2+ ciphers)"},
    {"tls_server_config.curve_preferences", "is not supported (OpenSSL's default curves)"},
    {"tls_server_config.prefer_server_cipher_suites", "is not supported (always on)"},
    {"tls_server_config.client_allowed_sans", "is not supported"},
}};

// The headers http_server_config.headers may set (exporter-toolkit's list) and, where the value is
// constrained, the values allowed (compared without case).
struct HeaderRule {
    std::string_view name;
    std::vector<std::string_view> values;  // empty: any value
};
const std::array<HeaderRule, 5> kHeaderRules{{
    {"Strict-Transport-Security", {}},
    {"X-Content-Type-Options", {"nosniff"}},
    {"X-Frame-Options", {"deny", "sameorigin"}},
    {"X-XSS-Protection", {}},
    {"Content-Security-Policy", {}},
}};

std::string lowercase(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Calls read(key, value) for each entry of the mapping `section` (nothing = no entries), after
// refusing non-mappings, duplicate keys, unsupported and unknown keys (when `allowed` is not
// empty).
void for_each_entry(const Value& section, const std::vector<std::string_view>& allowed,
                    const std::function<void(const std::string&, const Value&)>& read) {
    const YAML::Node& node = section.node();
    if (node.IsNull()) return;
    const std::string what = allowed.empty() ? "a mapping" : "a mapping of " + join(allowed);
    if (!node.IsMap()) section.fail("expected " + what + ", got " + std::string(kind_of(node)));
    std::vector<std::string> seen;
    const std::string dotted = section.key().empty() ? "" : section.key() + ".";
    for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
            section.fail("keys must be names, got " + std::string(kind_of(entry.first)));
        }
        const std::string name = entry.first.Scalar();
        const Value value(entry.second, dotted + name, section.prefix());
        if (std::find(seen.begin(), seen.end(), name) != seen.end()) value.fail("duplicate key");
        seen.push_back(name);
        for (const auto& [path, reason] : kUnsupported) {
            if (path == value.key()) value.fail(std::string(reason));
        }
        if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
            throw ConfigError(section.prefix() + "unknown key " + quote(dotted + name) +
                              " (allowed: " + join(allowed) + ")");
        }
        read(name, value);
    }
}

template <typename Enum, size_t N>
Enum read_choice(const Value& value,
                 const std::array<std::pair<Enum, std::string_view>, N>& table) {
    const std::string text = value.choice(names_of(table));
    for (const auto& [item, name] : table) {
        if (name == text) return item;
    }
    return table[0].first;  // not reached: choice() accepted one of the names
}

std::string read_path(const Value& value) {
    std::string path = value.scalar("a file name");
    if (path.empty()) value.fail("needs a file name");
    if (path.find('\0') != std::string::npos) value.fail("contains a NUL character");
    return path;
}

TlsServerConfig read_tls(const Value& section) {
    TlsServerConfig tls;
    std::optional<ClientAuth> client_auth;
    for_each_entry(section,
                   {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
                    "max_version"},
                   [&](const std::string& name, const Value& value) {
                       if (name == "cert_file") tls.cert_file = read_path(value);
                       if (name == "key_file") tls.key_file = read_path(value);
                       if (name == "client_ca_file") tls.client_ca_file = read_path(value);
                       if (name == "client_auth_type") {
                           const std::string text = value.scalar("a client auth type");
                           if (text == "RequestClientCert" || text == "RequireAnyClientCert") {
                               value.fail(quote(text) +
                                          " accepts unverified client certificates and is not "
                                          "supported (allowed: " +
                                          join(names_of(kClientAuthTypes)) + ")");
                           }
                           client_auth = read_choice(value, kClientAuthTypes);
                       }
                       if (name == "min_version")
                           tls.min_version = read_choice(value, kTlsVersions);
                       if (name == "max_version")
                           tls.max_version = read_choice(value, kTlsVersions);
                   });
    const std::string prefix = section.prefix() + section.key() + ": ";
    if (tls.cert_file.empty() || tls.key_file.empty()) {
        throw ConfigError(prefix + "needs both cert_file and key_file");
    }
    // As the exporter-toolkit: a client CA alone means client certificates are required.
    tls.client_auth =
        client_auth.value_or(tls.client_ca_file.empty() ? ClientAuth::NoClientCert
                                                        : ClientAuth::RequireAndVerifyClientCert);
    if (tls.client_auth != ClientAuth::NoClientCert && tls.client_ca_file.empty()) {
        throw ConfigError(prefix + "client_auth_type " + std::string(to_string(tls.client_auth)) +
                          " needs client_ca_file");
    }
    if (tls.client_auth == ClientAuth::NoClientCert && !tls.client_ca_file.empty()) {
        throw ConfigError(prefix + "client_ca_file is set but client_auth_type is NoClientCert");
    }
    if (tls.max_version && *tls.max_version < tls.min_version) {
        throw ConfigError(prefix + "max_version " + std::string(to_string(*tls.max_version)) +
                          " is below min_version " + std::string(to_string(tls.min_version)));
    }
    return tls;
}

void read_http_server_config(const Value& section, WebConfig& web) {
    for_each_entry(section, {"headers", "http2"}, [&](const std::string& name, const Value& value) {
        if (name == "http2") {
            value.boolean();  // netlatd speaks HTTP/1.1 only; accepted for files shared with
            return;           // Go exporters, where it switches HTTP/2 off
        }
        std::vector<std::string_view> names;
        for (const HeaderRule& rule : kHeaderRules) names.push_back(rule.name);
        for_each_entry(value, names, [&](const std::string& header, const Value& field) {
            const std::string text = field.scalar("a header value");
            if (std::any_of(text.begin(), text.end(), [](char c) {
                    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
                })) {
                field.fail(quote(text) + " contains control characters");
            }
            const HeaderRule& rule = *std::find_if(kHeaderRules.begin(), kHeaderRules.end(),
                                                   [&](const auto& r) { return r.name == header; });
            if (!rule.values.empty() && std::find(rule.values.begin(), rule.values.end(),
                                                  lowercase(text)) == rule.values.end()) {
                field.fail(quote(text) + " is not one of " + join(rule.values));
            }
            web.headers.emplace_back(header, text);
        });
    });
}

void read_users(const Value& section, WebConfig& web) {
    for_each_entry(section, {}, [&](const std::string& user, const Value& value) {
        if (user.empty() || user.find(':') != std::string::npos ||
            std::any_of(user.begin(), user.end(),
                        [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
            value.fail("is not a user name (no ':' or control characters)");
        }
        const std::string hash = value.scalar("a bcrypt hash");
        if (!is_bcrypt_hash(hash)) {
            value.fail(
                "is not a bcrypt hash ($2y$, $2b$ or $2a$, cost 04..31, 60 characters; "
                "make one with htpasswd -nBC 10 " +
                user + ")");
        }
        web.basic_auth_users[user] = hash;
    });
}

}  // namespace

std::string_view to_string(ClientAuth value) {
    for (const auto& [item, name] : kClientAuthTypes) {
        if (item == value) return name;
    }
    return "unknown";
}

std::string_view to_string(TlsVersion value) {
    for (const auto& [item, name] : kTlsVersions) {
        if (item == value) return name;
    }
    return "unknown";
}

bool is_bcrypt_hash(std::string_view text) {
    if (text.size() != 60 || text[0] != '$' || text[1] != '2' || text[3] != '$' || text[6] != '$')
        return false;
    if (text[2] != 'a' && text[2] != 'b' && text[2] != 'y') return false;
    if (!std::isdigit(static_cast<unsigned char>(text[4])) ||
        !std::isdigit(static_cast<unsigned char>(text[5])))
        return false;
    const int cost = (text[4] - '0') * 10 + (text[5] - '0');
    if (cost < 4 || cost > 31) return false;
    return std::all_of(text.begin() + 7, text.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '/';
    });
}

WebConfig parse_web_config(std::string_view yaml_text, std::string_view source) {
    const std::string prefix = "web config " + std::string(source) + ": ";
    const YAML::Node root = load_yaml_document(yaml_text, prefix);
    WebConfig web;
    web.source = source;
    for_each_entry(Value(root, "", prefix),
                   {"tls_server_config", "http_server_config", "basic_auth_users"},
                   [&](const std::string& name, const Value& value) {
                       if (name == "tls_server_config") web.tls = read_tls(value);
                       if (name == "http_server_config") read_http_server_config(value, web);
                       if (name == "basic_auth_users") read_users(value, web);
                   });
    return web;
}

WebConfig load_web_config_file(const std::string& path) {
    WebConfig web = parse_web_config(read_text_file(path, "web config " + path), path);
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
    const auto resolve = [&](std::string& file) {
        if (!file.empty() && file.front() != '/') file = dir + file;
    };
    if (web.tls) {
        resolve(web.tls->cert_file);
        resolve(web.tls->key_file);
        resolve(web.tls->client_ca_file);
    }
    return web;
}

}  // namespace netlatd
