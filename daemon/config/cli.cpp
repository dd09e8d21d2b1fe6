#include "daemon/config/cli.h"

#include <cmath>
#include <string_view>

namespace netlatd {
namespace {

enum class Option {
    Config,
    Listen,
    WebConfig,
    ProbeMode,
    CheckConfig,
    Once,
    Duration,
    Json,
    Version,
    Help
};

struct OptionSpec {
    std::string_view name;
    Option option;
    bool takes_value;
};

constexpr OptionSpec kOptions[] = {
    {"--config", Option::Config, true},
    {"--listen", Option::Listen, true},
    {"--web.config.file", Option::WebConfig, true},
    {"--probe-mode", Option::ProbeMode, true},
    {"--check-config", Option::CheckConfig, false},
    {"--once", Option::Once, false},
    {"--duration", Option::Duration, true},
    {"--json", Option::Json, false},
    {"--version", Option::Version, false},
    {"--help", Option::Help, false},
    {"-h", Option::Help, false},
};

// --duration: the config file's duration syntax, 100ms..24h, whole milliseconds.
std::chrono::milliseconds parse_once_duration(const std::string& value) {
    const std::optional<double> seconds = parse_duration_seconds(value);
    if (!seconds) {
        throw CliError("--duration: " + quote(value) +
                       " is not a duration (e.g. 8s, 1.5m, 500ms; a plain number is seconds)");
    }
    const double ms = *seconds * 1e3;
    if (*seconds < 0.1 || *seconds > 86400) {
        throw CliError("--duration: " + printable(value) + " is out of range (allowed 100ms..24h)");
    }
    if (std::abs(ms - std::round(ms)) > 1e-6) {
        throw CliError("--duration: " + printable(value) + " is not whole milliseconds");
    }
    return std::chrono::milliseconds(std::llround(ms));
}

}  // namespace

CliOptions parse_cli(int argc, char** argv) {
    CliOptions options;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const auto equals = arg.find('=');
        const std::string_view name = arg.substr(0, equals);
        const OptionSpec* spec = nullptr;
        for (const OptionSpec& candidate : kOptions) {
            if (candidate.name == name) spec = &candidate;
        }
        if (spec == nullptr) {
            const std::string_view what =
                arg.starts_with('-') ? "unknown option" : "unexpected argument";
            throw CliError(std::string(what) + " " + quote(arg) + " (see --help)");
        }
        std::string value;
        if (spec->takes_value) {
            if (equals != std::string_view::npos) {
                value = arg.substr(equals + 1);
            } else if (i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--")) {
                value = argv[++i];
            }
            if (value.empty()) throw CliError(std::string(name) + " requires a value");
        } else if (equals != std::string_view::npos) {
            throw CliError(std::string(name) + " does not take a value");
        }
        switch (spec->option) {
            case Option::Config:
                options.config_path = value;
                break;
            case Option::Listen:
                options.listen = value;
                break;
            case Option::WebConfig:
                options.web_config_path = value;
                break;
            case Option::ProbeMode:
                options.probe_mode = probe_mode_from_string(value);
                if (!options.probe_mode) {
                    throw CliError("--probe-mode: " + quote(value) + " is not one of " +
                                   probe_mode_choices());
                }
                break;
            case Option::CheckConfig:
                options.check_config = true;
                break;
            case Option::Once:
                options.once = true;
                break;
            case Option::Duration:
                options.duration = parse_once_duration(value);
                break;
            case Option::Json:
                options.json = true;
                break;
            case Option::Version:
                options.version = true;
                break;
            case Option::Help:
                options.help = true;
                break;
        }
    }
    if (!options.once && options.json) throw CliError("--json needs --once");
    if (!options.once && options.duration) throw CliError("--duration needs --once");
    return options;
}

std::string usage() {
    return "Usage: netlatd [OPTIONS]\n"
           "Export per-layer Linux network stack latency as Prometheus histograms.\n"
           "\n"
           "  --config FILE        read configuration from FILE (default: built-in defaults;\n"
           "                       installed config: /etc/netlatd/netlatd.yaml)\n"
           "  --listen HOST:PORT   serve /metrics on HOST:PORT (overrides `listen`;\n"
           "                       HOST is IPv4, [IPv6] or a hostname; default 0.0.0.0:9810)\n"
           "  --web.config.file FILE\n"
           "                       TLS and basic auth of that port, in the Prometheus\n"
           "                       exporter-toolkit's web config format (see docs/OPERATIONS.md)\n"
           "  --probe-mode MODE    one of " +
           probe_mode_choices() +
           " (overrides `probe_mode`)\n"
           "  --check-config       validate the configuration and exit\n"
           "  --once               measure for a while, print a report of every segment\n"
           "                       (histograms, percentiles, per-layer shares) and exit;\n"
           "                       no HTTP server unless --listen is given\n"
           "  --duration TIME      how long --once measures: 100ms..24h (default 10s;\n"
           "                       e.g. 8s, 1.5m, 500ms)\n"
           "  --json               with --once: print the report as one JSON document\n"
           "  --version            print the version and exit\n"
           "  -h, --help           print this help and exit\n"
           "\n"
           "Exit status: 0 on success or SIGINT/SIGTERM, 1 on a runtime failure,\n"
           "2 on a bad command line or configuration.\n";
}

Config resolve_config(const CliOptions& options) {
    Config config = options.config_path ? load_config_file(*options.config_path) : default_config();
    if (options.listen) {
        try {
            parse_listen_address(*options.listen);
        } catch (const std::invalid_argument& e) {
            throw ConfigError(std::string("--listen: ") + e.what());
        }
        config.listen = *options.listen;
    }
    if (options.probe_mode) config.probe_mode = *options.probe_mode;
    return config;
}

}  // namespace netlatd
