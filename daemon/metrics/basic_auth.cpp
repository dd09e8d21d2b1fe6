#include "daemon/metrics/basic_auth.h"

#include <crypt.h>

#include <cctype>
#include <cstring>
#include <memory>

namespace netlatd {
namespace {

// Bounds the memory of the cache: at this size it starts over. A scraper's one or two credentials
// stay in it; a stream of wrong passwords only costs bcrypt time, as it would without a cache.
constexpr size_t kCacheEntries = 100;

// A valid bcrypt hash no password matches: unknown users cost the same bcrypt work as known ones,
// so response times do not tell which user names exist.
constexpr const char* kUnknownUserHash =
    "$2y$10$xc7Q1FfZkFIOzBOKaLrXQefHgu3WjOYeW0KS3mu6rE55nq3dqE5pm";

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::string out;
    for (size_t i = 0; i < text.size(); i += 4) {
        int values[4];
        int padding = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = text[i + k];
            if (c == '=' && i + 4 == text.size() && k >= 2) {
                values[k] = 0;
                ++padding;
            } else if (padding > 0 || (values[k] = base64_value(c)) < 0) {
                return std::nullopt;
            }
        }
        const unsigned bits = (values[0] << 18) | (values[1] << 12) | (values[2] << 6) | values[3];
        out += static_cast<char>(bits >> 16);
        if (padding < 2) out += static_cast<char>((bits >> 8) & 0xff);
        if (padding < 1) out += static_cast<char>(bits & 0xff);
    }
    return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char difference = 0;
    for (size_t i = 0; i < a.size(); ++i) difference |= static_cast<unsigned char>(a[i] ^ b[i]);
    return difference == 0;
}

}  // namespace

std::optional<Credentials> parse_basic_authorization(std::string_view header) {
    constexpr std::string_view kScheme = "basic ";
    if (header.size() < kScheme.size()) return std::nullopt;
    for (size_t i = 0; i < kScheme.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return std::nullopt;
    }
    header.remove_prefix(kScheme.size());
    while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
    while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
    const std::optional<std::string> decoded = base64_decode(header);
    if (!decoded) return std::nullopt;
    const size_t colon = decoded->find(':');
    if (colon == std::string::npos) return std::nullopt;
    return Credentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

BasicAuth::BasicAuth(std::map<std::string, std::string> users) : users_(std::move(users)) {}

bool BasicAuth::allows(const char* authorization) const {
    if (authorization == nullptr) return false;
    const std::optional<Credentials> credentials = parse_basic_authorization(authorization);
    if (!credentials) return false;
    std::string key = credentials->user + '\0' + credentials->password;
    {
        std::lock_guard lock(mutex_);
        if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    }
    const bool ok = verify(*credentials);
    std::lock_guard lock(mutex_);
    if (cache_.size() >= kCacheEntries) cache_.clear();
    cache_[std::move(key)] = ok;
    return ok;
}

bool BasicAuth::verify(const Credentials& credentials) const {
    const auto user = users_.find(credentials.user);
    const std::string& hash = user != users_.end() ? user->second : std::string(kUnknownUserHash);
    // crypt_data is about 32 KB: on the heap, not on a civetweb thread's stack.
    auto data = std::make_unique<crypt_data>();
    const char* computed =
        crypt_rn(credentials.password.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
    const bool matches = computed != nullptr && equal_constant_time(computed, hash);
    // crypt reads the password up to a NUL: "secret\0anything" must not pass for "secret".
    return matches && user != users_.end() && credentials.password.find('\0') == std::string::npos;
}

}  // namespace netlatd
