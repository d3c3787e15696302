#!/usr/bin/env bash
# HTTP/1.1 keep-alive throughput and latency, one thread each (not run in CI):
#   direct backend | palisade proxy (1, 100, 1000 rules) | nginx | haproxy,
# all with the same policy: GET /public allowed, anything else 403.
# Runs inside two namespaces it creates (PREFIX-hbench-c client, PREFIX-hbench-s server; PREFIX is
# $PALISADE_E2E_PREFIX or pprx) and removes.
# Usage (root): proxy/bench/http.sh      env: DURATION=10s CONNS=32 ROUNDS=3
#   BASE_BIN=path/to/older/http_proxy adds a "palisade-base-1" setup (before/after comparisons;
#   BASE_LABEL=text says in the results what that build is)
#   PERF=1 also profiles the proxy (perf record) during the first palisade-1 run and writes the
#   flat profile to bench-results/http-profile.txt
# Every round runs each setup once, back to back; the table shows each setup's median round
# (by req/s), since the machine is shared and one round can be hit by others' load.
# Writes bench-results/http.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-3}
# Namespace names carry $PALISADE_E2E_PREFIX, so two checkouts can bench at once.
C=${PALISADE_E2E_PREFIX:-pprx}-hbench-c
S=${PALISADE_E2E_PREFIX:-pprx}-hbench-s
SERVER=10.77.0.2
WORK=$(mktemp -d)
PIDS=()
MADE=()
source proxy/bench/common.sh
trap bench_cleanup EXIT

cargo build --release -q -p palisade-proxy --example http_proxy --example relay_floor
PROXY_BIN=$PWD/target/release/examples/http_proxy
FLOOR_BIN=$PWD/target/release/examples/relay_floor

bench_netns "$C" "$S" 10.77.0.1 "$SERVER" 80

# Backend (its own nginx, one worker) on :80 behind palisade and on :8080 for the others; nginx
# as a proxy is a second instance on :8081 so it does not share a worker with the backend.
plain_backend_conf
plain_nginx_conf "$SERVER"
cat >"$WORK/haproxy.cfg" <<HAPROXY
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind $SERVER:8082
  http-request deny deny_status 403 unless METH_GET { path /public }
  default_backend be
backend be
  http-reuse always
  server s1 $SERVER:8080
HAPROXY

# `ip netns exec` execs its command, so $! is the server's own pid.
ip netns exec "$S" nginx -c "$WORK/backend.conf" -p "$WORK" & BACKEND=$!; PIDS+=($BACKEND)
ip netns exec "$S" nginx -c "$WORK/nginx.conf" -p "$WORK" & NGINX=$!; PIDS+=($NGINX)
ip netns exec "$S" haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>&1 & HAPROXY=$!; PIDS+=($HAPROXY)


wait_port() { # $1 = port
  for _ in $(seq 1 100); do
    ip netns exec "$C" curl -s -o /dev/null "http://$SERVER:$1/public" && return 0
    sleep 0.1
  done
  echo "port $1 never answered" >&2; return 1
}

expect_deny() { # $1 = label, $2 = port
  local code
  wait_port "$2"
  code=$(ip netns exec "$C" curl -s -o /dev/null -w '%{http_code}' "http://$SERVER:$2/private")
  [ "$code" = 403 ] || echo "$1 answered $code to /private, not 403" >&2
  code=$(ip netns exec "$C" curl -s -o /dev/null -w '%{http_code}' -X POST "http://$SERVER:$2/public")
  [ "$code" = 403 ] || echo "$1 answered $code to POST /public, not 403" >&2
}

bench() { # $1 = label, $2 = port, $3 = pid whose CPU is charged
  local out t0 t1 k0 k1 b0 b1 rps p50 p99 reqs cpu kernel backend client
  wait_port "$2"
  t0=$(cpu_ticks "$3"); k0=$(sys_ticks "$3")
  b0=$(cpu_ticks "$BACKEND_W")
  local perf=""
  if [ "${PERF:-0}" = 1 ] && [ "$1" = palisade-1 ] && [ ! -e "$WORK/perf.data" ]; then
    perf record -q -F 1999 -o "$WORK/perf.data" -p "$3" 2>/dev/null & perf=$!
  fi
  # bash's `time` gives wrk's own user+system CPU: the client's share of the two cores.
  local TIMEFORMAT='%3U %3S'
  { time ip netns exec "$C" wrk -t1 -c"$CONNS" -d"$DURATION" --latency \
      "http://$SERVER:$2/public" >"$WORK/wrk.out"; } 2>"$WORK/wrk.time"
  out=$(cat "$WORK/wrk.out")
  if [ -n "$perf" ]; then
    kill -INT "$perf"; wait "$perf" || true
    mkdir -p bench-results
    {
      echo "# perf record -F 1999 of the palisade-1 proxy process; by DSO, then by symbol"
      perf report -q -i "$WORK/perf.data" --no-children --sort dso 2>/dev/null
      echo
      perf report -q -i "$WORK/perf.data" --no-children --sort dso,symbol --percent-limit 0.3 \
        2>/dev/null
    } | sed 's/ *$//' >bench-results/http-profile.txt || true
  fi
  t1=$(cpu_ticks "$3"); k1=$(sys_ticks "$3")
  b1=$(cpu_ticks "$BACKEND_W")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
    'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
  kernel=$(awk -v t="$((k1 - k0))" -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
    'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
  backend=$(awk -v t="$((b1 - b0))" -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
    'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
  client=$(awk -v n="$reqs" '{ printf "%.1f", ($1 + $2) * 1e6 / n }' "$WORK/wrk.time")
  echo "$1 $rps $p50 $p99 $cpu $backend $client $kernel" | tee -a "$WORK/raw"
}

# The floor: bytes copied both ways through the same transparent listener, no HTTP and no
# policy (every request is forwarded): what any user-space proxy pays before doing its job.
floor() {
  local pid
  ip netns exec "$S" "$FLOOR_BIN" 0.0.0.0:15001 >/dev/null & pid=$!
  bench "relay-floor" 80 "$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

palisade() { # $1 = number of rules, $2 = binary (default: this tree's), $3 = label suffix
  local pid
  http_snapshot "$1" 10.77.0.1 "$SERVER" >"$WORK/snap.json"
  # One worker thread also for builds whose example uses the multi-thread runtime.
  TOKIO_WORKER_THREADS=1 ip netns exec "$S" "${2:-$PROXY_BIN}" "$WORK/snap.json" 0.0.0.0:15001 \
    >/dev/null & pid=$!
  bench "palisade${3:-}-$1" 80 "$pid"
  expect_deny "palisade" 80
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

: >"$WORK/raw"
BACKEND_W=$(worker "$BACKEND")
NGINX_W=$(worker "$NGINX")
expect_deny "nginx" 8081
expect_deny "haproxy" 8082
for _ in $(seq 1 "$ROUNDS"); do
  bench "direct" 8080 "$BACKEND_W"
  # The compared setups back to back, so they see the same machine load.
  palisade 1
  if [ -n "${BASE_BIN:-}" ]; then palisade 1 "$BASE_BIN" -base; fi
  bench "nginx" 8081 "$NGINX_W"
  bench "haproxy" 8082 "$HAPROXY"
  floor
  palisade 100
  palisade 1000
done

median() { # $1 = label -> its median round: "label rps p50 p99 cpu"
  awk -v l="$1" '$1 == l' "$WORK/raw" | sort -k2 -g |
    awk '{ r[NR] = $0 } END { print r[int((NR + 1) / 2)] }'
}
rounds() { awk -v l="$1" '$1 == l { printf "%s%.0f", sep, $2; sep = ", " }' "$WORK/raw"; }
ratio() {
  awk -v a="$(median "$1" | cut -d' ' -f2)" -v b="$(median "$2" | cut -d' ' -f2)" \
    'BEGIN { printf "%.2f", a / b }'
}

# Per-round ratios: each round runs the setups back to back, so a ratio within a round sees
# one machine load; their median is steadier than the ratio of medians when others compile.
round_ratios() { # $1, $2 = labels -> "r1, r2, ... (median m)"
  awk -v a="$1" -v b="$2" '
    $1 == a { x[++na] = $2 } $1 == b { y[++nb] = $2 }
    END {
      n = na < nb ? na : nb
      for (i = 1; i <= n; i++) { r[i] = x[i] / y[i]; printf "%s%.2f", (i > 1 ? ", " : ""), r[i] }
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
      printf " (median %.2f)", (n % 2 ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2)
    }' "$WORK/raw"
}

# The three processes share the two cores, so a setup's req/s follows the CPU its requests cost
# all three together (wrk + backend + proxy, per request). Checked on the floor (ratio of sums
# against measured ratio), this gives the CPU a proxy may spend per request to reach 1.3x a peer.
budget() {
  awk '
    function med(a, n,   i, j, t) {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { k = ++seen[$1]; sum[$1, k] = $5 + $6 + $7; rps[$1, k] = $2; cpu[$1, k] = $5; sys[$1, k] = $8
      other[$1, k] = $6 + $7 }
    END {
      n = seen["palisade-1"]
      for (i = 1; i <= n; i++) {
        pn[i] = sum["nginx", i] / sum["relay-floor", i]; mn[i] = rps["relay-floor", i] / rps["nginx", i]
        ph[i] = sum["haproxy", i] / sum["relay-floor", i]; mh[i] = rps["relay-floor", i] / rps["haproxy", i]
        bn[i] = sum["nginx", i] / 1.3 - other["palisade-1", i]
        bh[i] = sum["haproxy", i] / 1.3 - other["palisade-1", i]
        kern[i] = sys["palisade-1", i]; f[i] = cpu["relay-floor", i]; c[i] = cpu["palisade-1", i]
      }
      printf "CPU budget (medians over rounds): req/s follows the CPU per request of wrk, backend and proxy\n"
      printf "together. Check on the floor: that sum predicts relay-floor / nginx %.2fx (measured %.2fx) and\n", med(pn, n), med(mn, n)
      printf "relay-floor / haproxy %.2fx (measured %.2fx). To reach 1.3x, a proxy may spend at most\n", med(ph, n), med(mh, n)
      printf "%.1f µs/req (nginx) and %.1f µs/req (haproxy) with the wrk and backend costs of the palisade-1\n", med(bn, n), med(bh, n)
      printf "runs; palisade-1 spends %.1f, of it %.1f in the kernel; the floor spends %.1f.\n", med(c, n), med(kern, n), med(f, n)
      for (i = 1; i <= n; i++) { cn[i] = cpu["nginx", i] / cpu["palisade-1", i]; ch[i] = cpu["haproxy", i] / cpu["palisade-1", i] }
      printf "Where each proxy had a core of its own (wrk and backend elsewhere), its CPU per request alone\n"
      printf "would bound req/s: nginx / palisade-1 CPU per request %.2fx, haproxy / palisade-1 %.2fx.\n", med(cn, n), med(ch, n)
    }' "$WORK/raw"
}

mkdir -p bench-results
{
  echo "# HTTP proxy benchmark"
  echo
  echo "wrk -t1 -c$CONNS -d$DURATION, $ROUNDS rounds (median round shown), HTTP/1.1 keep-alive,"
  echo "GET /public (allowed; other paths and methods get 403); one worker thread per proxy,"
  echo "backend a separate one-worker nginx; $(nproc) cores shared by client, proxy and backend (and"
  echo "whatever else runs); $(date -u +%F). CPU = proxy process user+system time per request"
  echo "(for direct: the backend's); backend = the backend nginx worker's, wrk = the client's,"
  echo "both per request of the same run: the three share the two cores, so a proxy's req/s"
  echo "depends on all three."
  echo
  echo "| setup | req/s | p50 | p99 | CPU µs/req | of it kernel | backend µs/req | wrk µs/req | req/s per round |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for s in direct palisade-1 ${BASE_BIN:+palisade-base-1} nginx haproxy relay-floor palisade-100 \
    palisade-1000; do
    median "$s" | awk -v r="$(rounds "$s")" \
      '{ printf "| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $8, $6, $7, r }'
  done
  echo
  echo "Medians: palisade-1 / nginx $(ratio palisade-1 nginx)x req/s, palisade-1 / haproxy"
  echo "$(ratio palisade-1 haproxy)x, palisade-1000 / palisade-1 $(ratio palisade-1000 palisade-1)x."
  echo
  echo "Per-round req/s ratios (same round, back to back):"
  echo
  echo "- palisade-1 / nginx: $(round_ratios palisade-1 nginx)"
  echo "- palisade-1 / haproxy: $(round_ratios palisade-1 haproxy)"
  echo "- palisade-100 / palisade-1: $(round_ratios palisade-100 palisade-1)"
  echo "- palisade-1000 / palisade-1: $(round_ratios palisade-1000 palisade-1)"
  echo "- relay-floor / nginx: $(round_ratios relay-floor nginx) (the floor: no parsing, no policy)"
  echo "- relay-floor / haproxy: $(round_ratios relay-floor haproxy)"
  echo "- palisade-1 / relay-floor: $(round_ratios palisade-1 relay-floor)"
  if [ -n "${BASE_BIN:-}" ]; then
    echo "- palisade-1 / palisade-base-1: $(round_ratios palisade-1 palisade-base-1)"
    echo "  (palisade-base-1: ${BASE_LABEL:-an older build of the proxy}, same rules, same rounds)"
  fi
  echo
  budget
} >bench-results/http.md
cat bench-results/http.md
