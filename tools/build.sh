#!/usr/bin/env bash
# Configures and builds netlatd into build/ (or $NETLAT_BUILD_DIR).
# With --sanitize: the sanitized tree build-asan/ (or $NETLAT_ASAN_BUILD_DIR) instead: clang,
# AddressSanitizer + UndefinedBehaviorSanitizer, only the unit, integration and fuzz test tiers.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [[ ${1:-} == --sanitize ]]; then
    build=${NETLAT_ASAN_BUILD_DIR:-$top/build-asan}
    CC=clang CXX=clang++ cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DNETLAT_SANITIZE=ON -DNETLAT_TEST_TIERS="unit;integration;fuzz" >/dev/null
else
    build=${NETLAT_BUILD_DIR:-$top/build}
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j"$(nproc)"
