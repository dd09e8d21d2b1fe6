#!/usr/bin/python3
"""Generates netlatd's Grafana dashboards (JSON) from one description, so every panel uses the same
selectors and variables.

  generate.py            write dashboards/*.json and the Helm chart's copies
  generate.py --check    fail if the written files differ from what would be generated, or if a
                         panel breaks the conventions (datasource variable, $instance selector)

Metric names are the exporter's contract (see docs/OPERATIONS.md).
"""
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
CHART_DASHBOARDS = HERE.parent / 'deploy' / 'helm' / 'netlatd' / 'dashboards'

DS = {'type': 'prometheus', 'uid': '${datasource}'}
SEL = 'instance=~"$instance"'
RATE = '$__rate_interval'

SEGMENTS = {
    'tx': ['socket_to_transport', 'transport_to_network', 'network_to_device', 'device_to_driver',
           'total'],
    'rx': ['driver_to_device', 'device_to_network', 'network_to_transport', 'transport_to_queued',
           'queued_to_socket', 'stack', 'transport_to_socket', 'total'],
}
DIRECTION_TITLE = {'tx': 'Transmit (tx): socket -> driver', 'rx': 'Receive (rx): driver -> socket'}
# Subtotals that are not a layer of their own.
NOT_A_LAYER = {'total', 'stack', 'transport_to_socket'}
QUANTILES = [('p50', 0.5), ('p90', 0.9), ('p99', 0.99)]


def lat(direction, segment, extra=''):
    return (f'netlatd_stack_latency_seconds_bucket{{{SEL},direction="{direction}",'
            f'segment="{segment}",protocol=~"$protocol"{extra}}}')


def quantile(q, direction, segment, by='le'):
    return f'histogram_quantile({q}, sum by ({by}) (rate({lat(direction, segment)}[{RATE}])))'


def mean_by_segment(direction, segment_re):
    m = 'netlatd_stack_latency_seconds'
    s = (f'{SEL},direction="{direction}",segment=~"{segment_re}",protocol=~"$protocol"')
    return (f'sum by (segment) (rate({m}_sum{{{s}}}[{RATE}])) / '
            f'sum by (segment) (rate({m}_count{{{s}}}[{RATE}]))')


def target(expr, legend='', ref='A', fmt='time_series', instant=False):
    t = {'datasource': DS, 'expr': expr, 'legendFormat': legend, 'refId': ref, 'format': fmt}
    if instant:
        t['instant'] = True
        t['range'] = False
    else:
        t['range'] = True
    return t


def timeseries(title, targets, unit='s', description='', stack=False, w=12, h=8, log=False):
    custom = {'drawStyle': 'line', 'lineWidth': 1, 'fillOpacity': 10 if not stack else 60,
              'showPoints': 'never', 'spanNulls': True,
              'stacking': {'mode': 'normal' if stack else 'none', 'group': 'A'}}
    if log:
        custom['scaleDistribution'] = {'type': 'log', 'log': 2}
    return {'type': 'timeseries', 'title': title, 'description': description, 'datasource': DS,
            'targets': targets, '_w': w, '_h': h,
            'fieldConfig': {'defaults': {'unit': unit, 'custom': custom}, 'overrides': []},
            'options': {'legend': {'displayMode': 'table', 'placement': 'bottom',
                                   'calcs': ['mean', 'max', 'lastNotNull']},
                        'tooltip': {'mode': 'multi', 'sort': 'desc'}}}


def heatmap(title, expr, description=''):
    return {'type': 'heatmap', 'title': title, 'description': description, 'datasource': DS,
            'targets': [target(expr, '{{le}}', fmt='heatmap')], '_w': 12, '_h': 8,
            'options': {'calculate': False, 'yAxis': {'unit': 's'},
                        'cellGap': 1, 'color': {'mode': 'scheme', 'scheme': 'Oranges',
                                                'exponent': 0.5, 'steps': 64},
                        'rowsFrame': {'layout': 'auto'}, 'tooltip': {'show': True,
                                                                     'yHistogram': True}},
            'fieldConfig': {'defaults': {}, 'overrides': []}}


def stat(title, targets, unit='s', w=6, h=4, description=''):
    return {'type': 'stat', 'title': title, 'description': description, 'datasource': DS,
            'targets': targets, '_w': w, '_h': h,
            'fieldConfig': {'defaults': {'unit': unit, 'decimals': 1}, 'overrides': []},
            'options': {'reduceOptions': {'calcs': ['lastNotNull'], 'fields': '', 'values': False},
                        'colorMode': 'value', 'graphMode': 'area', 'textMode': 'auto'}}


def table(title, targets, w=24, h=8, description=''):
    return {'type': 'table', 'title': title, 'description': description, 'datasource': DS,
            'targets': targets, '_w': w, '_h': h,
            'fieldConfig': {'defaults': {}, 'overrides': []},
            'options': {'showHeader': True},
            'transformations': [{'id': 'labelsToFields', 'options': {}},
                                {'id': 'organize', 'options': {'excludeByName': {
                                    'Time': True, 'Value': True, '__name__': True, 'job': True}}}]}


def row(title):
    return {'type': 'row', 'title': title, 'collapsed': False, 'panels': [], '_w': 24, '_h': 1}


def direction_panels(d):
    segs = SEGMENTS[d]
    layers = [s for s in segs if s not in NOT_A_LAYER]
    panels = [row(DIRECTION_TITLE[d])]
    total_heat = (f'sum by (le) (increase({lat(d, "total")}[{RATE}]))')
    panels.append(heatmap(f'{d} total latency (heatmap)', total_heat,
                          'Distribution of the whole path per interval (samples per bucket).'))
    share = (f'({mean_by_segment(d, "|".join(layers))}) / ignoring(segment) group_left() '
             f'({mean_by_segment(d, "total")})')
    panels.append(timeseries(
        f'{d} per-layer share of the total (mean)', [target(share, '{{segment}}')],
        unit='percentunit', stack=True,
        description='Mean time of each segment divided by the mean total. Segments are joined '
                    'independently, so the stack can differ from 100% when joins are missed.'))
    for q_name, q in QUANTILES:
        panels.append(timeseries(
            f'{d} {q_name} by segment',
            [target(quantile(q, d, s), s, ref=chr(ord('A') + i)) for i, s in enumerate(segs)],
            w=8, log=True))
    for s in segs:
        panels.append(timeseries(
            f'{d} {s}: p50 / p90 / p99',
            [target(quantile(q, d, s), name, ref=chr(ord('A') + i))
             for i, (name, q) in enumerate(QUANTILES)], w=8 if d == 'tx' else 6, h=7))
    return panels


def overview_dashboard():
    panels = [row('Overview')]
    for d in ('tx', 'rx'):
        panels.append(stat(f'{d} total p99', [target(quantile(0.99, d, 'total'), 'p99')]))
    panels.append(stat('Samples / s', [target(
        f'sum(rate(netlatd_stack_latency_seconds_count{{{SEL},segment="total"}}[{RATE}]))',
        'samples/s')], unit='reqps'))
    panels.append(stat('Stages without a hook', [target(
        f'count(netlatd_stage_info{{{SEL},mode="none"}} == 1) or vector(0)', 'disabled')],
        unit='none', description='Stages netlatd could not attach on this kernel '
                                 '(see the hook table).'))
    for d in ('tx', 'rx'):
        panels += direction_panels(d)

    panels.append(row('Correlation: joins and misses'))
    count = 'netlatd_stack_latency_seconds_count'
    joined = f'sum by (direction, segment) (rate({count}{{{SEL}}}[{RATE}]))'
    missed = f'sum by (direction, segment) (rate(netlatd_unmatched_total{{{SEL}}}[{RATE}]))'
    panels.append(timeseries('Joined samples / s by segment',
                             [target(joined, '{{direction}} {{segment}}')], unit='reqps', w=8))
    panels.append(timeseries(
        'Unmatched / s by segment and reason',
        [target(f'sum by (direction, segment, reason) '
                f'(rate(netlatd_unmatched_total{{{SEL}}}[{RATE}]))',
                '{{direction}} {{segment}} {{reason}}')], unit='reqps', w=8,
        description='Stage pairs that could not be joined (partial reads, out of order, '
                    'evicted entries...).'))
    panels.append(timeseries(
        'Join ratio by segment',
        [target(f'{joined} / ({joined} + ({missed} or {joined} * 0))',
                '{{direction}} {{segment}}')], unit='percentunit', w=8))
    panels.append(timeseries(
        'Stage events / s', [target(
            f'sum by (direction, stage) (rate(netlatd_stage_events_total{{{SEL}}}[{RATE}]))',
            '{{direction}} {{stage}}')], unit='reqps', w=12))
    panels.append(timeseries(
        'Map evictions / s', [target(
            f'sum by (map) (rate(netlatd_map_evictions_total{{{SEL}}}[{RATE}]))', '{{map}}')],
        unit='reqps', w=8,
        description='Correlation entries dropped because a bounded map was full.'))
    panels.append(timeseries(
        'Samples over the series cap / s', [target(
            f'sum(rate(netlatd_series_overflow_total{{{SEL}}}[{RATE}]))', 'overflow')],
        unit='reqps', w=4,
        description='Samples that went to the series whose optional labels are "other" because '
                    'labels.max_series was reached.'))

    panels.append(row('Hooks in use'))
    panels.append(table('Stage hooks (netlatd_stage_info)', [target(
        f'netlatd_stage_info{{{SEL}}} == 1', '', fmt='table', instant=True)],
        description='Which kernel hook each stage uses: fentry, kprobe, tracepoint, netfilter, '
                    'cgroup, or none (stage disabled).'))

    panels.append(row('netlatd cost'))
    runtime = 'netlatd_bpf_program_run_seconds_total'
    runs = 'netlatd_bpf_program_runs_total'
    panels.append(timeseries(
        'BPF CPU time (cores) by program',
        [target(f'sum by (program) (rate({runtime}{{{SEL}}}[{RATE}]))', '{{program}}')],
        unit='none', stack=True, w=8,
        description='CPU seconds per second spent in netlatd\'s BPF programs (kernel BPF stats, off '
                    'by default: bpf_stats: true in the config and CAP_SYS_ADMIN, or '
                    'kernel.bpf_stats_enabled=1; empty while off).'))
    panels.append(timeseries(
        'BPF time per run by program',
        [target(f'sum by (program) (rate({runtime}{{{SEL}}}[{RATE}])) / '
                f'sum by (program) (rate({runs}{{{SEL}}}[{RATE}]))', '{{program}}')],
        unit='s', w=8))
    panels.append(timeseries(
        'BPF program runs / s',
        [target(f'sum by (program) (rate({runs}{{{SEL}}}[{RATE}]))', '{{program}}')],
        unit='reqps', w=8))
    panels.append(table('Build', [target(f'netlatd_build_info{{{SEL}}}', '', fmt='table',
                                         instant=True)], h=5))
    return dashboard('netlatd-overview', 'netlatd: network stack latency by layer', panels)


def layout(panels):
    x = y = row_h = 0
    next_id = 1
    out = []
    for p in panels:
        w, h = p.pop('_w'), p.pop('_h')
        if p['type'] == 'row' or x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p['gridPos'] = {'x': x, 'y': y, 'w': w, 'h': h}
        p['id'] = next_id
        next_id += 1
        x += w
        row_h = max(row_h, h)
        if p['type'] == 'row':
            x, y, row_h = 0, y + h, 0
        out.append(p)
    return out


def dashboard(uid, title, panels):
    return {
        'uid': uid,
        'title': title,
        'tags': ['netlatd', 'network', 'ebpf'],
        'timezone': 'browser',
        'schemaVersion': 39,
        'version': 1,
        'editable': True,
        'graphTooltip': 1,
        'refresh': '30s',
        'time': {'from': 'now-1h', 'to': 'now'},
        'links': [],
        'annotations': {'list': []},
        'templating': {'list': [
            {'name': 'datasource', 'label': 'Data source', 'type': 'datasource',
             'query': 'prometheus', 'current': {}, 'hide': 0, 'refresh': 1, 'regex': '',
             'options': []},
            {'name': 'instance', 'label': 'Instance', 'type': 'query', 'datasource': DS,
             'query': {'query': 'label_values(netlatd_build_info, instance)', 'refId': 'instance'},
             'definition': 'label_values(netlatd_build_info, instance)', 'refresh': 2,
             'multi': True, 'includeAll': True, 'current': {}, 'options': [], 'sort': 1,
             'hide': 0, 'regex': ''},
            {'name': 'protocol', 'label': 'Protocol', 'type': 'custom', 'query': 'tcp,udp',
             'multi': True, 'includeAll': True, 'allValue': 'tcp|udp',
             'current': {'selected': True, 'text': ['All'], 'value': ['$__all']},
             'options': [], 'hide': 0},
        ]},
        'panels': layout(panels),
    }


DASHBOARDS = {'netlatd-overview.json': overview_dashboard}


def render(fn):
    return json.dumps(fn(), indent=2, sort_keys=False) + '\n'


def lint(name, dash):
    """Conventions every panel must follow; returns a list of problems."""
    problems = []
    for p in dash['panels']:
        if p['type'] == 'row':
            continue
        if p.get('datasource') != DS:
            problems.append(f'{name}: panel "{p["title"]}" does not use the datasource variable')
        if not p.get('targets'):
            problems.append(f'{name}: panel "{p["title"]}" has no query')
        for t in p.get('targets', []):
            for metric in re.findall(r'(netlatd_[a-z_]+)\{([^}]*)\}', t['expr']):
                if SEL not in metric[1]:
                    problems.append(f'{name}: "{p["title"]}": {metric[0]} lacks {SEL}')
    return problems


def promtool_parse(dashboards):
    """Every query, with Grafana's variables filled in, must parse as PromQL (promtool check rules
    on a throw-away rule file that records each query)."""
    promtool = shutil.which('promtool')
    if not promtool:
        return ['promtool not found (apt-get install prometheus)']
    rules = []
    for name, dash in dashboards:
        for p in dash['panels']:
            for t in p.get('targets', []):
                expr = (t['expr'].replace('$__rate_interval', '1m').replace('$instance', '.*')
                        .replace('$protocol', 'tcp|udp'))
                rules.append({'record': f'dashboard:query_{len(rules)}', 'expr': expr})
    with tempfile.NamedTemporaryFile('w', suffix='.yml') as f:
        json.dump({'groups': [{'name': 'dashboard-queries', 'rules': rules}]}, f)
        f.flush()
        r = subprocess.run([promtool, 'check', 'rules', f.name], capture_output=True, text=True)
    if r.returncode != 0:
        return [f'dashboard queries do not parse:\n{r.stdout}{r.stderr}']
    print(f'promtool: {len(rules)} dashboard queries parse')
    return []


def main(argv):
    check = '--check' in argv
    problems = []
    rendered = []
    for name, fn in DASHBOARDS.items():
        text = render(fn)
        rendered.append((name, json.loads(text)))
        problems += lint(name, json.loads(text))
        for path in (HERE / name, CHART_DASHBOARDS / name):
            if check:
                if not path.exists() or path.read_text() != text:
                    problems.append(f'{path} is not up to date: run dashboards/generate.py')
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if check:
        problems += promtool_parse(rendered)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print('FAIL', file=sys.stderr)
        return 1
    print(f'{"checked" if check else "wrote"}: {", ".join(DASHBOARDS)}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
