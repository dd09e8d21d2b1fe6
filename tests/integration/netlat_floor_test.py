#!/usr/bin/python3
"""netlat-floor, the floor of tools/bench/run.sh, attaches a do-nothing program to exactly the
stage hooks netlatd uses in tracepoint mode (as `netlatd --once --json` lists them), plus netlatd's
support hooks, one program per hook, and leaves none of them loaded after SIGTERM. With --stamp
(the bench's stamp arm) the same, and the programs store the clock: the stamp map holds a time
after traffic. A bad argument exits 2.

Usage: netlat_floor_test.py NETLAT_FLOOR NETLATD
"""
import json
import subprocess
import sys
import time


def floor_programs():
    out = subprocess.run(['bpftool', 'prog', 'show', '-j'], capture_output=True, text=True,
                         check=True).stdout
    return [p['id'] for p in json.loads(out) if p.get('name') == 'netlat_floor']


def stamp_times():
    """The per-CPU times in netlat-floor --stamp's map (none if it has no such map)."""
    out = subprocess.run(['bpftool', 'map', 'dump', 'name', 'netlat_stamp', '-j'],
                         capture_output=True, text=True)
    if out.returncode:
        return []
    return [int(v['value'], 0) if isinstance(v['value'], str) else
            int.from_bytes(bytes(int(b, 16) for b in v['value']), 'little')
            for entry in json.loads(out.stdout) for v in entry.get('values', [])]


def check(floor, args, netlatd_hooks):
    """The failures of one netlat-floor run with `args`."""
    before = set(floor_programs())
    proc = subprocess.Popen([floor] + args, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if lines[-1] == 'ready':
            break
    hooks = {kind: [l.split(': ', 1)[1] for l in lines if l.startswith(f'{kind} hook: ')]
             for kind in ('stage', 'support')}
    loaded = set(floor_programs()) - before
    if args == ['--stamp']:
        # traffic that passes the stage hooks: a TCP connection to a closed port on loopback
        subprocess.run(['sh', '-c', 'for i in 1 2 3 4 5; do '
                        '(exec 3<>/dev/tcp/127.0.0.1/9) 2>/dev/null; done'])
        stamped = [t for t in stamp_times() if t]
    proc.terminate()
    exit_code = proc.wait(timeout=30)
    # The kernel frees a program after an RCU grace period: give it a few seconds.
    deadline = time.monotonic() + 5
    while (left := set(floor_programs()) & loaded) and time.monotonic() < deadline:
        time.sleep(0.1)

    failures = []
    if lines[-1:] != ['ready']:
        failures.append(f'netlat-floor did not get ready: {lines}')
    if set(hooks['stage']) != netlatd_hooks:
        failures.append(f'stage hooks differ: netlat-floor {sorted(hooks["stage"])}, '
                        f'netlatd {sorted(netlatd_hooks)}')
    if len(loaded) != len(hooks['stage']) + len(hooks['support']):
        failures.append(f'{len(loaded)} programs loaded for '
                        f'{len(hooks["stage"]) + len(hooks["support"])} hooks')
    if exit_code != 0:
        failures.append(f'exit code {exit_code} on SIGTERM')
    if left:
        failures.append(f'programs still loaded after exit: {sorted(left)}')
    if args == ['--stamp'] and not stamped:
        failures.append('--stamp: no time in the stamp map after traffic')
    print(f'netlat-floor {" ".join(args)}: {len(hooks["stage"])} stage hooks (as netlatd: '
          f'{"yes" if set(hooks["stage"]) == netlatd_hooks else "NO"}), '
          f'{len(hooks["support"])} support hooks, {len(loaded)} programs, exit {exit_code}')
    return [f'netlat-floor {" ".join(args)}: {f}' for f in failures]


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    floor, netlatd = sys.argv[1:]
    once = json.loads(subprocess.run(
        [netlatd, '--once', '--duration', '1s', '--json', '--probe-mode', 'tracepoint'],
        capture_output=True, text=True, check=True, timeout=60).stdout)
    netlatd_hooks = {target for stage in once['stages'] for hook in stage['hooks']
                     if hook['mode'] != 'none' for target in hook['hook'].split(',')}
    failures = check(floor, [], netlatd_hooks) + check(floor, ['--stamp'], netlatd_hooks)
    bad = subprocess.run([floor, '--stamps'], capture_output=True, text=True)
    if bad.returncode != 2 or 'usage' not in bad.stderr:
        failures.append(f'netlat-floor --stamps: exit {bad.returncode}, {bad.stderr.strip()!r}')
    for f in failures:
        print('FAIL:', f)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
