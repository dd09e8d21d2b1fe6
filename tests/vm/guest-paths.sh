# Guest script of the VM paths test (busybox sh, inside the VM; /init sources /guest/lib.sh first).
#
# Runs the paths tier's GoogleTest cases (tests/paths) one process per case, in each probe mode:
# NETLAT_TEST_PROBE_MODE makes every netlatd a test starts run in that mode (tests/common/harness).
# Each case's results go to the host as soon as it ends (vm_emit paths-MODE, unpacked into one
# folder), so a guest kernel crash loses only the case that was running: N.json (--gtest_output),
# N.log (the test's output) and N.index, one line:
#   N rc=RC seconds=S leftovers=WHAT BINARY FILTER
# The host (tests/vm/pathsreport.py) judges; the guest only runs and collects.
#
# Parameters come from /guest/params.sh (written by test_vm.py), with these defaults:
MODES="kprobe fentry"
CASES=/guest/paths-cases.txt   # one "BINARY FILTER" per line (BINARY under /bin)
CASE_TIMEOUT=300               # seconds for one case (the host's ctest gives 60; TCG is slower)
TIME_SCALE=5                   # NETLAT_TEST_TIME_SCALE: netlatd's ready timeout x this (TCG)
NIC_PAIR=""                    # NETLAT_TEST_NIC_PAIR (required: the NIC pair's cases fail without it)
[ -f /guest/params.sh ] && . /guest/params.sh

now() { vm_uptime; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "guest-paths: $*"; }

meta=/results/meta
mkdir -p $meta
{
  echo "kernel=$(uname -r)"
  echo "nproc=$(nproc)"
  echo "modes=$MODES"
  echo "cases=$(wc -l <$CASES)"
  echo "ip=$(ip -V 2>&1)"
  echo "ethtool=$(ethtool --version 2>&1)"
  echo "modules=$(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
  echo "nics=$(for n in /sys/class/net/*; do echo "${n##*/}:$(cat $n/address)"; done | tr '\n' ' ')"
} >$meta/meta.txt
cat $meta/meta.txt
vm_emit meta $meta

# What a case left behind: netlatd processes, network namespaces, BPF links. Each is removed so
# that the next case starts clean, and named in index.txt so the host reports it.
leftovers() {
  local what="" pids ns
  pids=$(pidof netlatd)
  if [ -n "$pids" ]; then
    what="${what}netlatd,"
    kill -KILL $pids 2>/dev/null
    sleep 1
  fi
  ns=$(ip netns list 2>/dev/null | cut -d' ' -f1)
  if [ -n "$ns" ]; then
    what="${what}netns,"
    for n in $ns; do ip netns del "$n"; done
  fi
  if [ -x /bin/bpftool ] && [ -n "$(bpftool link show 2>/dev/null)" ]; then
    what="${what}bpf-links,"
  fi
  echo "${what:-none}"
}

for mode in $MODES; do
  d=/results/paths-$mode
  mkdir -p $d
  t_mode=$(now)
  n=0
  while read -r bin filter; do
    [ -n "$bin" ] || continue
    n=$((n + 1))
    c=$d/$n
    mkdir -p $c
    log "$mode $n $filter: start"
    t0=$(now)
    NETLAT_TEST_PROBE_MODE=$mode NETLAT_TEST_TIME_SCALE=$TIME_SCALE NETLAT_TEST_NIC_PAIR=$NIC_PAIR \
      timeout $CASE_TIMEOUT \
      "/bin/$bin" --gtest_filter="$filter" --gtest_output="json:$c/$n.json" >$c/$n.log 2>&1 </dev/null
    rc=$?
    secs=$(elapsed $t0)
    left=$(leftovers)
    echo "$n rc=$rc seconds=$secs leftovers=$left $bin $filter" >$c/$n.index
    log "$mode $n $filter: rc=$rc ${secs}s leftovers=$left"
    vm_emit paths-$mode $c
  done <$CASES
  mkdir -p $d/end
  echo "mode_seconds=$(elapsed $t_mode)" >$d/end/timing.txt
  dmesg >$d/end/dmesg.txt 2>&1
  vm_emit paths-$mode $d/end
done
exit 0
