#!/usr/bin/env bash
# promtool checks of the shipped Prometheus scrape config and recording/alerting rules, plus the
# rules' unit tests (promtool test rules).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prom_dir=$here/../../deploy/prometheus
command -v promtool >/dev/null || { echo "FAIL: promtool not found (apt-get install prometheus)"; exit 1; }
cd "$prom_dir"
promtool check config prometheus.yml
promtool check rules netlatd-rules.yml
promtool test rules netlatd-rules.test.yml
# The same rules are shipped in the Helm chart (PrometheusRule); they must not drift.
chart_rules=$here/../../deploy/helm/netlatd/files/netlatd-rules.yml
cmp netlatd-rules.yml "$chart_rules" || { echo "FAIL: $chart_rules differs from deploy/prometheus/netlatd-rules.yml"; exit 1; }
echo PASS
