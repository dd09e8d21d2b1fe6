#!/usr/bin/python3
"""Helpers shared by the packaging and e2e tests (Python stdlib only).

  netlat_probe.py wait URL [TIMEOUT_S]         wait until URL answers 200 (exit 1 on timeout)
  netlat_probe.py summary URL [WAIT_S]         print a JSON summary of netlatd's /metrics (waiting
                                               up to WAIT_S for the stage info to appear)
  netlat_probe.py traffic SECONDS [HOST]       bounded TCP + UDP request/response traffic on loopback
  netlat_probe.py free-port                    print a free TCP port on 127.0.0.1
"""
import json
import re
import socket
import sys
import threading
import time
import urllib.request

# Loopback scrapes never go through a proxy set in the environment (http_proxy).
urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({})))

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text):
    """Yield (name, labels dict, value) for each sample of a Prometheus text exposition."""
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise ValueError(f'unparsable exposition line: {line!r}')
        labels = dict(LABEL_RE.findall(m.group(3) or ''))
        yield m.group(1), labels, float(m.group(4))


def fetch(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


def wait(url, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            status, _ = fetch(url, timeout=2.0)
            if status == 200:
                return True
            last = f'HTTP {status}'
        except OSError as e:
            last = str(e)
        time.sleep(0.2)
    print(f'wait: {url} not ready after {timeout_s}s: {last}', file=sys.stderr)
    return False


def summary(url):
    """Stages attached, latency sample counts and self-metrics, as one JSON object."""
    _, text = fetch(url)
    stages = []
    counts = {}
    program_runs = 0.0
    program_seconds = 0.0
    names = set()
    for name, labels, value in parse_exposition(text):
        names.add(name)
        if name == 'netlatd_stage_info' and value == 1:
            stages.append(f"{labels.get('direction')}/{labels.get('stage')}:{labels.get('mode')}")
        elif name == 'netlatd_stack_latency_seconds_count':
            key = f"{labels.get('direction')}/{labels.get('segment')}/{labels.get('protocol')}"
            counts[key] = counts.get(key, 0) + value
        elif name == 'netlatd_bpf_program_runs_total':
            program_runs += value
        elif name == 'netlatd_bpf_program_run_seconds_total':
            program_seconds += value
    return {
        'stages': sorted(stages),
        'stages_active': sorted(s for s in stages if not s.endswith(':none')),
        'latency_counts': counts,
        'bpf_program_runs': program_runs,
        'bpf_program_run_seconds': program_seconds,
        'metric_names': sorted(names),
    }


def _tcp_server(sock, stop):
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            continue
        with conn:
            conn.settimeout(0.5)
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                conn.sendall(data)


def _udp_server(sock, stop):
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(65536)
        except socket.timeout:
            continue
        sock.sendto(data, peer)


def traffic(seconds, host='127.0.0.1'):
    """Request/response over TCP and UDP for `seconds`; returns the number of round trips."""
    stop = threading.Event()
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((host, 0))
    tcp.listen(4)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((host, 0))
    threads = [threading.Thread(target=_tcp_server, args=(tcp, stop), daemon=True),
               threading.Thread(target=_udp_server, args=(udp, stop), daemon=True)]
    for t in threads:
        t.start()
    rounds = 0
    payload = b'x' * 512
    deadline = time.monotonic() + seconds
    try:
        with socket.create_connection(tcp.getsockname(), timeout=2.0) as c, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(2.0)
            while time.monotonic() < deadline:
                c.sendall(payload)
                got = 0
                while got < len(payload):
                    got += len(c.recv(65536))
                u.sendto(payload, udp.getsockname())
                u.recvfrom(65536)
                rounds += 1
                time.sleep(0.001)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=2.0)
        tcp.close()
        udp.close()
    return rounds


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == 'wait':
        return 0 if wait(argv[2], float(argv[3]) if len(argv) > 3 else 30.0) else 1
    if cmd == 'summary':
        deadline = time.monotonic() + (float(argv[3]) if len(argv) > 3 else 0)
        s = summary(argv[2])
        while not s['stages'] and time.monotonic() < deadline:
            time.sleep(0.2)
            s = summary(argv[2])
        print(json.dumps(s, indent=1, sort_keys=True))
        return 0
    if cmd == 'traffic':
        n = traffic(float(argv[2]), argv[3] if len(argv) > 3 else '127.0.0.1')
        print(f'traffic: {n} TCP+UDP round trips', file=sys.stderr)
        return 0 if n > 0 else 1
    if cmd == 'free-port':
        print(free_port())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
