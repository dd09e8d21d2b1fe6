#!/usr/bin/env bash
# Builds netlatd's container image offline, without pulling anything: FROM scratch with the built
# netlatd binary, the shared libraries it links (from the build host, found with ldd), the dynamic
# loader, and the default config. Uses podman (Debian's package; runc as the runtime).
#
# Usage: packaging/container/build-image.sh NETLATD_BINARY [IMAGE] [OUT_DIR]
#   IMAGE    default localhost/netlatd:<netlatd --version>
#   OUT_DIR  if given: writes IMAGE as OUT_DIR/netlatd-image.tar (podman save, docker-archive)
#            and OUT_DIR/netlatd-seccomp.json (seccomp profile for podman, see seccomp.py)
# Prints the image name on the last line of stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
binary=${1:?usage: build-image.sh NETLATD_BINARY [IMAGE] [OUT_DIR]}
image=${2:-}
out_dir=${3:-}

command -v podman >/dev/null || { echo "build-image.sh: podman not found (apt-get install podman runc)" >&2; exit 1; }
[[ -x $binary ]] || { echo "build-image.sh: $binary is not an executable" >&2; exit 1; }
config=$repo/config/netlatd.yaml
[[ -f $config ]] || { echo "build-image.sh: $config missing" >&2; exit 1; }

if [[ -z $image ]]; then
  version=$("$binary" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+[^ ]*' | head -n1 || true)
  image=localhost/netlatd:${version:-latest}
fi

ctx=$(mktemp -d /tmp/netlatd-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
rootfs=$ctx/rootfs
mkdir -p "$rootfs"/{usr/sbin,etc/netlatd,tmp,sys,proc,dev}
install -m 0755 "$binary" "$rootfs/usr/sbin/netlatd"
# OpenSSL 3 for civetweb's TLS, built next to the binary; netlatd looks in ../lib/netlatd.
mkdir -p "$rootfs/usr/lib/netlatd"
for lib in civetweb-libssl.so civetweb-libcrypto.so; do
  [[ -f $(dirname "$binary")/$lib ]] || { echo "build-image.sh: $(dirname "$binary")/$lib missing" >&2; exit 1; }
  install -m 0644 "$(dirname "$binary")/$lib" "$rootfs/usr/lib/netlatd/$lib"
done
install -m 0644 "$config" "$rootfs/etc/netlatd/netlatd.yaml"
# Shared libraries and the loader, at the paths the binary asks for.
while read -r lib; do
  [[ -n $lib ]] || continue
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done < <(ldd "$binary" | grep -oE '(/[^ ]+)' | sort -u)
# A minimal identity for tools that look up uid 0.
printf 'root:x:0:0:root:/:/usr/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\n' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"

cat > "$ctx/Containerfile" <<CONTAINERFILE
FROM scratch
COPY rootfs/ /
LABEL org.opencontainers.image.title="netlatd" \\
      org.opencontainers.image.description="Per-layer Linux network stack latency exporter (eBPF, Prometheus)"
EXPOSE 9810
ENTRYPOINT ["/usr/sbin/netlatd"]
CMD ["--config", "/etc/netlatd/netlatd.yaml"]
CONTAINERFILE

podman build --pull=never --network=none -q -t "$image" -f "$ctx/Containerfile" "$ctx" >&2
if [[ -n $out_dir ]]; then
  mkdir -p "$out_dir"
  rm -f "$out_dir/netlatd-image.tar"
  podman save -q --format docker-archive -o "$out_dir/netlatd-image.tar" "$image" >&2
  /usr/bin/python3 "$here/seccomp.py" > "$out_dir/netlatd-seccomp.json"
fi
echo "$image"
