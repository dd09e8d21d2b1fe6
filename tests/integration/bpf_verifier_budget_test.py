#!/usr/bin/python3
"""Every BPF program of netlatd's object loads alone in this kernel and takes the verifier at most
BUDGET processed instructions: a fifth of the kernel's limit of 1000000, so that a kernel whose
verifier prunes less well still loads it (a 32-step unrolled walk in tp_sk_data_ready once took
24 000 instructions on one 6.18 build and 1000001, refused, on another). fentry/fexit programs
may fail here: this kernel has no BPF trampolines; the 6.1 guest (tests/vm) loads them, under the
same budget.

Usage: bpf_verifier_budget_test.py BPF_VERIFY OBJECT BUDGET
"""
import os
import subprocess
import sys

# bpf-verify's output is read as the VM report reads it.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vm"))
from vmreport import parse_verify_text, verify_failures, verify_insns  # noqa: E402


def verify(tool, obj, budget):
    """bpf-verify's exit code and its verdicts: (program, section, status, reason) each."""
    run = subprocess.run([tool, "--budget", str(budget), obj], capture_output=True, text=True,
                         timeout=600)
    return run.returncode, parse_verify_text(run.stdout)


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    tool, obj, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
    _, programs = verify(tool, obj, budget)
    failures = verify_failures(programs)
    loaded = [p for p in programs if p[2] in ("ok", "OVER")]
    for name, section, status, what in programs:
        kind = section.split("/")[0]
        if status == "FAIL" and kind not in ("fentry", "fexit"):
            failures.append(f"{name} ({section}) does not load: {what}")
        elif status == "SKIP":
            failures.append(f"{name} ({section}) was not tried: {what}")
    if not loaded:
        failures.append(f"no program of {obj} loaded ({len(programs)} listed)")
    worst = max(loaded, key=lambda p: verify_insns(p[3]), default=None)
    if worst:
        print(f"most verifier work: {worst[0]} ({worst[1]}): {worst[3]} (budget {budget})")
    print(f"{len(loaded)} programs loaded, {len(programs) - len(loaded)} did not")
    # The check can fail: with a budget below the largest program's work, that program is over.
    if worst:
        tight = verify_insns(worst[3]) - 1
        rc_tight, tight_run = verify(tool, obj, tight)
        if rc_tight == 0 or not any(p[2] == "OVER" and p[0] == worst[0] for p in tight_run):
            failures.append(f"a budget of {tight} did not flag {worst[0]}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
