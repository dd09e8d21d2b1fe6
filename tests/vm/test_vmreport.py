#!/usr/bin/python3
"""Unit tests of vmreport.py: Prometheus parsing, bucket medians, and that every acceptance
check fails when it should. Runs on the host with no VM (python3 -m unittest)."""

import bisect
import json
import os
import shutil
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


def metrics(scale, tx_us=20.0, rx_us=40.0, skip=(), disabled=(), t2s_us=None, mode="kprobe"):
    """Cumulative scrape after `scale` runs of 100 messages each."""
    lines = []
    for proto in ("tcp", "udp"):
        for d, segs, center in (("tx", vmreport.TX_SEGMENTS, tx_us), ("rx", vmreport.RX_SEGMENTS,
                                                                      rx_us)):
            for s in segs:
                if (d, s, proto) in skip:
                    continue
                if s == "transport_to_socket" and t2s_us is not None:
                    center = t2s_us
                vals = [center * 1e-6 * (0.9 + 0.2 * i / 99) for i in range(100)] * scale
                lines += hist_lines(d, s, proto, vals)
    for d, stages in (("tx", vmreport.TX_STAGES), ("rx", vmreport.RX_STAGES)):
        for st in stages:
            smode = "none" if (d, st) in disabled else mode
            lines.append(f'netlatd_stage_info{{direction="{d}",stage="{st}",hook="h",'
                         f'mode="{smode}"}} 1')
    return "\n".join(lines) + "\n"


def load_doc(case, tx_us, rx_us):
    """netlat-load --json layout: the server-side figures the test compares with, and the
    opposite direction (which netlatd, filtered on the server port, does not see) far off."""
    def dist(v):
        return {"count": 100, "missing": 0, "p50_us": v}
    return {"proto": case[:3], "rx_stamp_point": "ip_local_deliver" if case.startswith("tcp")
            else "netif_rx",
            "tx_driver": dist(999.0), "rx": dist(999.0),
            "client_to_server": {"tx_side": "client", "rx_side": "server",
                                 "tx_driver": dist(999.0), "rx": dist(rx_us)},
            "server_to_client": {"tx_side": "server", "rx_side": "client",
                                 "tx_driver": dist(tx_us), "rx": dist(999.0)}}


def hook_mode(m):
    return {"fentry": "fentry", "tracepoint": "tracepoint"}.get(m, "kprobe")


def make_run(root, modes=("kprobe", "fentry", "tracepoint", "auto"), exit_code=0,
             load_tx=20.0, load_rx=40.0, skip=(), disabled=(), log="started\n", t2s_us=None):
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
        kw = {"skip": skip, "disabled": disabled, "t2s_us": t2s_us, "mode": hook_mode(m)}
        w("metrics-00-start.txt", metrics(0, **kw))
        for i, c in enumerate(cases, 1):
            w(f"metrics-0{i}-{c}.txt", metrics(i, **kw))
            w(f"load-{c}.json", json.dumps(load_doc(c, load_tx, load_rx)))
        w("metrics-final.txt", metrics(4, **kw))
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
        self.assertTrue(any("accuracy (strict) tcp4 tx total" in f for f in failures), failures)

    def test_two_microseconds_floor(self):
        make_run(self.root, load_tx=18.5)  # 1.5 us off: under 10% and under 2 us
        _, failures = analyse(self.root)
        self.assertEqual(failures, [])

    def _baseline(self, tx_us, rx_us=40.0):
        os.makedirs(os.path.join(self.root, "files", "baseline"), exist_ok=True)
        base = {}
        for c in ("tcp4", "tcp6", "udp4", "udp6"):
            base[c] = vmreport.load_medians(load_doc(c, tx_us, rx_us))
        return base

    def _kprobe(self):
        return [vmreport.analyse_mode(os.path.join(self.root, "files", "kprobe"), "kprobe",
                                      ["tcp4", "tcp6", "udp4", "udp6"])]

    def test_bracket_policy_allows_probe_cost(self):
        make_run(self.root, load_tx=30.0)  # with probes 30 us, netlatd ~20 us
        base = self._baseline(15.0)  # without netlatd 15 us: netlatd moved its ground truth
        res = self._kprobe()
        try:
            vmreport.ACCURACY_POLICY = "bracket"
            self.assertEqual(vmreport.check(res, ["kprobe"], base), [])
            base["tcp4"]["tx"] = (25.0, 100, "x")  # netlatd 20 < 25 - 2.5: outside
            self.assertTrue(any("accuracy (bracket) tcp4 tx" in f
                                for f in vmreport.check(res, ["kprobe"], base)))
        finally:
            vmreport.ACCURACY_POLICY = "strict"

    def test_bracket_is_strict_where_netlatd_does_not_move_the_ground_truth(self):
        make_run(self.root, load_tx=30.0)  # netlatd ~20 us, 10 us off
        base = self._baseline(29.0)  # netlat-load barely moves with netlatd loaded: no excuse
        res = self._kprobe()
        try:
            vmreport.ACCURACY_POLICY = "bracket"
            failures = vmreport.check(res, ["kprobe"], base)
            self.assertTrue(any("accuracy (bracket) tcp4 tx" in f for f in failures), failures)
        finally:
            vmreport.ACCURACY_POLICY = "strict"

    def test_bracket_widens_by_a_rise_under_the_tolerance(self):
        # No cliff at the tolerance: netlat-load rose 1.5 us (under its 2.25 us tolerance) with
        # netlatd loaded; netlatd (~20 us) is 2.5 us under 22.5 (strict fails) but within the
        # tolerance of the 21 us without netlatd.
        make_run(self.root, load_tx=22.5)
        base = self._baseline(21.0)
        res = self._kprobe()
        try:
            vmreport.ACCURACY_POLICY = "bracket"
            self.assertFalse(any("tcp4 tx" in f for f in vmreport.check(res, ["kprobe"], base)))
            vmreport.ACCURACY_POLICY = "strict"
            self.assertTrue(any("tcp4 tx" in f for f in vmreport.check(res, ["kprobe"], base)))
        finally:
            vmreport.ACCURACY_POLICY = "strict"

    def test_baseline_is_the_lower_of_the_runs_before_and_after(self):
        for d, tx in (("baseline", 29.0), ("baseline-after", 15.0)):
            os.makedirs(os.path.join(self.root, "files", d), exist_ok=True)
            for c in ("tcp4", "tcp6", "udp4", "udp6"):
                with open(os.path.join(self.root, "files", d, f"load-{c}.json"), "w") as f:
                    json.dump(load_doc(c, tx, 40.0 if d == "baseline" else 50.0), f)
        base = vmreport.read_baselines(os.path.join(self.root, "files"), ["tcp4", "udp6"])
        self.assertEqual(base["tcp4"]["tx"][0], 15.0)
        self.assertEqual(base["udp6"]["rx"][0], 40.0)
        # Either run alone is enough.
        shutil.rmtree(os.path.join(self.root, "files", "baseline-after"))
        base = vmreport.read_baselines(os.path.join(self.root, "files"), ["tcp4"])
        self.assertEqual(base["tcp4"]["tx"][0], 29.0)

    def test_both_verdicts_in_report(self):
        make_run(self.root, load_tx=30.0)
        base = self._baseline(15.0)
        res = self._kprobe()
        md = vmreport.report_md({"kernel": "6.1"}, res, ["kprobe"], [], {}, (), base)
        self.assertIn("- strict: 4 of 8 accuracy checks hold (enforced)", md)
        self.assertIn("- bracket: 8 of 8 accuracy checks hold (reported only)", md)
        self.assertIn("strict fails: kprobe tcp4 tx total", md)

    def test_rx_segment_follows_stamp_point(self):
        # TCP stamps at ip_local_deliver: netlatd's rx transport_to_socket (25 us) is what
        # netlat-load's 25 us means, not rx total (40 us). UDP keeps rx total.
        make_run(self.root, load_rx=25.0, t2s_us=25.0)
        res, failures = analyse(self.root)
        self.assertTrue(any("udp4 rx total" in f for f in failures), failures)
        self.assertFalse(any("tcp4 rx" in f for f in failures), failures)
        runs = {r["case"]: r for r in res[0]["runs"]}
        self.assertEqual(runs["tcp4"]["segment_rx"], "transport_to_socket")
        self.assertEqual(runs["udp6"]["segment_rx"], "total")

    def test_tx_is_server_to_client(self):
        doc = load_doc("tcp4", 7.0, 30.0)
        m = vmreport.load_medians(doc)
        self.assertEqual(m["tx"][0], 7.0)
        self.assertEqual(m["rx"][0], 30.0)
        self.assertEqual(m["rx_stamp_point"], "ip_local_deliver")

    def test_disabled_stage_needs_a_reason_in_the_log(self):
        make_run(self.root, disabled={("tx", "transport")}, log="started\n")
        _, failures = analyse(self.root)
        self.assertTrue(any("disabled but netlatd's log gives no reason" in f for f in failures))

    def test_disabled_stage_with_its_reason_passes(self):
        make_run(self.root, disabled={("tx", "transport")},
                 log="warning stage tx/transport: disabled: kernel lacks tracepoint x\n")
        _, failures = analyse(self.root)
        self.assertEqual(failures, [])

    def test_each_disabled_stage_needs_its_own_reason(self):
        make_run(self.root, disabled={("tx", "transport"), ("rx", "queued")},
                 log="warning stage tx/transport: disabled: kernel lacks tracepoint x\n")
        _, failures = analyse(self.root)
        self.assertTrue(any("stage rx/queued disabled without a reason" in f for f in failures),
                        failures)

    def test_a_faster_run_with_netlatd_excuses_nothing(self):
        make_run(self.root, load_tx=30.0)  # netlatd ~20 us
        base = self._baseline(45.0)  # netlat-load slower WITHOUT netlatd: not netlatd's cost
        res = self._kprobe()
        try:
            vmreport.ACCURACY_POLICY = "bracket"
            failures = vmreport.check(res, ["kprobe"], base)
            self.assertTrue(any("accuracy (bracket) tcp4 tx" in f for f in failures), failures)
        finally:
            vmreport.ACCURACY_POLICY = "strict"

    def test_stage_info_per_protocol_is_merged(self):
        text = ('netlatd_stage_info{direction="tx",hook="udp:none",mode="none",'
                'stage="transport"} 1\n'
                'netlatd_stage_info{direction="tx",hook="tcp_sendmsg_locked",mode="tracepoint",'
                'stage="transport"} 1\n')
        info = vmreport.stage_info(vmreport.parse_prom(text))
        self.assertEqual(info[("tx", "transport")]["mode"], "tracepoint")
        self.assertIn("udp:none", info[("tx", "transport")]["hook"])

    def test_forced_mode_must_not_fall_back(self):
        make_run(self.root)
        path = os.path.join(self.root, "files", "fentry", "metrics-final.txt")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace('stage="socket",hook="h",mode="fentry"',
                                 'stage="socket",hook="h",mode="kprobe"'))
        _, failures = analyse(self.root)
        self.assertTrue(any("fentry: stage" in f and "uses mode kprobe" in f for f in failures),
                        failures)

    def test_receive_tracepoints_are_taken_in_every_mode(self):
        make_run(self.root)
        path = os.path.join(self.root, "files", "kprobe", "metrics-final.txt")
        with open(path) as f:
            text = f.read()
        for stage in ("driver", "device"):
            text = text.replace(f'direction="rx",stage="{stage}",hook="h",mode="kprobe"',
                                f'direction="rx",stage="{stage}",hook="h",mode="tracepoint"')
        text = text.replace('direction="tx",stage="driver",hook="h",mode="kprobe"',
                            'direction="tx",stage="driver",hook="h",mode="tracepoint"')
        with open(path, "w") as f:
            f.write(text)
        _, failures = analyse(self.root)
        self.assertFalse(any("kprobe: stage rx/" in f for f in failures), failures)
        self.assertTrue(any("kprobe: stage tx/driver uses mode tracepoint" in f for f in failures),
                        failures)

    def test_missing_mode_fails(self):
        make_run(self.root, modes=("kprobe", "fentry", "auto"))
        _, failures = analyse(self.root)
        self.assertIn("tracepoint: no results came back from the VM", failures)


class VerifyTest(unittest.TestCase):
    """bpf-verify's output: each program's verdict and the verifier's work, over budget failing."""

    def parse(self, text):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "verify.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return vmreport.parse_verify(path)

    def test_a_program_over_the_budget_fails_the_run(self):
        v = self.parse("ok   tp_a (tp_btf/a): 1200 insns processed\n"
                       "OVER kp_b (kprobe/b): 250000 insns processed\n"
                       "bpf-verify: 2 loaded, 0 failed, 0 skipped, 1 over the budget of 200000 insns\n")
        self.assertEqual([(n, st) for n, _, st, _ in v], [("tp_a", "ok"), ("kp_b", "OVER")])
        failures = vmreport.verify_failures(v)
        self.assertEqual(len(failures), 1)
        self.assertIn("kp_b (kprobe/b): 250000 insns processed", failures[0])

    def test_within_the_budget_and_refused_programs_are_not_budget_failures(self):
        v = self.parse("ok   tp_a (tp_btf/a): 1200 insns processed\n"
                       "FAIL fe_c (fentry/c): Operation not permitted\n--- verifier log (tail) ---\n"
                       "attach to unsupported member\n---\n")
        self.assertEqual(vmreport.verify_failures(v), [])
        self.assertEqual(v[1][3], "attach to unsupported member")


if __name__ == "__main__":
    unittest.main()
