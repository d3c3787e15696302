#!/usr/bin/env bash
# Datapath cost between two pods on one node, and the cost of adding pods, compared with the
# iptables + ipset way (Calico, kube-router). Writes bench-results/datapath.md. Root, not CI.
#
# Part 1, namespaces pbench-{node,a,b}: pod a (10.201.0.1) → pod b (10.201.0.2) through the
# node namespace. For each setup, REPS short runs of: iperf3 TCP throughput, iperf3 64-byte
# UDP received packet rate, and new TCP connections/s (wrk → nginx, `Connection: close`).
# Setups: palisade with 10 / 1,000 / 10,000 / 100,000 policy entries; iptables + ipset with
# 10 / 1,000 / 10,000 rules in the server pod's chain (conntrack first), plus 10,000 rules
# without the conntrack shortcut. Each run of a setup is paired with a run without it (ABBA).
# Part 2: 100 pods with an existing identity: the real agent in a lab (lab_pods.sh) against
# `ipset add` ×100 and a naive iptables-per-IP enforcer ×100 rules.
#
# Env: SECS (seconds per run, default 2), REPS (default 3), SKIP_LAB=1 to skip part 2.
# After building, the measurements run under `timeout 600`. Everything (namespaces, pins, the
# lab) is removed on exit, also on failure, timeout or Ctrl-C.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
if [ "${1:-}" != --inner ]; then
  echo "building" >&2
  (cd "$REPO" && cargo build -q --release -p palisade-bpf --example datapath_setup)
  # Others may be mid-edit in the shared tree: an agent that does not build now falls back to
  # the last built binary, and the results say so.
  if [ "${SKIP_LAB:-0}" != 1 ] && ! (cd "$REPO" && cargo build -q --release -p palisade 2>/dev/null); then
    [ -x "$REPO/target/release/palisade" ] || { echo "palisade does not build and no binary exists" >&2; exit 1; }
    export PBENCH_AGENT_NOTE="(the tree did not build: the agent binary of $(date -u -r "$REPO/target/release/palisade" +%FT%H:%MZ) was used)"
    echo "warning: palisade build failed; $PBENCH_AGENT_NOTE" >&2
  fi
  exec timeout -k 60 600 bash "$0" --inner
fi
BENCH="$REPO/bpf/bench"
SECS="${SECS:-2}" REPS="${REPS:-3}"
NODE=pbench-node A=pbench-a B=pbench-b HA=pbench-ha HB=pbench-hb
PIN=/sys/fs/bpf/palisade-pbench
OUT="$REPO/bench-results/datapath.md"
WORK="$(mktemp -d /tmp/pbench.XXXXXX)"
PAL="$REPO/target/release/palisade"
LAB_ARGS=(--state-dir /run/pbench-lab --prefix pbench-lab-)
STARTED=$SECONDS

cleanup() {
  set +e
  rm -rf "$PIN" 2>/dev/null
  for ns in $NODE $A $B; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    # Links, qdiscs, iptables rules, ipsets and conntrack state all live in these namespaces.
    ip netns del "$ns" 2>/dev/null
  done
  [ -x "$PAL" ] && [ -e /run/pbench-lab ] && "$PAL" lab down "${LAB_ARGS[@]}" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup
mkdir -p "$WORK"

thousands() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
log() { echo "[$((SECONDS - STARTED))s] $*" >&2; }

grep -q " /sys/fs/bpf bpf " /proc/mounts || mount -t bpf bpf /sys/fs/bpf
SETUP="$REPO/target/release/examples/datapath_setup"

# ---- topology: two pods routed through a node namespace (no bridge, /32 routes) ----------
for ns in $NODE $A $B; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
wire() { # pod host_if ip
  ip link add "$2" netns $NODE type veth peer name eth0 netns "$1"
  ip -n $NODE addr add 10.201.0.254/32 dev "$2"; ip -n $NODE link set "$2" up
  ip -n $NODE route add "$3/32" dev "$2"
  ip -n "$1" addr add "$3/32" dev eth0; ip -n "$1" link set eth0 up
  ip -n "$1" route add 10.201.0.254 dev eth0 scope link
  ip -n "$1" route add default via 10.201.0.254 dev eth0
}
wire $A $HA 10.201.0.1
wire $B $HB 10.201.0.2
ip netns exec $NODE sysctl -qw net.ipv4.ip_forward=1

# ---- servers: iperf3 and nginx take turns on 10.201.0.2:5201 (the only port the bench
# policy allows) ------------------------------------------------------------------------
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx-body;
  proxy_temp_path $WORK/nginx-proxy;
  server { listen 10.201.0.2:5201 reuseport; location / { return 200 "ok\n"; } }
}
EOF
port_state() { # want(0 listening|1 free)
  for _ in $(seq 100); do
    if ip netns exec $B ss -ltnH | grep -q '10.201.0.2:5201 '; then [ "$1" = 0 ] && return 0
    else [ "$1" = 1 ] && return 0; fi
    sleep 0.05
  done
  echo "port 5201 did not become $([ "$1" = 0 ] && echo listening || echo free)" >&2; return 1
}
iperf_up() { ip netns exec $B iperf3 -s -D -B 10.201.0.2 -I "$WORK/iperf.pid"; port_state 0; }
iperf_down() { kill "$(cat "$WORK/iperf.pid")"; port_state 1; }
nginx_up() { ip netns exec $B nginx -e "$WORK/nginx-error.log" -p "$WORK" -c "$WORK/nginx.conf"; port_state 0; }
nginx_down() { kill "$(cat "$WORK/nginx.pid")"; port_state 1; }

# ---- one measurement ---------------------------------------------------------------------
json() { python3 -c "import json,sys
try: d=json.load(sys.stdin); print($1)
except Exception: print('nan')"; }
one_tcp() {
  timeout $((SECS + 20)) ip netns exec $A iperf3 -c 10.201.0.2 -t "$SECS" -J 2>/dev/null |
    json '"%.3f" % (d["end"]["sum_received"]["bits_per_second"]/1e9)'
}
one_udp() {
  timeout $((SECS + 20)) ip netns exec $A iperf3 -c 10.201.0.2 -u -l 64 -b 0 -t "$SECS" -J 2>/dev/null |
    json '"%.1f" % ((d["end"]["sum"]["packets"]-d["end"]["sum"]["lost_packets"])/d["end"]["sum"]["seconds"]/1e3)'
}
one_crr() {
  local r
  r=$(timeout $((SECS + 20)) ip netns exec $A wrk -t1 -c16 -d"${SECS}s" -H 'Connection: close' \
    http://10.201.0.2:5201/ 2>/dev/null | awk '/^Requests\/sec:/ {print $2}')
  echo "${r:-nan}"
}

# The machine is shared and its speed drifts by tens of percent within a minute, so each
# setup is measured in pairs against no program, in ABBA order (on off | off on | on off):
# the ratio of a pair is what is reported. `set_state on|off` calls "$ON" / "$OFF".
STATE=off
set_state() {
  [ "$STATE" = "$1" ] && return 0
  if [ "$1" = on ]; then eval "$ON" >/dev/null; else eval "$OFF"; fi
  STATE=$1
}
# Prints to rows.tsv: label, then for TCP, UDP, conn/s: the setup's runs and the paired
# no-program runs (comma-separated, pair k = k-th of each), then the note.
measure() { # label note
  local -A runs=([tcp_on]="" [tcp_off]="" [udp_on]="" [udp_off]="" [crr_on]="" [crr_off]="")
  local order=() r st
  for r in $(seq "$REPS"); do
    if [ $((r % 2)) = 1 ]; then order+=(on off); else order+=(off on); fi
  done
  for st in "${order[@]}"; do
    set_state "$st"
    runs[tcp_$st]+="$(one_tcp),"; runs[udp_$st]+="$(one_udp),"
  done
  iperf_down; nginx_up
  # Same ABBA order, starting from where the state is now.
  local last=${order[-1]}
  for st in "${order[@]}"; do
    [ "$last" = off ] && st=$([ "$st" = on ] && echo off || echo on)
    set_state "$st"
    runs[crr_$st]+="$(one_crr),"
  done
  nginx_down; iperf_up
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" \
    "${runs[tcp_on]%,}" "${runs[tcp_off]%,}" "${runs[udp_on]%,}" "${runs[udp_off]%,}" \
    "${runs[crr_on]%,}" "${runs[crr_off]%,}" "$2" | tee -a "$WORK/rows.tsv" >&2
  set_state off
}

# ---- setups ------------------------------------------------------------------------------
# Fills fresh maps for `total` policy entries (10 for the two pods, filler on other
# endpoints) and attaches; prints what it took.
palisade_fill() { # total
  rm -rf "$PIN"
  local t0 t1
  t0=$(date +%s%N)
  "$SETUP" $NODE "$PIN" $HA $HB $(($1 - 10)) >"$WORK/setup.out"
  t1=$(date +%s%N)
  echo "load + write $(grep -o '[0-9]*$' "$WORK/setup.out") map entries + attach: $(((t1 - t0) / 1000000)) ms"
}
# Re-attaches over the pinned maps. The filler entries are already there and `extra 0` leaves
# other endpoints' entries alone (only the two pods' entries are synced: no change), which keeps
# a re-attach short at 100,000 entries; the entry count is checked.
palisade_attach() { # total
  local out
  out=$("$SETUP" $NODE "$PIN" $HA $HB 0)
  [ "$(grep -o '[0-9]*$' <<<"$out")" = "$1" ] || { echo "re-attach: $out, expected $1" >&2; return 1; }
}
# Removing the pinned links releases them (the setup process has exited): programs detach.
palisade_detach() { rm -rf "$PIN/links"; }
iptables_gen() { # rules [stateless] → note
  mkdir -p "$WORK/ipt"
  bash "$BENCH/iptables_ruleset.sh" "$1" "$WORK/ipt" "${2:-0}"
  local t0 t1
  t0=$(date +%s%N)
  iptables_load
  t1=$(date +%s%N)
  iptables_off
  echo "$(grep -c '^-A' "$WORK/ipt/iptables.restore") rules, $(grep -c '^create' "$WORK/ipt/ipset.restore") ipsets, loaded in $(((t1 - t0) / 1000000)) ms"
}
iptables_load() {
  ip netns exec $NODE ipset restore -exist <"$WORK/ipt/ipset.restore"
  ip netns exec $NODE iptables-restore <"$WORK/ipt/iptables.restore"
}
iptables_off() {
  printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' |
    ip netns exec $NODE iptables-restore
  ip netns exec $NODE ipset destroy
}
# Part 2's iptables side, timed against the 10,000-rule ruleset in place.
iptables_add_pods() {
  ip netns exec $NODE bash -c '
    t0=$(date +%s%N)
    for i in $(seq 1 100); do ipset add pbench-granted 172.20.2.$((100 + i)); done
    t1=$(date +%s%N)
    for i in $(seq 1 100); do
      iptables -I pbench-to-b -s 172.20.2.$((100 + i)) -p tcp --dport 5201 -j ACCEPT
    done
    t2=$(date +%s%N)
    echo "$(( (t1 - t0) / 1000000 )) $(( (t2 - t1) / 1000000 ))"'
}

: >"$WORK/rows.tsv"
iperf_up
for n in 10 1000 10000 100000; do
  log "palisade, $n entries"
  note=$(palisade_fill "$n")
  STATE=on ON="palisade_attach $n" OFF=palisade_detach
  measure "palisade, $(thousands "$n") policy entries" "$note"
  rm -rf "$PIN"
done
for n in 10 1000 10000; do
  log "iptables, $n rules"
  note=$(iptables_gen "$n")
  STATE=off ON=iptables_load OFF=iptables_off
  measure "iptables + ipset, $(thousands "$n") rules (conntrack first)" "$note"
  if [ "$n" = 10000 ]; then
    log "iptables: 100 pods"
    iptables_load
    read -r ipset_ms naive_ms < <(iptables_add_pods)
    iptables_off
  fi
done
log "iptables, stateless"
note=$(iptables_gen 10000 1)
STATE=off ON=iptables_load OFF=iptables_off
measure "iptables + ipset, 10,000 rules, no conntrack shortcut" "worst case: every packet walks the chain; $note"

lab_row="| palisade agent | not run (SKIP_LAB=1) | | |"
if [ "${SKIP_LAB:-0}" != 1 ]; then
  log "lab: 100 pods with an existing identity"
  bash "$BENCH/lab_pods.sh" "$REPO" "$WORK" "$WORK/lab.row" >&2
  lab_row=$(cat "$WORK/lab.row")
fi

mkdir -p "$(dirname "$OUT")"
{
  echo "# Datapath benchmark"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r), $(iptables -V)."
  echo "Produced by \`bpf/bench/datapath.sh\` in $((SECONDS - STARTED)) s: $REPS pairs of ${SECS}-second runs per setup and"
  echo "metric, each run with the setup paired with one without any program or rule, back to back"
  echo "(ABBA order). The machine is shared (other engineers' builds run meanwhile; load average"
  echo "$(cut -d' ' -f1-3 /proc/loadavg) at the end), so absolute numbers drift by tens of percent: read the ratios."
  echo
  echo "Pod a → pod b on one node (routed through the node namespace, /32 routes, no bridge)."
  echo "TCP: iperf3, one stream. UDP: iperf3, 64-byte payload, unlimited rate, packets received"
  echo "per second. TCP conn/s: wrk (1 thread, 16 connections) → nginx with \`Connection: close\`,"
  echo "so every request is a new flow (new conntrack entry, full policy evaluation)."
  echo
  echo "- no program: plain forwarding in the node namespace, no conntrack (no rule uses it)."
  echo "- palisade: the eBPF programs on both host-side veths, entries for the two pods (5 each)"
  echo "  plus filler entries for other endpoints up to the total."
  echo "- iptables + ipset: as Calico/kube-router: FORWARD accepts conntrack ESTABLISHED,RELATED"
  echo "  first, then the client's egress chain and the server's ingress chain; in the server chain"
  echo "  N−3 rules \`-m set --match-set <other-set> src -p tcp --dport X -j ACCEPT\` that do not match"
  echo "  come before the three allowing the client's set (TCP, UDP 5201; ICMP), then DROP."
  echo "  Filler rules cycle over 100 ipsets (the kernel's default limit is 256 sets)."
  echo
  echo "With conntrack ESTABLISHED,RELATED accepted first, an established flow skips the policy chains:"
  echo "the iptables rule count shows in the rate of new connections, not in iperf3 throughput."
  echo "palisade looks up its conntrack map first as well, then one hash/LPM lookup per policy, whatever the"
  echo "number of entries."
  echo
  python3 "$BENCH/summarize.py" <"$WORK/rows.tsv"
  echo
  echo "## 100 pods with an existing identity"
  echo
  echo "100 pods whose labels equal an existing pod's (\`access: granted\`, allowed by the S11"
  echo "policy to reach \`server\` on the agent's node) appear on another node. ${PBENCH_AGENT_NOTE:-}"
  echo
  echo "| enforcer | map / rule changes | time | check |"
  echo "| --- | --- | --- | --- |"
  echo "$lab_row"
  echo "| iptables + ipset (Calico way), 10,000-rule ruleset loaded | 100 \`ipset add\` (one process each), 0 rule changes | ${ipset_ms:-?} ms | |"
  echo "| naive iptables-per-IP enforcer, same ruleset | 100 \`iptables -I\` (1 rule per pod per server chain selecting it) | ${naive_ms:-?} ms | |"
} >"$OUT"
log "wrote $OUT"
cat "$OUT"
