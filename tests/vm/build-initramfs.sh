#!/bin/bash
# Build a busybox initramfs for the VM test.
#
# Usage: build-initramfs.sh -o OUT.cpio.gz -s GUEST_SCRIPT [-k KERNEL_ROOT] [-m MODULE]...
#                           [-b BINARY]... [-p BINARY]... [-f SRC:DST]...
#   -o  output file (gzip-compressed newc cpio)
#   -s  script run by /init inside the guest as `sh /guest/run.sh` (its output goes to the console)
#   -k  unpacked kernel package root (from fetch-kernel.sh: KDIR); needed for -m
#   -m  kernel module to load at boot (name, e.g. veth); dependencies are resolved with modinfo
#   -b  binary to install as /bin/NAME, with its shared libraries (ldd) and the dynamic loader
#   -p  the same, installed at its own absolute path (for a path compiled into another binary)
#   -f  extra file copied to DST inside the guest (e.g. a config file)
#
# Guest layout and contract (see init below):
#   - proc, sysfs, devtmpfs, tracefs (/sys/kernel/tracing), debugfs (/sys/kernel/debug),
#     bpffs (/sys/fs/bpf), cgroup2 at /sys/fs/cgroup/unified (tmpfs at /sys/fs/cgroup, the hybrid
#     layout of the development machines), lo up, hostname netlat-vm, RLIMIT_MEMLOCK unlimited.
#   - /guest/lib.sh is sourced before the script (both in one child shell): vm_emit NAME DIR sends DIR as a base64 tar.gz
#     to the host on the second serial port (/dev/ttyS1) between marker lines.
#   - after the script, init emits its exit status and powers the VM off.
set -euo pipefail

die() { echo "build-initramfs: error: $*" >&2; exit 1; }

out="" script="" kroot=""
mods=() bins=() files=()
while getopts "o:s:k:m:b:p:f:" opt; do
  case $opt in
    o) out=$OPTARG ;;
    s) script=$OPTARG ;;
    k) kroot=$OPTARG ;;
    m) mods+=("$OPTARG") ;;
    b) bins+=("$OPTARG:/bin/$(basename "$OPTARG")") ;;
    p) bins+=("$OPTARG:$OPTARG") ;;
    f) files+=("$OPTARG") ;;
    *) die "bad option (see header of $0)" ;;
  esac
done
[ -n "$out" ] || die "-o OUT is required"
[ -n "$script" ] && [ -f "$script" ] || die "-s GUEST_SCRIPT is required and must exist"

BUSYBOX=${BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found (apt-get install busybox-static)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  die "$BUSYBOX is dynamically linked; install busybox-static"
fi
command -v cpio >/dev/null || die "cpio not found (apt-get install cpio)"

root=$(mktemp -d "${TMPDIR:-/tmp}/netlat-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,guest,results,lib/modules,usr/bin,usr/sbin}
cp "$BUSYBOX" "$root/bin/busybox"

# copy_file SRC [DST]: copy resolving symlinks, keep the path of SRC inside the guest.
copy_file() {
  local src=$1 dst=${2:-$1}
  mkdir -p "$root$(dirname "$dst")"
  cp -L "$src" "$root$dst"
}

# Binaries and their shared libraries. ldd prints "name => /path (addr)" and, for the loader,
# "/lib64/ld-linux-x86-64.so.2 (addr)". Libraries keep their absolute paths, so the loader's
# default search (and the binary's PT_INTERP) finds them without ld.so.cache.
declare -A seen_libs=()
for spec in "${bins[@]}"; do
  b=${spec%%:*}
  [ -x "$b" ] || die "binary $b not found or not executable"
  copy_file "$b" "${spec#*:}"
  if ! ldd_out=$(ldd "$b" 2>&1); then
    case $ldd_out in
      *"not a dynamic executable"*) continue ;;
      *) die "ldd $b failed: $ldd_out" ;;
    esac
  fi
  if grep -q "not found" <<<"$ldd_out"; then
    die "ldd $b: missing libraries: $(grep 'not found' <<<"$ldd_out" | tr -s ' \t' ' ')"
  fi
  while read -r lib; do
    [ -n "$lib" ] || continue
    [ -n "${seen_libs[$lib]:-}" ] && continue
    seen_libs[$lib]=1
    copy_file "$lib"
  done < <(awk '/=>/ { if ($3 ~ /^\//) print $3; next } $1 ~ /^\// { print $1 }' <<<"$ldd_out")
done

# Kernel modules, in dependency order, loaded by init with insmod.
: >"$root/etc/modules.order"
if [ ${#mods[@]} -gt 0 ]; then
  [ -n "$kroot" ] || die "-m needs -k KERNEL_ROOT"
  moddir=$(ls -d "$kroot"/lib/modules/*/ 2>/dev/null | head -n1)
  [ -n "$moddir" ] || die "no lib/modules/* under $kroot"
  declare -A mod_done=()
  add_mod() {
    local name=$1 f dep
    [ -n "${mod_done[$name]:-}" ] && return 0
    # modules.builtin lists built-in modules: nothing to load.
    if grep -qE "/${name//_/[_-]}\.ko$" "$moddir/modules.builtin" 2>/dev/null; then
      mod_done[$name]=builtin
      return 0
    fi
    f=$(find "$moddir/kernel" -name "$name.ko" -o -name "${name//_/-}.ko" | head -n1)
    [ -n "$f" ] || die "module $name not found in $moddir"
    mod_done[$name]=1
    for dep in $(modinfo -F depends "$f" | tr ',' ' '); do add_mod "$dep"; done
    cp "$f" "$root/lib/modules/"
    echo "$(basename "$f")" >>"$root/etc/modules.order"
  }
  command -v modinfo >/dev/null || die "modinfo not found (apt-get install kmod)"
  for m in "${mods[@]}"; do add_mod "$m"; done
fi

for spec in "${files[@]}"; do
  src=${spec%%:*} dst=${spec#*:}
  [ -f "$src" ] || die "file $src not found"
  copy_file "$src" "$dst"
done

cp "$script" "$root/guest/run.sh"

cat >"$root/guest/lib.sh" <<'EOF'
# Helpers for guest scripts (sourced by /init before /guest/run.sh).
# vm_emit NAME DIR: send DIR to the host as base64(tar.gz) on /dev/ttyS1 between markers.
vm_emit() {
  local name=$1 dir=$2
  {
    echo "@@VM-FILE-BEGIN $name"
    tar -C "$dir" -czf - . | base64
    echo "@@VM-FILE-END $name"
  } >/dev/ttyS1
}
# vm_uptime: seconds since boot with centiseconds, for timing inside the guest.
vm_uptime() { cut -d' ' -f1 /proc/uptime; }
EOF

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# The initramfs's own /tmp (already writable) stays when it holds files: binaries kept at their
# host paths (the paths tier's netlatd, in a clone under /tmp) must not be hidden.
[ -n "$(ls -A /tmp)" ] || mount -t tmpfs tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
mkdir -p /sys/fs/cgroup/unified
mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
ulimit -l unlimited
hostname netlat-vm
ip link set lo up
while read -r m; do
  [ -n "$m" ] || continue
  insmod "/lib/modules/$m" || echo "init: insmod $m failed"
done </etc/modules.order
stty -F /dev/ttyS1 raw -echo 115200 2>/dev/null
echo "@@VM-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)" | tee /dev/ttyS1
cd /root
# run the guest script in a child shell with the helpers, so `exit` in it ends only the script
sh -c '. /guest/lib.sh && . /guest/run.sh'
rc=$?
echo "@@VM-DONE rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)" | tee /dev/ttyS1
sync
poweroff -f
EOF
chmod +x "$root/init" "$root/guest/run.sh"

mkdir -p "$(dirname "$out")"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner 0:0 --quiet) |
  gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
echo "build-initramfs: $out ($(du -h "$out" | cut -f1))" >&2
