// The web config (--web.config.file): TLS and basic auth of netlatd's HTTP port, in the format of
// the Prometheus exporter-toolkit (https://github.com/prometheus/exporter-toolkit,
// docs/web-configuration.md), so one file serves netlatd and the Prometheus exporters next to it:
//
//   tls_server_config:
//     cert_file: server.crt            # PEM; the chain may follow the server certificate
//     key_file: server.key             # PEM, unencrypted
//     client_auth_type: RequireAndVerifyClientCert   # optional; see ClientAuth
//     client_ca_file: clients-ca.crt   # needed for the Verify* types
//     min_version: TLS12               # optional, TLS10..TLS13 (default TLS12)
//     max_version: TLS13               # optional
//   http_server_config:
//     headers: {X-Frame-Options: deny} # added to every answer
//   basic_auth_users:
//     prometheus: $2y$10$...           # bcrypt hash (htpasswd -nBC 10 prometheus)
//
// Parsing is pure (no file access) so that it can be unit-tested and fuzzed; the files named are
// read and checked at start by the HTTP server (daemon/metrics/tls.h). Keys of the format netlatd
// does not implement (cipher_suites, client_allowed_sans, ...) are refused, never ignored.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace netlatd {

// exporter-toolkit's client_auth_type values civetweb can enforce (RequestClientCert and
// RequireAnyClientCert accept unverified certificates and are refused).
enum class ClientAuth { NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert };
std::string_view to_string(ClientAuth);

enum class TlsVersion { TLS10, TLS11, TLS12, TLS13 };
std::string_view to_string(TlsVersion);

struct TlsServerConfig {
    std::string cert_file, key_file;  // absolute after load_web_config_file
    std::string client_ca_file;       // empty: none
    ClientAuth client_auth = ClientAuth::NoClientCert;
    TlsVersion min_version = TlsVersion::TLS12;
    std::optional<TlsVersion> max_version;
    bool operator==(const TlsServerConfig&) const = default;
};

struct WebConfig {
    std::string source;                  // the file, for messages ("web config SOURCE: ...")
    std::optional<TlsServerConfig> tls;  // none: plain HTTP
    std::map<std::string, std::string> basic_auth_users;  // user -> bcrypt hash; empty: no auth
    std::vector<std::pair<std::string, std::string>> headers;  // http_server_config.headers
    bool operator==(const WebConfig&) const = default;
};

// Throws ConfigError (config.h), one line naming the source, the key, the bad value and what is
// allowed, e.g. "web config /etc/netlatd/web.yml: basic_auth_users.prometheus: is not a bcrypt
// hash ...". Nothing else escapes, whatever the input. Relative paths are kept as written.
WebConfig parse_web_config(std::string_view yaml_text, std::string_view source);

// Reads and parses the file; relative file names in it are taken relative to the file's
// directory, as the exporter-toolkit does. Throws ConfigError (also when the file cannot be read).
WebConfig load_web_config_file(const std::string& path);

// "$2y$10$" + 53 characters: a bcrypt hash as htpasswd -B, python3-bcrypt and Go's bcrypt write
// it ($2a$, $2b$ or $2y$, cost 04..31).
bool is_bcrypt_hash(std::string_view text);

}  // namespace netlatd
