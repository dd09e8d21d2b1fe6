// netlatd's command line: parsing, help text and the effective configuration it selects.
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

#include "daemon/config/config.h"

namespace netlatd {

struct CliOptions {
    std::optional<std::string> config_path, listen;
    std::optional<std::string> web_config_path;  // --web.config.file: TLS and basic auth
    std::optional<ProbeMode> probe_mode;
    bool check_config = false, version = false, help = false;
    // --once: measure for `duration` (default kOnceDuration), print a report, exit; --json: as
    // one JSON document. Only with --once; no HTTP server unless --listen is given too.
    bool once = false, json = false;
    std::optional<std::chrono::milliseconds> duration;
};

inline constexpr std::chrono::milliseconds kOnceDuration{10000};

// One line, e.g. "unknown option '--foo' (see --help)".
struct CliError : std::runtime_error {
    using runtime_error::runtime_error;
};

// Accepts "--opt value" and "--opt=value"; a repeated option's last value wins. Throws CliError.
CliOptions parse_cli(int argc, char** argv);

// The --help text, ending in a newline.
std::string usage();

// The file given with --config (or the built-in default) with --listen and --probe-mode applied,
// checked as the file's keys are. Throws ConfigError.
Config resolve_config(const CliOptions&);

}  // namespace netlatd
