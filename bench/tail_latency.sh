#!/usr/bin/env bash
# Tail latency: the delay from a line written by a PM2 app to its appearance in the
# output of `logagg tail`, `tail -F` on the same file and `pm2 logs` on the same app; then
# from a line appended to a file to `logagg tail` and `tail -F`; then both with each
# follower alone, in turn; in one run (bench/tail_latency.py does the measuring; see its
# docstring).
#
#   bash bench/tail_latency.sh
#
# Environment:
#   LAT_LINES=2000        lines the app writes
#   LAT_INTERVAL_MS=5     one line every this many ms
#   BENCH_NO_BUILD=0      1 uses target/release/logagg as it is
#   BENCH_QUIET_WAIT=900  wait up to this long for an idle machine first
#
# Results: bench/work/lat-out/<UTC time>/ (results.md, results.json, logagg's log).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
N=${LAT_LINES:-2000}
INTERVAL=${LAT_INTERVAL_MS:-5}
WORK=$ROOT/bench/work/lat
OUT=$ROOT/bench/work/lat-out/$(date -u +%Y%m%dT%H%M%SZ)

if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
    say "building logagg (release)"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x $ROOT/node_modules/.bin/pm2 ]] || (cd "$ROOT" && npm ci --no-audit --no-fund)
PM2=$ROOT/node_modules/.bin/pm2
LOGAGG=$ROOT/target/release/logagg

rm -rf "$WORK"
mkdir -p "$WORK/logs/pm2" "$WORK/pm2home" "$OUT"
export PM2_HOME=$WORK/pm2home
DAEMON_PID=
cleanup() {
    [[ -n $DAEMON_PID ]] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    "$PM2" kill >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$PM2" ping >/dev/null
start_logagg "$LOGAGG" "$WORK" "$OUT/logagg.log" LOGAGG_PM2_HOME="$PM2_HOME"

wait_quiet
say "measuring: $N lines, one every ${INTERVAL} ms"
{
    echo "Tail latency, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $N lines every ${INTERVAL} ms"
    echo "logagg $(git -C "$ROOT" rev-parse --short HEAD), pm2 $("$PM2" --version), $(tail --version | head -1)"
    echo
    python3 "$ROOT/bench/tail_latency.py" --n "$N" --interval-ms "$INTERVAL" \
        --dir "$WORK/logs/pm2" --pm2 "$PM2" --logagg "$LOGAGG" \
        --addr "$ADDR" --app "$ROOT/bench/lat_app.js" --out "$OUT"
    # How many of the PM2 app's lines logagg showed from PM2's bus, before the file had
    # them (the rest came through the file watcher).
    echo
    echo "logagg's counters after the run (/metrics):"
    echo
    curl -s "http://$ADDR/metrics" | grep -E '^logagg_(early_lines|lines_ingested)' | sed 's/^/    /' || true
} | tee "$OUT/results.md"
