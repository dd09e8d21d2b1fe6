# Writes OUTPUT, a C++ file defining netlatd::embedded_default_config_yaml() with the text of INPUT.
# Run at build time (cmake -DINPUT=... -DOUTPUT=... -P embed_default.cmake), so editing the YAML
# rebuilds the daemon.
file(READ "${INPUT}" yaml)
set(delimiter "netlatd_yaml")
string(FIND "${yaml}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter )${delimiter}\"")
endif()
file(WRITE "${OUTPUT}" "// Generated from config/netlatd.yaml by daemon/config/embed_default.cmake; do not edit.
#include \"daemon/config/config.h\"

namespace netlatd {

std::string_view embedded_default_config_yaml() {
    return R\"${delimiter}(${yaml})${delimiter}\";
}

}  // namespace netlatd
")
