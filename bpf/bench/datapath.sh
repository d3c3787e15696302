#!/usr/bin/env bash
# Datapath cost between two pods on one node (namespaces pbpf-bench-*), with iperf3:
# TCP throughput and 64-byte UDP packet rate, for: no program / program + 10 entries /
# program + 100,000 policy entries. Writes bench-results/datapath.md. Needs root. Not in CI.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
SECS="${SECS:-5}"
NODE=pbpf-bench-node A=pbpf-bench-a B=pbpf-bench-b
PIN=/sys/fs/bpf/palisade-test-bench
OUT="$REPO/bench-results/datapath.md"

cleanup() {
  rm -rf "$PIN" 2>/dev/null || true
  for ns in $NODE $A $B; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}
trap cleanup EXIT
cleanup

grep -q " /sys/fs/bpf bpf " /proc/mounts || mount -t bpf bpf /sys/fs/bpf
(cd "$REPO" && cargo build -q --release -p palisade-bpf --example datapath_setup)
SETUP="$REPO/target/release/examples/datapath_setup"

for ns in $NODE $A $B; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
wire() { # pod host_if ip
  ip link add "$2" netns $NODE type veth peer name eth0 netns "$1"
  ip -n $NODE addr add 10.201.0.254/32 dev "$2"; ip -n $NODE link set "$2" up
  ip -n $NODE route add "$3/32" dev "$2"
  ip -n "$1" addr add "$3/32" dev eth0; ip -n "$1" link set eth0 up
  ip -n "$1" route add 10.201.0.254 dev eth0 scope link
  ip -n "$1" route add default via 10.201.0.254 dev eth0
}
wire $A pbpf-bha 10.201.0.1
wire $B pbpf-bhb 10.201.0.2
ip netns exec $NODE sysctl -qw net.ipv4.ip_forward=1
ip netns exec $B iperf3 -s -D -B 10.201.0.2
for _ in $(seq 50); do ip netns exec $B ss -ltnH | grep -q ':5201 ' && break; sleep 0.1; done

measure() { # label
  local tcp udp
  tcp=$(ip netns exec $A iperf3 -c 10.201.0.2 -t "$SECS" -J | python3 -c \
    'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))')
  udp=$(ip netns exec $A iperf3 -c 10.201.0.2 -u -l 64 -b 0 -t "$SECS" -J | python3 -c \
    'import json,sys; e=json.load(sys.stdin)["end"]["sum"]; print("%.0f" % ((e["packets"]-e["lost_packets"])/e["seconds"]/1e3))')
  echo "| $1 | $tcp | $udp |" | tee -a "$OUT.tmp"
}

mkdir -p "$(dirname "$OUT")"
: >"$OUT.tmp"
measure "no program"
"$SETUP" $NODE "$PIN" pbpf-bha pbpf-bhb 0
measure "program + 10 entries"
rm -rf "$PIN"
"$SETUP" $NODE "$PIN" pbpf-bha pbpf-bhb 100000
measure "program + 100,000 entries"

mkdir -p "$(dirname "$OUT")"
{
  echo "# Datapath benchmark ($(date -u +%F), kernel $(uname -r), ${SECS}s per run)"
  echo
  echo "Pod to pod on one node, iperf3; UDP = 64-byte payload, received kpps."
  echo
  echo "| setup | TCP Gbit/s | UDP kpps |"
  echo "| --- | --- | --- |"
  cat "$OUT.tmp"
} >"$OUT"
rm -f "$OUT.tmp"
echo "wrote $OUT"
