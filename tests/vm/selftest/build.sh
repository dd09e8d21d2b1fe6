#!/bin/bash
# Build the harness self-test (attach.bpf.o + attach-test + traffic) and the bpf-verify
# diagnostic into OUT_DIR.
# Needs clang, libbpf-dev (the same packages netlatd builds with).
set -euo pipefail
out=${1:?usage: build.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu -c "$here/attach.bpf.c" -o "$out/attach.bpf.o"
cc -O2 -Wall -Wextra -Werror -o "$out/attach-test" "$here/attach-test.c" -lbpf
cc -O2 -Wall -Wextra -Werror -o "$out/traffic" "$here/traffic.c"
cc -O2 -Wall -Wextra -Werror -o "$out/bpf-verify" "$here/bpf-verify.c" -lbpf
cc -O2 -Wall -Wextra -Werror -o "$out/syscall-cost" "$here/syscall-cost.c"
