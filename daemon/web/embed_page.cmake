# Writes OUTPUT, a C++ file defining netlatd::web::index_html() with the text of INPUT (the page at
# /). Run at build time (cmake -DINPUT=... -DOUTPUT=... -P embed_page.cmake), so editing the page
# rebuilds the daemon.
file(READ "${INPUT}" html)
set(delimiter "netlatd_page")
string(FIND "${html}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter )${delimiter}\"")
endif()
file(WRITE "${OUTPUT}" "// Generated from daemon/web/index.html by daemon/web/embed_page.cmake; do not edit.
#include \"daemon/web/page.h\"

namespace netlatd::web {

std::string_view index_html() {
    return R\"${delimiter}(${html})${delimiter}\";
}

}  // namespace netlatd::web
")
