#!/usr/bin/env bash
# DNS proxy benchmark (not CI). Paths from a pod namespace, same dnsmasq resolver:
#   direct            dnsperf → dnsmasq resolver
#   palisade          dnsperf → (iptables TPROXY) palisade dnsproxy, matchPattern policy → resolver,
#                     with a learner doing the agent's work minus the eBPF writes (group commit,
#                     policy re-resolution on new addresses, cache file written behind; see
#                     examples/dnsproxy_bench/agent_learner.rs)
#   palisade-instant  the same with a learner that returns at once (the proxy's own cost)
#   floor             dnsperf → (TPROXY) examples/udp_floor.rs → resolver: the ID swapped and the
#                     answer sent back from the resolver's address, nothing else (no parsing,
#                     policy or learning): what any transparent proxy pays on this machine
#   forwarder         dnsperf → dnsmasq as a plain forwarder (cache off) → resolver
# Each path runs flat out (dnsperf -q 200: throughput) and at a fixed RATE (dnsperf -Q: latency
# without queueing), in ROUNDS rounds; palisade also runs palisade-fresh@1000: 1000 queries/s,
# every name new (the steady state of learning: each answer waits for the learner); the proxy starts afresh for each, so every round includes
# learning the 200 names. p50/p99 come from dnsperf -v's per-query times; queries/s is answers ÷
# seconds of sending (see run()). For every run the CPU
# of dnsperf, the resolver and the middle box (proxy or forwarder) is divided by the queries
# answered: on 2 shared cores these sums set the ceiling on queries/s.
# Writes bench-results/dns.md. Everything lives in pdns-bench-* namespaces, removed on exit.
# Usage: dnsproxy/bench/dns.sh [seconds-per-run (10)] [clients (10)] [rate/s (10000)] [rounds (3)]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
CLIENTS=${2:-10}
RATE=${3:-10000}
ROUNDS=${4:-3}
N=pdns-bench-n; P=pdns-bench-p; R=pdns-bench-r
OUT=bench-results/dns.md
TMP=$(mktemp -d)
PIDS=()
STARTED=$(date +%s)

del_ns() { for ns in $N $P $R; do ip netns del $ns 2>/dev/null || true; done; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  ip netns exec $N iptables -t mangle -F PREROUTING 2>/dev/null || true
  del_ns
  rm -rf "$TMP"
}
trap cleanup EXIT
del_ns

cargo build -q --release -p palisade-dnsproxy --example dnsproxy_bench --example udp_floor
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
RESOLVER=$!; PIDS+=($RESOLVER)
ip netns exec $N dnsmasq --no-daemon --no-resolv --no-hosts --port=53 --listen-address=10.98.1.1 \
  --bind-interfaces --user=root --pid-file --server=10.98.2.2 --cache-size=0 \
  --dns-forward-max=1000 >/dev/null 2>&1 &
FORWARDER=$!; PIDS+=($FORWARDER)
for _ in $(seq 50); do
  ip netns exec $N dig +short +time=1 +tries=1 @10.98.2.2 api.github.com | grep -q 10.99 && break
  sleep 0.1
done

for i in $(seq 1 200); do echo "host$i.github.com A"; done > "$TMP/queries"
FRESH_RATE=1000
for i in $(seq 1 $((FRESH_RATE * SECS + 1000))); do echo "fresh$i.github.com A"; done > "$TMP/fresh"

tproxy() { # add|del
  local op=-A; [ "$1" = del ] && op=-D
  for proto in udp tcp; do
    ip netns exec $N iptables -t mangle $op PREROUTING -p $proto --dport 53 \
      -j TPROXY --on-port 15053 --tproxy-mark 0x200/0xf00
  done
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; } # user+system, 1/100 s
kticks() { awk '{print $15}' "/proc/$1/stat" 2>/dev/null || echo 0; } # system alone

# dnsperf -v prints one line per answer ("> NOERROR name A <seconds>"): percentiles from those.
pct() { # file quantile → milliseconds
  awk '/^> / {print $NF}' "$1" | sort -g | awk -v q="$2" '{v[NR]=$1} END {
    if (NR == 0) { print "?"; exit } i = int(NR * q); if (i < 1) i = 1; printf "%.3f", v[i] * 1000 }'
}

MIDDLE=0 # pid of the proxy or forwarder in the path, 0 for direct
run() { # round path server [extra dnsperf args] [query file]
  local f="$TMP/$2.$1.txt" r0 m0 k0 r1 m1 k1 qps done p50 p99 lost
  r0=$(ticks $RESOLVER); m0=$( [ $MIDDLE = 0 ] && echo 0 || ticks $MIDDLE)
  k0=$( [ $MIDDLE = 0 ] && echo 0 || kticks $MIDDLE)
  /usr/bin/time -o "$f.time" -f "%U %S" ip netns exec $P dnsperf -v -s "$3" -d "${5:-$TMP/queries}" \
    -l "$SECS" -c "$CLIENTS" -T 1 -q 200 ${4:-} > "$f" 2>&1 || true
  r1=$(ticks $RESOLVER); m1=$( [ $MIDDLE = 0 ] && echo 0 || ticks $MIDDLE)
  k1=$( [ $MIDDLE = 0 ] && echo 0 || kticks $MIDDLE)
  done=$(awk '/Queries completed/ {print $3}' "$f")
  # Answered ÷ the sending time, not dnsperf's own figure: that divides by its run time, which
  # waits out its 5 s timeout when a query sent near the end was lost (the resolver's socket
  # buffer overflows a few times per flat-out run on every path: UdpRcvbufErrors in its netns),
  # so one late drop cut a run's queries/s by up to 40%.
  qps=$(( ${done:-0} / SECS ))
  lost=$(awk '/Queries lost/ {print $3}' "$f")
  p50=$(pct "$f" 0.5); p99=$(pct "$f" 0.99)
  # One line per run: path round qps p50 p99 lost cpu(dnsperf resolver middle middle-kernel)
  # in us/query.
  awk -v path="$2" -v round="$1" -v qps="${qps:-0}" -v n="${done:-0}" -v p50="$p50" -v p99="$p99" \
    -v lost="${lost:-?}" -v res=$((r1 - r0)) -v mid=$((m1 - m0)) -v kmid=$((k1 - k0)) '{
      n = (n > 0) ? n : 1
      printf "%s %s %s %s %s %s %.1f %.1f %.1f %.1f\n", path, round, qps, p50, p99, lost,
        ($1 + $2) * 1e6 / n, res * 1e4 / n, mid * 1e4 / n, kmid * 1e4 / n }' "$f.time" >> "$TMP/runs"
}

proxy() { # start learner log-name | stop
  if [ "$1" = stop ]; then
    kill -TERM "$MIDDLE" 2>/dev/null || true; wait "$MIDDLE" 2>/dev/null || true; MIDDLE=0; return
  fi
  local log="$TMP/proxy-$3.txt"
  # SIGTERM ends it after the runs; the time limit is only a backstop.
  ip netns exec $N env DNS_BENCH_LEARNER=$2 "$BIN" 15053 10.98.1.2 10.98.2.2/32 '*.github.com' \
    $((2 * SECS + 30)) "$TMP" > "$log" 2>&1 &
  MIDDLE=$!; PIDS+=($MIDDLE)
  for _ in $(seq 50); do grep -q listening "$log" && break; sleep 0.1; done
}

# The flat-out runs the target compares (palisade, forwarder) go back to back, in alternating
# order over the rounds (ABBA), so the machine's load drifting between them shows as spread
# between rounds rather than as a bias in one direction. The proxy (started first, so its run
# always begins with its start-up burst) waits idle while the forwarder runs.
palisade_flat() { # round
  tproxy add
  run "$1" palisade 10.98.2.2
  tproxy del
}
forwarder_flat() { # round
  local middle=$MIDDLE
  MIDDLE=$FORWARDER
  run "$1" forwarder 10.98.1.1
  MIDDLE=$middle
}

for round in $(seq 1 "$ROUNDS"); do
  MIDDLE=0
  run $round direct 10.98.2.2
  run $round "direct@$RATE" 10.98.2.2 "-Q $RATE"
  proxy start agent agent.$round
  if [ $((round % 2)) = 1 ]; then
    palisade_flat $round; forwarder_flat $round
  else
    forwarder_flat $round; palisade_flat $round
  fi
  tproxy add
  run $round "palisade@$RATE" 10.98.2.2 "-Q $RATE"
  proxy stop
  proxy start instant instant.$round
  run $round palisade-instant 10.98.2.2
  run $round "palisade-instant@$RATE" 10.98.2.2 "-Q $RATE"
  proxy stop
  proxy start agent fresh.$round
  run $round "palisade-fresh@$FRESH_RATE" 10.98.2.2 "-Q $FRESH_RATE" "$TMP/fresh"
  proxy stop
  ip netns exec $N target/release/examples/udp_floor 0.0.0.0:15053 >/dev/null 2>&1 &
  MIDDLE=$!; PIDS+=($MIDDLE)
  for _ in $(seq 50); do
    ip netns exec $P dig +short +time=1 +tries=1 @10.98.2.2 api.github.com | grep -q 10.99 && break
    sleep 0.1
  done
  run $round floor 10.98.2.2
  kill "$MIDDLE"; wait "$MIDDLE" 2>/dev/null || true
  tproxy del
  MIDDLE=$FORWARDER
  run $round "forwarder@$RATE" 10.98.1.1 "-Q $RATE"
done

# Median of a column over the rounds of one path.
med() { # path column
  awk -v p="$1" -v c="$2" '$1 == p && $c != "?" {print $c}' "$TMP/runs" | sort -g |
    awk '{v[NR]=$1} END { if (NR == 0) { print "?"; exit } print v[int((NR + 1) / 2)] }'
}
# Median of numbers on stdin, and the list in round order.
median() { sort -g | awk '{v[NR]=$1} END { if (NR == 0) { print "?"; exit } print v[int((NR + 1) / 2)] }'; }
# Per round: column c of path a over (or minus) column c of path b.
per_round() { # a b column op(div|sub)
  awk -v a="$1" -v b="$2" -v c="$3" -v op="$4" '
    $1 == a { x[$2] = $c } $1 == b { y[$2] = $c }
    END { for (r = 1; (r in x) || (r in y); r++)
      if (op == "div") printf "%.2f\n", x[r] / (y[r] > 0 ? y[r] : 1); else printf "%.3f\n", x[r] - y[r] }' "$TMP/runs"
}
# Per round: a quantile of the answers that waited for the learner ("waited p50=…ms p99=…ms n=…").
waited() { # log-name field
  for r in $(seq 1 "$ROUNDS"); do
    grep '^waited ' "$TMP/proxy-$1.$r.txt" | tr ' ' '\n' | grep "^$2=" | cut -d= -f2 | tr -d 'ms'
  done
}
line() { paste -sd' ' | sed 's/ /, /g'; } # one line, comma-separated
batches() { # log-name → "b/f, b/f, ..." from the learner's report line
  for r in $(seq 1 "$ROUNDS"); do
    sed -n 's/.* \([0-9]*\) batches with new addresses, \([0-9]*\) of them.*/\1\/\2/p' "$TMP/proxy-$1.$r.txt"
  done | line
}

# dnsperf, the resolver and the middle box share the two cores, so a path's queries/s follows
# the CPU its queries cost the three together. Checked on the floor (ratio of sums against the
# measured ratio), this gives the CPU the proxy may spend per query to reach 2x the forwarder.
budget() {
  awk '
    function med(a, n,   i, j, t) {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { r = $2; sum[$1, r] = $7 + $8 + $9; qps[$1, r] = $3; cpu[$1, r] = $9; kern[$1, r] = $10
      other[$1, r] = $7 + $8; if (r > n) n = r }
    END {
      for (i = 1; i <= n; i++) {
        p[i] = sum["forwarder", i] / sum["floor", i]; m[i] = qps["floor", i] / qps["forwarder", i]
        b[i] = sum["forwarder", i] / 2 - other["palisade", i]
        c[i] = cpu["palisade", i]; k[i] = kern["palisade", i]; f[i] = cpu["floor", i]
      }
      printf "CPU budget (medians over rounds): the CPU per query of dnsperf, resolver and middle box\n"
      printf "together predicts floor / forwarder %.2fx (measured %.2fx). By that sum, reaching 2x the\n", med(p, n), med(m, n)
      printf "forwarder leaves the proxy %.1f µs/q with the dnsperf and resolver costs of the palisade\n", med(b, n)
      printf "runs; palisade spends %.1f, of it %.1f in the kernel; the floor spends %.1f.\n", med(c, n), med(k, n), med(f, n)
      for (i = 1; i <= n; i++) cr[i] = cpu["forwarder", i] / cpu["palisade", i]
      printf "Where the middle box had a core of its own, its CPU per query alone would bound queries/s:\n"
      printf "forwarder / palisade CPU per query %.2fx.\n", med(cr, n)
    }' "$TMP/runs"
}

mkdir -p bench-results
{
  echo "# DNS proxy benchmark"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores shared with other work (load average at the end"
  echo "$(cut -d' ' -f1-3 /proc/loadavg)), $ROUNDS rounds in $(( $(date +%s) - STARTED )) s."
  echo "dnsperf -c $CLIENTS -l $SECS -q 200 (name@$RATE: -Q $RATE), UDP, 200 names;"
  echo "resolver: dnsmasq in its own netns; pod → node → resolver over veths. Medians over the rounds."
  echo "palisade and forwarder flat out run back to back in each round, in alternating order."
  echo "CPU columns: user+system CPU of that process per answered query."
  echo
  echo "| path | queries/s | p50 (ms) | p99 (ms) | dnsperf CPU (µs/q) | resolver CPU (µs/q) | proxy/forwarder CPU (µs/q) | of it kernel |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  for p in direct palisade palisade-instant forwarder; do
    for row in "$p" "$p@$RATE"; do
      echo "| $row | $(med "$row" 3) | $(med "$row" 4) | $(med "$row" 5) | $(med "$row" 7) | $(med "$row" 8) | $(med "$row" 9) | $(med "$row" 10) |"
    done
  done
  for row in palisade-fresh@$FRESH_RATE floor; do
    echo "| $row | $(med "$row" 3) | $(med "$row" 4) | $(med "$row" 5) | $(med "$row" 7) | $(med "$row" 8) | $(med "$row" 9) | $(med "$row" 10) |"
  done
  echo
  cpu_sum() { echo "$(med "$1" 7) $(med "$1" 8) $(med "$1" 9)" | awk '{printf "%.1f", $1 + $2 + $3}'; }
  echo "CPU per query of the three processes together, flat out: direct $(cpu_sum direct) µs," \
    "palisade $(cpu_sum palisade) µs, palisade-instant $(cpu_sum palisade-instant) µs," \
    "forwarder $(cpu_sum forwarder) µs ($(nproc) cores ÷ that sum bounds queries/s; softirq work"
  echo "charged to no process and other work on the machine come on top)."
  echo
  echo "queries/s, palisade ÷ dnsmasq forwarder, flat out: median $(per_round palisade forwarder 3 div | median)×" \
    "(rounds: $(per_round palisade forwarder 3 div | line));" \
    "palisade-instant ÷ forwarder: median $(per_round palisade-instant forwarder 3 div | median)×" \
    "(rounds: $(per_round palisade-instant forwarder 3 div | line));" \
    "floor ÷ forwarder: median $(per_round floor forwarder 3 div | median)×" \
    "(rounds: $(per_round floor forwarder 3 div | line)); palisade ÷ floor: median" \
    "$(per_round palisade floor 3 div | median)× (rounds: $(per_round palisade floor 3 div | line))"
  echo
  budget
  echo
  echo "added p99 vs direct at $RATE/s: palisade median $(per_round "palisade@$RATE" "direct@$RATE" 5 sub | median) ms" \
    "(rounds: $(per_round "palisade@$RATE" "direct@$RATE" 5 sub | line));" \
    "dnsmasq forwarder median $(per_round "forwarder@$RATE" "direct@$RATE" 5 sub | median) ms"
  echo
  echo "Answers that waited for the learner (new names, the first round of queries after the proxy"
  echo "starts): upstream answer received → the agent's work done (here without the eBPF writes) →"
  echo "answer released: p50 median $(waited agent p50 | median) ms (rounds: $(waited agent p50 | line)),"
  echo "p99 median $(waited agent p99 | median) ms (rounds: $(waited agent p99 | line)), n per round:"
  echo "$(waited agent n | line). With the instant learner (the proxy's part alone): p50 median"
  echo "$(waited instant p50 | median) ms, p99 median $(waited instant p99 | median) ms."
  echo
  echo "Steady state, palisade-fresh@$FRESH_RATE (every name new, each answer waits for the learner):"
  echo "p50 median $(waited fresh p50 | median) ms (rounds: $(waited fresh p50 | line)), p99 median"
  echo "$(waited fresh p99 | median) ms (rounds: $(waited fresh p99 | line)), n per round: $(waited fresh n | line)."
  echo
  echo "The learner's batches (group commit) and how many needed a full policy re-resolution, per"
  echo "round (batches with new addresses/re-resolved): burst $(batches agent); fresh $(batches fresh)."
  echo
  echo "Per-round runs (path round qps p50 p99 lost cpu-dnsperf cpu-resolver cpu-middle cpu-middle-kernel):"
  echo
  echo '```'
  sort -k1,1 -k2,2n "$TMP/runs"
  echo '```'
  echo
  echo "Proxy reports, last round:"
  echo
  for l in agent instant fresh; do
    echo "- $l: $(grep 'answer->release' "$TMP/proxy-$l.$ROUNDS.txt" || echo 'latencies n/a')"
    echo "  $(grep '^queries=' "$TMP/proxy-$l.$ROUNDS.txt" || echo 'counters n/a')"
  done
} > "$OUT"
cat "$OUT"
