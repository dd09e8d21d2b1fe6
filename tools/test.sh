#!/usr/bin/env bash
# One command for the whole test suite: install what is missing, build, run every tier with ctest;
# then build the sanitized tree (tools/build.sh --sanitize) and run its unit, integration and fuzz
# tiers (NETLAT_SANITIZED=0 skips that part). Extra arguments go to ctest (e.g. -L unit, -R accuracy).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/deps.sh"
"$top/tools/build.sh"
status=0
(cd "${NETLAT_BUILD_DIR:-$top/build}" && ctest --output-on-failure "$@") || status=$?
if [[ ${NETLAT_SANITIZED:-1} != 0 ]]; then
    "$top/tools/build.sh" --sanitize
    (cd "${NETLAT_ASAN_BUILD_DIR:-$top/build-asan}" && ctest --output-on-failure "$@") || status=$?
fi
exit "$status"
