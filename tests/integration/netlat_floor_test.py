#!/usr/bin/python3
"""netlat-floor, the floor of tools/bench/run.sh, attaches a do-nothing program to exactly the
stage hooks netlatd uses in tracepoint mode (as `netlatd --once --json` lists them), plus netlatd's
support hooks, one program per hook, and leaves none of them loaded after SIGTERM.

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

    before = set(floor_programs())
    proc = subprocess.Popen([floor], stdout=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if lines[-1] == 'ready':
            break
    hooks = {kind: [l.split(': ', 1)[1] for l in lines if l.startswith(f'{kind} hook: ')]
             for kind in ('stage', 'support')}
    loaded = set(floor_programs()) - before
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
    print(f'netlat-floor: {len(hooks["stage"])} stage hooks (as netlatd: '
          f'{"yes" if set(hooks["stage"]) == netlatd_hooks else "NO"}), '
          f'{len(hooks["support"])} support hooks, {len(loaded)} programs, exit {exit_code}')
    for f in failures:
        print('FAIL:', f)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
