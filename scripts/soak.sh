#!/usr/bin/env bash
# Bounded soak (not part of CI): the scenario lab under steady HTTP and DNS load while policies
# change every second and a pod is relabelled (new identity) every few seconds.
#
#   bash scripts/soak.sh [seconds]        # default 180; PALISADE_BIN=… skips the release build
#
# Load: client-prod → service-svc GET /public (S9, allowed) in a keep-alive loop with a new
# connection every 20 requests and GET /private (denied) every 50; mediabot dig api.github.com
# (S7, allowed) in a loop and curl of the learned address every 10th lookup.
# Churn: an unrelated policy written and removed every second; client-dev labelled soak=on/off
# every 5 s. Fails (exit 1) when an allowed request or lookup failed even once, a denied request
# was not denied, the agent died, or the agent's RSS grew by more than SOAK_RSS_BOUND_MB (30).
# The lab is always taken down on exit.
set -uo pipefail

secs=${1:-180}
bound_mb=${SOAK_RSS_BOUND_MB:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [[ -n "${PALISADE_BIN:-}" ]]; then
    P=$PALISADE_BIN
else
    cargo build --release -p palisade || exit 1
    P=$root/target/release/palisade
fi
STATE=/run/psoak
LAB=(--state-dir "$STATE" --prefix psoak-)
POL=$(mktemp -d /tmp/psoak-policies.XXXXXX)
OUT=$(mktemp -d /tmp/psoak-out.XXXXXX)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    "$P" lab down "${LAB[@]}" >/dev/null 2>&1
    rm -rf "$POL"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
agent_pid() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(next(p["pid"] for p in d["processes"] if p["role"]=="agent"))' "$STATE/state.json"
}
# Other processes of the lab whose role names a proxy (once the proxies run on their own).
proxy_pids() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(str(p["pid"]) for p in d["processes"] if "proxy" in p["role"]))' "$STATE/state.json"
}
revision() { cat "$STATE/agent.ready" 2>/dev/null || echo 0; }
wait_applied() {
    local before=$1
    for _ in $(seq 1 100); do
        [[ "$(revision)" != "$before" ]] && return 0
        sleep 0.1
    done
    echo "agent did not apply a new revision within 10 s"
    return 1
}

"$P" lab down "${LAB[@]}" >/dev/null 2>&1
echo "== lab up (state $STATE, prefix psoak-)"
"$P" lab up config/topology.yaml --policies "$POL" "${LAB[@]}" >"$OUT/lab-up.log" 2>&1 || {
    cat "$OUT/lab-up.log"
    exit 1
}
before=$(revision)
cp config/policies/s9-l7-http/allow-public-from-prod.yaml "$POL/s9.yaml"
cp config/policies/s7-dns/fqdn.yaml "$POL/s7.yaml"
wait_applied "$before" || exit 1
sleep 1

AGENT=$(agent_pid)
PROXIES=$(proxy_pids)
rss_start=$(rss_kb "$AGENT")
declare -A proxy_start
for p in $PROXIES; do proxy_start[$p]=$(rss_kb "$p"); done
echo "agent pid $AGENT, RSS at start ${rss_start} kB; proxies: ${PROXIES:-in the agent process}"
deadline=$(($(date +%s) + secs))

# HTTP load from client-prod: one JSON line of counts at the end.
cat >"$OUT/soak_http_load.py" <<'PY'
import http.client, json, socket, sys, time
deadline = float(sys.argv[1])
# Resolved once: a lookup per connection would make resolver hiccups count as HTTP failures.
ip = socket.gethostbyname("service-svc")
ok = fail = denied_ok = denied_bad = 0
errors = []
conn = None
n = 0
while time.time() < deadline:
    n += 1
    path = "/private" if n % 50 == 0 else "/public"
    try:
        if conn is None or n % 20 == 0:
            if conn: conn.close()
            conn = http.client.HTTPConnection(ip, 80, timeout=3)
        conn.request("GET", path, headers={"Host": "service-svc"})
        r = conn.getresponse(); r.read()
        status = r.status
    except Exception as e:
        status = "%s: %s" % (type(e).__name__, e)
        conn = None
    if path == "/public":
        if status == 200: ok += 1
        else:
            fail += 1
            if len(errors) < 20: errors.append("%.3f /public %s" % (time.time(), status))
    else:
        if status == 403: denied_ok += 1
        else:
            denied_bad += 1
            if len(errors) < 20: errors.append("%.3f /private %s" % (time.time(), status))
print(json.dumps({"ok": ok, "fail": fail, "denied": denied_ok, "not_denied": denied_bad, "errors": errors}))
PY
"$P" lab exec "${LAB[@]}" default/client-prod -- python3 "$OUT/soak_http_load.py" "$deadline" \
    >"$OUT/http.json" 2>"$OUT/http.err" &
pids+=($!)

# DNS load from mediabot: dig in a loop, curl of the learned address every 10th lookup.
cat >"$OUT/dns.sh" <<'SH'
deadline=$1; ok=0; fail=0; http_ok=0; http_fail=0; n=0
while [ "$(date +%s)" -lt "$deadline" ]; do
    n=$((n + 1))
    if dig +time=2 +tries=1 +short api.github.com | grep -qx 203.0.113.10; then
        ok=$((ok + 1))
    else
        fail=$((fail + 1)); echo "$(date +%s.%N) dig failed" >&2
    fi
    if [ $((n % 10)) -eq 0 ]; then
        code=$(curl -s -m 3 -o /dev/null -w '%{http_code}' http://api.github.com/)
        if [ "$code" = 200 ]; then http_ok=$((http_ok + 1)); else
            http_fail=$((http_fail + 1)); echo "$(date +%s.%N) curl api.github.com $code" >&2
        fi
    fi
done
echo "{\"ok\": $ok, \"fail\": $fail, \"http_ok\": $http_ok, \"http_fail\": $http_fail}"
SH
"$P" lab exec "${LAB[@]}" default/mediabot -- bash "$OUT/dns.sh" "$deadline" \
    >"$OUT/dns.json" 2>"$OUT/dns.err" &
pids+=($!)

# Churn until the deadline.
extra='apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: soak-extra}
spec:
  endpointSelector: {matchLabels: {app: myService}}
  ingress:
  - fromEndpoints: [{matchLabels: {env: dev}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]'
changes=0; relabels=0; relabel_fail=0; tick=0
while [[ $(date +%s) -lt $deadline ]]; do
    tick=$((tick + 1))
    if ((tick % 2)); then
        printf '%s\n' "$extra" >"$POL/.soak-extra.tmp" && mv "$POL/.soak-extra.tmp" "$POL/soak-extra.yaml"
    else
        rm -f "$POL/soak-extra.yaml"
    fi
    changes=$((changes + 1))
    if ((tick % 5 == 0)); then
        if ((tick % 10 == 0)); then kv=soak-; else kv=soak=on; fi
        "$P" lab label "${LAB[@]}" default/client-dev "$kv" >/dev/null 2>&1 || relabel_fail=$((relabel_fail + 1))
        relabels=$((relabels + 1))
    fi
    sleep 1
done
wait "${pids[@]}" 2>/dev/null
pids=()

alive=yes
kill -0 "$AGENT" 2>/dev/null || alive=no
rss_end=$(rss_kb "$AGENT")
http=$(cat "$OUT/http.json" 2>/dev/null)
dns=$(cat "$OUT/dns.json" 2>/dev/null)
echo "== soak ${secs}s: $changes policy changes, $relabels relabels ($relabel_fail failed), revision $(revision)"
echo "http (client-prod → service-svc): ${http:-no result ($(head -c 500 "$OUT/http.err"))}"
echo "dns (mediabot): ${dns:-no result}"
[[ -s "$OUT/dns.err" ]] && { echo "dns failures (first 10):"; head -n 10 "$OUT/dns.err"; }
echo "agent alive: $alive; RSS start ${rss_start} kB, end ${rss_end} kB, bound +${bound_mb} MB"
for p in $PROXIES; do echo "proxy $p RSS start ${proxy_start[$p]} kB, end $(rss_kb "$p") kB"; done

verdict=$(python3 - "$http" "$dns" "$rss_start" "$rss_end" "$bound_mb" "$alive" "$relabel_fail" <<'PY'
import json, sys
http, dns, start, end, bound, alive, relabel_fail = sys.argv[1:]
bad = []
try:
    h = json.loads(http)
    if h["ok"] == 0: bad.append("no HTTP request succeeded")
    if h["fail"]: bad.append("%d allowed HTTP requests failed: %s" % (h["fail"], h["errors"][:5]))
    if h["not_denied"]: bad.append("%d denied HTTP requests were not denied" % h["not_denied"])
except Exception as e:
    bad.append("no HTTP result (%s)" % e)
try:
    d = json.loads(dns)
    if d["ok"] == 0: bad.append("no DNS lookup succeeded")
    if d["fail"]: bad.append("%d allowed DNS lookups failed" % d["fail"])
    if d["http_fail"]: bad.append("%d requests to the learned address failed" % d["http_fail"])
except Exception as e:
    bad.append("no DNS result (%s)" % e)
if alive != "yes": bad.append("the agent died")
if int(end) > int(start) + int(bound) * 1024:
    bad.append("agent RSS grew %d kB > %s MB" % (int(end) - int(start), bound))
if int(relabel_fail): bad.append("%s relabels failed" % relabel_fail)
print("; ".join(bad))
PY
)
if [[ -n "$verdict" ]]; then
    echo "soak: FAILED: $verdict (agent log: $STATE/agent.log is removed by lab down; outputs in $OUT)"
    cp "$STATE/agent.log" "$OUT/agent.log" 2>/dev/null
    exit 1
fi
rm -rf "$OUT"
echo "soak: OK"
