#!/usr/bin/python3
"""End-to-end: netlatd under loopback traffic, scraped every second by a real Prometheus server
(Debian's `prometheus`), and every query of every shipped Grafana dashboard evaluated through the
Prometheus HTTP API with the dashboard variables filled in. Each query must return data, and not
only NaN (a quantile of a segment without samples). The shipped recording rules
(deploy/prometheus/netlatd-rules.yml) are loaded too, and each must produce data.

Usage: test_prometheus_dashboards.py NETLATD [--netlat-load PATH] [--keep]
Exit 0 when every query returned data; 1 otherwise (with the failing queries printed).
"""
import argparse
import json
import re
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(REPO / 'tests' / 'packaging'))
import netlat_probe  # noqa: E402  (its import keeps loopback scrapes away from any http_proxy)

RATE_INTERVAL = '15s'
TRAFFIC_SECONDS = int(os.environ.get("NETLATD_E2E_TRAFFIC_SECONDS", "25"))


def fail(msg):
    print(f'FAIL: {msg}', flush=True)
    sys.exit(1)


def api(base, path, **params):
    url = f'{base}{path}?{urllib.parse.urlencode(params, doseq=True)}'
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    if body.get('status') != 'success':
        raise RuntimeError(f'{path} {params}: {body}')
    return body['data']


def substitute(expr, instance):
    """Fill Grafana's variables the way Grafana would for one selected instance."""
    return (expr.replace('$__rate_interval', RATE_INTERVAL)
                .replace('$__interval', '1s')
                .replace('$instance', instance.replace('.', '\\\\.'))
                .replace('$protocol', 'tcp|udp'))


def dashboard_queries():
    for path in sorted((REPO / 'dashboards').glob('*.json')):
        dash = json.loads(path.read_text())
        for var in dash['templating']['list']:
            if var['type'] == 'query':
                yield path.name, f'variable ${var["name"]}', var['query']['query'], 'label_values'
        for panel in dash['panels']:
            for t in panel.get('targets', []):
                yield path.name, f'{panel["title"]} [{t["refId"]}]', t['expr'], 'query'


def recording_rules():

    text = (REPO / 'deploy' / 'prometheus' / 'netlatd-rules.yml').read_text()
    return re.findall(r'^\s*- record: (\S+)$', text, re.M)


def has_number(result):
    for series in result:
        value = series.get('value', [None, 'NaN'])[1]
        if value not in ('NaN', '+Inf', '-Inf'):
            return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('netlatd')
    ap.add_argument('--netlat-load', help='use this load generator instead of built-in traffic')
    ap.add_argument('--keep', action='store_true', help='keep the temp dir')
    args = ap.parse_args()

    prometheus = shutil.which('prometheus')
    if not prometheus:
        fail('prometheus not found (apt-get install prometheus)')
    if not os.access(args.netlatd, os.X_OK):
        fail(f'netlatd binary {args.netlatd} not found or not executable')
    if os.geteuid() != 0:
        fail('must run as root (netlatd loads BPF programs)')

    tmp = pathlib.Path(tempfile.mkdtemp(prefix='netlatd-e2e.'))
    procs = []

    def cleanup():
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    try:
        nl_port = netlat_probe.free_port()
        instance = f'127.0.0.1:{nl_port}'
        nl_log = open(tmp / 'netlatd.log', 'w')
        # bpf_stats: the dashboards' BPF cost panels and their recording rule need the kernel's
        # run statistics, which are off by default.
        (tmp / 'netlatd.yaml').write_text('bpf_stats: true\n')
        procs.append(subprocess.Popen([args.netlatd, '--listen', instance,
                                       '--config', str(tmp / 'netlatd.yaml')], stdout=nl_log,
                                      stderr=subprocess.STDOUT))
        if not netlat_probe.wait(f'http://{instance}/metrics', 30):
            fail(f'netlatd did not serve /metrics:\n{(tmp / "netlatd.log").read_text()}')

        prom_port = netlat_probe.free_port()
        # The shipped recording rules too, evaluated every second instead of every 30 s.
        rules = (REPO / 'deploy' / 'prometheus' / 'netlatd-rules.yml').read_text()
        (tmp / 'netlatd-rules.yml').write_text(rules.replace('interval: 30s', 'interval: 1s'))
        (tmp / 'prometheus.yml').write_text(
            'global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n'
            f'rule_files:\n  - {tmp / "netlatd-rules.yml"}\n'
            'scrape_configs:\n  - job_name: netlatd\n    static_configs:\n'
            f'      - targets: ["{instance}"]\n')
        prom_log = open(tmp / 'prometheus.log', 'w')
        procs.append(subprocess.Popen(
            [prometheus, f'--config.file={tmp / "prometheus.yml"}',
             f'--storage.tsdb.path={tmp / "data"}',
             f'--web.listen-address=127.0.0.1:{prom_port}'],
            stdout=prom_log, stderr=subprocess.STDOUT))
        base = f'http://127.0.0.1:{prom_port}'
        if not netlat_probe.wait(f'{base}/-/ready', 60):
            fail(f'prometheus not ready:\n{(tmp / "prometheus.log").read_text()[-3000:]}')

        print(f'netlatd at {instance}, prometheus at {base}; traffic for {TRAFFIC_SECONDS}s',
              flush=True)
        # Plain TCP and UDP request/response sockets, plus (when given) netlat-load's TCP and
        # UDP on loopback at the same time; all bounded in time.
        loads = []
        if args.netlat_load:
            loads = [(proto, subprocess.Popen(
                [args.netlat_load, '--proto', proto, '--topology', 'loopback',
                 '--duration', str(TRAFFIC_SECONDS), '--rate', '2000'],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
                for proto in ('tcp', 'udp')]
        netlat_probe.traffic(TRAFFIC_SECONDS)
        for proto, load in loads:
            _, err = load.communicate(timeout=60)
            if load.returncode != 0:
                fail(f'netlat-load --proto {proto} failed ({load.returncode}): {err[-2000:]}')

        up = api(base, '/api/v1/query', query=f'up{{instance="{instance}"}}')['result']
        if not up or up[0]['value'][1] != '1':
            fail(f'Prometheus does not see netlatd up: {up}')

        failures = []
        nan_only = []
        total = 0
        for dash, where, expr, kind in dashboard_queries():
            total += 1
            q = substitute(expr, instance)
            if kind == 'label_values':
                metric = q[q.index('(') + 1:q.index(',')].strip()
                label = q[q.index(',') + 1:q.rindex(')')].strip()
                values = api(base, f'/api/v1/label/{label}/values', **{'match[]': metric})
                ok = instance in values
                print(f'{"ok " if ok else "BAD"} {dash}: {where}: {values}')
                if not ok:
                    failures.append(f'{dash}: {where}: {q} -> {values}')
                continue
            try:
                result = api(base, '/api/v1/query', query=q)['result']
            except Exception as e:  # noqa: BLE001 - report every failing query, then fail
                detail = e.read().decode() if hasattr(e, 'read') else ''
                failures.append(f'{dash}: {where}: {q} -> error {e} {detail}')
                continue
            status = 'ok ' if result else 'BAD'
            if result and not has_number(result):
                nan_only.append(f'{dash}: {where}')
            print(f'{status} {dash}: {where}: {len(result)} series', flush=True)
            if not result:
                failures.append(f'{dash}: {where}: {q} -> empty result')

        # A query whose every value is NaN draws nothing: for a latency quantile it means the
        # segment had no samples under traffic.
        failures += [f'{n}: only NaN values (no samples in the last {RATE_INTERVAL})'
                     for n in nan_only]
        for record in recording_rules():
            total += 1
            # Rules aggregated per instance are checked for this one; fleet-wide rules as they are.
            selector = f'{{instance="{instance}"}}' if record.startswith('instance') else ''
            result = api(base, '/api/v1/query', query=f'{record}{selector}')['result']
            ok = bool(result) and has_number(result)
            print(f'{"ok " if ok else "BAD"} recording rule {record}: {len(result)} series')
            if not ok:
                failures.append(f'recording rule {record}: no data or only NaN')
        print(f'\n{total} queries, {len(failures) - len(nan_only)} without data, '
              f'{len(nan_only)} with only NaN values')
        if failures:
            print('\n'.join(failures))
            print((tmp / 'netlatd.log').read_text()[-3000:])
            fail(f'{len(failures)} dashboard queries returned no data or only NaN')
        print(f'{total} passed, 0 failed')
    finally:
        cleanup()


if __name__ == '__main__':
    main()
