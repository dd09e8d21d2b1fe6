#!/usr/bin/python3
"""VM test: run netlatd in kprobe, fentry, tracepoint and auto modes on Debian's cloud kernel.

Steps: fetch the kernel package named by linux-image-cloud-amd64 (fetch-kernel.sh), build a
busybox initramfs with netlatd, netlat-load and their shared libraries (build-initramfs.sh), boot
it with qemu-system-x86_64 -accel tcg (run-vm.sh), run guest-test.sh inside, then analyse on the
host (vmreport.py) and fail on any unmet acceptance check.

  test_vm.py --netlatd PATH --netlat-load PATH [--out DIR] [--report FILE]
  test_vm.py --selftest [--out DIR]   # harness self-test: no netlatd, proves boot, collection
                                      # and that kprobe/fentry/tp_btf/raw_tp/cgroup_skb attach
  test_vm.py --paths BIN... --netlatd PATH [--modes "kprobe fentry"]
                                      # the paths tier's GoogleTest cases in the guest, per mode
Python 3 standard library only. Needs root only for nothing: qemu runs unprivileged with TCG.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = ["veth", "sch_ingress", "cls_bpf", "act_bpf"]  # =m in the cloud kernel (see README)
# The devices tests/paths builds (also =m); their dependencies (stp, llc, udp_tunnel, ...) follow.
# virtio_pci and virtio_net drive the paths guest's NIC pair; tls is kTLS, with the AES-GCM it
# asks the crypto API for (ctr(aes) and ghash; the guest has no modprobe to load them on demand).
PATHS_MODULES = ["veth", "macvlan", "vxlan", "bridge", "virtio_pci", "virtio_net", "ctr",
                 "ghash_generic", "gcm", "tls"]
# The paths guest's NIC pair (tests/paths/nic_test.cpp): two virtio-net NICs on one qemu hub, so
# that each frame one sends reaches the other, with the MAC addresses the tests know them by
# (kNicPairMacs in tests/common/netns_pair.h).
NIC_PAIR_MACS = ["52:54:00:4e:4c:01", "52:54:00:4e:4c:02"]
NIC_PAIR_QEMU = " ".join(f"-netdev hubport,id=nlt{i},hubid=0 "
                         f"-device virtio-net-pci,netdev=nlt{i},mac={mac}"
                         for i, mac in enumerate(NIC_PAIR_MACS))

# Test config for netlatd: fine buckets (so interpolated medians are close) and a short drain
# interval (so each run's observations are exported before the next scrape). Adapt the keys here
# if the config schema changes; test_vm.py validates it with --check-config first.
# netlatd watches only netlat-load's server port (as tests/accuracy does), so tx is the server's
# replies and rx the client's requests as read by the server: one direction each, matching one
# netlat-load figure each (see vmreport.py).
LOAD_PORT = 47810
TEST_CONFIG = f"""\
interval: 1s
buckets: {{min: 100ns, max: 4s, per_octave: 16}}
filters:
  local_ports: [{LOAD_PORT}]
"""
TEST_CONFIG_DRAIN_WAIT = 3  # s: > interval, plus the slowness of TCG


def log(msg):
    print(f"test_vm: {msg}", flush=True)


def fail(msg):
    print(f"test_vm: FAIL: {msg}", flush=True)
    sys.exit(1)


def need_tools():
    missing = []
    for tool, pkg in (("qemu-system-x86_64", "qemu-system-x86"), ("cpio", "cpio"),
                      ("apt-get", "apt"), ("dpkg-deb", "dpkg"), ("modinfo", "kmod")):
        if not shutil.which(tool):
            missing.append(f"{tool} (Debian package {pkg})")
    bb = os.environ.get("BUSYBOX", "/bin/busybox")
    if not os.path.exists(bb):
        missing.append(f"{bb} (Debian package busybox-static)")
    elif subprocess.run(["ldd", bb], capture_output=True).returncode == 0:
        missing.append(f"a static {bb} (Debian package busybox-static; busybox is dynamic)")
    if missing:
        fail("missing: " + ", ".join(missing))


def fetch_kernel(cache):
    t = time.monotonic()
    p = subprocess.run([os.path.join(HERE, "fetch-kernel.sh"), cache], capture_output=True,
                       text=True)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        fail("fetch-kernel.sh failed (see above)")
    info = dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)
    log(f"kernel {info['KPKG']} {info['KPKG_VERSION']} ready in {time.monotonic() - t:.1f}s")
    return info


def build_initramfs(out, script, kdir, bins, files, modules=MODULES, own_path_bins=()):
    cmd = [os.path.join(HERE, "build-initramfs.sh"), "-o", out, "-s", script, "-k", kdir]
    for m in modules:
        cmd += ["-m", m]
    for b in bins:
        cmd += ["-b", b]
    for b in own_path_bins:
        cmd += ["-p", b]
    for src, dst in files:
        cmd += ["-f", f"{src}:{dst}"]
    if subprocess.run(cmd).returncode != 0:
        fail("build-initramfs.sh failed (see above)")


def run_vm(kinfo, initrd, out, timeout, append="", need_boot=True, cpus=2, qemu_extra=""):
    """Boots; fails the test on a timeout or no boot, unless need_boot is False (the caller
    judges from what the guest sent)."""
    cmd = [os.path.join(HERE, "run-vm.sh"), "-k", kinfo["VMLINUZ"], "-i", initrd, "-o", out,
           "-t", str(timeout)]
    if append:
        cmd += ["-a", append]
    cmd += ["-c", str(cpus)]
    if qemu_extra:
        cmd += ["-q", qemu_extra]
    t = time.monotonic()
    rc = subprocess.run(cmd).returncode
    wall = time.monotonic() - t
    with open(os.path.join(out, "serial1.log"), "rb") as f:
        serial = f.read().decode("utf-8", "replace")
    m = re.search(r"@@VM-BOOTED uptime=(\S+)", serial)
    boot = float(m.group(1)) if m else None
    log(f"VM exit {rc}, wall {wall:.1f}s, guest init at {boot}s uptime")
    if rc == 124 and need_boot:
        fail(f"the VM did not finish within {timeout}s (see {out}/console.log)")
    if m is None and need_boot:
        fail(f"the guest never reached init (see {out}/console.log)")
    return rc, wall, boot


def selftest(args):
    """Boot with the probe script and the self-test binaries; check that hooks attach."""
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    kinfo = fetch_kernel(args.cache)
    bdir = os.path.join(out, "selftest-bin")
    if subprocess.run([os.path.join(HERE, "selftest", "build.sh"), bdir]).returncode != 0:
        fail("building the self-test programs failed (needs clang, libbpf-dev)")
    bins = [os.path.join(bdir, "attach-test"), os.path.join(bdir, "traffic"),
            shutil.which("curl") or "/usr/bin/curl"]
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    if os.path.exists(bpftool):
        bins.append(bpftool)
    initrd = os.path.join(out, "initramfs.cpio.gz")
    build_initramfs(initrd, os.path.join(HERE, "probe-kernel.sh"), kinfo["KDIR"], bins,
                    [(os.path.join(bdir, "attach.bpf.o"), "/guest/attach.bpf.o")])
    rc, wall, boot = run_vm(kinfo, initrd, out, args.timeout)
    probe = os.path.join(out, "files", "probe")
    problems = []
    if rc != 0:
        problems.append(f"guest script exit {rc}")
    attach = open(os.path.join(probe, "attach-test.txt")).read() if os.path.exists(
        os.path.join(probe, "attach-test.txt")) else ""
    print(attach)
    if "attach-test: 0 failed, 0 without hits" not in attach:
        problems.append("not every hook kind attached and saw traffic (attach-test.txt)")
    traffic = open(os.path.join(probe, "path-traffic.txt")).read() if os.path.exists(
        os.path.join(probe, "path-traffic.txt")) else ""
    if traffic.count(" ok") < 8 or "FAIL" in traffic:
        problems.append("loopback traffic in the guest failed (path-traffic.txt)")
    if boot is not None and boot > 30:
        problems.append(f"boot to init took {boot}s (expected a few seconds)")
    facts = os.path.join(out, "kernel-facts.txt")
    with open(facts, "w") as f:
        f.write(f"{kinfo['KPKG']} {kinfo['KPKG_VERSION']}: wall {wall:.1f}s, init at {boot}s\n")
        for name in ("summary.txt", "attach-test.txt", "btf-enums.txt", "tracepoints.txt",
                     "path-table.txt", "tp-table.txt"):
            p = os.path.join(probe, name)
            if os.path.exists(p):
                f.write(f"\n== {name}\n" + open(p).read())
    log(f"kernel facts: {facts}")
    if problems:
        fail("; ".join(problems))
    print("test_vm: selftest: 1 passed, 0 failed")


def check_config(netlatd, path):
    """-> (ok, message) from netlatd --check-config on the host."""
    try:
        p = subprocess.run([netlatd, "--config", path, "--check-config"], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


def full(args):
    for b in (args.netlatd, args.netlat_load):
        if not b or not os.access(b, os.X_OK):
            fail(f"binary {b!r} not found: build netlatd and netlat-load first")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    t_all = time.monotonic()
    kinfo = fetch_kernel(args.cache)

    files = []
    params = [f'MODES="{args.modes}"', f"LOAD_COUNT={args.count}", f"LOAD_PORT={LOAD_PORT}"]
    cfg_note = "embedded default"
    if not args.no_config:
        cfg = os.path.join(out, "netlatd-test.yaml")
        with open(cfg, "w") as f:
            f.write(TEST_CONFIG)
        ok, msg = check_config(args.netlatd, cfg)
        if ok:
            files.append((cfg, "/guest/netlatd-test.yaml"))
            params += ["NETLATD_CONFIG=/guest/netlatd-test.yaml",
                       f"DRAIN_WAIT={TEST_CONFIG_DRAIN_WAIT}"]
            cfg_note = f"test config (fine buckets, 1 s interval, local_ports [{LOAD_PORT}])"
        else:
            # Not fatal: the default config still exercises every mode; accuracy is then
            # judged with the default buckets and the report says so.
            log(f"WARNING: netlatd --check-config rejects the test config ({msg}); "
                "running with the embedded default config")
            params.append(f"DRAIN_WAIT={args.drain_wait}")
    else:
        params.append(f"DRAIN_WAIT={args.drain_wait}")
    pfile = os.path.join(out, "params.sh")
    with open(pfile, "w") as f:
        f.write("\n".join(params) + "\n")
    files.append((pfile, "/guest/params.sh"))

    bins = [args.netlatd, args.netlat_load]
    # Diagnostics (tests/vm/selftest): per-program verifier verdicts of netlatd's BPF object and
    # the guest's syscall cost, both for the report only.
    bdir = os.path.join(out, "selftest-bin")
    if subprocess.run([os.path.join(HERE, "selftest", "build.sh"), bdir]).returncode != 0:
        fail("building tests/vm/selftest failed (needs clang, libbpf-dev)")
    bins.append(os.path.join(bdir, "syscall-cost"))
    if args.bpf_object and os.path.exists(args.bpf_object):
        bins.append(os.path.join(bdir, "bpf-verify"))
        files.append((args.bpf_object, "/guest/netlat.bpf.o"))
    elif args.bpf_object:
        log(f"WARNING: {args.bpf_object} not found; the report will lack per-program verdicts")
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    if os.path.exists(bpftool):
        bins.append(bpftool)  # lists the guest's BPF links per mode (diagnostics only)
    initrd = os.path.join(out, "initramfs.cpio.gz")
    t = time.monotonic()
    build_initramfs(initrd, os.path.join(HERE, "guest-test.sh"), kinfo["KDIR"], bins, files)
    log(f"initramfs built in {time.monotonic() - t:.1f}s")
    rc, wall, boot = run_vm(kinfo, initrd, out, args.timeout)

    vm_info = (f"kpkg={kinfo['KPKG']},kpkg_version={kinfo['KPKG_VERSION']},"
               f"wall_seconds={wall:.1f},config={cfg_note}")
    cmd = [sys.executable, os.path.join(HERE, "vmreport.py"), out, "--modes", args.modes,
           "--report", args.report, "--json", os.path.join(out, "vm-report.json"),
           "--vm-info", vm_info, "--accuracy", args.accuracy]
    rrc = subprocess.run(cmd).returncode
    log(f"report: {args.report}; total {time.monotonic() - t_all:.1f}s")
    if rc != 0:
        fail(f"guest script exit {rc} (see {out}/console.log)")
    if rrc != 0:
        fail(f"acceptance checks failed (see {args.report})")
    print("test_vm: vm: 1 passed, 0 failed")


def list_cases(binary):
    """-> [GoogleTest filter] of every case of `binary` (--gtest_list_tests, on the host)."""
    p = subprocess.run([binary, "--gtest_list_tests"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        fail(f"{binary} --gtest_list_tests failed: {p.stderr.strip()}")
    cases, suite = [], None
    for line in p.stdout.splitlines():
        if not line.strip() or line.startswith("Running main()"):
            continue
        if not line.startswith(" "):
            suite = line.split()[0]
        else:
            cases.append(suite + line.split()[0])
    return cases


def paths(args):
    """The paths tier's cases (tests/paths) in the guest, one process each, in each mode."""
    if not args.netlatd or not os.access(args.netlatd, os.X_OK):
        fail(f"binary {args.netlatd!r} not found: build netlatd first")
    for b in args.paths:
        if not os.access(b, os.X_OK):
            fail(f"test binary {b!r} not found: build the paths tier first")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    t_all = time.monotonic()
    kinfo = fetch_kernel(args.cache)
    case_file = os.path.join(out, "paths-cases.txt")
    with open(case_file, "w") as f:
        for b in args.paths:
            for case in list_cases(b):
                f.write(f"{os.path.basename(b)} {case}\n")
    # The tests run the tools below (tests/common/netns_pair.h, tests/paths/paths.cpp); busybox
    # has neither `ip netns` nor ethtool. netlatd goes to the path compiled into the tests.
    tools = [shutil.which(t) or f"/usr/sbin/{t}" for t in ("ip", "ethtool", "bpftool")]
    # One boot per mode: a guest kernel crash in one mode leaves the other's results whole. The
    # boots are independent (own initramfs, output directory and qemu hub), so they run side by
    # side when the host has a core per guest vCPU: the tier's wall time is then that of the
    # slower boot, not the sum.
    modes = args.modes.split()
    for mode in modes:
        mode_out = os.path.join(out, mode)
        os.makedirs(mode_out, exist_ok=True)
        pfile = os.path.join(mode_out, "params.sh")
        with open(pfile, "w") as f:
            f.write(f'MODES="{mode}"\nCASE_TIMEOUT={args.case_timeout}\n'
                    f"TIME_SCALE={args.time_scale}\nNIC_PAIR=required\n")
        build_initramfs(os.path.join(mode_out, "initramfs.cpio.gz"),
                        os.path.join(HERE, "guest-paths.sh"), kinfo["KDIR"],
                        list(args.paths) + tools,
                        [(case_file, "/guest/paths-cases.txt"), (pfile, "/guest/params.sh")],
                        modules=PATHS_MODULES, own_path_bins=[os.path.abspath(args.netlatd)])

    def boot(mode):
        mode_out = os.path.join(out, mode)
        # Kernel warnings and backtraces on the console (loglevel 5), and a CPU stuck in the
        # kernel ends the run (a panic stops qemu) instead of running into the timeout: the report
        # then names the case that was running and quotes the console.
        # One vCPU: with two, attaching kprobes or fentry while the other vCPU runs the patched
        # functions hung or crashed the guest within 4-16 cases (docs/KERNELS.md).
        return run_vm(kinfo, os.path.join(mode_out, "initramfs.cpio.gz"), mode_out,
                      args.timeout, append="loglevel=5 softlockup_panic=1", need_boot=False,
                      cpus=args.paths_cpus, qemu_extra=NIC_PAIR_QEMU)

    jobs = args.boot_jobs or max(1, (os.cpu_count() or 1) // args.paths_cpus)
    jobs = min(jobs, len(modes))
    log(f"{len(modes)} boot(s), {jobs} at a time")
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        results = dict(zip(modes, pool.map(boot, modes)))
    rcs = {mode: rc for mode, (rc, _, _) in results.items()}
    walls = [f"{mode} {wall:.0f} s" for mode, (_, wall, _) in results.items()]
    vm_info = (f"{kinfo['KPKG']} {kinfo['KPKG_VERSION']} under qemu TCG, one boot per mode, "
               f"{jobs} at a time "
               f"(VM wall: {', '.join(walls)}); netlatd forced to each mode with "
               f"NETLAT_TEST_PROBE_MODE")
    rrc = subprocess.run([sys.executable, os.path.join(HERE, "pathsreport.py"), out, "--cases",
                          case_file, "--modes", args.modes, "--report", args.report,
                          "--vm-info", vm_info]).returncode
    log(f"report: {args.report}; total {time.monotonic() - t_all:.1f}s")
    if rrc != 0:
        fail(f"paths cases failed in the guest (see {args.report})")
    for mode, rc in rcs.items():
        if rc != 0:
            fail(f"{mode}: guest script exit {rc} (see {out}/{mode}/console.log)")
    print("test_vm: vm paths: 1 passed, 0 failed")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--netlatd")
    ap.add_argument("--netlat-load")
    ap.add_argument("--bpf-object", help="netlatd's BPF object (netlat.bpf.o): each program is "
                    "also loaded alone in the guest and the verdicts go into the report")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--paths", nargs="+", metavar="BIN",
                    help="run these GoogleTest binaries of tests/paths in the guest per mode")
    ap.add_argument("--case-timeout", type=int, default=300,
                    help="--paths: seconds for one case in the guest")
    ap.add_argument("--paths-cpus", type=int, default=1, help="--paths: guest vCPUs")
    ap.add_argument("--boot-jobs", type=int, default=0,
                    help="--paths: boots run at once (default: host CPUs / guest vCPUs)")
    ap.add_argument("--time-scale", type=float, default=5,
                    help="--paths: NETLAT_TEST_TIME_SCALE in the guest (netlatd's ready timeout, "
                    "20 s on the host, times this)")
    ap.add_argument("--out", default="build/vm")
    ap.add_argument("--cache", default="build/vm-cache")
    ap.add_argument("--report", default="build/vm-report.md")
    ap.add_argument("--modes", help='probe modes (default "kprobe fentry tracepoint auto", with '
                    '--paths "kprobe fentry")')
    ap.add_argument("--count", type=int, default=1000, help="messages per netlat-load run")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds for the whole VM run")
    ap.add_argument("--accuracy", choices=("strict", "bracket"), default="strict",
                    help="strict: netlatd within max(10%%, 2 us) of netlat-load; bracket: between "
                    "netlat-load without and with netlatd (allows for the probes' own cost)")
    ap.add_argument("--no-config", action="store_true", help="run netlatd with its default config")
    ap.add_argument("--drain-wait", type=int, default=12,
                    help="seconds to wait after each run when the default config is used")
    args = ap.parse_args()
    need_tools()
    if args.selftest:
        selftest(args)
    elif args.paths:
        args.modes = args.modes or "kprobe fentry"
        paths(args)
    else:
        args.modes = args.modes or "kprobe fentry tracepoint auto"
        full(args)


if __name__ == "__main__":
    main()
