#!/usr/bin/python3
"""Unit tests of vmreport.py: Prometheus parsing, bucket medians, and that every acceptance
check fails when it should. Runs on the host with no VM (python3 -m unittest)."""

import bisect
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmreport  # noqa: E402

STEP = 2 ** (1 / 16)


def hist_lines(direction, segment, proto, values_s, n_buckets=200, lo=1e-7):
    """Prometheus text of one histogram holding values_s, buckets lo * 2^(k/16)."""
    lab = f'direction="{direction}",segment="{segment}",protocol="{proto}"'
    out, le, vals = [], lo, sorted(values_s)
    for _ in range(n_buckets):
        c = bisect.bisect_right(vals, le)
        out.append(f'netlatd_stack_latency_seconds_bucket{{{lab},le="{le:.9g}"}} {c}')
        le *= STEP
    out.append(f'netlatd_stack_latency_seconds_bucket{{{lab},le="+Inf"}} {len(values_s)}')
    out.append(f"netlatd_stack_latency_seconds_sum{{{lab}}} {sum(values_s)}")
    out.append(f"netlatd_stack_latency_seconds_count{{{lab}}} {len(values_s)}")
    return out


def metrics(scale, tx_us=20.0, rx_us=40.0, skip=(), disabled=()):
    """Cumulative scrape after `scale` runs of 100 messages each."""
    lines = []
    for proto in ("tcp", "udp"):
        for d, segs, center in (("tx", vmreport.TX_SEGMENTS, tx_us), ("rx", vmreport.RX_SEGMENTS,
                                                                      rx_us)):
            for s in segs:
                if (d, s, proto) in skip:
                    continue
                vals = [center * 1e-6 * (0.9 + 0.2 * i / 99) for i in range(100)] * scale
                lines += hist_lines(d, s, proto, vals)
    for d, stages in (("tx", vmreport.TX_STAGES), ("rx", vmreport.RX_STAGES)):
        for st in stages:
            mode = "none" if (d, st) in disabled else "kprobe"
            lines.append(f'netlatd_stage_info{{direction="{d}",stage="{st}",hook="h",'
                         f'mode="{mode}"}} 1')
    return "\n".join(lines) + "\n"


def make_run(root, modes=("kprobe", "fentry", "tracepoint", "auto"), exit_code=0,
             load_tx=20.0, load_rx=40.0, skip=(), disabled=(), log="started\n"):
    cases = ["tcp4", "tcp6", "udp4", "udp6"]
    os.makedirs(os.path.join(root, "files", "meta"))
    with open(os.path.join(root, "files", "meta", "meta.txt"), "w") as f:
        f.write("kernel=6.1.0-test\nnetlatd_version=netlatd 0.1.0\n")
    for m in modes:
        d = os.path.join(root, "files", m)
        os.makedirs(d)

        def w(name, text, d=d):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        w("status.txt", f"up=yes\nrunning_at_stop=yes\nexit_code={exit_code}\n")
        w("timing.txt", "start_seconds=5.0\n" +
          "".join(f"load_{c} rc=0 seconds=1.0\n" for c in cases) +
          "stop_seconds=0.3\nmode_seconds=20\n")
        w("netlatd.log", log)
        w("metrics-00-start.txt", metrics(0, skip=skip, disabled=disabled))
        for i, c in enumerate(cases, 1):
            w(f"metrics-0{i}-{c}.txt", metrics(i, skip=skip, disabled=disabled))
            w(f"load-{c}.json", json.dumps({"client": {"tx": {"count": 100, "p50_us": load_tx}},
                                            "server": {"rx": {"count": 100, "p50_us": load_rx}}}))
        w("metrics-final.txt", metrics(4, skip=skip, disabled=disabled))
    return cases


def analyse(root, modes=("kprobe", "fentry", "tracepoint", "auto")):
    cases = ["tcp4", "tcp6", "udp4", "udp6"]
    res = [vmreport.analyse_mode(os.path.join(root, "files", m), m, cases) for m in modes]
    return res, vmreport.check(res, list(modes))


class ParseTest(unittest.TestCase):
    def test_labels_and_values(self):
        s = vmreport.parse_prom('# HELP x y\nfoo{a="1",b="x\\"y"} 3.5\nbar 2\n')
        self.assertEqual(s, [("foo", {"a": "1", "b": 'x"y'}, 3.5), ("bar", {}, 2.0)])

    def test_median_interpolates_within_bucket(self):
        vals = [20e-6 * (0.9 + 0.2 * i / 999) for i in range(1000)]
        h = vmreport.histograms(vmreport.parse_prom("\n".join(hist_lines("tx", "total", "tcp",
                                                                          vals))))
        med = h[("tx", "total", "tcp")].quantile(0.5)
        self.assertAlmostEqual(med * 1e6, 20.0, delta=20.0 / 32)  # within half a bucket

    def test_extra_labels_are_summed(self):
        text = ('netlatd_stack_latency_seconds_count{direction="tx",segment="total",'
                'protocol="tcp",family="4"} 3\n'
                'netlatd_stack_latency_seconds_count{direction="tx",segment="total",'
                'protocol="tcp",family="6"} 4\n')
        h = vmreport.histograms(vmreport.parse_prom(text))
        self.assertEqual(h[("tx", "total", "tcp")].count, 7)

    def test_load_medians_netlat_load_layout(self):
        doc = {"tool": "netlat-load", "tx_sched": {"count": 400, "p50_us": 2.6},
               "tx_driver": {"count": 400, "p50_us": 3.2}, "rx": {"count": 400, "p50_us": 15.0},
               "client_to_server": {"tx_driver": {"count": 200, "p50_us": 6.7}}}
        m = vmreport.load_medians(doc)
        self.assertEqual(m["tx"][:2], (3.2, 400))
        self.assertEqual(m["rx"][:2], (15.0, 400))

    def test_load_medians_search(self):
        doc = {"tx": {"send_to_driver": {"count": 5, "p50_us": 12.5}},
               "rx": {"driver_to_recv": {"count": 5, "p50_us": 30.0}}}
        m = vmreport.load_medians(doc)
        self.assertEqual(m["tx"][0], 12.5)
        self.assertEqual(m["rx"][0], 30.0)


class CheckTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_good_run_passes(self):
        make_run(self.root)
        res, failures = analyse(self.root)
        self.assertEqual(failures, [])
        runs = res[0]["runs"]
        self.assertEqual(len(runs), 4)
        self.assertAlmostEqual(runs[0]["netlatd_tx"][0], 20.0, delta=1.0)
        self.assertEqual(runs[0]["netlatd_tx"][1], 100)  # per-run diff, not cumulative
        md = vmreport.report_md({"kernel": "6.1.0-test"}, res, ["kprobe", "fentry", "tracepoint",
                                                                "auto"], failures, {})
        self.assertIn("All checks passed.", md)

    def test_missing_segment_fails(self):
        make_run(self.root, skip={("rx", "transport_to_queued", "tcp")})
        _, failures = analyse(self.root)
        self.assertIn("kprobe: no observations for rx/transport_to_queued/tcp", failures)

    def test_nonzero_exit_fails(self):
        make_run(self.root, exit_code=1)
        _, failures = analyse(self.root)
        self.assertTrue(any("exit code 1 on SIGTERM" in f for f in failures))

    def test_inaccurate_median_fails(self):
        make_run(self.root, load_tx=30.0)  # netlatd says ~20 us
        _, failures = analyse(self.root)
        self.assertTrue(any("accuracy (strict) tcp4 tx" in f for f in failures), failures)

    def test_two_microseconds_floor(self):
        make_run(self.root, load_tx=18.5)  # 1.5 us off: under 10% and under 2 us
        _, failures = analyse(self.root)
        self.assertEqual(failures, [])

    def test_bracket_policy_allows_probe_cost(self):
        make_run(self.root, load_tx=30.0)  # with probes 30 us, netlatd ~20 us
        os.makedirs(os.path.join(self.root, "files", "baseline"))
        for c in ("tcp4", "tcp6", "udp4", "udp6"):
            with open(os.path.join(self.root, "files", "baseline", f"load-{c}.json"), "w") as f:
                json.dump({"tx_driver": {"count": 100, "p50_us": 15.0},
                           "rx": {"count": 100, "p50_us": 40.0}}, f)
        base = {c: vmreport.load_medians(vmreport.read_json(os.path.join(
            self.root, "files", "baseline", f"load-{c}.json"))[0])
            for c in ("tcp4", "tcp6", "udp4", "udp6")}
        res = [vmreport.analyse_mode(os.path.join(self.root, "files", m), m,
                                     ["tcp4", "tcp6", "udp4", "udp6"]) for m in ("kprobe",)]
        try:
            vmreport.ACCURACY_POLICY = "bracket"
            self.assertEqual(vmreport.check(res, ["kprobe"], base), [])
            base["tcp4"]["tx"] = (25.0, 100, "x")  # netlatd 20 < 25 - 2.5: outside
            self.assertTrue(any("accuracy (bracket) tcp4 tx" in f
                                for f in vmreport.check(res, ["kprobe"], base)))
        finally:
            vmreport.ACCURACY_POLICY = "strict"

    def test_disabled_stage_needs_a_reason_in_the_log(self):
        make_run(self.root, disabled={("tx", "transport")}, log="started\n")
        _, failures = analyse(self.root)
        self.assertTrue(any("disabled but netlatd's log gives no reason" in f for f in failures))

    def test_missing_mode_fails(self):
        make_run(self.root, modes=("kprobe", "fentry", "auto"))
        _, failures = analyse(self.root)
        self.assertIn("tracepoint: no results came back from the VM", failures)


if __name__ == "__main__":
    unittest.main()
