#!/usr/bin/env bash
# Runs every benchmark (policy, HTTP matcher, datapath, HTTP and HTTPS proxy, DNS proxy, the
# sockmap experiment) and writes BENCHMARKS.md with the tables, the machine and the date. Not part
# of CI: root, a few minutes. Each peer (direct, nginx, haproxy, dnsmasq, no-program) is measured
# in the same run, so the ratios are what to read on a shared, noisy machine.
# `scripts/bench.sh --report` only rebuilds BENCHMARKS.md from bench-results/ (after running one
# bench script alone); each section carries its own date.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench-results
if [ "${1:-}" != --report ]; then
bash scripts/install-deps.sh --bench

criterion_ms() { # group/bench → mean in ms
  python3 -c "import json,sys; print('%.3f' % (json.load(open('target/criterion/$1/new/estimates.json'))['mean']['point_estimate']/1e6))"
}

echo "== policy resolution"
cargo bench -q -p palisade-policy --bench resolve >/dev/null 2>&1
{
  echo "criterion, $(date -u +%Y-%m-%dT%H:%MZ)."
  echo
  echo "| benchmark | mean | target |"
  echo "| --- | --- | --- |"
  echo "| full resolution, 1,000 policies over 10,000 pods | $(criterion_ms policy/full_resolution_1000_policies_10000_pods) ms | < 1000 ms |"
  echo "| add one pod with an existing identity (no other endpoint changes) | $(criterion_ms add_pod_with_existing_identity) ms | < 1 ms |"
} > bench-results/policy.md

echo "== HTTP rule matching"
cargo bench -q -p palisade-httpmatch > bench-results/httpmatch.txt 2>&1

echo "== datapath";  bash bpf/bench/datapath.sh   || echo "datapath bench failed" > bench-results/datapath.md
echo "== HTTP proxy"; bash proxy/bench/http.sh   || echo "HTTP bench failed" > bench-results/http.md
echo "== HTTPS proxy"; bash proxy/bench/https.sh || echo "HTTPS bench failed" > bench-results/https.md
echo "== DNS proxy";  bash dnsproxy/bench/dns.sh "${DNS_SECS:-8}" || echo "DNS bench failed" > bench-results/dns.md
echo "== sockmap experiment"; bash proxy/bench/sockmap.sh ||
  echo "sockmap experiment failed" > bench-results/http-sockmap.md
fi

{
  echo "# Benchmarks"
  echo
  echo "Assembled: $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r). Produced by \`make bench\`; a section rerun alone is put in with \`scripts/bench.sh --report\` and keeps its own date."
  echo
  for f in policy datapath http http-sockmap https dns; do
    echo "## $f"; echo; cat "bench-results/$f.md" 2>/dev/null; echo
  done
  echo "## HTTP rule matching (criterion)"; echo; echo '```'
  grep -E "^[a-z].*|time:" bench-results/httpmatch.txt | grep -B1 "time:" | grep -v "^--"
  echo '```'
} > BENCHMARKS.md
cat BENCHMARKS.md
