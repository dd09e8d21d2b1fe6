#!/usr/bin/env bash
# netlatd's overhead benchmark: alternating rounds of no tracing, the floor (do-nothing programs on
# netlatd's hooks), the stamp arm (the same, each storing the clock), netlatd and the original
# bpftrace scripts' port, under sockperf, iperf3 and
# netlat-load traffic on loopback; prints the tables of docs/BENCHMARKS.md. Not a pass/fail test.
#
#   tools/bench/run.sh [ROUNDS]     (as root, after ./tools/build.sh; ROUNDS default 5)
#   NETLATD_B=/path/to/other/netlatd tools/bench/run.sh 5     # adds arm netlatd-b: before/after
set -euo pipefail
exec python3 "$(dirname "$0")/bench.py" "$@"
