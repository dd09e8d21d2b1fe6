#!/usr/bin/env bash
# One command for a new user: install what is missing, build netlatd, run it in the foreground on
# its embedded default config. Extra arguments go to netlatd (e.g. --listen 127.0.0.1:9810).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${NETLAT_BUILD_DIR:-$top/build}
"$top/tools/deps.sh"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target netlatd
exec "$build/daemon/netlatd" "$@"
