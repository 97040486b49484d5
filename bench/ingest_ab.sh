#!/usr/bin/env bash
# Ingest A/B: two or more logagg binaries on the backlog of bench/ingest.sh, interleaved
# round by round, so a change is compared with what it replaces under the same machine
# weather (this 2-core VM's CPU time per line varies by a third between runs).
#
#   bash bench/ingest.sh                      # once, to generate bench/work/logs
#   bash bench/ingest_ab.sh ROUNDS BIN...     # e.g. 2 /tmp/old/logagg target/release/logagg
#
# Each run: a fresh data_dir, the daemon from start to the commit that holds every line
# (read from its debug log), RssAnon and RssFile sampled every 0.25 s. Environment:
#   AB_EXTRA=0   keep sampling this many seconds after that commit (merges after a
#                backlog: their memory counts in the peak too)
# Prints one line per run: lines/s, CPU s, peak RSS (VmHWM), peak RssAnon and RssFile.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
die() { printf 'ingest_ab: %s\n' "$*" >&2; exit 1; }

(($# >= 2)) || die "usage: bench/ingest_ab.sh ROUNDS BIN..."
ROUNDS=$1
shift
WORK=$ROOT/bench/work/ab
LOGS=$ROOT/bench/work/logs/pm2
MANIFEST=$ROOT/bench/work/logs/manifest.json
[[ -f $MANIFEST ]] || die "no backlog: run bash bench/ingest.sh once first"
N=$(python3 -c "import json; print(json.load(open('$MANIFEST'))['lines'])")
EXTRA=${AB_EXTRA:-0}
mkdir -p "$WORK"

run() {
    local bin=$1 data=$WORK/data cfg=$WORK/logagg.toml log=$WORK/daemon.log
    rm -rf "$data"
    bench_config "$cfg" "$data" "$LOGS" "$WORK"
    wait_quiet
    local t0 t1 pid anon=0 file=0 a f done_lines
    t0=$(now)
    LOGAGG_LOG=info,logagg::index=debug,tantivy=warn "$bin" --config "$cfg" daemon 2>"$log" &
    pid=$!
    sample() {
        read -r a f < <(awk '/^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } END { print a, f }' "/proc/$pid/status")
        ((a > anon)) && anon=$a
        ((f > file)) && file=$f
        return 0
    }
    while :; do
        sleep 0.25
        kill -0 "$pid" 2>/dev/null || die "$bin exited: $(tail -3 "$log")"
        sample
        done_lines=$(awk '/ committed records=/ { sub(/.*records=/, ""); s += $1 } END { print s + 0 }' "$log")
        ((done_lines >= N)) && break
    done
    t1=$(now)
    for _ in $(seq $((EXTRA * 4))); do
        sleep 0.25
        sample
    done
    local cpu hwm
    cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$pid/stat")
    hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
    kill -TERM "$pid"
    wait "$pid" || true
    printf '%s: %s lines/s, %s CPU s (at +%ss), peak RSS %s MiB, RssAnon %s MiB, RssFile %s MiB\n' \
        "$bin" "$(calc "$N / ($t1 - $t0)" | cut -d. -f1)" "$cpu" "$EXTRA" \
        $((hwm / 1024)) $((anon / 1024)) $((file / 1024))
}

for round in $(seq "$ROUNDS"); do
    say "round $round of $ROUNDS"
    for bin in "$@"; do
        [[ -x $bin ]] || die "no binary at $bin"
        run "$bin"
    done
done
