#!/usr/bin/env bash
# One command for the whole test suite: install what is missing, build, run every tier with ctest.
# Extra arguments go to ctest (e.g. -L unit, -R accuracy).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/deps.sh"
"$top/tools/build.sh"
cd "${NETLAT_BUILD_DIR:-$top/build}"
exec ctest --output-on-failure "$@"
