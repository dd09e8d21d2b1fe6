# Guest script: report which network-stack functions and tracepoints the kernel offers.
# Runs inside the VM (busybox sh), sourced helpers from /guest/lib.sh. Sends probe/ back.
out=/results/probe
mkdir -p $out
T=/sys/kernel/tracing
{
  echo "kernel $(uname -r)"
  echo "btf_vmlinux_bytes $(wc -c </sys/kernel/btf/vmlinux 2>/dev/null || echo 0)"
  echo "kprobes_enabled $(cat /sys/kernel/debug/kprobes/enabled 2>/dev/null || echo missing)"
  echo "available_filter_functions $(wc -l <$T/available_filter_functions 2>/dev/null || echo 0)"
  echo "tracefs_events $(ls $T/events 2>/dev/null | wc -l)"
} >$out/summary.txt
cat $out/summary.txt
FUNCS="sock_sendmsg tcp_sendmsg tcp_sendmsg_locked udp_sendmsg udpv6_sendmsg ip_output ip6_output ip_finish_output2 ip6_finish_output2 __dev_queue_xmit dev_queue_xmit dev_hard_start_xmit xmit_one netif_rx netif_rx_internal __netif_rx napi_gro_receive netif_receive_skb netif_receive_skb_list __netif_receive_skb __netif_receive_skb_core __netif_receive_skb_one_core ip_rcv ip_rcv_finish ipv6_rcv ip6_rcv_finish tcp_v4_rcv tcp_v6_rcv udp_rcv udpv6_rcv tcp_queue_rcv tcp_data_queue sock_def_readable tcp_data_ready tcp_recvmsg tcp_recvmsg_locked udp_recvmsg udpv6_recvmsg inet_recvmsg inet6_recvmsg sock_recvmsg kfree_skb kfree_skb_reason consume_skb __kfree_skb skb_release_data loopback_xmit veth_xmit tcp_transmit_skb __tcp_transmit_skb __ip_queue_xmit ip_queue_xmit inet6_csk_xmit ip_local_out ip6_local_out __ip_local_out ip_local_deliver ip6_input tcp_rcv_established tcp_v4_do_rcv sock_write_iter __sys_sendto __sys_recvfrom skb_copy_datagram_iter"
# kallsyms: "addr type name [module]"; available_filter_functions: "name [module]" (6.1: no addrs)
awk '{print $3}' /proc/kallsyms | sort -u >/tmp/kallsyms.names
awk '{print $1}' $T/available_filter_functions | sort -u >/tmp/ftrace.names
for f in $FUNCS; do
  k=no; a=no; b=no
  grep -qx "$f" /tmp/kallsyms.names && k=yes
  grep -qx "$f" /tmp/ftrace.names && a=yes
  # notrace / inlined functions can still be in kallsyms; BTF FUNC needed for fentry
  echo "func $f kallsyms=$k filter=$a"
done >$out/funcs.txt
TPS="tcp/tcp_sendmsg_locked net/net_dev_queue net/net_dev_start_xmit net/net_dev_xmit sock/sk_data_ready skb/skb_copy_datagram_iovec net/netif_receive_skb net/netif_receive_skb_entry net/netif_receive_skb_list_entry net/netif_rx_entry net/netif_rx net/napi_gro_receive_entry net/napi_gro_receive_exit skb/kfree_skb skb/consume_skb tcp/tcp_probe tcp/tcp_rcv_space_adjust sock/inet_sock_set_state tcp/tcp_retransmit_skb syscalls/sys_enter_sendto syscalls/sys_enter_sendmsg syscalls/sys_enter_write syscalls/sys_enter_writev syscalls/sys_enter_recvfrom syscalls/sys_enter_recvmsg syscalls/sys_enter_read"
for tp in $TPS; do
  e=no; [ -d $T/events/$tp ] && e=yes
  echo "tp $tp $e"
done >$out/tracepoints.txt
ls $T/events/net $T/events/skb $T/events/sock $T/events/tcp $T/events/udp 2>/dev/null >$out/tp-groups.txt
grep -c . $out/funcs.txt
# Attach test: kprobe_events (needs CONFIG_KPROBE_EVENTS) on a few functions
for f in sock_sendmsg tcp_v4_rcv __netif_receive_skb dev_hard_start_xmit tcp_recvmsg udp_recvmsg sock_def_readable tcp_data_ready napi_gro_receive netif_rx netif_receive_skb; do
  if echo "p:nlt_$f $f" >>$T/kprobe_events 2>/dev/null; then r=ok; else r=FAIL; fi
  echo "kprobe_event $f $r"
done >$out/kprobe-attach.txt
echo >$T/kprobe_events 2>/dev/null
cat $out/kprobe-attach.txt
# Which functions does loopback traffic actually pass, per protocol and family? kprobe events
# count their hits in kprobe_profile; diff it around each traffic case.
PATHFUNCS="sock_sendmsg __sock_sendmsg sock_sendmsg_nosec inet_sendmsg inet6_sendmsg tcp_sendmsg tcp_sendmsg_locked udp_sendmsg udpv6_sendmsg udp_send_skb udp_v6_send_skb ip_send_skb ip6_send_skb __tcp_transmit_skb ip_queue_xmit __ip_queue_xmit inet6_csk_xmit ip6_xmit ip_local_out ip6_local_out ip_output ip6_output ip_finish_output2 ip6_finish_output2 __dev_queue_xmit dev_hard_start_xmit loopback_xmit netif_rx netif_rx_internal __netif_rx napi_gro_receive netif_receive_skb netif_receive_skb_list process_backlog __netif_receive_skb __netif_receive_skb_one_core ip_rcv ipv6_rcv ip_local_deliver ip6_input tcp_v4_rcv tcp_v6_rcv tcp_v4_do_rcv tcp_v6_do_rcv tcp_rcv_established udp_rcv udpv6_rcv tcp_queue_rcv tcp_data_queue sock_def_readable tcp_data_ready sock_recvmsg inet_recvmsg inet6_recvmsg tcp_recvmsg tcp_recvmsg_locked udp_recvmsg udpv6_recvmsg skb_copy_datagram_iter kfree_skb_reason consume_skb __kfree_skb __sys_sendto __sys_recvfrom"
if [ -x /bin/traffic ]; then
  for f in $PATHFUNCS; do echo "p:nlt/$f $f" >>$T/kprobe_events 2>/dev/null || echo "no-kprobe $f"; done >$out/path-kprobe-errors.txt
  echo 1 >$T/events/nlt/enable
  echo 0 >$T/tracing_on
  traffic 20 64 tcp4 >/dev/null  # warm up (connection setup paths)
  for c in tcp4 tcp6 udp4 udp6; do
    awk '{print $1, $2}' $T/kprobe_profile >/tmp/before
    traffic 100 64 $c >>$out/path-traffic.txt
    awk '{print $1, $2}' $T/kprobe_profile >/tmp/after
    awk -v c=$c 'NR==FNR { b[$1]=$2; next } { printf "%s %s %d\n", c, $1, $2 - b[$1] }' /tmp/before /tmp/after
  done >$out/path-hits.txt
  echo 0 >$T/events/nlt/enable
  echo >$T/kprobe_events
  echo 1 >$T/tracing_on
  # table: function, hits per case (100 messages each)
  awk '{ h[$2" "$1]=$3; f[$2]=1 } END { for (x in f) printf "%-32s tcp4=%-5d tcp6=%-5d udp4=%-5d udp6=%-5d\n", x, h[x" tcp4"], h[x" tcp6"], h[x" udp4"], h[x" udp6"] }' $out/path-hits.txt | sort >$out/path-table.txt
  cat $out/path-table.txt
fi
# Same for tracepoints: enable the groups, clear the buffer, count events in the trace per case.
if [ -x /bin/traffic ]; then
  echo 4096 >$T/buffer_size_kb
  for g in net skb sock tcp udp; do echo 1 >$T/events/$g/enable; done
  for c in tcp4 tcp6 udp4 udp6; do
    echo >$T/trace
    traffic 100 64 $c >>$out/path-traffic.txt
    sed -n 's/^.* [0-9.]*: \([a-z_0-9]*\): .*$/\1/p' $T/trace | sort | uniq -c |
      awk -v c=$c '{ print c, $2, $1 }'
  done >$out/tp-hits.txt
  for g in net skb sock tcp udp; do echo 0 >$T/events/$g/enable; done
  echo >$T/trace
  awk '{ h[$2" "$1]=$3; f[$2]=1 } END { for (x in f) printf "%-32s tcp4=%-5d tcp6=%-5d udp4=%-5d udp6=%-5d\n", x, h[x" tcp4"], h[x" tcp6"], h[x" udp4"], h[x" udp6"] }' $out/tp-hits.txt | sort >$out/tp-table.txt
  cat $out/tp-table.txt
fi
# dynamically linked binaries copied with their libraries
for b in /bin/curl /bin/hello-udp; do
  [ -x $b ] || continue
  echo "== $b"; $b --version 2>&1 | head -n1 || true
done >$out/bins.txt 2>&1
cat $out/bins.txt
# BPF: does the kernel know netfilter programs/links (6.4+)? bpftool reads the running kernel's BTF.
if [ -x /bin/bpftool ]; then
  bpftool btf dump file /sys/kernel/btf/vmlinux format raw >/tmp/btf.txt 2>&1
  for e in BPF_PROG_TYPE_NETFILTER BPF_LINK_TYPE_NETFILTER BPF_NETFILTER BPF_TRACE_KPROBE_MULTI BPF_LINK_TYPE_KPROBE_MULTI BPF_PROG_TYPE_TRACING BPF_TRACE_FENTRY; do
    if grep -q "'$e' val=" /tmp/btf.txt; then echo "btf_enum $e yes"; else echo "btf_enum $e no"; fi
  done >$out/btf-enums.txt
  cat $out/btf-enums.txt
  bpftool feature probe kernel >$out/bpftool-feature.txt 2>&1
  grep -E "program_type|kprobe_multi" $out/bpftool-feature.txt | head -40
fi
# Load and attach one program per hook kind (kprobe, fentry, fexit, tp_btf, raw_tp, cgroup_skb).
if [ -x /bin/attach-test ]; then
  t0=$(vm_uptime)
  attach-test /guest/attach.bpf.o /sys/fs/cgroup/unified >$out/attach-test.txt 2>&1
  echo "rc=$? seconds=$(awk -v a=$t0 -v b=$(vm_uptime) 'BEGIN{print b-a}')" >>$out/attach-test.txt
  cat $out/attach-test.txt
fi
cat /proc/modules >$out/modules.txt
uname -a >$out/uname.txt
cp /proc/cmdline $out/
dmesg >$out/dmesg.txt
vm_emit probe $out
