#!/usr/bin/env bash
# "100 pods with existing identities": the real agent in the lab (namespaces pbench-lab-*,
# state /run/pbench-lab), the scenario topology and one policy (S11, a KNP allowing
# access=granted clients to the server on the agent's node). Then 100 pods with exactly the
# labels of client-granted are added on another node (k8s-w2) by rewriting the lab's resolved
# topology file, as a cluster adds pods. On the agent's node such pods are only ipcache
# entries: the policy entries of every endpoint must stay as they are.
#
# Usage: lab_pods.sh REPO WORK OUT_ROW   (writes one markdown table row to OUT_ROW). Run from
# datapath.sh, whose exit trap runs `palisade lab down` for this state dir, also on failure.
set -euo pipefail
REPO="$1" WORK="$2" OUT="$3"
PAL="$REPO/target/release/palisade"
STATE=/run/pbench-lab
LAB=(--state-dir "$STATE" --prefix pbench-lab-)
ADD=100

mkdir -p "$WORK/lab/policies"
cp "$REPO/config/topology.yaml" "$WORK/lab/topology.yaml"
cp -r "$REPO/config/policies/s11-knp" "$WORK/lab/policies/"

revision() { cat "$STATE/agent.ready" 2>/dev/null | tr -d '[:space:]'; }
wait_revision_above() { # before timeout_s → prints the new revision
  local deadline=$((SECONDS + $2)) r
  while [ $SECONDS -lt $deadline ]; do
    r=$(revision)
    if [ -n "$r" ] && [ "$r" -gt "$1" ]; then echo "$r"; return 0; fi
    sleep 0.01
  done
  echo "agent did not apply a revision above $1 within $2 s" >&2
  tail -20 "$STATE/agent.log" >&2
  return 1
}

"$PAL" lab down "${LAB[@]}" >/dev/null 2>&1 || true
timeout 180 "$PAL" lab up "${LAB[@]}" "$WORK/lab/topology.yaml" --policies "$WORK/lab/policies" >/dev/null
wait_revision_above 0 60 >/dev/null

# The new pods, in the resolved topology's own format, inserted at the top of `pods:`.
{
  for i in $(seq 1 $ADD); do
    echo "- name: bench-granted-$i"
    echo "  namespace: default"
    echo "  node: k8s-w2"
    echo "  labels:"
    echo "    access: granted"
    echo "  ips:"
    echo "  - 172.20.2.$((100 + i))"
  done
} >"$WORK/lab/new-pods.yaml"
grep -q '^pods:$' "$STATE/topology.yaml" || { echo "no 'pods:' in $STATE/topology.yaml" >&2; exit 1; }
awk -v f="$WORK/lab/new-pods.yaml" '
  { print } /^pods:$/ { while ((getline line < f) > 0) print line }' \
  "$STATE/topology.yaml" >"$WORK/lab/topology.new"

cp "$STATE/topology.yaml" "$WORK/lab/topology.base"

applied_line() { # revision → its "policy applied" log line, colours stripped
  sed 's/\x1b\[[0-9;]*m//g' "$STATE/agent.log" | grep "policy applied" | grep "revision=$1 " | tail -1
}
stamp_ns() { date -d "$(awk '{print $1}' <<<"$1")" +%s%N; }

# One change: the topology file replaced (rename is atomic: the agent never reads a
# half-written file), then the time until the agent's ready file shows the next revision,
# and that revision's log line. The agent sleeps 250 ms between input polls, and the file is
# replaced within a few ms of the previous revision, so the next poll picks it up: the gap
# between the two log lines' timestamps minus 250 ms is the agent's own work (read, resolve,
# write maps). Prints: wall_ms agent_ms written deleted ipcache_writes touched.
change() { # new_topology
  local t0 t1 r0 r1 before line
  cp "$1" "$WORK/lab/topology.next"
  r0=$(revision)
  before=$(applied_line "$r0")
  t0=$(date +%s%N)
  mv "$WORK/lab/topology.next" "$STATE/topology.yaml"
  r1=$(wait_revision_above "$r0" 30)
  t1=$(date +%s%N)
  line=$(applied_line "$r1")
  echo "revision $r1: $line" >&2
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  local agent_ms
  agent_ms=$(( ($(stamp_ns "$line") - $(stamp_ns "$before")) / 1000 ))
  agent_ms=$(awk -v us="$agent_ms" 'BEGIN { printf "%.1f", us / 1000 - 250 }')
  echo "$(( (t1 - t0) / 1000000 )) $agent_ms $(field written) $(field deleted) $(field ipcache_writes) $(sed -n 's/.*touched=\({[^}]*}\).*/\1/p' <<<"$line")"
}

# Three rounds of add 100 / remove 100, so the time is not one sample, after one unmeasured
# round: the first change's previous revision is not one poll before it.
change "$WORK/lab/topology.new" >/dev/null
change "$WORK/lab/topology.base" >/dev/null
add_ms=() del_ms=() add_agent=() del_agent=() verdict=ok detail=""
for round in 1 2 3; do
  read -r ms agent w d ipw touched < <(change "$WORK/lab/topology.new")
  add_ms+=("$ms"); add_agent+=("$agent"); detail="written $w, deleted $d, ipcache writes $ipw, endpoints touched ${touched:-?}"
  [ "$w" = 0 ] && [ "$d" = 0 ] && [ "$ipw" = "$ADD" ] && [ "$touched" = "{}" ] || verdict="UNEXPECTED (round $round: $detail)"
  read -r ms agent w d ipw touched < <(change "$WORK/lab/topology.base")
  del_ms+=("$ms"); del_agent+=("$agent")
  [ "$w" = 0 ] && [ "$d" = 0 ] && [ "$ipw" = "$ADD" ] || verdict="UNEXPECTED (removal $round: written $w, deleted $d, ipcache $ipw)"
done

IFS=/
{
  echo "| palisade agent (real agent in the lab, S11 KNP) | add: policy entries $detail (each of 3 rounds) | agent work (log gap − 250 ms poll sleep): add ${add_agent[*]} ms, remove ${del_agent[*]} ms; wall time file write → revision applied: add ${add_ms[*]} ms, remove ${del_ms[*]} ms (the agent's 250 ms poll dominates; the wall time also includes this script's own 10 ms polling of the ready file on a loaded machine) | $verdict |"
} >"$OUT"
unset IFS
"$PAL" lab down "${LAB[@]}" >/dev/null 2>&1 || true
