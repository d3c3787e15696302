#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time (not part of CI).
#
#   bash scripts/fuzz.sh [seconds-per-target]      # default 60
#
# Corpora live in fuzz/corpus/<target>/ (the seed-* files are in git; what a run adds is not).
# A crash, timeout or out-of-memory input lands in fuzz/artifacts/<target>/ and makes the script
# exit 1; keep it as a regression seed by copying it to fuzz/corpus/<target>/seed-crash-<name>.
# There is no nightly toolchain here: cargo-fuzz's -Zsanitizer flags work on stable with
# RUSTC_BOOTSTRAP=1.
set -euo pipefail

secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1

cargo fuzz build -O
failed=()
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target" "artifacts/$target"
    log="artifacts/$target.log"
    echo "== $target: ${secs}s (log $log)"
    # -timeout: one input taking 10 s counts as a hang; -rss_limit_mb bounds memory per input.
    if ! cargo fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        failed+=("$target")
        echo "!! $target failed; last lines of $log:"
        tail -n 30 "$log"
    fi
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+ +DONE" "$log" || true
    found=$(find "artifacts/$target" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
    if [[ -n "$found" ]]; then
        failed+=("$target")
        echo "!! $target artifacts:"
        echo "$found"
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: all targets ran ${secs}s without a crash"
