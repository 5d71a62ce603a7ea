#!/usr/bin/env bash
# Builds every fuzz target and runs each for a short fixed time (default 30 s)
# with the POP3 dictionary and the committed seeds, so a regression shows in
# CI. cargo-fuzz runs on the stable toolchain with RUSTC_BOOTSTRAP=1.
#
#   scripts/fuzz-smoke.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${1:-${FUZZ_SECONDS:-30}}
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
fi
cargo fuzz build
for target in $(cargo fuzz list); do
    echo "== fuzz $target for ${SECONDS_EACH}s"
    cargo fuzz run "$target" -- -dict=dict/pop3.dict -max_total_time="$SECONDS_EACH" \
        -rss_limit_mb=1024 -print_final_stats=1 2>&1 | grep -E '^(Done|stat::number_of_executed_units)|ERROR|panicked|SUMMARY' || true
    if ls artifacts/"$target"/crash-* artifacts/"$target"/oom-* artifacts/"$target"/leak-* >/dev/null 2>&1; then
        echo "fuzz: $target found a failing input:" >&2
        ls artifacts/"$target" >&2
        exit 1
    fi
done
