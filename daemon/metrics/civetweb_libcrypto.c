/* Loaded by netlatd as "libcrypto.so" (its SONAME), the name civetweb 1.15 asks for: every name
 * resolves in libcrypto.so.3, this library's dependency, so that TLS needs no libssl-dev at run
 * time (which alone ships the unversioned names). See civetweb_libssl.c. */
#include <openssl/crypto.h>

unsigned long netlatd_civetweb_libcrypto_version(void);
unsigned long netlatd_civetweb_libcrypto_version(void) {
    return OpenSSL_version_num();
}
