#!/bin/bash
# Boot a kernel + initramfs under qemu-system-x86_64 with TCG and collect what the guest sends.
#
# Usage: run-vm.sh -k VMLINUZ -i INITRAMFS -o OUT_DIR [-t TIMEOUT_S] [-a "EXTRA APPEND"]
#                  [-m MEM] [-c CPUS] [-q "EXTRA QEMU ARGUMENTS"]
#
# ttyS0 (console: kernel log, init and guest-script output) -> OUT_DIR/console.log
# ttyS1 (results channel)                                    -> OUT_DIR/serial1.log
# Files the guest sent with vm_emit NAME DIR are unpacked into OUT_DIR/files/NAME/.
# Exit status: the guest script's status if the guest reported one (@@VM-DONE rc=N),
# 124 on timeout, 125 if the VM stopped without reporting.
# Set VM_VERBOSE=1 to follow the console on stderr while the VM runs.
set -euo pipefail

die() { echo "run-vm: error: $*" >&2; exit 2; }

kernel="" initrd="" outdir="" tmo=900 append_extra="" mem=2G cpus=2 qemu_extra=""
while getopts "k:i:o:t:a:m:c:q:" opt; do
  case $opt in
    k) kernel=$OPTARG ;;
    i) initrd=$OPTARG ;;
    o) outdir=$OPTARG ;;
    t) tmo=$OPTARG ;;
    a) append_extra=$OPTARG ;;
    m) mem=$OPTARG ;;
    c) cpus=$OPTARG ;;
    q) qemu_extra=$OPTARG ;;
    *) die "bad option (see header of $0)" ;;
  esac
done
[ -f "$kernel" ] || die "-k VMLINUZ missing or not found: '$kernel'"
[ -f "$initrd" ] || die "-i INITRAMFS missing or not found: '$initrd'"
[ -n "$outdir" ] || die "-o OUT_DIR is required"
QEMU=${QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null || die "$QEMU not found (apt-get install qemu-system-x86)"

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
rm -rf "$outdir/files" "$outdir/console.log" "$outdir/serial1.log"
: >"$outdir/console.log"
: >"$outdir/serial1.log"

# quiet + loglevel keep the console readable; panic=-1 with -no-reboot turns a guest panic
# (e.g. init dying) into a qemu exit instead of a hang.
append="console=ttyS0 panic=-1 quiet loglevel=4 $append_extra"

qemu_pid=""
tail_pid=""
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -TERM "$qemu_pid" 2>/dev/null || true
    sleep 1
    kill -KILL "$qemu_pid" 2>/dev/null || true
  fi
  if [ -n "$tail_pid" ]; then kill "$tail_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'echo "run-vm: interrupted" >&2; exit 130' INT TERM

if [ "${VM_VERBOSE:-0}" = 1 ]; then
  tail -n +1 -f "$outdir/console.log" >&2 &
  tail_pid=$!
fi

start=$(date +%s.%N)
# -accel tcg: /dev/kvm may exist but not run guests on the CI machines, so never use KVM.
# shellcheck disable=SC2086 # -q is a list of arguments (e.g. the paths guest's NICs)
"$QEMU" -accel tcg,thread=multi -cpu max -m "$mem" -smp "$cpus" \
  -display none -monitor none -no-reboot $qemu_extra \
  -serial "file:$outdir/console.log" -serial "file:$outdir/serial1.log" \
  -kernel "$kernel" -initrd "$initrd" -append "$append" </dev/null &
qemu_pid=$!

status=""
deadline=$(($(date +%s) + tmo))
while kill -0 "$qemu_pid" 2>/dev/null; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "run-vm: timeout after ${tmo}s, killing qemu" >&2
    status=124
    break
  fi
  sleep 1
done
cleanup
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=""
end=$(date +%s.%N)
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')

# Unpack vm_emit blocks.
python3 - "$outdir" <<'PY'
import base64, io, os, sys, tarfile
out = sys.argv[1]
name, buf = None, []
with open(os.path.join(out, "serial1.log"), "rb") as f:
    for raw in f:
        line = raw.decode("utf-8", "replace").strip("\r\n")
        if line.startswith("@@VM-FILE-BEGIN "):
            name, buf = line.split(" ", 1)[1].strip(), []
        elif line.startswith("@@VM-FILE-END ") and name is not None:
            dest = os.path.join(out, "files", name)
            os.makedirs(dest, exist_ok=True)
            try:
                data = base64.b64decode("".join(buf))
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
                    t.extractall(dest)
            except Exception as e:  # a truncated block (VM killed mid-send) is reported, not fatal
                print(f"run-vm: cannot unpack block {name}: {e}", file=sys.stderr)
            name = None
        elif name is not None:
            buf.append(line.strip())
PY

booted=$(grep -a -m1 '^@@VM-BOOTED' "$outdir/serial1.log" | tr -d '\r' || true)
done_line=$(grep -a -m1 '^@@VM-DONE' "$outdir/serial1.log" | tr -d '\r' || true)
echo "run-vm: wall ${elapsed}s; ${booted:-@@VM-BOOTED missing}; ${done_line:-@@VM-DONE missing}" >&2
{
  echo "wall_seconds=$elapsed"
  echo "booted=${booted}"
  echo "done=${done_line}"
} >"$outdir/run-vm.txt"

if [ -z "$status" ]; then
  if [[ $done_line =~ rc=([0-9]+) ]]; then
    status=${BASH_REMATCH[1]}
  else
    echo "run-vm: the VM stopped without reporting; last console lines:" >&2
    tail -n 30 "$outdir/console.log" | tr -d '\r' >&2
    status=125
  fi
fi
exit "$status"
