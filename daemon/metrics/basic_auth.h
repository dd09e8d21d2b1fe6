// HTTP basic authentication against the web config's basic_auth_users (bcrypt hashes), as the
// Prometheus exporter-toolkit does it: bcrypt through libxcrypt's crypt_rn, constant-time compare,
// the same bcrypt work for unknown users, and a bounded cache of recent results so that frequent
// scrapes do not pay bcrypt's cost each time.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace netlatd {

struct Credentials {
    std::string user, password;
};

// The user and password of an Authorization header value "Basic base64(user:password)"; nullopt
// for any other scheme or malformed value. Pure: unit-tested and safe on any input.
std::optional<Credentials> parse_basic_authorization(std::string_view header);

class BasicAuth {
  public:
    explicit BasicAuth(std::map<std::string, std::string> users);  // user -> bcrypt hash

    // Whether the Authorization header value (nullptr: none) names a user and its password.
    // Thread-safe; may take bcrypt's time (milliseconds at cost 10) on a cache miss.
    bool allows(const char* authorization) const;

  private:
    bool verify(const Credentials& credentials) const;

    std::map<std::string, std::string> users_;
    mutable std::mutex mutex_;
    mutable std::map<std::string, bool> cache_;  // user '\0' password -> result, bounded
};

}  // namespace netlatd
