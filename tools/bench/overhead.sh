#!/usr/bin/env bash
# Overhead of netlatd on loopback traffic, against the floor (the same traffic without netlatd).
# Alternates runs without and with netlatd (A B A B ...) so drift hits both alike, and prints
# medians. Also prints netlatd's own per-program cost from kernel BPF statistics.
#
#   tools/bench/overhead.sh [ROUNDS]        (as root; needs sockperf and iperf3 from Debian)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
netlatd=${NETLATD:-$top/build/daemon/netlatd}
rounds=${1:-5}
port=19810
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

start_netlatd() {
    "$netlatd" --listen 127.0.0.1:$port >"$work/netlatd.log" 2>&1 &
    echo $! >"$work/netlatd.pid"
    for _ in $(seq 100); do
        curl -sf 127.0.0.1:$port/metrics >"$work/probe.txt" 2>/dev/null &&
            grep -q netlatd_stage_info "$work/probe.txt" && return
        sleep 0.1
    done
    echo "netlatd did not start: $(cat "$work/netlatd.log")" >&2
    exit 1
}
stop_netlatd() { kill "$(cat "$work/netlatd.pid")"; wait "$(cat "$work/netlatd.pid")" 2>/dev/null || true; }

sockperf server -i 127.0.0.1 -p 11111 >/dev/null 2>&1 &
sockperf server -i 127.0.0.1 -p 11112 --tcp >/dev/null 2>&1 &
iperf3 -s -B 127.0.0.1 -p 5201 >/dev/null 2>&1 &
sleep 1

# One measurement: UDP and TCP ping-pong latency (sockperf, us, average) and TCP throughput
# (iperf3, Gbit/s, 3 s).
measure() {
    local udp tcp bw
    udp=$(sockperf ping-pong -i 127.0.0.1 -p 11111 -t 3 2>/dev/null | awk '/avg-latency/ {for(i=1;i<=NF;i++) if($i ~ /avg-latency=/){split($i,a,"=");print a[2]}}')
    tcp=$(sockperf ping-pong -i 127.0.0.1 -p 11112 --tcp -t 3 2>/dev/null | awk '/avg-latency/ {for(i=1;i<=NF;i++) if($i ~ /avg-latency=/){split($i,a,"=");print a[2]}}')
    bw=$(iperf3 -c 127.0.0.1 -p 5201 -t 3 -J 2>/dev/null | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,2))')
    echo "$udp $tcp $bw"
}

for r in $(seq "$rounds"); do
    echo "floor $(measure)" >>"$work/results"
    start_netlatd
    echo "netlatd $(measure)" >>"$work/results"
    curl -s 127.0.0.1:$port/metrics >"$work/metrics.txt"
    stop_netlatd
done

python3 - "$work/results" "$work/metrics.txt" <<'PY'
import re, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def med(kind, i): return statistics.median(float(r[i]) for r in rows if r[0] == kind)
print("| figure | floor (median) | with netlatd (median) | ratio |")
print("|---|---|---|---|")
for i, name in [(1, "UDP ping-pong avg latency (us)"), (2, "TCP ping-pong avg latency (us)"),
                (3, "TCP throughput, iperf3 (Gbit/s)")]:
    a, b = med("floor", i), med("netlatd", i)
    print(f"| {name} | {a:.2f} | {b:.2f} | {b/a:.3f} |")
runs, secs = {}, {}
for l in open(sys.argv[2]):
    m = re.match(r'netlatd_bpf_program_(runs|run_seconds)_total\{program="([^"]+)"\} (\S+)', l)
    if m: (runs if m.group(1) == "runs" else secs)[m.group(2)] = float(m.group(3))
print()
print("| BPF program (last round) | runs | ns per run |")
print("|---|---|---|")
for p in sorted(runs, key=lambda p: -secs.get(p, 0)):
    if runs[p]: print(f"| {p} | {int(runs[p])} | {secs[p] / runs[p] * 1e9:.0f} |")
PY
