#!/usr/bin/python3
"""Writes a seccomp profile for netlatd's container: the container engine's default profile
(containers-common's seccomp.json, as used by podman/CRI-O) with bpf() allowed to holders of
CAP_BPF and perf_event_open() to holders of CAP_PERFMON -- what containerd's and Docker's
current RuntimeDefault profiles already do. Older containers-common profiles allow both only with
CAP_SYS_ADMIN, which netlatd does not need.

Usage: seccomp.py [DEFAULT_PROFILE] > netlatd-seccomp.json
"""
import json
import sys

src = sys.argv[1] if len(sys.argv) > 1 else '/usr/share/containers/seccomp.json'
with open(src) as f:
    profile = json.load(f)

GRANTS = {'bpf': 'CAP_BPF', 'perf_event_open': 'CAP_PERFMON'}
for rule in profile['syscalls']:
    # Drop the explicit denials of these calls; without a matching allow rule the profile's
    # defaultAction (an errno) still applies.
    if rule.get('action') == 'SCMP_ACT_ERRNO':
        rule['names'] = [n for n in rule['names'] if n not in GRANTS]
profile['syscalls'] = [r for r in profile['syscalls'] if r['names']]
for name, cap in GRANTS.items():
    profile['syscalls'].append({'names': [name], 'action': 'SCMP_ACT_ALLOW',
                                'includes': {'caps': [cap]}, 'excludes': {}})
json.dump(profile, sys.stdout, indent=1)
sys.stdout.write('\n')
