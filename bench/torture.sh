#!/usr/bin/env bash
# Torture run: the long versions of the in-suite torture tests, then the fuzz targets.
#
#   bash bench/torture.sh
#
# The same tests as in `cargo test` (no #[ignore]d copies), made longer by environment
# variables they read, in release mode:
#
#   1. Crash loop (tests/pm2/torture.rs): a real PM2 app writes numbered lines, logagg
#      rotates its file every 256 KiB, and the daemon is killed with -9 at random
#      moments, TORTURE_ROUNDS times; after every restart the archives + live file must
#      be exactly the lines written (every archive valid gzip, no temporary file left)
#      and the index must hold as many records; at the end every line exactly once.
#   2. Hostile input (tests/daemon/torture.rs) with a TORTURE_LONG_LINE_MIB MiB line.
#   3. The property tests (tests/daemon/torture_props.rs), TORTURE_PROP_SECONDS each.
#   4. The cargo-fuzz targets (fuzz/fuzz_targets: amp_decoder, line_splitter,
#      timestamp, query_params), TORTURE_FUZZ_SECONDS each, when a nightly toolchain
#      and cargo-fuzz are installed. Otherwise this says so and goes on; with
#      TORTURE_REQUIRE_FUZZ=1 that makes the run fail.
#
# Environment:
#   TORTURE_ROUNDS=50            kill -9 rounds of the crash loop
#   TORTURE_LINES_PER_MS=100     the app's rate (100: 100,000 lines/s, about 1.4 MB/s);
#                                0 is as fast as PM2 takes them (millions a second)
#   TORTURE_METHOD=collapse      rotation method of the crash loop; `reload` (what `auto`
#                                picks for a fork-mode app where collapse is refused)
#                                runs with PM2's bus on, so the writes PM2 drops at
#                                `reloadLogs` are put back (see README, Rotation)
#   TORTURE_SEED=                the crash loop's random seed (printed by every run)
#   TORTURE_LONG_LINE_MIB=1024   size of the line without a newline (1 GiB; the daemon's
#                                peak RSS must not grow by 384 MiB or more)
#   TORTURE_PROP_SECONDS=30      per property test
#   TORTURE_FUZZ_SECONDS=60      per fuzz target
#   TORTURE_REQUIRE_FUZZ=0       1: fail when the fuzz targets cannot run
#   TORTURE_STEPS="crash hostile props fuzz"   the steps to run (e.g. only "fuzz")
#
# Fuzzing needs a nightly toolchain and cargo-fuzz: `rustup toolchain install nightly`
# and `cargo install cargo-fuzz`. Crashes and their inputs are kept in fuzz/artifacts/,
# the corpus grown by each run in fuzz/corpus/ (both ignored by git).
#
# Output goes to the terminal and to bench/work/torture-out/<UTC time>/log.txt; the exit
# status is non-zero when any step failed.

set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

ROUNDS=${TORTURE_ROUNDS:-50}
LINES_PER_MS=${TORTURE_LINES_PER_MS:-100}
METHOD=${TORTURE_METHOD:-collapse}
LONG_LINE_MIB=${TORTURE_LONG_LINE_MIB:-1024}
PROP_SECONDS=${TORTURE_PROP_SECONDS:-30}
FUZZ_SECONDS=${TORTURE_FUZZ_SECONDS:-60}
REQUIRE_FUZZ=${TORTURE_REQUIRE_FUZZ:-0}
STEPS=" ${TORTURE_STEPS:-crash hostile props fuzz} "
OUT=bench/work/torture-out/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
LOG=$OUT/log.txt
failed=()

step() {
    local name=$1
    shift
    say "$name"
    local start=$SECONDS
    if "$@" 2>&1 | tee -a "$LOG"; then
        say "$name: passed in $((SECONDS - start)) s"
    else
        say "$name: FAILED after $((SECONDS - start)) s"
        failed+=("$name")
    fi
}

wants() { [[ $STEPS == *" $1 "* ]]; }

if wants crash || wants hostile || wants props; then
    say "building the tests (release)"
    cargo test --release --test pm2 --test daemon --no-run 2>&1 | tail -3 || exit 1
fi

env_seed=()
[[ -n ${TORTURE_SEED:-} ]] && env_seed=(LOGAGG_TORTURE_SEED="$TORTURE_SEED")
wants crash && step "crash loop: $ROUNDS kill -9 rounds beside PM2 ($LINES_PER_MS lines/ms, $METHOD)" \
    env "${env_seed[@]}" LOGAGG_TORTURE_ROUNDS="$ROUNDS" LOGAGG_TORTURE_LINES_PER_MS="$LINES_PER_MS" \
    LOGAGG_TORTURE_METHOD="$METHOD" \
    cargo test --release --test pm2 torture -- --nocapture --test-threads=1
wants hostile && step "hostile input with a $LONG_LINE_MIB MiB line" \
    env LOGAGG_TORTURE_LONG_LINE_MIB="$LONG_LINE_MIB" \
    cargo test --release --test daemon torture_hostile -- --nocapture
wants props && step "property tests, $PROP_SECONDS s each" \
    env LOGAGG_TORTURE_PROP_SECONDS="$PROP_SECONDS" \
    cargo test --release --test daemon torture_props -- --test-threads=1 --nocapture

FUZZ_TARGETS=(amp_decoder line_splitter timestamp query_params)
if ! wants fuzz; then
    :
elif cargo +nightly --version >/dev/null 2>&1 && cargo +nightly fuzz --help >/dev/null 2>&1; then
    for t in "${FUZZ_TARGETS[@]}"; do
        step "fuzz $t for $FUZZ_SECONDS s" \
            cargo +nightly fuzz run "$t" -- -max_total_time="$FUZZ_SECONDS"
    done
else
    say "fuzzing skipped: no nightly toolchain with cargo-fuzz is installed (\`cargo +nightly fuzz\` does not run); the property tests above cover the same four functions on stable"
    echo "fuzzing skipped: no nightly toolchain with cargo-fuzz" >>"$LOG"
    if [[ $REQUIRE_FUZZ == 1 ]]; then
        failed+=("fuzzing (TORTURE_REQUIRE_FUZZ=1)")
    fi
fi

say "log: $LOG"
if ((${#failed[@]})); then
    say "failed: ${failed[*]}"
    exit 1
fi
say "all torture steps passed"
