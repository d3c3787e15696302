#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): OS packages, formatting, lints, then every
# unit, BPF and end-to-end test. Needs root (namespaces, eBPF).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests drive the real binary.
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast -- --test-threads=2
