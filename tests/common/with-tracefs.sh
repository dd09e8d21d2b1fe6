#!/usr/bin/env bash
# Runs a command in a private mount namespace with tracefs mounted at /sys/kernel/tracing, so that
# a test that reads tracefs needs no mount made on the host (a fresh machine has none) and leaves
# none behind. Usage: with-tracefs.sh COMMAND [ARGS...]
set -euo pipefail
if [[ $# -eq 0 ]]; then
    echo "usage: with-tracefs.sh COMMAND [ARGS...]" >&2
    exit 2
fi
exec unshare --mount --propagation private -- /bin/sh -c '
    if ! mountpoint -q /sys/kernel/tracing; then
        mount -t tracefs tracefs /sys/kernel/tracing || { echo "with-tracefs.sh: cannot mount tracefs" >&2; exit 1; }
    fi
    exec "$@"' with-tracefs "$@"
