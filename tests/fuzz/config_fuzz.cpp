// libFuzzer target: netlatd's YAML config from any bytes. Each input parses or throws ConfigError
// with one line; a config that parses reads back the same from what to_yaml (--check-config)
// writes. Anything else (another exception, a crash, a sanitizer report) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "daemon/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace netlatd;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    Config config;
    try {
        config = parse_config(text, "fuzz.yaml");
    } catch (const ConfigError& e) {
        if (std::string_view(e.what()).find('\n') != std::string_view::npos) std::abort();
        return 0;
    }
    if (parse_config(to_yaml(config), "to_yaml") != config) std::abort();
    return 0;
}
