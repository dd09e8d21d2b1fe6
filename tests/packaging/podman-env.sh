# Sourced by the podman tests. podman_env points podman at a containers.conf for these hosts, written into
# the test's work dir (argument). runc, because crun refuses the hybrid cgroup layout; no default
# ulimits, because raising rlimits is not permitted here.
podman_env() {
  cat > "$1/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  export CONTAINERS_CONF=$1/containers.conf
}

# The reference the container runs are compared with: netlatd as full root on the host, its
# summary in $work/host.json. Uses the callers' $netlatd, $probe, $work, fail and host_pid (which
# their cleanup kills if set).
host_reference() {
  local host_port
  host_port=$("$probe" free-port)
  "$netlatd" --listen "127.0.0.1:$host_port" > "$work/host.log" 2>&1 &
  host_pid=$!
  "$probe" wait "http://127.0.0.1:$host_port/metrics" 30 || { cat "$work/host.log"; fail "host netlatd"; }
  "$probe" summary "http://127.0.0.1:$host_port/metrics" 10 > "$work/host.json"
  kill "$host_pid"; wait "$host_pid" || true; host_pid=
}
