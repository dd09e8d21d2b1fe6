#!/usr/bin/env bash
# Runs the installed, hardened netlatd.service under a real systemd: the host has no systemd as
# PID 1, so systemd boots as PID 1 of a podman container (the host's /usr read-only, a copy of
# /etc without enabled services, host network so netlatd sees the host's traffic). The unit's
# sandbox (capability bounding set, ProtectSystem=strict, SystemCallFilter, ...) is then applied
# by systemd for real. Checks: the service becomes active, /metrics has the same hooks as netlatd
# run directly as root, latency samples under traffic, the process holds exactly the capabilities
# of packaging/capabilities.txt, and `systemctl stop` ends it cleanly (exit 0). Then the optional
# drop-in all-network-namespaces.conf: with it netlatd also hooks a network namespace the test
# created and exports kernel BPF run statistics. Last the drop-in web-config.conf: TLS and basic
# auth from files only root and the group netlatd-web (which the drop-in gives netlatd) may read.
# Usage: test_systemd_service.sh BUILD_DIR NETLATD_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${1:?usage: test_systemd_service.sh BUILD_DIR NETLATD_BINARY}
netlatd=${2:?usage: test_systemd_service.sh BUILD_DIR NETLATD_BINARY}
probe=$here/netlat_probe.py
fail() { echo "FAIL: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || fail "must run as root"
for tool in podman runc cmake ip; do
  command -v $tool >/dev/null || fail "$tool not found (apt-get install podman runc)"
done
[[ -x /lib/systemd/systemd ]] || fail "/lib/systemd/systemd missing (apt-get install systemd)"

work=$(mktemp -d /tmp/netlatd-sd.XXXXXX)
name=netlatd-systemd-$$
netns=netlatd-sd-$$
host_pid=
cleanup() {
  podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
  ip netns delete "$netns" 2>/dev/null || true
  [[ -n $host_pid ]] && kill "$host_pid" 2>/dev/null && wait "$host_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
. "$(dirname "$0")/podman-env.sh"
podman_env "$work"

# Reference: netlatd as full root on the host.
host_reference

# The machine's root: host /usr (read-only, bound at run), merged-/usr symlinks, a copy of /etc
# with no enabled units, and netlatd installed under /opt/netlatd (the install rules, prefix
# /opt/netlatd: /usr is read-only) with its config in /etc/netlatd.
root=$work/root
mkdir -p "$root"/{proc,sys,dev,run,tmp,var/tmp,var/log,var/lib,root,opt,etc}
for l in bin lib lib64 sbin; do ln -s "usr/$l" "$root/$l"; done
cp -a /etc/. "$root/etc/"
find "$root/etc/systemd/system" -mindepth 1 -name '*.wants' -prune -exec rm -rf {} +
: > "$root/etc/machine-id"
DESTDIR=$root cmake --install "$build" --prefix /opt/netlatd > "$work/install.log" 2>&1 \
  || { cat "$work/install.log"; fail "cmake --install"; }
cp "$root/opt/netlatd/lib/systemd/system/netlatd.service" "$root/etc/systemd/system/"
port=$("$probe" free-port)
# Only the listen address differs from the installed unit (a free loopback port for the test).
mkdir -p "$root/etc/systemd/system/netlatd.service.d"
printf '[Service]\nExecStart=\nExecStart=/opt/netlatd/sbin/netlatd --config /etc/netlatd/netlatd.yaml --listen 127.0.0.1:%s $NETLATD_WEB_ARGS\n' \
  "$port" > "$root/etc/systemd/system/netlatd.service.d/test-listen.conf"

# A network namespace of the host's, visible to the machine through /run/netns.
ip netns add "$netns"
netns_id=$(stat -L -c %i "/run/netns/$netns")
podman run -d --name "$name" --privileged --network host --systemd=always \
  -v /usr:/usr:ro -v /run/netns:/run/netns:ro,rslave \
  --rootfs "$root" /lib/systemd/systemd --unit=basic.target > /dev/null \
  || fail "could not boot systemd in a container"
for _ in $(seq 1 60); do
  state=$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)
  [[ $state == running || $state == degraded ]] && break
  sleep 0.5
done
echo "systemd in container: ${state:-unknown}"
podman exec "$name" systemctl start netlatd.service || {
  podman exec "$name" journalctl -u netlatd --no-pager | tail -30; fail "systemctl start netlatd"; }
# Type=notify: `systemctl start` returns once netlatd said READY=1, i.e. /healthz answers 200 now.
health=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)
[[ $health == 200 ]] || fail "/healthz answered '$health' right after systemctl start (want 200)"
if ! "$probe" wait "http://127.0.0.1:$port/metrics" 30; then
  podman exec "$name" journalctl -u netlatd --no-pager | tail -30
  fail "netlatd.service did not serve /metrics"
fi
"$probe" traffic 4
sleep 2
"$probe" summary "http://127.0.0.1:$port/metrics" > "$work/service.json"
pid=$(podman exec "$name" systemctl show -P MainPID netlatd.service)
podman exec "$name" grep -E '^(Uid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' "/proc/$pid/status" > "$work/status"
cat "$work/status"
podman exec "$name" systemctl stop netlatd.service
result=$(podman exec "$name" systemctl show -P Result netlatd.service)
status=$(podman exec "$name" systemctl show -P ExecMainStatus netlatd.service)
podman exec "$name" journalctl -u netlatd --no-pager -o cat > "$work/journal" 2>&1 || true

/usr/bin/python3 - "$work/host.json" "$work/service.json" "$work/status" "$repo/packaging/capabilities.txt" "$result" "$status" <<'PY' || { tail -30 "$work/journal"; fail "netlatd.service"; }
import json, sys
host, svc = (json.load(open(p)) for p in sys.argv[1:3])
status = dict(l.split(':', 1) for l in open(sys.argv[3]).read().splitlines())
status = {k: v.strip() for k, v in status.items()}
caps = open(sys.argv[4]).read().split()
result, exit_status = sys.argv[5], sys.argv[6]
CAP_NUM = {'CAP_NET_ADMIN': 12, 'CAP_SYS_ADMIN': 21, 'CAP_SYS_RESOURCE': 24, 'CAP_PERFMON': 38,
           'CAP_BPF': 39, 'CAP_SYS_PTRACE': 19, 'CAP_DAC_READ_SEARCH': 2, 'CAP_IPC_LOCK': 14}
want = sum(1 << CAP_NUM[c] for c in caps)
problems = []
for field in ('CapEff', 'CapPrm', 'CapBnd'):
    if int(status[field], 16) != want:
        problems.append(f'{field} {status[field]} != {want:016x} ({" ".join(caps)})')
if int(status['Uid'].split()[0]) == 0:
    problems.append('runs as uid 0: the unit should run as a dynamic non-root user')
if status.get('NoNewPrivs') != '1':
    problems.append('NoNewPrivs is not set')
if status.get('Seccomp') != '2':
    problems.append('no seccomp filter (SystemCallFilter) on the process')
if svc['stages'] != host['stages']:
    problems.append(f'hooks differ from a root run:\n  root:    {host["stages"]}\n  service: {svc["stages"]}')
for k in ('tx/total/tcp', 'rx/total/tcp'):
    if svc['latency_counts'].get(k, 0) <= 0:
        problems.append(f'no {k} samples')
if result != 'success' or exit_status != '0':
    problems.append(f'stop: Result={result} ExecMainStatus={exit_status}')
print(f'netlatd.service: {len(svc["stages_active"])} stages attached '
      f'(root run: {len(host["stages_active"])}), tx total tcp samples '
      f'{svc["latency_counts"].get("tx/total/tcp", 0):.0f}, stop Result={result} status={exit_status}')
for p in problems:
    print('PROBLEM', p)
sys.exit(1 if problems else 0)
PY

# Phase 2: the optional drop-in (CAP_SYS_ADMIN), with bpf_stats: true in the config.
podman exec "$name" sh -c "cp /opt/netlatd/share/doc/netlatd/examples/all-network-namespaces.conf \
  /etc/systemd/system/netlatd.service.d/ && sed -i 's/^bpf_stats: false/bpf_stats: true/' \
  /etc/netlatd/netlatd.yaml && systemctl daemon-reload && systemctl start netlatd.service"
"$probe" wait "http://127.0.0.1:$port/metrics" 30 || fail "netlatd.service with the drop-in did not start"
"$probe" traffic 2
sleep 2
"$probe" summary "http://127.0.0.1:$port/metrics" > "$work/service2.json"
pid=$(podman exec "$name" systemctl show -P MainPID netlatd.service)
cap_eff=$(podman exec "$name" grep '^CapEff:' "/proc/$pid/status" | awk '{print $2}')
podman exec "$name" systemctl stop netlatd.service
podman exec "$name" journalctl -u netlatd --no-pager -o cat > "$work/journal2" 2>&1 || true
grep -q "network namespace $netns_id: netfilter stages hooked" "$work/journal2" \
  || { grep -i namespace "$work/journal2" | tail -5; fail "with the drop-in, namespace $netns ($netns_id) was not hooked"; }
runs=$(/usr/bin/python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["bpf_program_runs"]))' "$work/service2.json")
[[ $runs -gt 0 ]] || fail "with the drop-in, no BPF run statistics"
[[ $(( 0x$cap_eff & (1 << 21) )) -ne 0 ]] || fail "with the drop-in, CapEff $cap_eff lacks CAP_SYS_ADMIN"
echo "with all-network-namespaces.conf: CapEff $cap_eff, namespace $netns hooked, BPF program runs $runs"

# Phase 3: the web-config.conf drop-in, back on the dynamic user: the web config, certificate and
# key are readable by root and the group netlatd-web only, which the drop-in gives netlatd.
web=$root/etc/netlatd/web
mkdir -p "$web"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$web/server.key" -out "$web/server.crt" 2>/dev/null \
  || fail "openssl could not make a certificate"
printf 'tls_server_config: {cert_file: server.crt, key_file: server.key}\nbasic_auth_users:\n  prometheus: %s\n' \
  "$(htpasswd -nbB prometheus scrape-secret | cut -d: -f2)" > "$web/web-config.yml"
podman exec "$name" sh -c "groupadd --system netlatd-web && chgrp -R netlatd-web /etc/netlatd/web && \
  chmod 0750 /etc/netlatd/web && chmod 0640 /etc/netlatd/web/* && \
  rm /etc/systemd/system/netlatd.service.d/all-network-namespaces.conf && \
  cp /opt/netlatd/share/doc/netlatd/examples/web-config.conf /etc/systemd/system/netlatd.service.d/ && \
  systemctl daemon-reload && systemctl start netlatd.service" || {
  podman exec "$name" journalctl -u netlatd --no-pager | tail -20; fail "netlatd.service with web-config.conf did not start"; }
https=https://127.0.0.1:$port
code() { curl -s -o /dev/null -w '%{http_code}' --cacert "$web/server.crt" "$@" || true; }
right=$(code -u prometheus:scrape-secret "$https/metrics")
none=$(code "$https/metrics")
wrong=$(code -u prometheus:guess "$https/metrics")
health=$(code "$https/healthz")
plain=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics" || true)
pid=$(podman exec "$name" systemctl show -P MainPID netlatd.service)
uid=$(podman exec "$name" awk '/^Uid:/ {print $2}' "/proc/$pid/status")
podman exec "$name" systemctl stop netlatd.service
echo "with web-config.conf: right credentials $right, none $none, wrong $wrong, /healthz $health, plain HTTP '$plain', uid $uid"
[[ $right == 200 && $none == 401 && $wrong == 401 && $health == 200 && $plain == 000 ]] \
  || fail "with web-config.conf: want 200/401/401/200 and no plain HTTP answer"
[[ $uid != 0 ]] || fail "with web-config.conf netlatd runs as uid 0 (want the dynamic user)"
echo PASS
