#!/usr/bin/env bash
# HTTPS keep-alive throughput and latency with TLS interception, one thread each (not in CI):
#   direct (wrk → backend over TLS) | palisade (terminatingTLS + originatingTLS) | nginx (ssl +
#   proxy_pass https with proxy_ssl_verify), both with the same rule: GET /public allowed, else
#   403, and both verifying the backend against the same CA.
# Runs inside two namespaces it creates (pprx-tlsb-c client, pprx-tlsb-s server) and removes,
# with certificates made by openssl in a temporary directory.
# Usage (root): proxy/bench/https.sh      env: DURATION=10s CONNS=32 ROUNDS=3
# Every round runs each setup once, back to back; the table shows each setup's median round
# (by req/s). Writes bench-results/https.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-3}
C=pprx-tlsb-c
S=pprx-tlsb-s
SERVER=10.78.0.2
NAME=bench.example
WORK=$(mktemp -d)
PIDS=()
MADE=() # namespaces this run created: the only ones it removes
source proxy/bench/common.sh
trap bench_cleanup EXIT

cargo build --release -q -p palisade-proxy --example http_proxy
PROXY_BIN=$PWD/target/release/examples/http_proxy

# A CA, the backend's certificate and the interception certificate (both for $NAME, P-256).
cert() { # $1 = name; signed by the CA
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/$1.key" \
    -subj "/CN=$NAME" -out "$WORK/$1.csr" 2>/dev/null
  openssl x509 -req -in "$WORK/$1.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile <(printf "subjectAltName=DNS:%s" "$NAME") \
    -out "$WORK/$1.crt" 2>/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/ca.key" \
  -subj "/CN=bench CA" -days 2 -out "$WORK/ca.crt" 2>/dev/null
cert backend
cert intercept

bench_netns "$C" "$S" 10.78.0.1 "$SERVER" 443
# The client resolves $NAME (so wrk and curl send it as SNI) through its namespace's hosts file.
mkdir -p "/etc/netns/$C"
echo "$SERVER $NAME" >"/etc/netns/$C/hosts"

# Backend: its own one-worker nginx over TLS, :443 behind palisade and :8443 for the others.
{ nginx_preamble backend; cat; } >"$WORK/backend.conf" <<NGINX
http {
  access_log off;
  default_type text/html;
  server {
    listen 443 ssl; listen 8443 ssl;
    ssl_certificate $WORK/backend.crt; ssl_certificate_key $WORK/backend.key;
    keepalive_requests 1000000;
    location / { return 200 "<html><body><h1>Hello from \$uri</h1></body></html>"; }
  }
}
NGINX
# nginx doing what palisade does: terminate with the interception certificate, check the rule,
# re-encrypt to the backend and verify it against the CA.
{ nginx_preamble nginx; cat; } >"$WORK/nginx.conf" <<NGINX
http {
  access_log off;
  upstream backend { server $SERVER:8443; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 8444 ssl;
    ssl_certificate $WORK/intercept.crt; ssl_certificate_key $WORK/intercept.key;
    keepalive_requests 1000000;
    location = /public {
      limit_except GET { deny all; }
      proxy_pass https://backend; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_verify on; proxy_ssl_trusted_certificate $WORK/ca.crt;
      proxy_ssl_name $NAME; proxy_ssl_server_name on; proxy_ssl_session_reuse on;
    }
    location / { default_type text/plain; return 403 "Access denied\r\n"; }
  }
}
NGINX

ip netns exec "$S" nginx -c "$WORK/backend.conf" -p "$WORK" & BACKEND=$!; PIDS+=($BACKEND)
ip netns exec "$S" nginx -c "$WORK/nginx.conf" -p "$WORK" & NGINX=$!; PIDS+=($NGINX)

snapshot() {
  python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
read = lambda n: open(f"{w}/{n}").read()
tls = {"terminating": {"secret": "bench/intercept", "certificate": read("intercept.crt"),
                       "privateKey": read("intercept.key")},
       "originating": {"secret": "bench/ca", "trustedCA": read("ca.crt")}}
print(json.dumps({"revision": 1, "ipcache": [["10.78.0.1/32", 1001], ["10.78.0.2/32", 2000]],
  "endpoints": [{"name": "service", "ips": ["10.78.0.2"], "identity": 2000,
    "ingress": [{"port": 443, "peers": [{"identities": [1001],
      "http": [{"method": "GET", "path": "/public"}], "tls": tls}]}], "egress": []}]}))
PY
}

ccurl() { ip netns exec "$C" curl -s -m 5 --cacert "$WORK/ca.crt" "$@"; }

wait_port() { # $1 = port
  for _ in $(seq 1 20); do
    ccurl -m 2 -o /dev/null "https://$NAME:$1/public" && return 0
    sleep 0.1
  done
  echo "port $1 never answered over TLS" >&2; return 1
}

expect_deny() { # $1 = label, $2 = port
  local code
  code=$(ccurl -o /dev/null -w '%{http_code}' "https://$NAME:$2/private")
  [ "$code" = 403 ] || { echo "$1 answered $code to /private, not 403" >&2; exit 1; }
  code=$(ccurl -o /dev/null -w '%{http_code}' -X POST "https://$NAME:$2/public")
  [ "$code" = 403 ] || { echo "$1 answered $code to POST /public, not 403" >&2; exit 1; }
}

bench() { # $1 = label, $2 = port, $3 = pid whose CPU is charged
  local out t0 t1 rps p50 p99 reqs cpu
  wait_port "$2"
  t0=$(cpu_ticks "$3")
  out=$(ip netns exec "$C" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "https://$NAME:$2/public")
  t1=$(cpu_ticks "$3")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "$1: wrk saw non-2xx answers" >&2; exit 1; fi
  cpu=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
    'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
  echo "$1 $rps $p50 $p99 $cpu" | tee -a "$WORK/raw"
}

palisade() {
  local pid
  snapshot >"$WORK/snap.json"
  TOKIO_WORKER_THREADS=1 ip netns exec "$S" "$PROXY_BIN" "$WORK/snap.json" 0.0.0.0:15001 \
    >"$WORK/palisade.log" 2>&1 & pid=$!
  wait_port 443 || { cat "$WORK/palisade.log" >&2; exit 1; }
  bench "palisade" 443 "$pid"
  expect_deny "palisade" 443
  # The client sees the interception certificate, not the backend's.
  issuer=$(ip netns exec "$C" openssl s_client -connect "$SERVER:443" -servername "$NAME" \
    </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256)
  [ "$issuer" = "$(openssl x509 -in "$WORK/intercept.crt" -noout -fingerprint -sha256)" ] ||
    { echo "palisade did not present the interception certificate" >&2; exit 1; }
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

: >"$WORK/raw"
BACKEND_W=$(worker "$BACKEND")
NGINX_W=$(worker "$NGINX")
expect_deny "nginx" 8444
for _ in $(seq 1 "$ROUNDS"); do
  bench "direct" 8443 "$BACKEND_W"
  palisade
  bench "nginx" 8444 "$NGINX_W"
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

mkdir -p bench-results
{
  echo "# HTTPS (TLS interception) proxy benchmark"
  echo
  echo "wrk -t1 -c$CONNS -d$DURATION, $ROUNDS rounds (median round shown), HTTPS keep-alive,"
  echo "GET /public (allowed; other paths and methods get 403, checked each round). palisade:"
  echo "terminatingTLS + originatingTLS (rustls, ring), HTTP/1.1 to the backend; nginx: ssl +"
  echo "proxy_pass https with proxy_ssl_verify, upstream keepalive. Both verify the backend (a"
  echo "separate one-worker nginx over TLS) against the same CA; P-256 certificates; one worker"
  echo "thread per proxy; $(nproc) cores shared by client, proxy and backend (and whatever else"
  echo "runs); $(date -u +%F). CPU = proxy process user+system time per request (for direct: the"
  echo "backend's)."
  echo
  echo "| setup | req/s | p50 | p99 | CPU µs/req | req/s per round |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for s in direct palisade nginx; do
    median "$s" | awk -v r="$(rounds "$s")" \
      '{ printf "| %s | %.0f | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, r }'
  done
  echo
  echo "Medians: palisade / nginx $(ratio palisade nginx)x req/s."
} >bench-results/https.md
cat bench-results/https.md
