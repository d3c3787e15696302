#!/usr/bin/env bash
# DNS proxy benchmark (not CI). Three paths from a pod namespace, same dnsmasq resolver:
#   direct     dnsperf → dnsmasq resolver
#   palisade   dnsperf → (iptables TPROXY) palisade dnsproxy, matchPattern policy → resolver
#   forwarder  dnsperf → dnsmasq as a plain forwarder (cache off) → resolver
# Each path runs twice: flat out (dnsperf -q 200: throughput) and at a fixed RATE (dnsperf -Q:
# latency without queueing). p50/p99 come from dnsperf -v's per-query times. The proxy runs with a
# learner doing the agent's work minus the eBPF writes (see examples/dnsproxy_bench.rs) and
# reports answer → release latencies and its CPU per query.
# Writes bench-results/dns.md. Everything lives in pdns-bench-* namespaces, removed on exit.
# Usage: dnsproxy/bench/dns.sh [seconds-per-run (10)] [clients (10)] [fixed rate, queries/s (10000)]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
CLIENTS=${2:-10}
RATE=${3:-10000}
N=pdns-bench-n; P=pdns-bench-p; R=pdns-bench-r
OUT=bench-results/dns.md
TMP=$(mktemp -d)
PIDS=()


del_ns() { for ns in $N $P $R; do ip netns del $ns 2>/dev/null || true; done; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  del_ns
  rm -rf "$TMP"
}
trap cleanup EXIT
del_ns

cargo build -q --release -p palisade-dnsproxy --example dnsproxy_bench
BIN=target/release/examples/dnsproxy_bench

for ns in $N $P $R; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add eth0 netns $P type veth peer vpod netns $N
ip link add eth0 netns $R type veth peer vres netns $N
ip -n $P addr add 10.98.1.2/24 dev eth0; ip -n $N addr add 10.98.1.1/24 dev vpod
ip -n $R addr add 10.98.2.2/24 dev eth0; ip -n $N addr add 10.98.2.1/24 dev vres
for l in "$P eth0" "$N vpod" "$R eth0" "$N vres"; do set -- $l; ip -n $1 link set $2 up; done
ip -n $P route add default via 10.98.1.1
ip -n $R route add default via 10.98.2.1
ip netns exec $N sysctl -qw net.ipv4.ip_forward=1
ip -n $N rule add fwmark 0x200/0xf00 lookup 2004 pref 9
ip -n $N route add local 0.0.0.0/0 dev lo table 2004

ip netns exec $R dnsmasq --no-daemon --no-resolv --no-hosts --port=53 --listen-address=10.98.2.2 \
  --bind-interfaces --user=root --pid-file --address=/github.com/10.99.0.10 --local-ttl=300 \
  --dns-forward-max=1000 >/dev/null 2>&1 &
PIDS+=($!)
ip netns exec $N dnsmasq --no-daemon --no-resolv --no-hosts --port=53 --listen-address=10.98.1.1 \
  --bind-interfaces --user=root --pid-file --server=10.98.2.2 --cache-size=0 \
  --dns-forward-max=1000 >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
  ip netns exec $N dig +short +time=1 +tries=1 @10.98.2.2 api.github.com | grep -q 10.99 && break
  sleep 0.1
done

for i in $(seq 1 200); do echo "host$i.github.com A"; done > "$TMP/queries"

tproxy() { # add|del
  local op=-A; [ "$1" = del ] && op=-D
  for proto in udp tcp; do
    ip netns exec $N iptables -t mangle $op PREROUTING -p $proto --dport 53 \
      -j TPROXY --on-port 15053 --tproxy-mark 0x200/0xf00
  done
}

# dnsperf -v prints one line per answer ("> NOERROR name A <seconds>"): percentiles from those.
pct() { # file quantile → milliseconds
  awk '/^> / {print $NF}' "$1" | sort -g | awk -v q="$2" '{v[NR]=$1} END {
    if (NR == 0) { print "?"; exit } i = int(NR * q); if (i < 1) i = 1; printf "%.3f", v[i] * 1000 }'
}

run() { # name server [extra dnsperf args]
  ip netns exec $P dnsperf -v -s "$2" -d "$TMP/queries" -l "$SECS" -c "$CLIENTS" -T 1 -q 200 \
    ${3:-} > "$TMP/$1.txt" 2>&1 || true
  local qps lat lost p50 p99
  qps=$(awk '/Queries per second/ {printf "%.0f", $4}' "$TMP/$1.txt")
  lat=$(awk '/Average Latency/ {printf "%.3f", $4*1000}' "$TMP/$1.txt")
  lost=$(awk '/Queries lost/ {print $3}' "$TMP/$1.txt")
  p50=$(pct "$TMP/$1.txt" 0.5); p99=$(pct "$TMP/$1.txt" 0.99)
  echo "$1 ${p99}" >> "$TMP/p99"
  echo "| $1 | ${qps:-?} | ${lat:-?} | $p50 | $p99 | ${lost:-?} |" >> "$TMP/rows"
}

run direct 10.98.2.2
run "direct@$RATE" 10.98.2.2 "-Q $RATE"
tproxy add
proxy() { # start|stop learner (agent|instant); output in proxy-<learner>.txt
  if [ "$1" = stop ]; then
    kill -TERM "$PROXY" 2>/dev/null || true; wait "$PROXY" 2>/dev/null || true; return
  fi
  # SIGTERM ends it after the runs; the time limit is only a backstop.
  ip netns exec $N env DNS_BENCH_LEARNER=$2 "$BIN" 15053 10.98.1.2 10.98.2.2/32 '*.github.com' \
    $((4 * SECS + 30)) "$TMP" > "$TMP/proxy-$2.txt" 2>&1 &
  PROXY=$!; PIDS+=($PROXY)
  for _ in $(seq 50); do grep -q listening "$TMP/proxy-$2.txt" && break; sleep 0.1; done
}
proxy start agent
run palisade 10.98.2.2
run "palisade@$RATE" 10.98.2.2 "-Q $RATE"
proxy stop
proxy start instant
run palisade-instant 10.98.2.2
run "palisade-instant@$RATE" 10.98.2.2 "-Q $RATE"
proxy stop
tproxy del
run forwarder 10.98.1.1
run "forwarder@$RATE" 10.98.1.1 "-Q $RATE"

mkdir -p bench-results
{
  echo "# DNS proxy benchmark"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores (load average $(cut -d' ' -f1 /proc/loadavg)),"
  echo "dnsperf -c $CLIENTS -l $SECS -q 200 (name@$RATE: -Q $RATE), UDP, 200 names,"
  echo "resolver: dnsmasq in its own netns; pod → node → resolver over veths."
  echo
  echo "| path | queries/s | avg (ms) | p50 (ms) | p99 (ms) | lost |"
  echo "| --- | --- | --- | --- | --- | --- |"
  cat "$TMP/rows"
  echo
  awk -v r="@$RATE" '{p[$1]=$2} END {
    printf "added p99 vs direct, flat out: palisade %.3f ms, palisade-instant %.3f ms, ",
      p["palisade"] - p["direct"], p["palisade-instant"] - p["direct"]
    printf "dnsmasq forwarder %.3f ms\n\n", p["forwarder"] - p["direct"]
    printf "added p99 vs direct at %s/s: palisade %.3f ms, palisade-instant %.3f ms, ",
      substr(r, 2), p["palisade" r] - p["direct" r], p["palisade-instant" r] - p["direct" r]
    printf "dnsmasq forwarder %.3f ms\n", p["forwarder" r] - p["direct" r] }' "$TMP/p99"
  for l in agent instant; do
    echo
    if [ $l = agent ]; then
      echo "palisade: learner doing the agent's work (FqdnCache insert, fsynced cache file; no maps):"
    else
      echo "palisade-instant: learner returning at once (the proxy's own cost):"
    fi
    echo
    echo "- $(grep 'answer->release' "$TMP/proxy-$l.txt" || echo 'latencies n/a')"
    echo "- $(grep '^queries=' "$TMP/proxy-$l.txt" || echo 'counters n/a')"
    echo "- $(grep '^proxy cpu' "$TMP/proxy-$l.txt" || echo 'cpu n/a')"
  done
} > "$OUT"
cat "$OUT"
