// libFuzzer target: the web config (--web.config.file, exporter-toolkit format) from any bytes.
// Each input parses or throws ConfigError with one line; anything else (another exception, a
// crash, a sanitizer report) is a finding. Parsing only: files named in it are not opened.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "daemon/config/config.h"
#include "daemon/config/web_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace netlatd;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        parse_web_config(text, "fuzz-web.yml");
    } catch (const ConfigError& e) {
        if (std::string_view(e.what()).find('\n') != std::string_view::npos) std::abort();
    }
    return 0;
}
