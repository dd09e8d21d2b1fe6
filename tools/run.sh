#!/usr/bin/env bash
# One command for a new user: install what is missing, build, run netlatd in the foreground on its
# embedded default config. Extra arguments go to netlatd (e.g. --listen 127.0.0.1:9810).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/deps.sh"
"$top/tools/build.sh"
exec "${NETLAT_BUILD_DIR:-$top/build}/daemon/netlatd" "$@"
