// The web config (--web.config.file): parsing of the exporter-toolkit format, one-line errors, and
// basic auth (Authorization header parsing, bcrypt verification with libxcrypt).
#include "daemon/config/web_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "daemon/config/config.h"
#include "daemon/metrics/basic_auth.h"

namespace netlatd {
namespace {

// "s3cret", hashed by `htpasswd -nbB alice s3cret` (apache2-utils: $2y$, cost 5) and by
// libxcrypt's crypt_gensalt("$2b$", 4) + crypt (the $2b$ prefix python3-bcrypt writes).
constexpr const char* kHtpasswdHash =
    "$2y$05$mlsEkY7v38AsnSrtgDtK6Ord4jqISug2Rgu0PTCbwj6hCvKlSswaK";
constexpr const char* kBcrypt2b = "$2b$04$78xl93VMWb13yN93A/2n9.z0QW3EWpaVs.gWlJEmykHvNSjc3qZum";

std::string error_of(std::string_view yaml) {
    try {
        parse_web_config(yaml, "web.yml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

#define EXPECT_WEB_ERROR(yaml, message)                          \
    do {                                                         \
        const std::string error = error_of(yaml);                \
        EXPECT_EQ(error, message);                               \
        EXPECT_EQ(error.find('\n'), std::string::npos) << error; \
    } while (0)

TEST(WebConfig, EmptyFileMeansPlainHttpWithoutAuth) {
    const WebConfig web = parse_web_config("", "web.yml");
    EXPECT_FALSE(web.tls);
    EXPECT_TRUE(web.basic_auth_users.empty());
    EXPECT_TRUE(web.headers.empty());
    EXPECT_EQ(web.source, "web.yml");
}

TEST(WebConfig, ReadsTheExporterToolkitFormat) {
    const WebConfig web = parse_web_config(std::string(R"(
tls_server_config:
  cert_file: server.crt
  key_file: /etc/netlatd/server.key
  client_ca_file: ca.crt
  client_auth_type: VerifyClientCertIfGiven
  min_version: TLS13
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Content-Security-Policy: "default-src 'self'"
basic_auth_users:
  alice: )") + kHtpasswdHash + "\n  bob: " + kBcrypt2b +
                                               "\n",
                                           "web.yml");
    ASSERT_TRUE(web.tls);
    EXPECT_EQ(web.tls->cert_file, "server.crt");
    EXPECT_EQ(web.tls->key_file, "/etc/netlatd/server.key");
    EXPECT_EQ(web.tls->client_ca_file, "ca.crt");
    EXPECT_EQ(web.tls->client_auth, ClientAuth::VerifyClientCertIfGiven);
    EXPECT_EQ(web.tls->min_version, TlsVersion::TLS13);
    EXPECT_FALSE(web.tls->max_version);
    EXPECT_EQ(web.basic_auth_users.size(), 2u);
    EXPECT_EQ(web.basic_auth_users.at("alice"), kHtpasswdHash);
    const std::vector<std::pair<std::string, std::string>> headers = {
        {"X-Frame-Options", "deny"}, {"Content-Security-Policy", "default-src 'self'"}};
    EXPECT_EQ(web.headers, headers);
}

TEST(WebConfig, AClientCaAloneRequiresVerifiedClientCertificates) {
    const WebConfig web = parse_web_config(
        "tls_server_config: {cert_file: a, key_file: b, client_ca_file: c}", "web.yml");
    EXPECT_EQ(web.tls->client_auth, ClientAuth::RequireAndVerifyClientCert);
}

TEST(WebConfig, RefusesWhatItCannotEnforceWithOneLine) {
    EXPECT_WEB_ERROR("tls_server_config: {cert_file: a}",
                     "web config web.yml: tls_server_config: needs both cert_file and key_file");
    EXPECT_WEB_ERROR(
        "tls_server_config: {cert_file: a, key_file: b, client_auth_type: "
        "RequireAndVerifyClientCert}",
        "web config web.yml: tls_server_config: client_auth_type "
        "RequireAndVerifyClientCert needs client_ca_file");
    EXPECT_WEB_ERROR(
        "tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAnyClientCert}",
        "web config web.yml: tls_server_config.client_auth_type: 'RequireAnyClientCert' accepts "
        "unverified client certificates and is not supported (allowed: NoClientCert, "
        "VerifyClientCertIfGiven, RequireAndVerifyClientCert)");
    EXPECT_WEB_ERROR("tls_server_config: {cert_file: a, key_file: b, client_auth_type: Maybe}",
                     "web config web.yml: tls_server_config.client_auth_type: 'Maybe' is not one "
                     "of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert");
    EXPECT_WEB_ERROR(
        "tls_server_config: {cert_file: a, key_file: b, min_version: TLS13, max_version: TLS12}",
        "web config web.yml: tls_server_config: max_version TLS12 is below min_version TLS13");
    EXPECT_WEB_ERROR("tls_server_config: {cert_file: a, key_file: b, cipher_suites: [x]}",
                     "web config web.yml: tls_server_config.cipher_suites: is not supported "
                     "(OpenSSL's default TLS 1.2+ ciphers)");
    EXPECT_WEB_ERROR("tls_server_config: {cert_file: a, key_file: b, cert_fil: c}",
                     "web config web.yml: unknown key 'tls_server_config.cert_fil' (allowed: "
                     "cert_file, key_file, client_auth_type, client_ca_file, min_version, "
                     "max_version)");
    EXPECT_WEB_ERROR("tls_server_config: {cert_file: '', key_file: b}",
                     "web config web.yml: tls_server_config.cert_file: needs a file name");
    EXPECT_WEB_ERROR("basic_auth_users:\n  alice: s3cret\n",
                     "web config web.yml: basic_auth_users.alice: is not a bcrypt hash ($2y$, $2b$ "
                     "or $2a$, cost 04..31, 60 characters; make one with htpasswd -nBC 10 alice)");
    EXPECT_WEB_ERROR("basic_auth_users: [alice]",
                     "web config web.yml: basic_auth_users: expected a mapping, got a list");
    EXPECT_WEB_ERROR("http_server_config: {headers: {Server: netlatd}}",
                     "web config web.yml: unknown key 'http_server_config.headers.Server' "
                     "(allowed: Strict-Transport-Security, X-Content-Type-Options, "
                     "X-Frame-Options, X-XSS-Protection, Content-Security-Policy)");
    EXPECT_WEB_ERROR("http_server_config: {headers: {X-Frame-Options: allow}}",
                     "web config web.yml: http_server_config.headers.X-Frame-Options: 'allow' is "
                     "not one of deny, sameorigin");
    EXPECT_WEB_ERROR("tls_config: {}",
                     "web config web.yml: unknown key 'tls_config' (allowed: tls_server_config, "
                     "http_server_config, basic_auth_users)");
    EXPECT_WEB_ERROR("- a",
                     "web config web.yml: expected a mapping of tls_server_config, "
                     "http_server_config, basic_auth_users, got a list");
    EXPECT_WEB_ERROR("a: [",
                     "web config web.yml: invalid YAML at line 1, column 1: end of "
                     "sequence flow not found");
    EXPECT_WEB_ERROR("http_server_config: {}\nhttp_server_config: {}",
                     "web config web.yml: http_server_config: duplicate key");
}

TEST(WebConfig, BcryptHashFormat) {
    EXPECT_TRUE(is_bcrypt_hash(kHtpasswdHash));
    EXPECT_TRUE(is_bcrypt_hash(kBcrypt2b));
    EXPECT_FALSE(is_bcrypt_hash("$2x$05$mlsEkY7v38AsnSrtgDtK6Ord4jqISug2Rgu0PTCbwj6hCvKlSswaK"));
    EXPECT_FALSE(is_bcrypt_hash("$2y$03$mlsEkY7v38AsnSrtgDtK6Ord4jqISug2Rgu0PTCbwj6hCvKlSswaK"));
    EXPECT_FALSE(is_bcrypt_hash("$2y$05$mlsEkY7v38AsnSrtgDtK6Ord4jqISug2Rgu0PTCbwj6hCvKlSswa"));
    EXPECT_FALSE(is_bcrypt_hash("$6$salt$hash"));
}

TEST(WebConfig, LoadResolvesFilesRelativeToTheConfigsDirectory) {
    char dir_template[] = "/tmp/netlatd-web-XXXXXX";
    const std::string dir = mkdtemp(dir_template);
    const std::string path = dir + "/web.yml";
    std::ofstream(path) << "tls_server_config: {cert_file: tls/a.crt, key_file: /abs/b.key}\n";
    const WebConfig web = load_web_config_file(path);
    EXPECT_EQ(web.tls->cert_file, dir + "/tls/a.crt");
    EXPECT_EQ(web.tls->key_file, "/abs/b.key");
    std::remove(path.c_str());
    rmdir(dir.c_str());
    try {
        load_web_config_file(path);
        ADD_FAILURE() << "no error for a missing file";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()),
                  "web config " + path + ": cannot read: No such file or directory");
    }
}

// Any input gives a WebConfig or a one-line ConfigError, nothing else.
TEST(WebConfig, OddInputsGiveOneLineOrAConfig) {
    for (const char* yaml :
         {"~", "\"\"", "[]", "{}", "tls_server_config:", "tls_server_config: 5",
          "basic_auth_users: {? [a] : b}", "basic_auth_users: {'': x}",
          "http_server_config: {headers: {X-XSS-Protection: \"a\\nb\"}}", "*x", "!!binary a",
          "basic_auth_users: {a: [x]}", "tls_server_config: {cert_file: [a], key_file: b}"}) {
        const std::string error = error_of(yaml);
        EXPECT_EQ(error.find('\n'), std::string::npos) << yaml << ": " << error;
    }
}

TEST(BasicAuth, ParsesTheAuthorizationHeader) {
    auto credentials = parse_basic_authorization("Basic YWxpY2U6czNjcmV0");
    ASSERT_TRUE(credentials);
    EXPECT_EQ(credentials->user, "alice");
    EXPECT_EQ(credentials->password, "s3cret");
    credentials = parse_basic_authorization("basic  YTo6Yg== ");  // "a::b"
    ASSERT_TRUE(credentials);
    EXPECT_EQ(credentials->user, "a");
    EXPECT_EQ(credentials->password, ":b");
    for (const char* bad : {"", "Basic", "Basic ", "Bearer YWxpY2U6czNjcmV0", "Basic YWxpY2U",
                            "Basic YWxp!2U6czNjcmV0", "Basic YW=pY2U6czNjcmV0", "Basic YWxpY2U="}) {
        EXPECT_FALSE(parse_basic_authorization(bad)) << bad;
    }
}

TEST(BasicAuth, VerifiesHtpasswdAndPythonBcryptHashes) {
    const BasicAuth auth({{"alice", kHtpasswdHash}, {"bob", kBcrypt2b}});
    EXPECT_TRUE(auth.allows("Basic YWxpY2U6czNjcmV0"));       // alice:s3cret
    EXPECT_TRUE(auth.allows("Basic YWxpY2U6czNjcmV0"));       // again, from the cache
    EXPECT_TRUE(auth.allows("Basic Ym9iOnMzY3JldA=="));       // bob:s3cret
    EXPECT_FALSE(auth.allows("Basic YWxpY2U6d3Jvbmc="));      // alice:wrong
    EXPECT_FALSE(auth.allows("Basic YWxpY2U6d3Jvbmc="));      // again, from the cache
    EXPECT_FALSE(auth.allows("Basic bWFsbG9yeTpzM2NyZXQ="));  // mallory:s3cret (no such user)
    EXPECT_FALSE(auth.allows("Basic YWxpY2U6czNjcmV0AHg="));  // alice:s3cret\0x
    EXPECT_FALSE(auth.allows(nullptr));
    EXPECT_FALSE(auth.allows("Basic !!!!"));
}

}  // namespace
}  // namespace netlatd
