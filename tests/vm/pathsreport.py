#!/usr/bin/python3
"""Host-side verdict of the VM paths test: the paths tier's cases as run in the guest.

Each mode runs in its own boot (run-vm.sh output OUT/MODE/): reads OUT/MODE/files/paths-MODE/
(N.index, N.json, N.log from guest-paths.sh) and OUT/MODE/console.log for each mode, and the list
of cases the guest was given, and writes a Markdown report with one row per case and mode.

A case passes when its process exited 0, GoogleTest recorded it as run and passed, and it left
nothing behind (netlatd, network namespaces, BPF links). A case GoogleTest skipped counts as not
runnable on this kernel only when the test states why (its GTEST_SKIP message); every other
outcome -- failures, exit codes, timeouts, crashes, leftovers, cases that never ran -- fails.

  pathsreport.py OUT --cases FILE --modes "kprobe fentry" --report FILE [--vm-info TEXT]
Exit 0 if every case passed or was skipped with a reason in every mode, 1 otherwise.
Python 3 standard library only.
"""

import argparse
import json
import os
import re
import sys

PASS, SKIP, FAIL = "passed", "not runnable", "FAILED"
LOG_TAIL_LINES = 12


def read_text(path):
    """The file's text, '' if it does not exist."""
    if not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return f.read()


def read_cases(path):
    """-> [(binary, filter)] from the file the guest was given."""
    return [tuple(line.split(None, 1)) for line in read_text(path).splitlines() if line.strip()]


def read_index(mode_dir):
    """-> {n: {rc, seconds, leftovers, binary, filter}} from the guest's N.index files."""
    out = {}
    names = os.listdir(mode_dir) if os.path.isdir(mode_dir) else []
    lines = [read_text(os.path.join(mode_dir, f)) for f in names if f.endswith(".index")]
    for line in "".join(lines).splitlines():
        m = re.match(r"(\d+) rc=(\d+) seconds=(\S+) leftovers=(\S+) (\S+) (\S+)$", line)
        if m:
            out[int(m.group(1))] = {"rc": int(m.group(2)), "seconds": float(m.group(3)),
                                    "leftovers": m.group(4), "binary": m.group(5),
                                    "filter": m.group(6)}
    return out


def gtest_cases(json_path):
    """-> [(full name, result, [failure texts])] from a --gtest_output=json file, [] if none."""
    try:
        with open(json_path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return []
    out = []
    for suite in doc.get("testsuites", []):
        for case in suite.get("testsuite", []):
            out.append((f"{suite['name']}.{case['name']}", case.get("result", "?"),
                        [x.get("failure", "") for x in case.get("failures", [])]))
    return out


def skip_reason(log_text):
    """The message after GoogleTest's 'file:line: Skipped' line, '' if none."""
    m = re.search(r": Skipped\n(.*?)\n\[  SKIPPED \]", log_text, re.S)
    return m.group(1).strip() if m else ""


KERNEL_TROUBLE = re.compile(r"BUG:|Oops|Kernel panic|soft lockup|rcu: INFO|WARNING: CPU|"
                            r"general protection|Call Trace")
CONSOLE_EXCERPT_LINES = 60


def kernel_trouble(console_text):
    """-> ((mode, n) of the case running, console excerpt) at the guest kernel's first oops,
    lockup or warning (guest-paths.sh logs "guest-paths: MODE N FILTER: start"); None if none."""
    running = None
    lines = console_text.splitlines()
    for i, line in enumerate(lines):
        m = re.search(r"guest-paths: (\S+) (\d+) \S+: start", line)
        if m:
            running = (m.group(1), int(m.group(2)))
        elif KERNEL_TROUBLE.search(line):
            return running, "\n".join(lines[i:i + CONSOLE_EXCERPT_LINES])
    return None


def judge_case(entry, json_path, log_path):
    """-> (verdict, seconds, reason) of one case in one mode; entry is the index line or None."""
    if entry is None:
        return FAIL, None, "did not run (the VM stopped or timed out before it)"
    log = read_text(log_path)
    tail = "\n".join(log.rstrip().splitlines()[-LOG_TAIL_LINES:])
    cases = gtest_cases(json_path)
    problems = []
    if entry["rc"] == 124:
        problems.append(f"timed out after {entry['seconds']:.0f} s; last output:\n{tail}")
    elif not cases:
        problems.append(f"exit {entry['rc']} without a GoogleTest result; last output:\n{tail}")
    elif len(cases) != 1:
        problems.append(f"the filter selected {len(cases)} cases, not 1")
    if entry["leftovers"] != "none":
        problems.append(f"left behind: {entry['leftovers'].rstrip(',')}")
    if problems:
        return FAIL, entry["seconds"], "; ".join(problems)
    _, result, failures = cases[0]
    if failures or entry["rc"] != 0:
        text = "\n".join(failures) if failures else f"exit {entry['rc']}; last output:\n{tail}"
        return FAIL, entry["seconds"], text
    if result == "SKIPPED":
        reason = skip_reason(log)
        if not reason:
            return FAIL, entry["seconds"], "skipped without a stated reason"
        return SKIP, entry["seconds"], reason
    return PASS, entry["seconds"], ""


def judge(out, cases, modes):
    """-> {mode: [(binary, filter, verdict, seconds, reason)]} in the order of `cases`. The case
    that was running when the guest kernel first reported trouble fails with the console excerpt."""
    results = {}
    for mode in modes:
        trouble = kernel_trouble(read_text(os.path.join(out, mode, "console.log")))
        if trouble and trouble[0] is None:
            trouble = ((mode, 1), trouble[1])  # before the first case: charged to it
        mode_dir = os.path.join(out, mode, "files", f"paths-{mode}")
        index = read_index(mode_dir)
        rows = []
        for n, (binary, filt) in enumerate(cases, 1):
            entry = index.get(n)
            if entry is not None and (entry["binary"], entry["filter"]) != (binary, filt):
                entry = None  # a different list ran: never credit a case with another's result
            verdict, secs, reason = judge_case(entry, os.path.join(mode_dir, f"{n}.json"),
                                               os.path.join(mode_dir, f"{n}.log"))
            if trouble and trouble[0] == (mode, n):
                verdict = FAIL
                reason = (reason + "\n" if entry else "") + (
                    "running when the guest kernel reported this (console.log):\n" + trouble[1])
            rows.append((binary, filt, verdict, secs, reason))
        results[mode] = rows
    return results


def render(results, vm_info=""):
    """-> (Markdown text, number of failed case-mode pairs)."""
    modes = list(results)
    lines = ["# Paths tier in the VM (6.1 guest)", ""]
    if vm_info:
        lines += [vm_info, ""]
    failed = 0
    lines.append("| case | " + " | ".join(modes) + " |")
    lines.append("|---|" + "---|" * len(modes))
    cases = [(b, f) for b, f, *_ in results[modes[0]]] if modes else []
    for i, (binary, filt) in enumerate(cases):
        cells = []
        for mode in modes:
            _, _, verdict, secs, _ = results[mode][i]
            failed += verdict == FAIL
            cells.append(verdict if secs is None else f"{verdict} ({secs:.1f} s)")
        lines.append(f"| {binary} {filt} | " + " | ".join(cells) + " |")
    lines.append("")
    for mode in modes:
        counts = {v: sum(r[2] == v for r in results[mode]) for v in (PASS, SKIP, FAIL)}
        total = sum(r[3] or 0 for r in results[mode])
        lines.append(f"- {mode}: {counts[PASS]} passed, {counts[SKIP]} not runnable on this "
                     f"kernel, {counts[FAIL]} failed, of {len(results[mode])} ({total:.0f} s)")
    for mode in modes:
        for binary, filt, verdict, _, reason in results[mode]:
            if verdict != PASS:
                lines += ["", f"## {mode}: {filt} ({binary}): {verdict}", "", "```",
                          reason.rstrip(), "```"]
    return "\n".join(lines) + "\n", failed


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the folder of run-vm.sh's output folders, one per mode")
    ap.add_argument("--cases", required=True, help="the case list the guest was given")
    ap.add_argument("--modes", default="kprobe fentry")
    ap.add_argument("--report", required=True)
    ap.add_argument("--vm-info", default="")
    args = ap.parse_args()
    results = judge(args.out, read_cases(args.cases), args.modes.split())
    text, failed = render(results, args.vm_info)
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    with open(args.report, "w") as f:
        f.write(text)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
