#!/usr/bin/env bash
# `cmake --install` into a DESTDIR, check the installed tree, and run `systemd-analyze verify` on the
# installed unit with --root (so ExecStart resolves to the installed binary). Must print nothing.
# Usage: test_systemd_unit.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: test_systemd_unit.sh BUILD_DIR}
command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze not found (apt-get install systemd)"; exit 1; }
command -v cmake >/dev/null || { echo "FAIL: cmake not found"; exit 1; }

root=$(mktemp -d /tmp/netlatd-install.XXXXXX)
trap 'rm -rf "$root"' EXIT

DESTDIR="$root" cmake --install "$build" --prefix /usr > "$root.log" 2>&1 || { cat "$root.log"; echo "FAIL: cmake --install"; exit 1; }
rm -f "$root.log"

for f in usr/sbin/netlatd usr/bin/netlat-load etc/netlatd/netlatd.yaml \
         usr/lib/systemd/system/netlatd.service usr/share/doc/netlatd/OPERATIONS.md; do
  [[ -e $root/$f ]] || { echo "FAIL: /$f not installed"; find "$root" -type f; exit 1; }
done
[[ -x $root/usr/sbin/netlatd ]] || { echo "FAIL: /usr/sbin/netlatd not executable"; exit 1; }
unit=$root/usr/lib/systemd/system/netlatd.service
grep -qx 'ExecStart=/usr/sbin/netlatd --config /etc/netlatd/netlatd.yaml $NETLATD_WEB_ARGS' "$unit" \
  || { echo "FAIL: ExecStart does not name the installed binary and config"; grep Exec "$unit"; exit 1; }
caps=$(cat "$(dirname "$0")/../../packaging/capabilities.txt")
grep -qx "CapabilityBoundingSet=$caps" "$unit" || { echo "FAIL: unit bounding set != packaging/capabilities.txt"; exit 1; }

# The installed config must pass the daemon's own validation.
"$root/usr/sbin/netlatd" --config "$root/etc/netlatd/netlatd.yaml" --check-config >/dev/null \
  || { echo "FAIL: netlatd --check-config rejects the installed config"; exit 1; }

# verify --root resolves unit dependencies inside the root: give it the standard targets.
cp -n /lib/systemd/system/*.target "$root/usr/lib/systemd/system/"
out=$(systemd-analyze verify --root="$root" netlatd.service 2>&1) && rc=0 || rc=$?
if [[ $rc -ne 0 || -n $out ]]; then
  echo "$out"
  echo "FAIL: systemd-analyze verify exit=$rc (must be 0 with no output)"
  exit 1
fi
echo "systemd-analyze verify: clean"
# The unit's security exposure score, for the record (systemd-analyze security needs a running
# manager for loaded units; --offline reads the file).
systemd-analyze security --offline=yes --root="$root" netlatd.service 2>/dev/null | tail -n 1 || true
echo PASS
