#!/usr/bin/env bash
# Experiment (not CI, not part of Palisade): how much of an HTTP proxy's cost on this machine is
# the kernel's TCP/IP stack. Runs palisade and nginx (one worker each, same rule as http.sh) with
# and without socket-level redirection (sockmap/sk_msg, sockmap/redirect.bpf.c) applied to every
# socket of a cgroup holding wrk, the proxy and the backend. Writes bench-results/http-sockmap.md.
# Namespaces PREFIX-smap-c/-s, cgroup PREFIX-sockmap and bpffs pins /sys/fs/bpf/PREFIX-sockmap
# are created and removed (PREFIX is $PALISADE_E2E_PREFIX or pprx).
# Usage (root): proxy/bench/sockmap.sh      env: DURATION=6s CONNS=32 ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-6s}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-3}
PREFIX=${PALISADE_E2E_PREFIX:-pprx}
C=$PREFIX-smap-c
S=$PREFIX-smap-s
SERVER=10.79.0.2
WORK=$(mktemp -d)
PIDS=()
MADE=()
PIN=/sys/fs/bpf/$PREFIX-sockmap
CG=$(findmnt -t cgroup2 -n -o TARGET | head -1)/$PREFIX-sockmap
source proxy/bench/common.sh

detach() {
  bpftool cgroup detach "$CG" sock_ops pinned "$PIN/add_established" 2>/dev/null || true
  rm -rf "$PIN"
}
cleanup() {
  detach
  bench_cleanup
  rmdir "$CG" 2>/dev/null || true
}
trap cleanup EXIT
[ -e "$CG" ] && { echo "$CG exists (another run?); not touching it" >&2; exit 1; }

cargo build --release -q -p palisade-proxy --example http_proxy
PROXY_BIN=$PWD/target/release/examples/http_proxy
clang -O2 -g -target bpf -I/usr/include/"$(uname -m)"-linux-gnu \
  -c proxy/bench/sockmap/redirect.bpf.c -o "$WORK/redirect.o"

bench_netns "$C" "$S" 10.79.0.1 "$SERVER" 80
mkdir "$CG"
# Runs a command inside the cgroup (its sockets are the ones the sockops program sees);
# `incg_exec CMD &` replaces the background subshell, so $! is the command's own pid.
incg() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }
incg_exec() { exec sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }

plain_backend_conf
plain_nginx_conf "$SERVER"
http_snapshot 1 10.79.0.1 "$SERVER" >"$WORK/snap.json"
incg_exec ip netns exec "$S" nginx -c "$WORK/backend.conf" -p "$WORK" & PIDS+=($!)
incg_exec ip netns exec "$S" nginx -c "$WORK/nginx.conf" -p "$WORK" & PIDS+=($!)
incg_exec ip netns exec "$S" "$PROXY_BIN" "$WORK/snap.json" 0.0.0.0:15001 >/dev/null 2>&1 & PIDS+=($!)

check() { # $1 = port: /public 200 and /private 403, or the run is void
  local ok
  for _ in $(seq 1 50); do
    ok=$(incg ip netns exec "$C" curl -s -o /dev/null -w '%{http_code}' "http://$SERVER:$1/public") || true
    [ "$ok" = 200 ] && break; sleep 0.1
  done
  [ "$ok" = 200 ] || { echo "port $1: /public answered $ok" >&2; exit 1; }
  ok=$(incg ip netns exec "$C" curl -s -o /dev/null -w '%{http_code}' "http://$SERVER:$1/private")
  [ "$ok" = 403 ] || { echo "port $1: /private answered $ok" >&2; exit 1; }
}
run() { # $1 = label, $2 = port
  check "$2"
  incg ip netns exec "$C" wrk -t1 -c"$CONNS" -d"$DURATION" "http://$SERVER:$2/public" |
    awk -v l="$1" '/Requests\/sec/ { print l, $2 }' | tee -a "$WORK/raw"
}

for _ in $(seq 1 "$ROUNDS"); do
  run palisade 80; run nginx 8081
  bpftool prog loadall "$WORK/redirect.o" "$PIN" pinmaps "$PIN/maps"
  bpftool cgroup attach "$CG" sock_ops pinned "$PIN/add_established"
  bpftool prog attach pinned "$PIN/to_peer" msg_verdict pinned "$PIN/maps/socks"
  run palisade+sockmap 80; run nginx+sockmap 8081
  detach
done

med() { awk -v l="$1" '$1 == l { print $2 }' "$WORK/raw" | sort -g |
  awk '{ v[NR] = $1 } END { printf "%.0f", v[int((NR + 1) / 2)] }'; }
all() { awk -v l="$1" '$1 == l { printf "%s%.0f", s, $2; s = ", " }' "$WORK/raw"; }
ratio() { awk -v a="$(med "$1")" -v b="$(med "$2")" 'BEGIN { printf "%.2f", a / b }'; }
mkdir -p bench-results
{
  echo "# HTTP proxies with and without socket-level redirection (experiment)"
  echo
  echo "wrk -t1 -c$CONNS -d$DURATION, $ROUNDS rounds, GET /public through each proxy (one worker),"
  echo "$(nproc) cores shared by wrk, proxy and backend; $(date -u +%F). \"+sockmap\": every socket of"
  echo "wrk, the proxy and the backend sends straight into its peer's receive queue"
  echo "(proxy/bench/sockmap/redirect.bpf.c), skipping the TCP/IP stack after the handshake."
  echo
  echo "| setup | req/s (median) | req/s per round |"
  echo "| --- | --- | --- |"
  for s in palisade nginx palisade+sockmap nginx+sockmap; do
    echo "| $s | $(med "$s") | $(all "$s") |"
  done
  echo
  echo "palisade+sockmap / palisade $(ratio palisade+sockmap palisade)x; nginx+sockmap / nginx" \
    "$(ratio nginx+sockmap nginx)x; palisade / nginx $(ratio palisade nginx)x;" \
    "palisade+sockmap / nginx+sockmap $(ratio palisade+sockmap nginx+sockmap)x."
  echo
  cat proxy/bench/sockmap/why-not.md
} >bench-results/http-sockmap.md
cat bench-results/http-sockmap.md
