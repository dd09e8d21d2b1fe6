#!/usr/bin/env python3
"""Runs the real netlat-load binary: loopback and veth, TCP and UDP, IPv4 and IPv6; checks its
figures are complete and plausible, that the veth topology is gone after success, failure,
SIGINT, SIGTERM and (with --cleanup) SIGKILL, and where the kernel takes the RX stamps.

usage: netlat_load_test.py --binary PATH [unittest args, e.g. a TestCase name]
"""
import argparse
import bisect
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BINARY = None
NETNS_DIR = "/run/netns"


def run(*args, env=None, timeout=120):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def run_json(*args, **kw):
    r = run("--json", *args, **kw)
    if r.returncode != 0:
        raise AssertionError(f"netlat-load {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return json.loads(r.stdout)


def namespaces_of(pid):
    if not os.path.isdir(NETNS_DIR):
        return []
    return [n for n in os.listdir(NETNS_DIR) if n.startswith(f"netlat-load-{pid}-")]


def links_of(pid):
    out = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if f"nl-{pid}-" in line]


def require_root(test):
    if os.geteuid() != 0:
        test.fail("needs root (network namespaces, veth, tracefs); CI runs this as root")


class Checks(unittest.TestCase):
    def check_complete(self, j, count, label):
        """Every measured message has all three figures, each plausible."""
        directions = ["client_to_server"] + (["server_to_client"] if j["mode"] == "rr" else [])
        for name in directions:
            d = j[name]
            self.assertEqual(d["sent"], count, f"{label} {name} sent")
            self.assertEqual(d["received"], count, f"{label} {name} received")
            self.assertEqual(d["lost"], 0, f"{label} {name} lost")
            for fig in ("tx_sched", "tx_driver", "rx"):
                s = d[fig]
                self.assertEqual(s["missing"], 0, f"{label} {name} {fig} missing")
                self.assertEqual(s["count"] + s.get("merged", 0), count, f"{label} {name} {fig}")
                self.assertGreater(s["p50_us"], 0, f"{label} {name} {fig} p50")
                self.assertLess(s["p50_us"], 10000, f"{label} {name} {fig} p50")
                self.assertLessEqual(s["p50_us"], s["p90_us"])
                self.assertLessEqual(s["p90_us"], s["p99_us"])
            # The driver takes the packet after the qdisc: per message, so also at the median.
            self.assertLessEqual(d["tx_sched"]["p50_us"], d["tx_driver"]["p50_us"], label)
            self.assertLess(d["rx"]["p50_us"], d["send_to_recv"]["p50_us"], label)


class Loopback(Checks):
    def test_matrix(self):
        for proto in ("tcp", "udp"):
            for family in ("4", "6"):
                for mode in ("rr", "oneway"):
                    label = f"{proto}/{family}/{mode}"
                    with self.subTest(label):
                        j = run_json("--proto", proto, "--family", family, "--mode", mode,
                                     "--count", "300", "--rate", "2000")
                        self.assertEqual((j["proto"], j["family"], j["topology"]),
                                         (proto, int(family), "loopback"))
                        self.check_complete(j, 300, label)
                        if mode == "rr":
                            self.assertEqual(j["rtt"]["count"], 300)

    def test_sleep_before_read_shifts_rx_by_at_least_the_sleep(self):
        base = run_json("--proto", "udp", "--count", "200", "--rate", "200")
        slow = run_json("--proto", "udp", "--count", "200", "--rate", "200",
                        "--sleep-before-read", "1000")
        b = base["client_to_server"]["rx"]
        s = slow["client_to_server"]["rx"]
        self.assertGreaterEqual(s["min_us"], 1000)
        self.assertGreaterEqual(s["p50_us"] - b["p50_us"], 900)
        # The sender's figures do not move.
        self.assertLess(slow["client_to_server"]["tx_driver"]["p50_us"], 1000)

    def test_samples_file_has_every_message_in_time_order(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "samples.csv")
            run_json("--count", "100", "--warmup", "5", "--samples", path)
            with open(path) as f:
                rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 2 * 105)
        for row in rows:
            t = {k: int(row[k]) for k in ("send_ns", "sched_ns", "driver_ns", "rx_kernel_ns",
                                          "recv_ns")}
            self.assertLessEqual(t["send_ns"], t["sched_ns"], row)
            self.assertLessEqual(t["sched_ns"], t["driver_ns"], row)
            self.assertLessEqual(t["rx_kernel_ns"], t["recv_ns"], row)
            self.assertLessEqual(t["driver_ns"], t["recv_ns"], row)
        self.assertEqual(sum(r["warmup"] == "1" for r in rows), 10)

    def test_separate_server_and_client_processes(self):
        port = "19877"
        server = subprocess.Popen([BINARY, "--role", "server", "--port", port, "--proto", "udp",
                                   "--family", "6", "--json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 5
            while b"listening" not in (line := server.stderr.readline().encode()):
                self.assertLess(time.time(), deadline, "server did not start")
            client = run_json("--role", "client", "--port", port, "--proto", "udp", "--family",
                              "6", "--count", "200")
            out, err = server.communicate(timeout=10)
        finally:
            server.kill()
        self.assertEqual(server.returncode, 0, err)
        srv = json.loads(out)
        self.assertEqual(client["client_to_server"]["tx_driver"]["count"], 200)
        self.assertIsNone(client["client_to_server"]["rx"])
        self.assertEqual(client["server_to_client"]["rx"]["count"], 200)
        self.assertEqual(srv["client_to_server"]["rx"]["count"], 200)
        self.assertEqual(srv["server_to_client"]["tx_driver"]["count"], 200)
        self.assertIsNone(srv["client_to_server"]["tx_sched"])

    def test_bad_command_lines_exit_2_with_one_line(self):
        for args in (["--proto", "sctp"], ["--count", "-3"], ["--size", "8"], ["--what"],
                     ["--role", "server"], ["--topology", "veth", "--role", "client",
                                            "--port", "1"]):
            with self.subTest(args=args):
                r = run(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertEqual(r.stdout, "")


class Veth(Checks):
    def setUp(self):
        require_root(self)

    def test_matrix_and_nothing_left_behind(self):
        for proto in ("tcp", "udp"):
            for family in ("4", "6"):
                label = f"veth {proto}/{family}"
                with self.subTest(label):
                    p = subprocess.Popen([BINARY, "--json", "--topology", "veth", "--proto", proto,
                                          "--family", family, "--count", "300", "--rate", "2000"],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
                    out, err = p.communicate(timeout=60)
                    self.assertEqual(p.returncode, 0, err)
                    self.check_complete(json.loads(out), 300, label)
                    self.assertEqual(namespaces_of(p.pid), [])
                    self.assertEqual(links_of(p.pid), [])

    def interrupt_mid_run(self, sig):
        p = subprocess.Popen([BINARY, "--json", "--topology", "veth", "--proto", "udp",
                              "--duration", "60"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while len(namespaces_of(p.pid)) < 2:
            self.assertIsNone(p.poll(), "exited before the topology was up")
            self.assertLess(time.time(), deadline, "topology did not appear")
            time.sleep(0.05)
        time.sleep(1)
        p.send_signal(sig)
        out, err = p.communicate(timeout=15)
        self.assertEqual(p.returncode, 130, err)
        self.assertEqual(namespaces_of(p.pid), [])
        self.assertEqual(links_of(p.pid), [])
        j = json.loads(out)
        self.assertTrue(j["interrupted"])
        self.assertGreater(j["client_to_server"]["tx_driver"]["count"], 100)

    def test_sigint_removes_the_topology(self):
        self.interrupt_mid_run(signal.SIGINT)

    def test_sigterm_removes_the_topology(self):
        self.interrupt_mid_run(signal.SIGTERM)

    def test_failure_removes_the_topology(self):
        env = dict(os.environ, NETLAT_LOAD_TEST_FAIL="client")
        p = subprocess.Popen([BINARY, "--topology", "veth", "--count", "100"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("injected failure", err)
        self.assertEqual(namespaces_of(p.pid), [])

    def test_cleanup_after_sigkill(self):
        p = subprocess.Popen([BINARY, "--topology", "veth", "--duration", "60"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while len(namespaces_of(p.pid)) < 2:
            self.assertLess(time.time(), deadline, "topology did not appear")
            time.sleep(0.05)
        p.kill()
        p.wait()
        self.assertEqual(len(namespaces_of(p.pid)), 2)  # SIGKILL cannot be handled
        r = run("--cleanup")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"netlat-load-{p.pid}-a", r.stdout)
        self.assertEqual(namespaces_of(p.pid), [])


class RxStampPoint(unittest.TestCase):
    """Where the kernel takes SO_TIMESTAMPING's RX software stamp, seen against tracepoints:
    UDP at netif_rx (before the backlog is processed), TCP only when IP hands the packet to TCP
    (after __netif_receive_skb, before tcp_rcv_established). netlat-load reports it as
    rx_stamp_point."""

    TRACEFS = "/sys/kernel/tracing"

    def setUp(self):
        require_root(self)
        if not os.path.isdir(os.path.join(self.TRACEFS, "instances")):
            self.fail(f"tracefs is not mounted at {self.TRACEFS}: ctest runs this test through "
                      "tests/common/with-tracefs.sh, which mounts it in a private mount namespace")

    @staticmethod
    def realtime_minus_monotonic():
        best = None
        for _ in range(200):
            a = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            r = time.clock_gettime_ns(time.CLOCK_REALTIME)
            b = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            if best is None or b - a < best[0]:
                best = (b - a, r - (a + b) // 2)
        return best[1]

    def trace_run(self, proto, events):
        inst = os.path.join(self.TRACEFS, "instances", f"netlat-load-test-{os.getpid()}")
        os.mkdir(inst)
        try:
            def write(path, value):
                with open(os.path.join(inst, path), "w") as f:
                    f.write(value)
            write("trace_clock", "mono")
            write("options/raw", "1")  # "pid cpu ns type: id": nanoseconds, not microseconds
            ids = {}
            for e in events:
                with open(os.path.join(self.TRACEFS, "events", e, "id")) as f:
                    ids[f.read().strip()] = e.split("/")[1]
                write(f"events/{e}/enable", "1")
            with tempfile.TemporaryDirectory() as tmp:
                samples = os.path.join(tmp, "s.csv")
                j = run_json("--topology", "veth", "--proto", proto, "--count", "200",
                             "--rate", "100", "--samples", samples)
                with open(samples) as f:
                    stamps = [int(r["rx_kernel_ns"]) for r in csv.DictReader(f)
                              if r["rx_kernel_ns"] and r["warmup"] == "0"]
            write("tracing_on", "0")
            with open(os.path.join(inst, "trace")) as f:
                text = f.read()
            for e in events:
                write(f"events/{e}/enable", "0")
        finally:
            os.rmdir(inst)
        times = {name: [] for name in ids.values()}
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 5 and fields[3] == "type:" and fields[4] in ids:
                times[ids[fields[4]]].append(int(fields[2]))
        return j, stamps, {k: sorted(v) for k, v in times.items()}

    def fraction_between(self, stamps, before, after):
        """Share of stamps with a `before` event at most 1 ms earlier and no `after` event
        between that one and the stamp."""
        offset = self.realtime_minus_monotonic()
        good = 0
        for s in stamps:
            m = s - offset
            i = bisect.bisect_right(before, m) - 1
            if i < 0 or m - before[i] > 1_000_000:
                continue
            k = bisect.bisect_right(after, before[i])
            if k < len(after) and after[k] < m:
                continue
            good += 1
        return good / len(stamps)

    def test_udp_stamp_is_taken_at_netif_rx(self):
        j, stamps, t = self.trace_run("udp", ["net/netif_rx_entry", "net/netif_receive_skb"])
        self.assertEqual(j["rx_stamp_point"], "netif_rx")
        self.assertGreaterEqual(len(stamps), 300)
        # stamp after netif_rx entry and before that packet reaches __netif_receive_skb
        self.assertGreater(self.fraction_between(stamps, t["netif_rx_entry"],
                                                 t["netif_receive_skb"]), 0.9)

    def test_tcp_stamp_is_taken_when_ip_hands_the_packet_to_tcp(self):
        j, stamps, t = self.trace_run("tcp", ["net/netif_receive_skb", "tcp/tcp_probe"])
        self.assertEqual(j["rx_stamp_point"], "ip_local_deliver")
        self.assertGreaterEqual(len(stamps), 300)
        # stamp after __netif_receive_skb and before tcp_rcv_established (tcp_probe)
        self.assertGreater(self.fraction_between(stamps, t["netif_receive_skb"],
                                                 t["tcp_probe"]), 0.9)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    args, rest = parser.parse_known_args()
    BINARY = os.path.abspath(args.binary)
    unittest.main(argv=[sys.argv[0], "-v", *rest])
