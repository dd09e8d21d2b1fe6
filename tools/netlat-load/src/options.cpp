#include "options.h"

#include <arpa/inet.h>

#include <charconv>
#include <cmath>
#include <functional>
#include <map>
#include <set>

namespace netlat_load {
namespace {

constexpr double kMaxDurationS = 7 * 24 * 3600.0;
constexpr double kMaxRate = 10'000'000;
constexpr std::uint64_t kMaxCount = 1'000'000'000;
constexpr std::uint32_t kMaxSleepUs = 10'000'000;
constexpr double kMaxTimeoutS = 3600;

std::uint64_t parse_uint(const std::string& flag, const std::string& text, std::uint64_t min,
                         std::uint64_t max) {
    std::uint64_t value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end) {
        throw UsageError(flag + ": '" + text + "' is not a whole number");
    }
    if (value < min || value > max) {
        throw UsageError(flag + ": " + text + " is out of range [" + std::to_string(min) + ", " +
                         std::to_string(max) + "]");
    }
    return value;
}

double parse_double(const std::string& flag, const std::string& text, double min, double max) {
    double value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(value)) {
        throw UsageError(flag + ": '" + text + "' is not a number");
    }
    if (value < min || value > max) {
        throw UsageError(flag + ": " + text + " is out of range [" + std::to_string(min) + ", " +
                         std::to_string(max) + "]");
    }
    return value;
}

template <typename Enum>
Enum parse_choice(const std::string& flag, const std::string& text,
                  const std::map<std::string, Enum>& choices) {
    auto it = choices.find(text);
    if (it != choices.end()) return it->second;
    std::string allowed;
    for (const auto& [name, value] : choices) allowed += (allowed.empty() ? "" : "|") + name;
    throw UsageError(flag + ": '" + text + "' is not one of " + allowed);
}

struct Flag {
    bool takes_value;
    std::function<void(Options&, const std::string&)> apply;
};

const std::map<std::string, Flag>& flag_table() {
    static const std::map<std::string, Flag> table = {
        {"--role",
         {true,
          [](Options& o, const std::string& v) {
              o.role = parse_choice<Role>(
                  "--role", v,
                  {{"both", Role::kBoth}, {"server", Role::kServer}, {"client", Role::kClient}});
          }}},
        {"--proto",
         {true,
          [](Options& o, const std::string& v) {
              o.proto =
                  parse_choice<Proto>("--proto", v, {{"tcp", Proto::kTcp}, {"udp", Proto::kUdp}});
          }}},
        {"--family",
         {true,
          [](Options& o, const std::string& v) {
              o.family = parse_choice<int>("--family", v, {{"4", 4}, {"6", 6}});
          }}},
        {"--topology",
         {true,
          [](Options& o, const std::string& v) {
              o.topology = parse_choice<Topology>(
                  "--topology", v, {{"loopback", Topology::kLoopback}, {"veth", Topology::kVeth}});
          }}},
        {"--mode",
         {true,
          [](Options& o, const std::string& v) {
              o.mode = parse_choice<Mode>(
                  "--mode", v, {{"rr", Mode::kRequestResponse}, {"oneway", Mode::kOneWay}});
          }}},
        {"--size",
         {true,
          [](Options& o, const std::string& v) {
              o.size = parse_uint("--size", v, kMinMessageSize, kMaxTcpMessageSize);
          }}},
        {"--count",
         {true, [](Options& o,
                   const std::string& v) { o.count = parse_uint("--count", v, 1, kMaxCount); }}},
        {"--duration",
         {true,
          [](Options& o, const std::string& v) {
              o.duration_s = parse_double("--duration", v, 0.001, kMaxDurationS);
          }}},
        {"--rate",
         {true, [](Options& o,
                   const std::string& v) { o.rate = parse_double("--rate", v, 0, kMaxRate); }}},
        {"--warmup",
         {true, [](Options& o,
                   const std::string& v) { o.warmup = parse_uint("--warmup", v, 0, kMaxCount); }}},
        {"--address", {true, [](Options& o, const std::string& v) { o.address = v; }}},
        {"--port",
         {true,
          [](Options& o, const std::string& v) {
              o.port = static_cast<std::uint16_t>(parse_uint("--port", v, 1, 65535));
          }}},
        {"--sleep-before-read",
         {true,
          [](Options& o, const std::string& v) {
              o.sleep_before_read_us =
                  static_cast<std::uint32_t>(parse_uint("--sleep-before-read", v, 0, kMaxSleepUs));
          }}},
        {"--timeout",
         {true,
          [](Options& o, const std::string& v) {
              o.timeout_s = parse_double("--timeout", v, 0.001, kMaxTimeoutS);
          }}},
        {"--samples",
         {true,
          [](Options& o, const std::string& v) {
              if (v.empty()) throw UsageError("--samples: empty file name");
              o.samples_path = v;
          }}},
        {"--json", {false, [](Options& o, const std::string&) { o.json = true; }}},
        {"--progress", {false, [](Options& o, const std::string&) { o.progress = true; }}},
        {"--cleanup", {false, [](Options& o, const std::string&) { o.cleanup = true; }}},
        {"--help", {false, [](Options& o, const std::string&) { o.help = true; }}},
        {"-h", {false, [](Options& o, const std::string&) { o.help = true; }}},
        {"--version", {false, [](Options& o, const std::string&) { o.version = true; }}},
    };
    return table;
}

void validate(const Options& o, const std::set<std::string>& given) {
    if (o.role == Role::kServer) {
        for (const char* flag :
             {"--mode", "--size", "--count", "--duration", "--rate", "--warmup"}) {
            if (given.count(flag)) {
                throw UsageError(std::string(flag) +
                                 " is a client setting; the server takes it from each message");
            }
        }
    }
    if (o.role == Role::kClient && given.count("--sleep-before-read")) {
        throw UsageError("--sleep-before-read is a server setting (the receiving side)");
    }
    if (o.role != Role::kBoth) {
        if (o.topology == Topology::kVeth) {
            throw UsageError("--topology veth needs --role both (one process owns the namespaces)");
        }
        if (!given.count("--port")) {
            throw UsageError(std::string("--role ") + to_string(o.role) + " needs --port");
        }
    }
    if (given.count("--address")) {
        if (o.topology == Topology::kVeth) {
            throw UsageError(
                "--address is only for --topology loopback (veth uses its own addresses)");
        }
        unsigned char buf[sizeof(in6_addr)];
        if (inet_pton(o.family == 4 ? AF_INET : AF_INET6, o.address.c_str(), buf) != 1) {
            throw UsageError("--address: '" + o.address + "' is not an IPv" +
                             std::to_string(o.family) + " address");
        }
    }
    if (o.proto == Proto::kUdp) {
        const std::size_t max = o.family == 4 ? kMaxUdp4MessageSize : kMaxUdp6MessageSize;
        if (o.size > max) {
            throw UsageError("--size: " + std::to_string(o.size) +
                             " is larger than the largest UDP/IPv" + std::to_string(o.family) +
                             " payload (" + std::to_string(max) + ")");
        }
    }
}

}  // namespace

Options parse_options(const std::vector<std::string>& args) {
    Options options;
    std::set<std::string> given;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string name = args[i];
        std::string value;
        bool inline_value = false;
        if (auto eq = name.find('='); name.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            inline_value = true;
        }
        auto it = flag_table().find(name);
        if (it == flag_table().end())
            throw UsageError("unknown option '" + name + "' (see --help)");
        const Flag& flag = it->second;
        if (flag.takes_value && !inline_value) {
            if (i + 1 >= args.size()) throw UsageError(name + " needs a value");
            value = args[++i];
        } else if (!flag.takes_value && inline_value) {
            throw UsageError(name + " takes no value");
        }
        flag.apply(options, value);
        given.insert(name);
    }
    if (options.help || options.version || options.cleanup) return options;
    validate(options, given);
    if (options.address.empty()) options.address = default_address(options.family);
    if (options.count == 0 && options.duration_s == 0) options.count = 1000;
    return options;
}

std::string usage_text() {
    return R"(usage: netlat-load [options]

Sends messages over TCP or UDP and reports, from the kernel's own software timestamps
(SO_TIMESTAMPING), how long each took: send() -> qdisc, send() -> driver, driver -> recv() return.

  --role both|server|client   both sides in this process (default) or one side
  --proto tcp|udp             default tcp
  --family 4|6                default 4
  --topology loopback|veth    loopback (default) or two network namespaces joined by a veth
                              pair, created for the run and always removed
  --mode rr|oneway            request/response (default) or client -> server only
  --size BYTES                message size, 24..1048576 (UDP: up to 65507/65527), default 64
  --count N                   measured messages (default 1000 when --duration is not given)
  --duration SEC              stop sending after SEC seconds (with --count: whichever comes first)
  --rate MSG_PER_SEC          send rate, default 1000; 0 = as fast as possible
  --warmup N                  unmeasured messages sent first, default 10
  --address ADDR              loopback topology: address to listen on / connect to
                              (default 127.0.0.1 or ::1)
  --port PORT                 server port (default: any free port; required with --role)
  --sleep-before-read USEC    receiver waits USEC after data is readable before reading it
  --timeout SEC               wait for a reply or a connection, default 2
  --json                      print one JSON object instead of the table
  --samples FILE              write every message's raw timestamps (CSV, ns CLOCK_REALTIME)
  --progress                  one progress line per second on stderr
  --cleanup                   remove namespaces left by netlat-load runs that were killed, exit
  --version, --help
Exit: 0 done, 1 runtime failure, 2 bad command line, 130 interrupted (SIGINT/SIGTERM).
)";
}

const char* to_string(Role role) {
    switch (role) {
        case Role::kBoth:
            return "both";
        case Role::kServer:
            return "server";
        case Role::kClient:
            return "client";
    }
    return "?";
}

const char* to_string(Proto proto) {
    return proto == Proto::kTcp ? "tcp" : "udp";
}

const char* to_string(Topology topology) {
    return topology == Topology::kLoopback ? "loopback" : "veth";
}

const char* to_string(Mode mode) {
    return mode == Mode::kRequestResponse ? "rr" : "oneway";
}

std::string default_address(int family) {
    return family == 4 ? "127.0.0.1" : "::1";
}

}  // namespace netlat_load
