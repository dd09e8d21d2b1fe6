#!/usr/bin/python3
"""Unit tests of pathsreport.py: each outcome of a case in the guest gets the right verdict, and
only passes and skips with a stated reason leave the test green. Host only, no VM."""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pathsreport  # noqa: E402

CASES = [("devices", "Devices.A"), ("calls", "Paths/Calls.B/Udp")]


def gtest_json(name, result="COMPLETED", failures=()):
    suite, case = name.rsplit(".", 1)
    entry = {"name": case, "status": "RUN", "result": result, "time": "1s"}
    if failures:
        entry["failures"] = [{"failure": f, "type": ""} for f in failures]
    return {"tests": 1, "testsuites": [{"name": suite, "testsuite": [entry]}]}


class Guest:
    """Fake run-vm.sh output folders: MODE/files/paths-MODE/{N.index, N.json, N.log}."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = self.tmp.name

    def case(self, mode, n, rc=0, leftovers="none", doc=None, log="", cases=CASES):
        d = os.path.join(self.out, mode, "files", f"paths-{mode}")
        os.makedirs(d, exist_ok=True)
        binary, filt = cases[n - 1]
        with open(os.path.join(d, f"{n}.index"), "w") as f:
            f.write(f"{n} rc={rc} seconds=12.5 leftovers={leftovers} {binary} {filt}\n")
        if doc is not None:
            with open(os.path.join(d, f"{n}.json"), "w") as f:
                json.dump(doc, f)
        with open(os.path.join(d, f"{n}.log"), "w") as f:
            f.write(log)

    def verdicts(self, modes=("kprobe",)):
        res = pathsreport.judge(self.out, CASES, list(modes))
        return {m: [(r[2], r[4]) for r in rows] for m, rows in res.items()}, res


class PathsReportTest(unittest.TestCase):
    def setUp(self):
        self.g = Guest()

    def tearDown(self):
        self.g.tmp.cleanup()

    def test_pass(self):
        for n, (_, name) in enumerate(CASES, 1):
            self.g.case("kprobe", n, doc=gtest_json(name))
        v, res = self.g.verdicts()
        self.assertEqual([x[0] for x in v["kprobe"]], [pathsreport.PASS] * 2)
        text, failed = pathsreport.render(res)
        self.assertEqual(failed, 0)
        self.assertIn("kprobe: 2 passed, 0 not runnable on this kernel, 0 failed, of 2", text)

    def test_failure_text_is_reported(self):
        self.g.case("kprobe", 1, rc=1, doc=gtest_json("Devices.A", failures=["299 samples for 300"]))
        self.g.case("kprobe", 2, doc=gtest_json("Paths/Calls.B/Udp"))
        v, res = self.g.verdicts()
        self.assertEqual(v["kprobe"][0], (pathsreport.FAIL, "299 samples for 300"))
        text, failed = pathsreport.render(res)
        self.assertEqual(failed, 1)
        self.assertIn("299 samples for 300", text)

    def test_nonzero_exit_with_passing_json_fails(self):
        self.g.case("kprobe", 1, rc=134, doc=gtest_json("Devices.A"), log="boom\n")
        self.assertEqual(self.g.verdicts()[0]["kprobe"][0][0], pathsreport.FAIL)

    def test_timeout_and_missing_json_and_not_run(self):
        self.g.case("kprobe", 1, rc=124, log="[ RUN      ] Devices.A\n")
        v, _ = self.g.verdicts()
        self.assertEqual(v["kprobe"][0][0], pathsreport.FAIL)
        self.assertIn("timed out", v["kprobe"][0][1])
        self.assertIn("[ RUN      ] Devices.A", v["kprobe"][0][1])
        self.assertIn("did not run", v["kprobe"][1][1])

    def test_leftovers_fail_a_passing_case(self):
        self.g.case("kprobe", 1, leftovers="netlatd,netns,", doc=gtest_json("Devices.A"))
        v, _ = self.g.verdicts()
        self.assertEqual(v["kprobe"][0], (pathsreport.FAIL, "left behind: netlatd,netns"))

    def test_skip_needs_a_reason(self):
        self.g.case("kprobe", 1, doc=gtest_json("Devices.A", result="SKIPPED"),
                    log="x.cpp:9: Skipped\n6.1 has no FOO (Linux 6.5+)\n[  SKIPPED ] Devices.A (0 ms)\n")
        self.g.case("kprobe", 2, doc=gtest_json("Paths/Calls.B/Udp", result="SKIPPED"),
                    log="x.cpp:9: Skipped\n\n[  SKIPPED ] Paths/Calls.B/Udp (0 ms)\n")
        v, res = self.g.verdicts()
        self.assertEqual(v["kprobe"][0], (pathsreport.SKIP, "6.1 has no FOO (Linux 6.5+)"))
        self.assertEqual(v["kprobe"][1][0], pathsreport.FAIL)
        self.assertEqual(pathsreport.render(res)[1], 1)

    def test_result_of_another_case_is_not_credited(self):
        # index line 1 names a different case than the list: not a pass
        self.g.case("kprobe", 1, doc=gtest_json("Other.X"), cases=[("devices", "Other.X")])
        self.assertIn("did not run", self.g.verdicts()[0]["kprobe"][0][1])

    def test_every_mode_is_judged(self):
        for n, (_, name) in enumerate(CASES, 1):
            self.g.case("kprobe", n, doc=gtest_json(name))
        _, res = self.g.verdicts(("kprobe", "fentry"))
        text, failed = pathsreport.render(res)
        self.assertEqual(failed, 2)  # fentry never ran
        self.assertIn("fentry: 0 passed, 0 not runnable on this kernel, 2 failed", text)

    def test_kernel_trouble_fails_the_running_case(self):
        self.g.case("kprobe", 1, doc=gtest_json("Devices.A"))
        with open(os.path.join(self.g.out, "kprobe", "console.log"), "w") as f:
            f.write("guest-paths: kprobe 1 Devices.A: start\n"
                    "guest-paths: kprobe 1 Devices.A: rc=0 1.0s leftovers=none\n"
                    "guest-paths: kprobe 2 Paths/Calls.B/Udp: start\n"
                    "[  212.7] BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
                    "[  212.8]  __ip_queue_xmit+0x18b/0x4a0\n")
        v, _ = self.g.verdicts()
        self.assertEqual(v["kprobe"][0][0], pathsreport.PASS)
        self.assertEqual(v["kprobe"][1][0], pathsreport.FAIL)
        self.assertIn("BUG: kernel NULL pointer", v["kprobe"][1][1])
        self.assertIn("__ip_queue_xmit", v["kprobe"][1][1])


if __name__ == "__main__":
    unittest.main()
