#!/usr/bin/env bash
# Builds the container image offline (packaging/container/build-image.sh), runs it with podman the
# way the Helm chart's DaemonSet runs it -- host network, only the capabilities of
# packaging/capabilities.txt, no-new-privileges, read-only root, read-only host mounts of BTF and
# cgroup (no tracefs), the default seccomp profile extended for CAP_BPF/CAP_PERFMON -- but as uid
# 65534 (podman grants the capabilities as ambient ones; Kubernetes does not) -- and checks
# that /metrics shows the same hooks as netlatd run directly on the host, and latency samples
# under loopback traffic.
# Usage: test_container.sh NETLATD_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
netlatd=${1:?usage: test_container.sh NETLATD_BINARY}
probe=$here/netlat_probe.py
fail() { echo "FAIL: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || fail "must run as root (BPF, podman)"
for tool in podman runc; do
  command -v $tool >/dev/null || fail "$tool not found (apt-get install podman runc)"
done
[[ -x $netlatd ]] || fail "netlatd binary $netlatd missing"

work=$(mktemp -d /tmp/netlatd-ctest.XXXXXX)
image=localhost/netlatd:ctest-$$
name=netlatd-ctest-$$
host_pid=
cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  podman rmi -f "$image" >/dev/null 2>&1 || true
  [[ -n $host_pid ]] && kill "$host_pid" 2>/dev/null && wait "$host_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

. "$(dirname "$0")/podman-env.sh"
podman_env "$work"

"$repo/packaging/container/build-image.sh" "$netlatd" "$image" "$work/out" > "$work/image-name" \
  || fail "image build"
echo "built $(cat "$work/image-name"): $(podman image inspect --format '{{.Size}}' "$image") bytes"
# Nothing but our files: no distro, no shell.
podman create --name "$name-files" "$image" >/dev/null
podman export "$name-files" | tar -t > "$work/files"
podman rm "$name-files" >/dev/null
grep -qx 'usr/sbin/netlatd' "$work/files" || fail "image lacks /usr/sbin/netlatd"
grep -qE '(^|/)bin/sh$' "$work/files" && fail "image carries a shell"
echo "image files: $(grep -vc '/$' "$work/files")"

# Reference: netlatd directly on the host, full privileges.
host_reference

caps=$(sed 's/CAP_//g; s/ /,/g' "$repo/packaging/capabilities.txt")
port=$("$probe" free-port)
mounts=()
for p in /sys/kernel/btf /sys/fs/cgroup; do
  [[ -d $p ]] || fail "host path $p missing"
  mounts+=(-v "$p:$p:ro")
done
# Same flags as deploy/helm/netlatd's DaemonSet (hostNetwork, capabilities, read-only mounts).
podman run -d --name "$name" --network host --user 65534:65534 \
  --cap-drop ALL --cap-add "$caps" \
  --security-opt no-new-privileges \
  --security-opt seccomp="$work/out/netlatd-seccomp.json" \
  --read-only "${mounts[@]}" \
  "$image" --config /etc/netlatd/netlatd.yaml --listen "127.0.0.1:$port" >/dev/null \
  || fail "podman run"
if ! "$probe" wait "http://127.0.0.1:$port/metrics" 30; then
  podman logs "$name"; fail "containerized netlatd did not serve /metrics"
fi
echo "container effective caps: $(podman inspect --format '{{.EffectiveCaps}}' "$name")"
"$probe" traffic 5
sleep 3
"$probe" summary "http://127.0.0.1:$port/metrics" > "$work/container.json"
podman logs "$name" > "$work/container.log" 2>&1
podman stop -t 5 "$name" >/dev/null
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$name")

/usr/bin/python3 - "$work/host.json" "$work/container.json" "$exit_code" <<'PY' || { cat "$work/container.log"; fail "container run"; }
import json, sys
host, cont = (json.load(open(p)) for p in sys.argv[1:3])
exit_code = int(sys.argv[3])
problems = []
if cont['stages'] != host['stages']:
    problems.append(f'hooks differ from a host run:\n  host:      {host["stages"]}\n  container: {cont["stages"]}')
if not cont['stages_active']:
    problems.append('no stage attached')
for key in ('tx/total/tcp', 'rx/total/tcp'):
    if cont['latency_counts'].get(key, 0) <= 0:
        problems.append(f'no latency samples for {key}: {cont["latency_counts"]}')
if exit_code != 0:
    problems.append(f'netlatd exited {exit_code} on SIGTERM (want 0)')
print(f'container: {len(cont["stages_active"])} stages attached, '
      f'tx total tcp samples {cont["latency_counts"].get("tx/total/tcp", 0):.0f}, '
      f'rx total tcp samples {cont["latency_counts"].get("rx/total/tcp", 0):.0f}')
for p in problems:
    print('PROBLEM', p)
sys.exit(1 if problems else 0)
PY
echo PASS
