#!/usr/bin/env bash
# Per-program cost of one or more netlatd binaries under sockperf ping-pong on loopback (UDP, then
# TCP, 64 B), in alternating rounds: the kernel's own BPF run-time statistics (bpf_stats: true)
# read with bpftool before and after the traffic. A quick paired A/B for one optimization; the
# full benchmark (all arms and workloads) is tools/bench/run.sh.
#
#   tools/bench/prog-cost.sh ROUNDS SECONDS NETLATD [NETLATD...]      (as root)
set -euo pipefail
rounds=$1 secs=$2
shift 2
work=$(mktemp -d)
trap 'pkill -f "sockperf server -i 127.0.0.1 -p 1111" || true; rm -rf "$work"' EXIT
printf 'listen: 127.0.0.1:9899\nbpf_stats: true\n' >"$work/netlatd.yaml"
sockperf server -i 127.0.0.1 -p 11111 >/dev/null 2>&1 &
sockperf server -i 127.0.0.1 -p 11112 --tcp >/dev/null 2>&1 &
p50() { awk '/percentile 50.000/ {print $NF}'; }
for round in $(seq "$rounds"); do
    for bin in "$@"; do
        : >"$work/log"
        "$bin" --config "$work/netlatd.yaml" >"$work/log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do grep -q "ready:" "$work/log" && break; sleep 0.1; done
        bpftool prog show -j >"$work/before.json"
        udp=$(sockperf ping-pong -i 127.0.0.1 -p 11111 -t "$secs" --msg-size 64 | p50)
        tcp=$(sockperf ping-pong -i 127.0.0.1 -p 11112 -t "$secs" --msg-size 64 --tcp | p50)
        bpftool prog show -j >"$work/after.json"
        # this netlatd's programs (others may run on the machine): the prog_id of its fds
        cat /proc/"$pid"/fdinfo/* 2>/dev/null | awk '/^prog_id:/ {print $2}' | sort -u >"$work/ids"
        kill "$pid"
        wait "$pid" || true
        python3 - "$work" "$bin" "$round" "$udp" "$tcp" <<'PY'
import json, sys
work, binary, rnd, udp, tcp = sys.argv[1:]
ours = {int(x) for x in open(f"{work}/ids").read().split()}
before = {p["id"]: p for p in json.load(open(f"{work}/before.json"))}
rows, runs, ns = [], 0, 0
for p in json.load(open(f"{work}/after.json")):
    b = before.get(p["id"])
    if not b or "run_cnt" not in p or p["id"] not in ours: continue
    r, t = p["run_cnt"] - b.get("run_cnt", 0), p["run_time_ns"] - b.get("run_time_ns", 0)
    if r <= 0: continue
    rows.append((p.get("name", "?"), r, t / r))
    if p.get("name") != "tp_sys_enter": runs, ns = runs + r, ns + t
print(f"round {rnd} {binary}: sockperf p50 udp {udp} us, tcp {tcp} us; "
      f"ns per run, all but sys_enter: {ns / runs if runs else 0:.0f}")
for name, r, per in sorted(rows, key=lambda x: -x[2]):
    print(f"  {name:32s} {r:9d} runs {per:6.0f} ns")
PY
    done
done
