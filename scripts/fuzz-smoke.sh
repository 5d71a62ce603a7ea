#!/usr/bin/env bash
# Builds every fuzz target and runs each for a short fixed time (default 30 s)
# with the POP3 dictionary and the committed seeds, so a regression shows in
# CI. cargo-fuzz runs on the stable toolchain with RUSTC_BOOTSTRAP=1.
#
#   scripts/fuzz-smoke.sh [seconds]      # every target
#   scripts/fuzz-smoke.sh --self-test    # shows this script fails when it must
#
# It fails (exit 1) when a target does not build, does not start, crashes,
# hangs on one input (libFuzzer's -timeout, FUZZ_INPUT_TIMEOUT s), runs out
# of memory (-rss_limit_mb/-malloc_limit_mb), leaks (LeakSanitizer), exits
# by itself, does not finish its run within twice its time plus a minute (a
# stall libFuzzer's own timer cannot see), or leaves a crash/oom/leak/timeout
# artifact. The libFuzzer exit status decides; its log is shown on failure.
#
# --self-test runs the `smoke_selftest` target once per injected fault
# (FUZZ_SMOKE_INJECT=build|hang|crash|oom|leak|exit|stall) and fails unless
# the smoke run fails on every one of them. One fault alone:
#   FUZZ_SMOKE_INJECT=hang scripts/fuzz-smoke.sh 5     # must exit 1
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
INPUT_TIMEOUT=${FUZZ_INPUT_TIMEOUT:-10}
WALL_SLACK=${FUZZ_WALL_SLACK:-60}
SELFTEST_TARGET=smoke_selftest

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
fi

# Runs one target for $2 seconds; returns non-zero, with the log shown, on
# any failure.
run_target() {
    local target=$1 seconds=$2
    local wall=$((2 * seconds + WALL_SLACK))
    local log
    log=$(mktemp)
    local status=0
    rm -rf "artifacts/$target"
    echo "== fuzz $target for ${seconds}s"
    timeout --kill-after=10 "$wall" cargo fuzz run "$target" -- \
        -dict=dict/pop3.dict -max_total_time="$seconds" -timeout="$INPUT_TIMEOUT" \
        -rss_limit_mb=1024 -malloc_limit_mb=1024 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E '^(Done|stat::number_of_executed_units)' "$log" || true
    local why=""
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        why="did not finish within ${wall}s (stalled)"
    elif [ "$status" -ne 0 ]; then
        why="failed with exit status $status"
    elif ! grep -q '^Done ' "$log"; then
        why="ended without finishing its run"
    elif compgen -G "artifacts/$target/*" >/dev/null; then
        why="left failing inputs in fuzz/artifacts/$target"
    fi
    if [ -n "$why" ]; then
        echo "fuzz: $target $why; the end of libFuzzer's output:" >&2
        grep -E 'ERROR|SUMMARY|panicked|ALARM|Timeout|timeout|out-of-memory|leak|exited|error' "$log" | head -n 20 >&2 || true
        tail -n 15 "$log" >&2
        ls "artifacts/$target" 2>/dev/null >&2 || true
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

# One injected fault: the smoke run of the self-test target must fail.
inject() {
    local fault=$1 seconds=$2
    if [ "$fault" = build ]; then
        cargo fuzz build --features inject-build-failure "$SELFTEST_TARGET" >/dev/null 2>&1 && return 0
        echo "fuzz: $SELFTEST_TARGET failed to build (as injected)" >&2
        return 1
    fi
    FUZZ_SMOKE_INJECT=$fault run_target "$SELFTEST_TARGET" "$seconds"
}

if [ "${1:-}" = --self-test ]; then
    # Short limits, so that the hang and the stall are caught in seconds.
    INPUT_TIMEOUT=2
    WALL_SLACK=5
    cargo fuzz build "$SELFTEST_TARGET"
    run_target "$SELFTEST_TARGET" 1 # uninjected: passes
    for fault in build hang crash oom leak exit stall; do
        echo "== self-test: inject $fault"
        if inject "$fault" 1; then
            echo "fuzz self-test: an injected $fault went unnoticed" >&2
            exit 1
        fi
        echo "== self-test: $fault made the smoke run fail, as it must"
    done
    cargo fuzz build "$SELFTEST_TARGET" >/dev/null 2>&1 # rebuild without the injected failure
    rm -rf "artifacts/$SELFTEST_TARGET"
    echo "fuzz self-test: every injected fault failed the smoke run"
    exit 0
fi

SECONDS_EACH=${1:-${FUZZ_SECONDS:-30}}
if [ -n "${FUZZ_SMOKE_INJECT:-}" ]; then
    inject "$FUZZ_SMOKE_INJECT" "$SECONDS_EACH"
    exit 0
fi
cargo fuzz build
for target in $(cargo fuzz list); do
    if [ "$target" = "$SELFTEST_TARGET" ]; then
        continue
    fi
    run_target "$target" "$SECONDS_EACH"
done
