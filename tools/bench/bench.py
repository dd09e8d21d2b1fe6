#!/usr/bin/env python3
"""netlatd's overhead benchmark (tools/bench/run.sh [ROUNDS]; docs/BENCHMARKS.md).

Alternating rounds; in each round every arm runs the same workloads on loopback, the arms' order
rotating from round to round so that drift of a shared machine hits all alike:
  none      no tracing
  floor     netlat-floor: do-nothing BPF programs on exactly netlatd's hooks (netfilter included)
  stamp     netlat-floor --stamp: the same programs, each storing the clock in a per-CPU array (the
            least a tool that times packets at these hooks does)
  netlatd   netlatd on its default configuration
  bpftrace  tools/bench/seed-port.bt: the original bpftrace scripts ported to tracepoints
  netlatd-b another netlatd binary, when NETLATD_B is set (before/after in one run)
Workloads: sockperf UDP and TCP ping-pong (64 B), iperf3 TCP, an iperf3 UDP flood of 64 B
datagrams, and netlat-load UDP request/response (the kernel's own send() -> driver and
driver -> recv() stamps: the observer effect). Then one round with kernel BPF statistics on
(sysctl kernel.bpf_stats_enabled=1, restored after) gives ns per program run; it is kept apart so
the statistics' own cost does not inflate the latency rounds.

Figures are medians over the rounds with min..max. Exit 0 when everything was measured (the
PASS/FAIL against the targets is informational), 1 when a measurement failed, 2 on bad usage.

Environment: NETLATD, NETLATD_B, NETLAT_FLOOR, NETLAT_LOAD (binaries; default build/), BENCH_SECONDS
(per workload, default 3), BENCH_OUT (also write the report there), BENCH_NICE (run everything at
this nice value, e.g. -10 on a machine busy with other work).
"""
import datetime
import json
import os
import pathlib
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
TOP = HERE.parent.parent
BUILD = pathlib.Path(os.environ.get('NETLAT_BUILD_DIR', TOP / 'build'))
SECONDS = 3  # per workload: BENCH_SECONDS
ADDR = '127.0.0.1'
PORTS = {'sockperf_udp': 19811, 'sockperf_tcp': 19812, 'iperf3': 19813, 'netlatd': 19814}
STATS_SYSCTL = pathlib.Path('/proc/sys/kernel/bpf_stats_enabled')
TRACEFS = pathlib.Path('/sys/kernel/tracing')
MIB = 1 << 20


class BenchError(Exception):
    pass


def run(cmd, timeout=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout or SECONDS * 4 + 30)
    if r.returncode != 0:
        raise BenchError(f'{" ".join(map(str, cmd))}: exit {r.returncode}: {r.stderr.strip()[-300:]}')
    return r.stdout


# --- per-process figures --------------------------------------------------------------------------

def cpu_seconds(pid):
    """CPU time of all the process's threads, in ns resolution (/proc/PID/task/*/schedstat)."""
    total = 0
    for task in pathlib.Path(f'/proc/{pid}/task').iterdir():
        try:
            total += int((task / 'schedstat').read_text().split()[0])
        except (OSError, IndexError):
            pass  # a thread that just ended
    return total / 1e9


def rss_bytes(pid):
    m = re.search(r'^VmRSS:\s+(\d+) kB', pathlib.Path(f'/proc/{pid}/status').read_text(), re.M)
    return int(m.group(1)) * 1024


def bpf_fdinfo(pid, kind):
    """{id: fdinfo fields} of the BPF programs or maps ('prog'/'map') the process holds open."""
    out = {}
    for fd in pathlib.Path(f'/proc/{pid}/fd').iterdir():
        try:
            if os.readlink(fd) != f'anon_inode:bpf-{kind}':
                continue
            info = dict(line.split(':', 1) for line in
                        pathlib.Path(f'/proc/{pid}/fdinfo/{fd.name}').read_text().splitlines()
                        if ':' in line)
        except OSError:
            continue
        info = {k.strip(): v.strip() for k, v in info.items()}
        out[int(info[f'{kind}_id'])] = info
    return out


def map_memory(pid):
    return sum(int(info['memlock']) for info in bpf_fdinfo(pid, 'map').values())


def bpf_users():
    """Other processes holding BPF programs loaded or kernel BPF statistics on (both affect every
    arm: their programs may run on the same hooks), as 'comm[pid]: N programs, statistics'."""
    users = {}
    for fd in pathlib.Path('/proc').glob('[0-9]*/fd/*'):
        try:
            target = os.readlink(fd)
            if target in ('anon_inode:bpf-prog', 'anon_inode:bpf-stats'):
                pid = fd.parts[2]
                comm = pathlib.Path(f'/proc/{pid}/comm').read_text().strip()
                user = users.setdefault(pid, {'comm': comm, 'programs': 0, 'stats': False})
                if target.endswith('prog'):
                    user['programs'] += 1
                else:
                    user['stats'] = True
        except OSError:
            pass
    return '; '.join(f'{u["comm"]}[{pid}]: {u["programs"]} programs'
                     + (', statistics' if u['stats'] else '')
                     for pid, u in sorted(users.items())) or 'none'


def program_names():
    return {p['id']: p.get('name', '?') for p in json.loads(run(['bpftool', 'prog', 'show', '-j']))}


# --- arms ---------------------------------------------------------------------------------------

class Arm:
    """One configuration under test: start() leaves it measuring, stop() removes every trace."""
    def __init__(self, name, cmd=None, ready=None, stop_signal=signal.SIGTERM):
        self.name, self.cmd, self.ready, self.stop_signal = name, cmd, ready, stop_signal
        self.proc = None
        self.log = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, workdir):
        if not self.cmd:
            return
        self.log = workdir / f'{self.name}.log'
        with open(self.log, 'w') as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 120  # bpftrace compiles its script first
        while not self.ready(self):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchError(f'{self.name} did not start: {self.log.read_text()[-500:]}')
            time.sleep(0.1)

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def log_has(text):
    return lambda arm: text in arm.log.read_text()


def netlatd_ready(arm):
    r = subprocess.run(['curl', '-sf', '-o', '/dev/null', f'http://{ADDR}:{PORTS["netlatd"]}/healthz'])
    return r.returncode == 0


def make_arms():
    def binary(var, default):
        path = pathlib.Path(os.environ.get(var, default))
        if not os.access(path, os.X_OK):
            raise BenchError(f'{var}={path}: not an executable (build with ./tools/build.sh)')
        return str(path)

    def netlatd(name, path):
        return Arm(name, [path, '--listen', f'{ADDR}:{PORTS["netlatd"]}'], netlatd_ready)

    floor = binary('NETLAT_FLOOR', BUILD / 'tools/bench/netlat-floor')
    arms = [Arm('none'),
            Arm('floor', [floor], log_has('ready')),
            Arm('stamp', [floor, '--stamp'], log_has('ready')),
            netlatd('netlatd', binary('NETLATD', BUILD / 'daemon/netlatd')),
            Arm('bpftrace', ['bpftrace', str(HERE / 'seed-port.bt')], log_has('Attaching'),
                signal.SIGINT)]
    if os.environ.get('NETLATD_B'):
        arms.append(netlatd('netlatd-b', binary('NETLATD_B', '')))
    return arms


# --- workloads ----------------------------------------------------------------------------------

def sockperf_pingpong(proto):
    cmd = ['sockperf', 'ping-pong', '-i', ADDR, '-p', str(PORTS[f'sockperf_{proto}']),
           '-t', str(SECONDS), '--msg-size', '64'] + (['--tcp'] if proto == 'tcp' else [])
    out = run(cmd)
    if 'No messages were received' in out:  # the server was not scheduled in time: once more
        out = run(cmd)
    avg = re.search(r'avg-latency=([\d.]+)', out)
    p50 = re.search(r'percentile 50\.000 =\s*([\d.]+)', out)
    p99 = re.search(r'percentile 99\.000 =\s*([\d.]+)', out)
    if not (avg and p50 and p99):
        raise BenchError(f'sockperf {proto}: no latency in its output: {out[-300:]}')
    return {f'{proto}_pp_avg': float(avg.group(1)), f'{proto}_pp_p50': float(p50.group(1)),
            f'{proto}_pp_p99': float(p99.group(1))}


def iperf3(*args):
    return json.loads(run(['iperf3', '-c', ADDR, '-p', str(PORTS['iperf3']), '-t', str(SECONDS),
                           '-J'] + list(args)))['end']


def iperf3_tcp(pid):
    t0, c0 = time.monotonic(), cpu_seconds(pid) if pid else 0
    end = iperf3()
    figures = {'tcp_gbits': end['sum_received']['bits_per_second'] / 1e9}
    if pid:
        figures['cpu_iperf3_pct'] = (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100
    return figures


def udp_flood():
    s = iperf3('-u', '-b', '0', '-l', '64')['sum']  # the receiver's view
    return {'udp_kpps': (s['packets'] - s['lost_packets']) / s['seconds'] / 1e3}


def observer():
    rate = 2000
    out = json.loads(run([os.environ.get('NETLAT_LOAD', str(BUILD / 'tools/netlat-load/netlat-load')),
                          '--proto', 'udp', '--rate', str(rate), '--count', str(rate * SECONDS),
                          '--json']))
    return {'obs_tx_driver': out['tx_driver']['p50_us'], 'obs_rx': out['rx']['p50_us']}


def scrape_ms(n=20):
    times = [float(run(['curl', '-s', '-o', '/dev/null', '-w', '%{time_total}',
                        f'http://{ADDR}:{PORTS["netlatd"]}/metrics'])) * 1e3 for _ in range(n)]
    return statistics.median(times)


def measure(arm):
    figures = {}
    t0, c0 = time.monotonic(), cpu_seconds(arm.pid) if arm.pid else 0
    figures.update(sockperf_pingpong('udp'))
    figures.update(sockperf_pingpong('tcp'))
    figures.update(iperf3_tcp(arm.pid))
    figures.update(udp_flood())
    figures.update(observer())
    if arm.pid:
        figures['cpu_pct'] = (cpu_seconds(arm.pid) - c0) / (time.monotonic() - t0) * 100
        figures['rss_mib'] = rss_bytes(arm.pid) / MIB
        figures['map_mib'] = map_memory(arm.pid) / MIB
    if arm.name.startswith('netlatd'):
        figures['scrape_ms'] = scrape_ms()
    return figures


def stats_round(arm, workdir):
    """ns per run of the arm's programs under ping-pong and bulk traffic, statistics on."""
    arm.start(workdir)
    try:
        before = bpf_fdinfo(arm.pid, 'prog')
        sockperf_pingpong('udp')
        sockperf_pingpong('tcp')
        iperf3()
        after = bpf_fdinfo(arm.pid, 'prog')
        per_call = per_call_programs() if arm.name.startswith('netlatd') else set()
        names = program_names()
    finally:
        arm.stop()
    programs = {}  # by name; the floor's programs share one
    for prog_id, info in after.items():
        name = names.get(prog_id, f'id {prog_id}')
        runs = int(info['run_cnt']) - int(before.get(prog_id, {}).get('run_cnt', 0))
        ns = int(info['run_time_ns']) - int(before.get(prog_id, {}).get('run_time_ns', 0))
        old = programs.get(name, (0, 0))
        programs[name] = (old[0] + runs, old[1] + ns)
    return {'programs': programs, 'per_call': per_call, 'count': len(after)}


def per_call_programs():
    """netlatd's programs that run per send or read call (tx socket, tx transport, rx socket), from
    its own netlatd_stage_info; the others run per packet (or per skb free)."""
    text = run(['curl', '-s', f'http://{ADDR}:{PORTS["netlatd"]}/metrics'])
    names = set()
    for m in re.finditer(r'^netlatd_stage_info\{([^}]*)\} 1', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if (labels['direction'], labels['stage']) in {('tx', 'socket'), ('tx', 'transport'),
                                                      ('rx', 'socket')} and labels['mode'] == 'tracepoint':
            names.update('tp_' + target for target in labels['hook'].split(','))
    return names


def ns_per_run(programs, only=None):
    chosen = [v for k, v in programs.items() if only is None or only(k)]
    runs = sum(r for r, _ in chosen)
    return sum(ns for _, ns in chosen) / runs if runs else float('nan')


# --- report -------------------------------------------------------------------------------------

def med(values):
    return statistics.median(values) if values else float('nan')


def cell(values, digits=2):
    values = [v for v in values if v == v]
    if not values:
        return '-'
    if len(values) == 1:
        return f'{values[0]:.{digits}f}'
    return f'{med(values):.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})'


ROWS = [
    ('udp_pp_avg', 'UDP ping-pong avg (us)'), ('udp_pp_p50', 'UDP ping-pong p50 (us)'),
    ('udp_pp_p99', 'UDP ping-pong p99 (us)'), ('tcp_pp_avg', 'TCP ping-pong avg (us)'),
    ('tcp_pp_p50', 'TCP ping-pong p50 (us)'), ('tcp_pp_p99', 'TCP ping-pong p99 (us)'),
    ('tcp_gbits', 'iperf3 TCP (Gbit/s)'),
    ('cpu_iperf3_pct', 'arm process CPU during iperf3 TCP (% of a core)'),
    ('udp_kpps', 'UDP 64 B flood received (kpackets/s)'),
    ('obs_tx_driver', 'netlat-load UDP send() -> driver p50 (us)'),
    ('obs_rx', 'netlat-load UDP driver -> recv() p50 (us)'),
    ('cpu_pct', 'arm process CPU over all workloads (% of a core)'),
    ('rss_mib', 'arm process RSS (MiB)'), ('map_mib', 'BPF map memory (MiB)'),
    ('scrape_ms', 'one /metrics scrape, median of 20 (ms)'),
]


def paired(results, arm, key, fn):
    """Per round fn(arm's figure, none's figure): differences within a round, then the median."""
    return [fn(r[arm][key], r['none'][key]) for r in results if key in r.get(arm, {})]


def report(results, stats, arms, meta):
    names = [a.name for a in arms]
    out = ['## Run', '']
    out += [f'- {k}: {v}' for k, v in meta.items()]
    out += ['', f'## Workloads (median over {len(results)} rounds, min..max)', '',
            '| figure | ' + ' | '.join(names) + ' |', '|---|' + '---|' * len(names)]
    for key, label in ROWS:
        cells = [cell([r[n][key] for r in results if key in r[n]]) for n in names]
        if any(c != '-' for c in cells):
            out.append(f'| {label} | ' + ' | '.join(cells) + ' |')

    added = lambda a, b: a - b  # noqa: E731
    loss = lambda a, b: (b - a) / b * 100  # noqa: E731
    traced = names[1:]
    out += ['', '## Against no tracing (per round, arm minus none; median, min..max)', '',
            '| figure | ' + ' | '.join(traced) + ' |', '|---|' + '---|' * len(traced)]
    for key, label, fn in [('udp_pp_p50', 'UDP ping-pong added latency, p50 (us/message)', added),
                           ('udp_pp_avg', 'UDP ping-pong added latency, avg (us/message)', added),
                           ('tcp_pp_p50', 'TCP ping-pong added latency, p50 (us/message)', added),
                           ('tcp_pp_avg', 'TCP ping-pong added latency, avg (us/message)', added),
                           ('tcp_gbits', 'iperf3 TCP throughput loss (%)', loss),
                           ('udp_kpps', 'UDP flood rate loss (%)', loss),
                           ('obs_tx_driver', 'observer effect on send() -> driver p50 (us)', added),
                           ('obs_rx', 'observer effect on driver -> recv() p50 (us)', added)]:
        out.append(f'| {label} | ' + ' | '.join(cell(paired(results, n, key, fn)) for n in traced) + ' |')

    out += ['', '## BPF program cost (one round with kernel.bpf_stats_enabled=1: '
            'sockperf UDP + TCP ping-pong, iperf3 TCP)', '',
            '| arm | programs | runs | ns per run, all | ns per run, per-packet programs |',
            '|---|---|---|---|---|']
    for name, st in stats.items():
        programs, per_call = st['programs'], st['per_call']
        runs = sum(r for r, _ in programs.values())
        packet = ns_per_run(programs, lambda p: p not in per_call) if per_call else float('nan')
        out.append(f'| {name} | {st["count"]} | {runs} | {ns_per_run(programs):.0f} | '
                   + (f'{packet:.0f} |' if packet == packet else '- |'))
    out += ['', '(The floor\'s programs return at once: their ns per run is what the kernel spends '
            'around any program on these hooks, statistics included. The stamp arm\'s programs '
            'only store the clock: what timing a packet at every hook costs before any join.)']
    for name, st in stats.items():
        programs, per_call = st['programs'], st['per_call']
        if not per_call:
            continue
        out += ['', f'{name}, per program ("per call": runs per send/read call, or per syscall for '
                'sys_enter; the others per packet):', '', '| program | kind | runs | ns per run |',
                '|---|---|---|---|']
        for prog, (runs, ns) in sorted(programs.items(), key=lambda kv: -kv[1][1]):
            kind = 'per call' if prog in per_call else 'per packet'
            out.append(f'| {prog} | {kind} | {runs} | {ns / runs:.0f} |' if runs else
                       f'| {prog} | {kind} | 0 | - |')

    out += ['', '## Targets (informational)', '']
    candidates = [n for n in names if n.startswith('netlatd')]
    out += ['| figure | target | ' + ' | '.join(candidates) + ' |', '|---|---|' + '---|' * len(candidates)]

    for label, target, fn in targets(results, stats):
        out.append(f'| {label} | {target} | ' + ' | '.join(fn(n) for n in candidates) + ' |')
    return '\n'.join(out) + '\n'


def targets(results, stats):
    def added(arm, key):
        return med(paired(results, arm, key, lambda a, b: a - b))

    def loss(arm, key):
        return med(paired(results, arm, key, lambda a, b: (b - a) / b * 100))

    def show(value, ok, unit=''):
        if value != value:
            return 'not measured'
        return f'{value:.2f}{unit} {"PASS" if ok else "FAIL"}'

    def pingpong(proto):
        key = f'{proto}_pp_p50'

        def fn(arm):
            mine, floor, bt = added(arm, key), added('floor', key), added('bpftrace', key)
            ok = mine <= 1.5 * floor and mine < bt
            return show(mine, ok, ' us') + f' (floor {floor:.2f}, bpftrace {bt:.2f})'
        return fn

    def per_packet_ns(arm):
        st = stats.get(arm, {'programs': {}, 'per_call': set()})
        value = ns_per_run(st['programs'], lambda p: p not in st['per_call'])
        return show(value, value <= 100, ' ns')

    def median_of(key):
        return lambda arm: med([r[arm][key] for r in results if key in r.get(arm, {})])

    return [
        ('UDP ping-pong added p50 latency vs the floor\'s', '<= 1.5x floor, < bpftrace', pingpong('udp')),
        ('TCP ping-pong added p50 latency vs the floor\'s', '<= 1.5x floor, < bpftrace', pingpong('tcp')),
        ('iperf3 TCP throughput loss', "<= floor's + 3 points",
         lambda a: show(loss(a, 'tcp_gbits'), loss(a, 'tcp_gbits') <= loss('floor', 'tcp_gbits') + 3, '%')
         + f' (floor {loss("floor", "tcp_gbits"):.2f}%)'),
        ('UDP 64 B flood rate loss', '<= 10%',
         lambda a: show(loss(a, 'udp_kpps'), loss(a, 'udp_kpps') <= 10, '%')),
        ('per-packet programs, ns per run', '<= 100 ns', per_packet_ns),
        ('observer effect on send() -> driver p50', '<= 0.5 us',
         lambda a: show(added(a, 'obs_tx_driver'), added(a, 'obs_tx_driver') <= 0.5, ' us')),
        ('BPF map memory', '<= 16 MiB',
         lambda a: show(median_of('map_mib')(a), median_of('map_mib')(a) <= 16, ' MiB')),
        ('daemon RSS', '<= 40 MiB',
         lambda a: show(median_of('rss_mib')(a), median_of('rss_mib')(a) <= 40, ' MiB')),
        ('one /metrics scrape', '<= 10 ms',
         lambda a: show(median_of('scrape_ms')(a), median_of('scrape_ms')(a) <= 10, ' ms')),
    ]


# --- main ---------------------------------------------------------------------------------------

def servers():
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for cmd in (['sockperf', 'server', '-i', ADDR, '-p', str(PORTS['sockperf_udp'])],
                         ['sockperf', 'server', '-i', ADDR, '-p', str(PORTS['sockperf_tcp']), '--tcp'],
                         ['iperf3', '-s', '-B', ADDR, '-p', str(PORTS['iperf3'])])]
    time.sleep(1)
    for p in procs:
        if p.poll() is not None:
            raise BenchError(f'{" ".join(p.args)} exited at once (port in use?)')
    return procs


def machine(rounds):
    cpu = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo')
                if line.startswith('model name')), '?')
    commit = subprocess.run(['git', '-C', str(TOP), 'describe', '--always', '--dirty'],
                            capture_output=True, text=True).stdout.strip() or '?'
    return {'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
            'kernel': platform.release(), 'cpu': f'{os.cpu_count()} x {cpu}',
            'commit': commit, 'rounds': rounds, 'seconds per workload': SECONDS,
            'nice': os.nice(0),
            'load average at start': round(os.getloadavg()[0], 2),
            'other BPF users at start': bpf_users()}


def main():
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and not sys.argv[1].isdigit()):
        print('usage: tools/bench/run.sh [ROUNDS]   (ROUNDS a number, default 5)', file=sys.stderr)
        return 2
    rounds = int(sys.argv[1]) if len(sys.argv) == 2 else 5
    if rounds < 1:
        print('tools/bench/run.sh: ROUNDS must be at least 1', file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print('tools/bench/run.sh: must run as root', file=sys.stderr)
        return 2
    def env_int(name, default, low, high):
        text = os.environ.get(name, str(default))
        if not text.lstrip('-').isdigit() or not low <= int(text) <= high:
            raise BenchError(f'{name}={text}: not an integer in {low}..{high}')
        return int(text)

    global SECONDS
    try:
        arms = make_arms()
        nice = env_int('BENCH_NICE', 0, -20, 19)
        SECONDS = env_int('BENCH_SECONDS', SECONDS, 1, 600)
    except BenchError as e:
        print(f'tools/bench/run.sh: {e}', file=sys.stderr)
        return 2
    if nice:
        os.nice(nice)  # inherited by the servers, clients and arms
    workdir = pathlib.Path(tempfile.mkdtemp(prefix='netlatd-bench.'))
    mounted_tracefs = False
    saved_stats = STATS_SYSCTL.read_text().strip()
    procs = []
    try:
        for tool in ('sockperf', 'iperf3', 'bpftrace', 'bpftool', 'curl'):
            if subprocess.run(['sh', '-c', f'command -v {tool}'], capture_output=True).returncode:
                raise BenchError(f'{tool} not found (./tools/deps.sh installs it)')
        # bpftrace 0.17's tracepoint probes read their formats from tracefs.
        if not (TRACEFS / 'events').exists():
            run(['mount', '-t', 'tracefs', 'tracefs', str(TRACEFS)])
            mounted_tracefs = True
        if saved_stats != '0':
            print('note: kernel.bpf_stats_enabled is already 1: every round runs with statistics on',
                  file=sys.stderr)
        meta = machine(rounds)
        procs = servers()
        results = []
        for r in range(rounds):
            order = arms[r % len(arms):] + arms[:r % len(arms)]
            results.append({})
            for arm in order:
                print(f'round {r + 1}/{rounds}: {arm.name}', file=sys.stderr, flush=True)
                arm.start(workdir)
                try:
                    results[-1][arm.name] = measure(arm)
                finally:
                    arm.stop()
        STATS_SYSCTL.write_text('1\n')
        stats = {}
        for arm in arms:
            if arm.cmd:
                print(f'statistics round: {arm.name}', file=sys.stderr, flush=True)
                stats[arm.name] = stats_round(arm, workdir)
        STATS_SYSCTL.write_text(saved_stats + '\n')
        meta['load average at end'] = round(os.getloadavg()[0], 2)
        meta['other BPF users at end'] = bpf_users()
        text = report(results, stats, arms, meta)
        print(text)
        if os.environ.get('BENCH_OUT'):
            pathlib.Path(os.environ['BENCH_OUT']).write_text(text)
        (workdir / 'results.json').write_text(json.dumps({'rounds': results, 'stats': stats},
                                                         default=list))
        print(f'raw figures: {workdir}/results.json', file=sys.stderr)
        return 0
    except (BenchError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as e:
        dead = [' '.join(p.args) for p in procs if p.poll() is not None]
        print(f'tools/bench/run.sh: could not measure: {e}'
              + (f' (servers that exited: {", ".join(dead)})' if dead else ''), file=sys.stderr)
        return 1
    finally:
        for arm in arms:
            arm.stop()
        for p in procs:
            p.terminate()
            p.wait()
        STATS_SYSCTL.write_text(saved_stats + '\n')
        if mounted_tracefs:
            subprocess.run(['umount', str(TRACEFS)])


if __name__ == '__main__':
    sys.exit(main())
