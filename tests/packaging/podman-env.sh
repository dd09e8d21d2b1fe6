# Sourced by the podman tests: points podman at a containers.conf for these hosts, written into
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
