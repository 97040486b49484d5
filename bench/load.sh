#!/usr/bin/env bash
# Load: 50 concurrent search clients and 20 followers while 50,000 lines/s are written,
# then proof that nothing was lost (bench/load.py does the measuring; see its docstring).
#
#   bash bench/load.sh
#
# Environment:
#   LOAD_RATE=50000  LOAD_SECONDS=20  LOAD_WRITERS=4  LOAD_SEARCHERS=50  LOAD_FOLLOWERS=20
#   BENCH_NO_BUILD=0    1 uses target/release/logagg as it is
#   BENCH_QUIET_WAIT=900
#
# Results: bench/work/load-out/<UTC time>/ (results.md, results.json, logagg's log).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
WORK=$ROOT/bench/work/load
OUT=$ROOT/bench/work/load-out/$(date -u +%Y%m%dT%H%M%SZ)
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
    say "building logagg (release)"
    (cd "$ROOT" && cargo build --release --quiet)
fi
LOGAGG=$ROOT/target/release/logagg
rm -rf "$WORK"
mkdir -p "$WORK/logs/pm2" "$OUT"
DAEMON_PID=
cleanup() { [[ -n $DAEMON_PID ]] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null; true; }
trap cleanup EXIT
start_logagg "$LOGAGG" "$WORK" "$OUT/logagg.log" LOGAGG_PM2_BUS=false
wait_quiet
say "load: ${LOAD_RATE:-50000} lines/s for ${LOAD_SECONDS:-20} s, ${LOAD_SEARCHERS:-50} searchers, ${LOAD_FOLLOWERS:-20} followers"
{
    echo "Load, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, logagg $(git -C "$ROOT" rev-parse --short HEAD)"
    echo
    python3 "$ROOT/bench/load.py" --addr "$ADDR" --dir "$WORK/logs/pm2" --out "$OUT" \
        --rate "${LOAD_RATE:-50000}" --seconds "${LOAD_SECONDS:-20}" --writers "${LOAD_WRITERS:-4}" \
        --searchers "${LOAD_SEARCHERS:-50}" --followers "${LOAD_FOLLOWERS:-20}"
} | tee "$OUT/results.md"
