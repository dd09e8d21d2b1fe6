// Command line of netlat-load: parsed and validated in one place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace netlat_load {

enum class Role { kBoth, kServer, kClient };
enum class Proto { kTcp, kUdp };
enum class Topology { kLoopback, kVeth };
enum class Mode { kRequestResponse, kOneWay };

// Bytes every message starts with (see wire.h); the smallest --size.
inline constexpr std::size_t kMinMessageSize = 24;
inline constexpr std::size_t kMaxTcpMessageSize = 1 << 20;
inline constexpr std::size_t kMaxUdp4MessageSize = 65507;  // 65535 - IPv4 header - UDP header
inline constexpr std::size_t kMaxUdp6MessageSize = 65527;  // 65535 - UDP header

struct Options {
    Role role = Role::kBoth;
    Proto proto = Proto::kTcp;
    int family = 4;
    Topology topology = Topology::kLoopback;
    Mode mode = Mode::kRequestResponse;
    std::size_t size = 64;
    std::uint64_t count = 0;  // measured messages; 0 = bounded by duration only
    double duration_s = 0;    // 0 = bounded by count only
    double rate = 1000;       // messages per second; 0 = as fast as possible
    std::uint64_t warmup = 10;
    std::string address;  // empty = the family's loopback address
    std::uint16_t port = 0;
    std::uint32_t sleep_before_read_us = 0;
    double timeout_s = 2;
    bool json = false;
    bool progress = false;
    std::string samples_path;
    bool cleanup = false;
    bool help = false;
    bool version = false;
};

// Bad command line: main() prints "netlat-load: <what>" and exits 2.
class UsageError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// args excludes argv[0]. Accepts "--flag value" and "--flag=value".
Options parse_options(const std::vector<std::string>& args);

std::string usage_text();

const char* to_string(Role role);
const char* to_string(Proto proto);
const char* to_string(Topology topology);
const char* to_string(Mode mode);

// The address the server listens on and the client connects to, for loopback runs.
std::string default_address(int family);

}  // namespace netlat_load
