#!/usr/bin/env bash
# The whole benchmark suite: builds logagg once (release), runs every comparison and
# rewrites the generated part of docs/BENCHMARKS.md (bench/report.py).
#
#   bash bench/run.sh                      # everything, full sizes (~30-40 min on 2 cores)
#   BENCH_QUICK=1 bash bench/run.sh        # small sizes, a smoke test of a few minutes
#   BENCH_AREAS="search idle" bash bench/run.sh
#                                          # only these; the report takes every other
#                                          # area from its newest earlier results, and says so
#
# Areas, in order: ingest (bench/ingest.sh), search (bench/search.sh), tail
# (bench/tail_latency.sh), rotation (bench/rotation.sh: rotation and compression), idle
# (bench/idle.sh), load (bench/load.sh). One failing area does not stop the others; the report then uses that
# area's newest earlier results and run.sh exits 1.
#
# Every measurement holds /tmp/logagg-bench.lock (flock), which the other sessions on a
# shared machine take too: run.sh builds first, then takes the lock for the rest.
#
# Environment:
#   BENCH_QUICK=0        1: small sizes, and the report goes to bench/work/BENCHMARKS.quick.md
#   BENCH_AREAS="ingest search tail rotation idle load"
#   BENCH_DOC=docs/BENCHMARKS.md   the document whose generated part is rewritten
#   BENCH_NO_BUILD=0     1 uses target/release/logagg as it is
#   BENCH_LOCK=/tmp/logagg-bench.lock
#   plus every knob of the scripts (BENCH_GIB, SEARCH_*, LAT_*, ROT_*, IDLE_*, BENCH_QUIET_WAIT),
#   which win over the sizes set here.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
LOCK=${BENCH_LOCK:-/tmp/logagg-bench.lock}
AREAS=${BENCH_AREAS:-ingest search tail rotation idle load}
QUICK=${BENCH_QUICK:-0}
# (grep finds nothing when no knob is set: not an error under pipefail.)
COMMAND="${BENCH_COMMAND:-$({ env | grep -E '^(BENCH|SEARCH|LAT|ROT|IDLE)_' | grep -v -E '^BENCH_(LOCKED|COMMAND)=' || true; } | sort | tr '\n' ' ')bash bench/run.sh}"

if [[ -z ${BENCH_LOCKED:-} ]]; then
    if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
        say "cargo build --release"
        (cd "$ROOT" && cargo build --release --quiet)
    fi
    [[ -x $ROOT/node_modules/.bin/pm2 ]] || (cd "$ROOT" && npm ci --no-audit --no-fund >/dev/null)
    say "waiting for $LOCK (other benchmarks on this machine)"
    exec env BENCH_LOCKED=1 BENCH_NO_BUILD=1 BENCH_COMMAND="$COMMAND" flock "$LOCK" bash "$0" "$@"
fi
export BENCH_NO_BUILD=1

# Sizes: what the issue asks for, or a smoke test. The caller's own settings win.
if [[ $QUICK == 1 ]]; then
    : "${BENCH_GIB:=0.02}" "${SEARCH_LINES:=200000}" "${SEARCH_RUNS:=10}" "${SEARCH_RG_RUNS:=3}" "${SEARCH_SETTLE:=30}"
    : "${LAT_LINES:=300}" "${ROT_SECONDS:=6}" "${ROT_COMPRESS_MIB:=10}" "${ROT_COMPRESS_REPS:=1}" "${ROT_COMPRESS_WARMUP:=0}"
    : "${IDLE_APPS:=10}" "${IDLE_SECONDS:=10}" "${IDLE_SETTLE:=3}" "${BENCH_QUIET_WAIT:=60}"
    : "${LOAD_RATE:=5000}" "${LOAD_SECONDS:=5}"
    DOC=${BENCH_DOC:-$BENCH/work/BENCHMARKS.quick.md}
    mkdir -p "$BENCH/work"
    [[ -f $DOC ]] || cp "$ROOT/docs/BENCHMARKS.md" "$DOC"
else
    : "${BENCH_GIB:=1}" "${SEARCH_LINES:=10000000}" "${LAT_LINES:=2000}" "${ROT_RATE:=5000}" "${ROT_SECONDS:=30}"
    : "${ROT_COMPRESS_MIB:=1024}" "${ROT_COMPRESS_REPS:=1}" "${ROT_COMPRESS_WARMUP:=0}"
    : "${IDLE_APPS:=100}" "${IDLE_SECONDS:=60}" "${LOAD_RATE:=50000}" "${LOAD_SECONDS:=20}"
    DOC=${BENCH_DOC:-$ROOT/docs/BENCHMARKS.md}
fi
export BENCH_GIB SEARCH_LINES LAT_LINES ROT_SECONDS ROT_COMPRESS_MIB ROT_COMPRESS_REPS ROT_COMPRESS_WARMUP IDLE_APPS IDLE_SECONDS LOAD_RATE LOAD_SECONDS
[[ -n ${SEARCH_RUNS:-} ]] && export SEARCH_RUNS
[[ -n ${SEARCH_RG_RUNS:-} ]] && export SEARCH_RG_RUNS
[[ -n ${SEARCH_SETTLE:-} ]] && export SEARCH_SETTLE
[[ -n ${ROT_RATE:-} ]] && export ROT_RATE
[[ -n ${IDLE_SETTLE:-} ]] && export IDLE_SETTLE
[[ -n ${BENCH_QUIET_WAIT:-} ]] && export BENCH_QUIET_WAIT

declare -A SCRIPT=([ingest]=ingest.sh [search]=search.sh [tail]=tail_latency.sh [rotation]=rotation.sh [idle]=idle.sh [load]=load.sh)
declare -A OUTDIR=([ingest]=out [search]=search-out [tail]=lat-out [rotation]=rot-out [idle]=idle-out [load]=load-out)
LOGDIR=$BENCH/work/run-out/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$LOGDIR"
fresh=()
failed=()
t_all=$(now)
for area in $AREAS; do
    [[ -n ${SCRIPT[$area]:-} ]] || { say "unknown area $area (known: ${!SCRIPT[*]})"; exit 2; }
    mark=$LOGDIR/$area.start
    touch "$mark"
    say "[$area] bash bench/${SCRIPT[$area]} (log: ${LOGDIR#"$ROOT"/}/$area.log)"
    t0=$(now)
    if bash "$BENCH/${SCRIPT[$area]}" >"$LOGDIR/$area.log" 2>&1; then
        # The result directory this run wrote: the newest one, created after the mark.
        dir=$(find "$BENCH/work/${OUTDIR[$area]}" -mindepth 1 -maxdepth 1 -type d -newer "$mark" 2>/dev/null | sort | tail -1)
        if [[ -n $dir && -f $dir/results.json ]]; then
            fresh+=(--fresh "$area=$dir")
            say "[$area] done in $(printf %.0f "$(calc "$(now) - $t0")") s: ${dir#"$ROOT"/}"
        else
            failed+=("$area")
            say "[$area] finished but wrote no results.json; the report uses earlier results"
        fi
    else
        failed+=("$area")
        say "[$area] FAILED after $(printf %.0f "$(calc "$(now) - $t0")") s: $(tail -3 "$LOGDIR/$area.log" | tr '\n' ' ')"
    fi
done

say "report: ${DOC#"$ROOT"/}"
python3 "$BENCH/report.py" "${fresh[@]}" --command "$COMMAND" --doc "$DOC" $([[ $QUICK == 1 ]] && echo --quick) \
    >"$LOGDIR/report.md"
say "all done in $(printf %.0f "$(calc "$(now) - $t_all")") s; ${DOC#"$ROOT"/} rewritten"
if ((${#failed[@]})); then
    say "failed: ${failed[*]} (logs in ${LOGDIR#"$ROOT"/})"
    exit 1
fi
