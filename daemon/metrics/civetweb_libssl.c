/* Loaded by netlatd under the name civetweb asks for, "libssl.so" (its SONAME), before civetweb
 * starts: Debian 12's civetweb 1.15 loads OpenSSL at run time with OpenSSL 1.1's names, and calls
 * SSL_get_peer_certificate on every TLS connection, which OpenSSL 3 only has as a macro for
 * SSL_get1_peer_certificate (civetweb would call a null pointer). Every other name resolves in
 * libssl.so.3, this library's dependency. */
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate
X509* SSL_get_peer_certificate(const SSL* ssl);
X509* SSL_get_peer_certificate(const SSL* ssl) {
    return SSL_get1_peer_certificate(ssl);
}
