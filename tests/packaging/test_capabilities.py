#!/usr/bin/python3
"""Finds out, by running it, that netlatd works with exactly the capabilities in
packaging/capabilities.txt and with nothing less:

  reference   netlatd as full root
  minimal     uid 0 with the bounding set (hence permitted/effective) cut to the listed capabilities,
              no-new-privs, RLIMIT_MEMLOCK 0 (as the systemd unit runs it, minus the sandboxing):
              must attach the same hooks as the reference, record latency samples under loopback
              traffic and exit 0 on SIGTERM
  minus X     the minimal set without X, for each X: must fail (exit, no /metrics, fewer hooks, or
              no samples) -- otherwise X is not needed and the list is wrong
  non-root    uid 65534 with the set as ambient capabilities (as the systemd unit runs it, with a
              dynamic user): must work like the reference

Two features need CAP_SYS_ADMIN on top of the set, and the test shows both ways:
  - netfilter stages in other network namespaces (setns): with the set alone netlatd hooks its own
    namespace only (checked on a namespace the test creates and deletes); with +CAP_SYS_ADMIN it
    hooks that one too;
  - kernel BPF run-time statistics (netlatd_bpf_program_*): with `bpf_stats: true` (every run here
    has it but one) netlatd turns them on with BPF_ENABLE_STATS (CAP_SYS_ADMIN); without it they
    stay 0 unless the host has kernel.bpf_stats_enabled=1 (set and restored by the test). With
    `bpf_stats: false` (the default) they stay 0 even as full root.

Usage: test_capabilities.py NETLATD
"""
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(HERE))
import netlat_probe  # noqa: E402


def caps_arg(caps):
    return ','.join(['-all'] + [f'+{c.removeprefix("CAP_").lower()}' for c in caps])


def run(netlatd, label, wrapper, logdir, config='stats.yaml'):
    """Start netlatd under `wrapper` with logdir/config, drive traffic, return a result dict."""
    port = netlat_probe.free_port()
    url = f'http://127.0.0.1:{port}/metrics'
    log = logdir / f'{label.replace(" ", "_")}.log'
    cmd = wrapper + [netlatd, '--config', str(logdir / config), '--listen', f'127.0.0.1:{port}']
    with open(log, 'w') as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    result = {'label': label, 'cmd': ' '.join(cmd), 'served': False, 'exit': None,
              'summary': None}
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if netlat_probe.wait(url, 0.5):
                result['served'] = True
                break
        if result['served']:
            netlat_probe.traffic(3)
            # Samples reach /metrics after the daemon's next drain interval.
            deadline = time.monotonic() + 10
            while True:
                s = netlat_probe.summary(url)
                got = all(s['latency_counts'].get(k, 0) > 0 for k in ('tx/total/tcp', 'rx/total/tcp'))
                if got or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            result['summary'] = s
    except OSError as e:
        result['error'] = str(e)
    finally:
        if proc.poll() is None:
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            result['stop_seconds'] = round(time.monotonic() - t0, 2)
        result['exit'] = proc.returncode
        result['log'] = log.read_text()
        result['log_tail'] = result['log'][-1500:]
    return result


def stats_holders():
    """Processes holding kernel BPF statistics on for the whole host (a BPF_ENABLE_STATS fd)."""
    holders = set()
    for fd in pathlib.Path('/proc').glob('[0-9]*/fd/*'):
        try:
            if os.readlink(fd) == 'anon_inode:bpf-stats':
                holders.add(int(fd.parts[2]))
        except OSError:
            pass
    return sorted(holders)


def works(r, reference, need_stats=False):
    """Empty list when `r` behaves like the reference run; else the reasons it does not."""
    why = []
    if not r['served']:
        why.append(f'no /metrics (exit {r["exit"]})')
        return why
    s = r['summary']
    if s is None:  # served, then /metrics failed
        why.append(f'no metrics summary: {r.get("error", "?")}')
        return why
    if s['stages'] != reference['summary']['stages']:
        lost = sorted(set(reference['summary']['stages']) - set(s['stages']))
        why.append(f'hooks differ from reference: missing {lost}')
    for k in ('tx/total/tcp', 'rx/total/tcp'):
        if s['latency_counts'].get(k, 0) <= 0:
            why.append(f'no {k} samples')
    if need_stats and s['bpf_program_runs'] <= 0:
        why.append('no BPF program run statistics (reference has them)')
    if r['exit'] != 0:
        why.append(f'exit code {r["exit"]} on SIGTERM')
    return why


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    netlatd = sys.argv[1]
    if os.geteuid() != 0:
        print('FAIL: must run as root')
        return 1
    for tool in ('setpriv', 'prlimit', 'ip'):
        if not any((pathlib.Path(d) / tool).exists() for d in os.environ['PATH'].split(':')):
            print(f'FAIL: {tool} not found (apt-get install util-linux iproute2)')
            return 1
    caps = (REPO / 'packaging' / 'capabilities.txt').read_text().split()
    logdir = pathlib.Path(tempfile.mkdtemp(prefix='netlatd-caps.'))
    logdir.chmod(0o755)  # the non-root run reads the config
    (logdir / 'stats.yaml').write_text('bpf_stats: true\n')
    (logdir / 'default.yaml').write_text('bpf_stats: false\n')

    def reduced(cs, extra=()):
        return (['prlimit', '--memlock=0:0', '--', 'setpriv', '--bounding-set', caps_arg(cs),
                 '--inh-caps', '-all', '--ambient-caps', '-all', '--no-new-privs'] + list(extra) + ['--'])

    netns = f'netlatd-caps-{os.getpid()}'
    subprocess.run(['ip', 'netns', 'add', netns], check=True)
    try:
        return experiment(netlatd, caps, logdir, reduced, netns)
    finally:
        subprocess.run(['ip', 'netns', 'delete', netns], check=False)


def experiment(netlatd, caps, logdir, reduced, netns):
    netns_id = os.stat(f'/run/netns/{netns}').st_ino
    hooked = f'network namespace {netns_id}: netfilter stages hooked'
    refused = f'network namespace {netns_id}: no netfilter stages there'
    reference = run(netlatd, 'reference', [], logdir)
    if (not reference['served'] or not reference['summary']['stages_active']
            or reference['summary']['bpf_program_runs'] <= 0):
        print(f'FAIL: netlatd does not work even as full root:\n{reference["log_tail"]}')
        return 1
    print(f'reference (full root): {len(reference["summary"]["stages_active"])} stages attached: '
          f'{", ".join(reference["summary"]["stages_active"])}')
    print(f'  bpf program runs: {reference["summary"]["bpf_program_runs"]:.0f}')
    if hooked not in reference['log']:
        print(f'FAIL: as root, netlatd did not hook the test namespace {netns} ({netns_id})')
        return 1

    failures = []
    minimal = run(netlatd, 'minimal', reduced(caps), logdir)
    why = works(minimal, reference)
    print(f'minimal {"+".join(caps)} (memlock 0): {"WORKS" if not why else "FAILS: " + "; ".join(why)}'
          f" (stopped in {minimal.get('stop_seconds')} s, exit {minimal['exit']})")
    if why:
        failures.append(f'netlatd does not work with {caps}: {why}\n{minimal["log_tail"]}')
    print(f'  bpf program runs without CAP_SYS_ADMIN: {minimal["summary"]["bpf_program_runs"]:.0f}'
          if minimal['summary'] else '')
    print(f'  other network namespace {netns}: '
          f'{"not hooked (setns needs CAP_SYS_ADMIN)" if refused in minimal["log"] else "?"}')
    if refused not in minimal['log'] or hooked in minimal['log']:
        failures.append(f'expected netlatd to report "{refused}" with {caps}')

    with_admin = run(netlatd, 'plus CAP_SYS_ADMIN', reduced(caps + ['CAP_SYS_ADMIN']), logdir)
    why = works(with_admin, reference, need_stats=True)
    if hooked not in with_admin['log']:
        why.append(f'namespace {netns} not hooked')
    print(f'{"+".join(caps)}+CAP_SYS_ADMIN: '
          f'{"WORKS, hooks other namespaces, BPF run statistics on" if not why else "FAILS: " + "; ".join(why)}')
    if why:
        failures.append(f'+CAP_SYS_ADMIN: {why}')

    stats_sysctl = pathlib.Path('/proc/sys/kernel/bpf_stats_enabled')
    saved = stats_sysctl.read_text().strip()
    # Statistics slow every BPF program of the host: without bpf_stats: true, even as root with
    # every capability, netlatd leaves them off. They are host-wide, so the run counts say so only
    # when nothing else holds them on.
    off = run(netlatd, 'reference without bpf_stats', [], logdir, 'default.yaml')
    why = works(off, reference)
    runs = off['summary']['bpf_program_runs'] if off['summary'] else None
    others = stats_holders() if saved == '0' else ['kernel.bpf_stats_enabled=1']
    print(f'full root, bpf_stats: false: {"; ".join(why) or "WORKS"}, bpf program runs {runs}'
          + (f' (not judged: statistics held on by {others})' if others else ''))
    if why or (runs != 0 and not others):
        failures.append(f'bpf_stats: false: {why}, bpf program runs {runs} (expected 0)')
    try:
        stats_sysctl.write_text('1\n')
        with_sysctl = run(netlatd, 'minimal bpf_stats_enabled', reduced(caps), logdir)
    finally:
        stats_sysctl.write_text(saved + '\n')
    why = works(with_sysctl, reference, need_stats=True)
    print(f'minimal with kernel.bpf_stats_enabled=1: '
          f'{"WORKS, with BPF run statistics" if not why else "FAILS: " + "; ".join(why)}')
    if why:
        failures.append(f'BPF statistics missing with kernel.bpf_stats_enabled=1: {why}')

    for cap in caps:
        r = run(netlatd, f'minus {cap}', reduced([c for c in caps if c != cap]), logdir)
        why = works(r, reference)
        first_error = next((line for line in r['log_tail'].splitlines()
                            if 'netlatd:' in line or ' error ' in line), '')
        print(f'without {cap}: {"fails as expected: " + "; ".join(why) if why else "STILL WORKS"}'
              f'{" -- " + first_error.strip() if first_error else ""}')
        if not why:
            failures.append(f'{cap} is not needed: netlatd works without it')

    nonroot = run(netlatd, 'non-root', ['setpriv', '--reuid', '65534', '--regid', '65534',
                                        '--clear-groups', '--inh-caps', caps_arg(caps),
                                        '--ambient-caps', caps_arg(caps), '--'], logdir)
    why = works(nonroot, reference)
    print(f'non-root uid 65534 with ambient {"+".join(caps)}: '
          f'{"WORKS" if not why else "FAILS: " + "; ".join(why)}')
    if why:
        failures.append(f'netlatd does not work as a non-root user with {caps}: {why}\n'
                        f'{nonroot["log_tail"]}')

    (logdir / 'results.json').write_text(json.dumps(
        {'reference': reference, 'minimal': minimal, 'nonroot': nonroot}, indent=1))
    if failures:
        print('\n'.join(failures))
        print(f'FAIL (logs in {logdir})')
        return 1
    subprocess.run(['rm', '-rf', str(logdir)], check=False)
    print(f'capability set {" ".join(caps)}: 4 + {len(caps)} checks passed')
    print(f'{4 + len(caps)} passed, 0 failed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
