#include "daemon/metrics/tls.h"

#include <civetweb.h>
#include <dlfcn.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

#include "daemon/config/config.h"

namespace netlatd {
namespace {

template <typename T, void (*Free)(T*)>
using Owned = std::unique_ptr<T, std::integral_constant<decltype(Free), Free>>;

// The innermost reason OpenSSL gives for its last failure ("no start line", ...), and clears the
// queue so that the next check starts clean.
std::string openssl_reason() {
    unsigned long last = 0;
    for (unsigned long code; (code = ERR_get_error()) != 0;) last = code;
    const char* reason = last == 0 ? nullptr : ERR_reason_error_string(last);
    return reason != nullptr ? reason : "unknown OpenSSL error";
}

std::string asn1_time(const ASN1_TIME* time) {
    Owned<BIO, BIO_free_all> bio(BIO_new(BIO_s_mem()));
    ASN1_TIME_print(bio.get(), time);
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(length));
}

int tls_version(TlsVersion version) {
    switch (version) {
        case TlsVersion::TLS10:
            return TLS1_VERSION;
        case TlsVersion::TLS11:
            return TLS1_1_VERSION;
        case TlsVersion::TLS12:
            return TLS1_2_VERSION;
        case TlsVersion::TLS13:
            return TLS1_3_VERSION;
    }
    return TLS1_2_VERSION;
}

// Never ask for a pass phrase on the terminal: an encrypted key is an error.
int no_passphrase(char*, int, int, void*) {
    return 0;
}

// Opens `path` for reading; "KEY: PATH: cannot read: REASON" if it cannot be.
Owned<BIO, BIO_free_all> open_file(const std::string& prefix, const char* key,
                                   const std::string& path) {
    ERR_clear_error();
    errno = 0;
    Owned<BIO, BIO_free_all> bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) {
        const std::string reason = errno != 0 ? std::strerror(errno) : openssl_reason();
        throw ConfigError(prefix + "tls_server_config." + key + ": " + path +
                          ": cannot read: " + reason);
    }
    return bio;
}

// The server certificate (the first of cert_file), checked to be valid now.
void check_certificate(const std::string& prefix, const std::string& path) {
    const std::string what = prefix + "tls_server_config.cert_file: " + path + ": ";
    auto bio = open_file(prefix, "cert_file", path);
    Owned<X509, X509_free> cert(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
    if (!cert) throw ConfigError(what + "no PEM certificate in it (" + openssl_reason() + ")");
    if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) <= 0) {
        throw ConfigError(what + "the certificate expired on " +
                          asn1_time(X509_get0_notAfter(cert.get())));
    }
    if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) >= 0) {
        throw ConfigError(what + "the certificate is not valid before " +
                          asn1_time(X509_get0_notBefore(cert.get())));
    }
}

// The directory of the running binary, with a trailing slash.
std::string executable_dir() {
    char path[4096];
    const ssize_t length = readlink("/proc/self/exe", path, sizeof path - 1);
    if (length <= 0) return "./";
    const std::string exe(path, static_cast<size_t>(length));
    return exe.substr(0, exe.rfind('/') + 1);
}

}  // namespace

void load_openssl_for_civetweb(const std::string& prefix) {
    static std::mutex mutex;
    static bool loaded = false;
    std::lock_guard lock(mutex);
    if (loaded) return;
    const std::string dir = executable_dir();
    for (const char* name : {"civetweb-libcrypto.so", "civetweb-libssl.so"}) {
        std::string error;
        bool found = false;
        // Next to the binary (build tree), then <prefix>/lib/netlatd for <prefix>/sbin/netlatd.
        for (const std::string& path : {dir + name, dir + "../lib/netlatd/" + name}) {
            if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) != nullptr) {
                found = true;  // kept loaded for the life of the process
                break;
            }
            if (error.empty()) error = dlerror();
        }
        if (!found) {
            throw ConfigError(prefix + "tls_server_config: cannot load " + name +
                              ", which netlatd installs for civetweb's TLS: " + error);
        }
    }
    loaded = true;
}

void configure_tls(void* ssl_ctx, const TlsServerConfig& tls, const std::string& prefix) {
    SSL_CTX* ctx = static_cast<SSL_CTX*>(ssl_ctx);
    check_certificate(prefix, tls.cert_file);
    if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1) {
        throw ConfigError(prefix + "tls_server_config.cert_file: " + tls.cert_file +
                          ": cannot use the certificate chain (" + openssl_reason() + ")");
    }
    {
        auto bio = open_file(prefix, "key_file", tls.key_file);
        Owned<EVP_PKEY, EVP_PKEY_free> key(
            PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
        if (!key) {
            throw ConfigError(prefix + "tls_server_config.key_file: " + tls.key_file +
                              ": no unencrypted PEM private key in it (" + openssl_reason() + ")");
        }
        if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            throw ConfigError(prefix + "tls_server_config.key_file: " + tls.key_file +
                              " does not match the certificate of cert_file " + tls.cert_file);
        }
    }
    SSL_CTX_set_min_proto_version(ctx, tls_version(tls.min_version));
    SSL_CTX_set_max_proto_version(ctx, tls.max_version ? tls_version(*tls.max_version) : 0);
    // A fixed session id context: session resumption works with client verification too.
    static const unsigned char kSessionContext[] = "netlatd";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
    if (tls.client_auth == ClientAuth::NoClientCert) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        return;
    }
    open_file(prefix, "client_ca_file", tls.client_ca_file);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str());
    if (names == nullptr ||
        SSL_CTX_load_verify_locations(ctx, tls.client_ca_file.c_str(), nullptr) != 1) {
        if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
        throw ConfigError(prefix + "tls_server_config.client_ca_file: " + tls.client_ca_file +
                          ": no PEM CA certificate in it (" + openssl_reason() + ")");
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx,
                       tls.client_auth == ClientAuth::RequireAndVerifyClientCert
                           ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                           : SSL_VERIFY_PEER,
                       nullptr);
}

void check_tls(const TlsServerConfig& tls, const std::string& prefix) {
    // mg_check_feature bit 2: civetweb was built with TLS.
    if (mg_check_feature(2) == 0) {
        throw ConfigError(prefix + "tls_server_config: this build's civetweb has no TLS support");
    }
    load_openssl_for_civetweb(prefix);
    Owned<SSL_CTX, SSL_CTX_free> ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) throw ConfigError(prefix + "tls_server_config: OpenSSL: " + openssl_reason());
    configure_tls(ctx.get(), tls, prefix);
}

}  // namespace netlatd
