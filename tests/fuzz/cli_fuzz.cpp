// libFuzzer target: netlatd's command line from any bytes, split at NUL bytes into arguments.
// Each input parses or throws CliError with one line; anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config/cli.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<std::string> args{"netlatd"};
    std::string arg;
    for (size_t i = 0; i < size; ++i) {
        if (data[i] == '\0') {
            args.push_back(std::move(arg));
            arg.clear();
        } else {
            arg += static_cast<char>(data[i]);
        }
    }
    args.push_back(std::move(arg));
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    try {
        netlatd::parse_cli(static_cast<int>(args.size()), argv.data());
    } catch (const netlatd::CliError& e) {
        if (std::string_view(e.what()).find('\n') != std::string_view::npos) std::abort();
    }
    return 0;
}
