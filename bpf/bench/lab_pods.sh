#!/usr/bin/env bash
# "100 pods with existing identities": the real agent in the lab (namespaces pbench-lab-*,
# state /run/pbench-lab), the scenario topology and one policy (S11, a KNP allowing
# access=granted clients to the server on the agent's node). Then 100 pods with exactly the
# labels of client-granted are added on another node (k8s-w2) by rewriting the lab's resolved
# topology file, as a cluster adds pods. On the agent's node such pods are only ipcache
# entries: the policy entries of every endpoint must stay as they are.
#
# Usage: lab_pods.sh REPO WORK OUT_MD   (sourced pieces of the cleanup live in datapath.sh:
# it runs `palisade lab down` for this state dir on exit, also on failure.)
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
r0=$(wait_revision_above 0 60)
# Let the first revision settle (DNS proxy and servers start): wait until nothing changes.
sleep 1
r0=$(revision)

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

# Rename is atomic: the agent (polling every 250 ms) never reads a half-written file.
t0=$(date +%s%N)
mv "$WORK/lab/topology.new" "$STATE/topology.yaml"
r1=$(wait_revision_above "$r0" 30)
t1=$(date +%s%N)
line=$(sed 's/\x1b\[[0-9;]*m//g' "$STATE/agent.log" | grep "policy applied" | grep "revision=$r1 " | tail -1)
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
written=$(field written) deleted=$(field deleted) ipw=$(field ipcache_writes)
touched=$(sed -n 's/.*touched=\({[^}]*}\).*/\1/p' <<<"$line")
ms=$(( (t1 - t0) / 1000000 ))
verdict=ok
[ "$written" = 0 ] && [ "$deleted" = 0 ] && [ "$ipw" = "$ADD" ] || verdict=UNEXPECTED

{
  echo "| palisade agent (lab, S11 KNP) | policy entries written $written, deleted $deleted; ipcache writes $ipw; endpoints touched ${touched:-?} | $ms ms from topology write to revision $r1 applied (includes up to 250 ms of input polling) | $verdict |"
} >"$OUT"
echo "agent: revision $r0 -> $r1 in $ms ms: $line"
"$PAL" lab down "${LAB[@]}" >/dev/null 2>&1 || true
