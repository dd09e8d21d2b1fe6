// TLS of the HTTP port: civetweb (built with OpenSSL, which it loads at run time as libssl.so and
// libcrypto.so) hands its server context to configure_tls, which loads the files of the web
// config's tls_server_config with the same OpenSSL.
#pragma once

#include <string>

#include "daemon/config/web_config.h"

namespace netlatd {

// Loads civetweb-libssl.so and civetweb-libcrypto.so (see civetweb_libssl.c), which civetweb then
// finds under the names it asks for: OpenSSL 3 for civetweb 1.15. Once per process; throws
// ConfigError naming the library when it cannot be loaded.
void load_openssl_for_civetweb(const std::string& prefix);

// Loads the certificate chain, key and client CA of `tls` into `ssl_ctx` (an SSL_CTX*) and sets
// the protocol versions and client verification. Throws ConfigError, one line naming the file and
// what is wrong with it: cannot be read, not PEM, expired or not yet valid, key does not match.
// `prefix` starts the message ("web config FILE: ").
void configure_tls(void* ssl_ctx, const TlsServerConfig& tls, const std::string& prefix);

// The start-up check, before anything is attached: civetweb has TLS, load_openssl_for_civetweb,
// and configure_tls succeeds on a scratch context. Throws ConfigError.
void check_tls(const TlsServerConfig& tls, const std::string& prefix);

}  // namespace netlatd
