#!/usr/bin/env bash
# The scenario demo: brings up the lab (namespaces as the three-node cluster of
# shared/scenarios.md), applies each scenario's policies in turn and runs the commands users
# run, printing each command and what it did. Tears everything down at the end, also on error.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
if [ $# -ge 1 ]; then
  P=$(realpath "$1")
else
  bash scripts/install-deps.sh || exit 1
  cargo build --release -p palisade || exit 1
  P=$ROOT/target/release/palisade
fi
STATE=/run/palisade-demo
PREFIX=pdemo-
POL=$(mktemp -d /tmp/palisade-demo-policies.XXXXXX)
LAB=(--state-dir "$STATE" --prefix "$PREFIX")
SOCK=(--socket "$STATE/palisade.sock")

cleanup() {
  "$P" lab down "${LAB[@]}" >/dev/null 2>&1
  rm -rf "$POL"
}
trap cleanup EXIT INT TERM

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
revision() { cat "$STATE/agent.ready" 2>/dev/null || echo 0; }

# Copies scenario policy files into the watched directory and waits for the agent to apply them.
apply() {
  local before; before=$(revision)
  for f in "$@"; do
    cp "$ROOT/config/policies/$f" "$POL/"
    echo "+ policy $(basename "$f")"
  done
  for _ in $(seq 1 50); do
    [ "$(revision)" != "$before" ] && return 0
    sleep 0.1
  done
  echo "  (agent did not apply a new revision; see $STATE/agent.log)"
}

clear_policies() {
  local before; before=$(revision)
  rm -f "$POL"/*
  for _ in $(seq 1 50); do
    [ "$(revision)" != "$before" ] && return 0
    sleep 0.1
  done
}

# Runs a command in a lab member and prints it with its outcome.
run() {
  local where=$1; shift
  printf '$ [%s] %s\n' "$where" "$*"
  local out rc
  out=$("$P" lab exec "${LAB[@]}" "$where" -- "$@" 2>&1); rc=$?
  printf '%s\n' "$out" | sed -n '1,8p' | sed 's/^/    /'
  printf '    -> exit %s\n' "$rc"
}

bold "Bringing up the lab (config/topology.yaml)"
"$P" lab up "${LAB[@]}" config/topology.yaml --policies "$POL" || exit 1

bold "S1. Identities"
"$P" identity list "${SOCK[@]}" | head -24
"$P" endpoint list "${SOCK[@]}"

bold "S2. Entities (dev-pod, env=dev)"
run default/dev-pod curl -s -m 1 webpod
run default/dev-pod ping -c 1 -W 1 192.168.10.100
apply s2-entities/default-deny-dev.yaml s2-entities/dev-to-host.yaml
run default/dev-pod ping -c 1 -W 1 192.168.10.101
run default/dev-pod curl -s -m 1 webpod
run default/dev-pod ping -c 1 -W 1 192.168.10.100
run default/dev-pod ping -c 1 -W 1 192.168.10.102
apply s2-entities/dev-to-remote-node.yaml
run default/dev-pod ping -c 1 -W 1 192.168.10.100
run default/dev-pod ping -c 1 -W 1 192.168.10.102
clear_policies

bold "S3. Node based (env=prod accepts from the control-plane node only)"
apply s3-nodes/to-prod-from-control-plane-nodes.yaml
run k8s-ctr curl -s -m 1 http://172.20.1.12/public
run k8s-w2 curl -s -m 1 http://172.20.1.12/public
clear_policies

bold "S4. CIDR (20.1.1.1/32 and 10.0.0.0/8 except 10.96.0.0/12)"
apply s4-cidr/cidr-rule.yaml
run default/myservice curl -s -m 1 http://20.1.1.1/
run default/myservice curl -s -m 1 http://10.1.1.1/
run default/myservice curl -s -m 1 http://10.96.0.10/
clear_policies

bold "S6. FQDN (mediabot may reach api.github.com only)"
apply s6-fqdn/fqdn.yaml
run default/mediabot curl -s -I -m 2 api.github.com
run default/mediabot curl -s -I --max-time 5 support.github.com
"$P" fqdn cache list "${SOCK[@]}"
clear_policies

bold "S7. DNS refused (dns: matchPattern *.github.com)"
apply s7-dns/fqdn.yaml
run default/mediabot sh -c "dig +tries=1 +time=2 api.github.com | grep -E 'status:|^api|SERVER'"
run default/mediabot sh -c "dig +tries=1 +time=2 example.org | grep -E 'status:|SERVER'"
clear_policies

bold "S8. L4 (egress TCP 80 only)"
apply s8-l4/l4-rule.yaml
run default/myservice curl -s -m 1 http://20.1.1.1/
run default/myservice curl -s -m 1 http://20.1.1.1:8080/
clear_policies

bold "S9. L7 HTTP (GET /public from env=prod)"
for c in client-prod client-dev; do for p in public private; do run default/$c curl -s -m 1 http://service-svc/$p; done; done
apply s9-l7-http/allow-public-from-prod.yaml
run default/client-prod curl -s -m 1 http://service-svc/public
run default/client-prod curl -s -i -m 1 http://service-svc/private
run default/client-dev curl -s -m 1 http://service-svc/public
run default/client-dev curl -s -m 1 http://service-svc/private
clear_policies

bold "S10. L7 headers"
apply s10-l7-headers/l7-rule.yaml
run default/client-prod curl -s -m 1 http://myservice/path1
run default/client-prod curl -s -m 1 -X PUT -H 'X-My-Header: true' http://myservice/path2
run default/client-prod curl -s -m 1 -X PUT http://myservice/path2
clear_policies

bold "S11. Kubernetes NetworkPolicy (access=granted → app=server:80)"
apply s11-knp/allow-granted-access.yaml
run default/client-granted curl -s -m 1 http://server/
run default/client-other curl -s -m 1 http://server/
clear_policies

bold "Done; tearing the lab down"
