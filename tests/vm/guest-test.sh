# Guest script of the VM test (busybox sh, inside the VM; /init sources /guest/lib.sh first).
#
# For each probe mode: start netlatd, wait for /metrics, run netlat-load over tcp/udp x v4/v6,
# scrape /metrics after each run, stop netlatd with SIGTERM and send everything to the host
# (vm_emit). The guest only collects; tests/vm/vmreport.py analyses on the host.
#
# Parameters come from /guest/params.sh (written by test_vm.py), with these defaults:
MODES="kprobe fentry tracepoint auto"
LISTEN=127.0.0.1:9810
LOAD_COUNT=1000          # messages per netlat-load run
LOAD_CASES="tcp4 tcp6 udp4 udp6"
LOAD_PORT=47810          # netlat-load's server port; the test config filters netlatd on it
DRAIN_WAIT=3             # seconds to wait after a run so netlatd's drain interval has passed
START_TIMEOUT=180        # seconds for netlatd to serve /metrics (BPF load under TCG is slow)
LOAD_TIMEOUT=240         # seconds for one netlat-load run
STOP_TIMEOUT=10          # seconds netlatd gets to exit after SIGTERM (contract: 2 s)
NETLATD_CONFIG=          # test config (fine buckets, short interval), empty = embedded default
[ -f /guest/params.sh ] && . /guest/params.sh

# --- The two command lines this test relies on. Adapt here if the CLIs change. ---------------
# netlatd: MODE -> argv. The --config flag is passed only when a test config was given.
netlatd_cmd() {
  echo netlatd --probe-mode "$1" --listen "$LISTEN" ${NETLATD_CONFIG:+--config "$NETLATD_CONFIG"}
}
# netlat-load: CASE (tcp4...) -> argv; prints one JSON document with its own (kernel-timestamp)
# measurements on stdout.
load_cmd() {
  local proto=${1%?} family=${1#???}
  echo netlat-load --proto "$proto" --family "$family" --count "$LOAD_COUNT" --port "$LOAD_PORT" \
    --json
}
# ---------------------------------------------------------------------------------------------

now() { vm_uptime; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# (busybox 1.35 wget -T crashes: bound it with timeout instead)
scrape() { timeout 30 wget -q -O "$1" "http://$LISTEN/metrics"; }
log() { echo "guest-test: $*"; }

meta=/results/meta
mkdir -p $meta
{
  echo "kernel=$(uname -r)"
  echo "nproc=$(nproc)"
  echo "modes=$MODES"
  echo "load_count=$LOAD_COUNT"
  echo "load_cases=$LOAD_CASES"
  echo "config=${NETLATD_CONFIG:-embedded}"
  echo "netlatd_version=$(netlatd --version 2>&1 | head -n1)"
  echo "netlat_load_version=$(netlat-load --version 2>&1 | head -n1)"
  echo "boot_uptime=$(now)"
  [ -x /bin/syscall-cost ] && syscall-cost
} >$meta/meta.txt
cat $meta/meta.txt
[ -n "$NETLATD_CONFIG" ] && cp "$NETLATD_CONFIG" $meta/netlatd-test.yaml
vm_emit meta $meta

# Diagnostics: load every program of netlatd's BPF object alone and keep the verifier's verdict,
# so the report says which hooks this kernel accepts even when netlatd cannot start.
if [ -f /guest/netlat.bpf.o ] && [ -x /bin/bpf-verify ]; then
  v=/results/verify
  mkdir -p $v
  t0=$(now)
  # The same budget as the host test integration_bpf_verifier_budget (tests/integration).
  timeout 300 bpf-verify --budget 200000 /guest/netlat.bpf.o >$v/verify.txt 2>&1
  echo "rc=$? seconds=$(elapsed $t0)" >>$v/verify.txt
  log "bpf-verify: $(grep '^bpf-verify:' $v/verify.txt) in $(elapsed $t0)s"
  vm_emit verify $v
fi

# Baseline: the same netlat-load runs with no netlatd, so the report can show how much the
# probes themselves add to what netlat-load measures (large under TCG, where BPF runs emulated).
# Taken twice, before and after the modes: scheduling noise under TCG only adds time, and the
# report takes the lower median of the two as the path's cost without netlatd.
baseline() {
  b=/results/$1
  mkdir -p $b
  # One short unmeasured run first, as the modes get: the first TCP run after boot is slow under
  # TCG (code translation), which would make the baseline meaningless.
  timeout 60 $(load_cmd tcp4 | sed "s/--count $LOAD_COUNT/--count 20/") >/dev/null 2>&1
  for c in $LOAD_CASES; do
    t1=$(now)
    timeout $LOAD_TIMEOUT $(load_cmd $c) >$b/load-$c.json 2>$b/load-$c.err
    echo "load_$c rc=$? seconds=$(elapsed $t1)" >>$b/timing.txt
  done
  log "$1 (no netlatd): $(cat $b/timing.txt | tr '\n' ' ')"
  vm_emit $1 $b
}
baseline baseline

for mode in $MODES; do
  d=/results/$mode
  mkdir -p $d
  t_mode=$(now)
  log "mode $mode: $(netlatd_cmd "$mode")"
  dmesg -c >/dev/null 2>&1
  $(netlatd_cmd "$mode") >$d/netlatd.log 2>&1 &
  pid=$!
  echo "$(netlatd_cmd "$mode")" >$d/cmdline.txt

  # Wait until /metrics answers, or netlatd exits, or START_TIMEOUT.
  t0=$(now)
  up=no
  while :; do
    if ! kill -0 $pid 2>/dev/null; then break; fi
    if scrape $d/metrics-00-start.txt 2>/dev/null; then up=yes; break; fi
    if [ "$(awk -v a=$t0 -v b=$(now) -v t=$START_TIMEOUT 'BEGIN { print (b - a > t) }')" = 1 ]; then
      break
    fi
    sleep 0.5
  done
  echo "start_seconds=$(elapsed $t0)" >>$d/timing.txt
  echo "up=$up" >$d/status.txt
  log "mode $mode: up=$up after $(elapsed $t0)s"

  # Ready = observations flowing: a short warm-up run, repeated until netlatd's stage event
  # counters move (they may lag the first /metrics answer; the report shows by how much).
  ready=no
  if [ $up = yes ]; then
    t_w=$(now)
    while kill -0 $pid 2>/dev/null; do
      timeout 60 $(load_cmd tcp4 | sed "s/--count $LOAD_COUNT/--count 20/") >/dev/null 2>&1
      sleep 1
      scrape $d/metrics-warmup.txt 2>/dev/null &&
        awk '/^netlatd_stage_events_total/ { s += $NF } END { exit !(s > 0) }' $d/metrics-warmup.txt &&
        { ready=yes; break; }
      if [ "$(awk -v a=$t_w -v b=$(now) -v t=$START_TIMEOUT 'BEGIN { print (b - a > t) }')" = 1 ]; then
        break
      fi
    done
    echo "ready_seconds=$(elapsed $t_w)" >>$d/timing.txt
    echo "ready=$ready" >>$d/status.txt
    log "mode $mode: observations flowing=$ready after $(elapsed $t_w)s more"
    scrape $d/metrics-00-start.txt
  fi

  if [ $up = yes ]; then
    if [ -x /bin/bpftool ]; then
      bpftool link show >$d/bpftool-links.txt 2>&1
      bpftool prog show >$d/bpftool-progs.txt 2>&1
      bpftool perf show >$d/bpftool-perf.txt 2>&1
    fi
    i=0
    for c in $LOAD_CASES; do
      i=$((i + 1))
      t1=$(now)
      timeout $LOAD_TIMEOUT $(load_cmd $c) >$d/load-$c.json 2>$d/load-$c.err
      rc=$?
      echo "load_$c rc=$rc seconds=$(elapsed $t1)" >>$d/timing.txt
      sleep $DRAIN_WAIT
      scrape $d/metrics-0$i-$c.txt || echo "scrape after $c failed" >>$d/status.txt
      log "mode $mode: $c rc=$rc $(elapsed $t1)s"
    done
    scrape $d/metrics-final.txt || echo "final scrape failed" >>$d/status.txt
  fi

  # Stop: SIGTERM, then SIGKILL after STOP_TIMEOUT. Exit status 0 is the contract.
  t2=$(now)
  if kill -0 $pid 2>/dev/null; then
    running_at_stop=yes
    kill -TERM $pid
    (sleep $STOP_TIMEOUT; kill -KILL $pid 2>/dev/null) &
    killer=$!
    wait $pid
    rc=$?
    kill $killer 2>/dev/null
  else
    running_at_stop=no
    wait $pid
    rc=$?
  fi
  echo "running_at_stop=$running_at_stop" >>$d/status.txt
  echo "exit_code=$rc" >>$d/status.txt
  echo "stop_seconds=$(elapsed $t2)" >>$d/timing.txt
  echo "mode_seconds=$(elapsed $t_mode)" >>$d/timing.txt
  dmesg >$d/dmesg.txt 2>&1
  log "mode $mode: exit=$rc running_at_stop=$running_at_stop total $(elapsed $t_mode)s"
  # Leftovers would disturb the next mode: nothing of netlatd may outlive it.
  [ -x /bin/bpftool ] && bpftool link show >$d/bpftool-links-after.txt 2>&1
  t3=$(now)
  vm_emit $mode $d
  log "mode $mode: results sent to the host in $(elapsed $t3)s"
done
baseline baseline-after
exit 0
