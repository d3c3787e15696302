#!/usr/bin/env bash
# Prints (to two files) the iptables + ipset equivalent of the bench policy, the way Calico and
# kube-router enforce it: source pods in ipsets, one chain per destination pod with
# `-m set --match-set <src-set> src -p tcp --dport X -j ACCEPT` rules, a DROP at the end, and
# (unless STATELESS=1) conntrack ESTABLISHED,RELATED accepted before any policy chain.
#
# Usage: iptables_ruleset.sh RULES OUT_DIR [STATELESS]
#   RULES      rules in the server pod's chain; RULES-3 of them do not match the test flow and
#              come first (so each new flow evaluates them all), then TCP, UDP and ICMP allows.
#   OUT_DIR    gets ipset.restore and iptables.restore (load with `ipset restore -exist` and
#              `iptables-restore`, inside the bench's node namespace only).
#   STATELESS  1 = no conntrack shortcut: every packet walks the chain (worst case).
# Interfaces and addresses are the bench's: client pod 10.201.0.1 behind pbench-ha, server pod
# 10.201.0.2 behind pbench-hb, test port 5201.
set -euo pipefail
RULES="$1" OUT="$2" STATELESS="${3:-0}"
# The kernel's default ipset limit is 256 sets: filler rules cycle over 100 sets, each a
# small set of pod addresses that never hold the client, so every filler rule costs a real
# set lookup that misses.
SETS=100

{
  echo "create pbench-granted hash:ip"
  echo "add pbench-granted 10.201.0.1"
  echo "create pbench-server hash:ip"
  echo "add pbench-server 10.201.0.2"
  for s in $(seq 0 $((SETS - 1))); do
    echo "create pbench-other-$s hash:ip"
    for h in 1 2 3 4; do echo "add pbench-other-$s 10.99.$s.$h"; done
  done
} >"$OUT/ipset.restore"

{
  echo "*filter"
  echo ":INPUT ACCEPT [0:0]"
  echo ":FORWARD ACCEPT [0:0]"
  echo ":OUTPUT ACCEPT [0:0]"
  echo ":pbench-from-a - [0:0]"
  echo ":pbench-to-b - [0:0]"
  if [ "$STATELESS" != 1 ]; then
    echo "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
    echo "-A FORWARD -m conntrack --ctstate INVALID -j DROP"
  fi
  # Egress of the client pod: allowed to the server set on the test port, then on to the
  # server's ingress chain (RETURN), anything else dropped.
  echo "-A FORWARD -i pbench-ha -j pbench-from-a"
  echo "-A FORWARD -o pbench-hb -j pbench-to-b"
  echo "-A pbench-from-a -m set --match-set pbench-server dst -p tcp --dport 5201 -j RETURN"
  echo "-A pbench-from-a -m set --match-set pbench-server dst -p udp --dport 5201 -j RETURN"
  echo "-A pbench-from-a -m set --match-set pbench-server dst -p icmp -j RETURN"
  echo "-A pbench-from-a -j DROP"
  # Ingress of the server pod: fillers (other selectors and ports) before the matching rules.
  for i in $(seq 0 $((RULES - 4))); do
    echo "-A pbench-to-b -m set --match-set pbench-other-$((i % SETS)) src -p tcp --dport $((10000 + i % 50000)) -j ACCEPT"
  done
  echo "-A pbench-to-b -m set --match-set pbench-granted src -p tcp --dport 5201 -j ACCEPT"
  echo "-A pbench-to-b -m set --match-set pbench-granted src -p udp --dport 5201 -j ACCEPT"
  echo "-A pbench-to-b -m set --match-set pbench-granted src -p icmp -j ACCEPT"
  echo "-A pbench-to-b -j DROP"
  echo "COMMIT"
} >"$OUT/iptables.restore"
