#!/usr/bin/env bash
# Installs every OS package the build, the lab, the tests and the benchmarks need.
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail

PKGS=(clang llvm libbpf-dev bpftool gcc-multilib iproute2 iputils-ping curl dnsutils
      dnsmasq-base python3 iptables ipset procps jq)
BENCH_PKGS=(nginx-light haproxy wrk iperf3 dnsperf linux-perf)

want=("${PKGS[@]}")
if [ "${1:-}" = "--bench" ]; then want+=("${BENCH_PKGS[@]}"); fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (rustup) first" >&2
  exit 1
fi
