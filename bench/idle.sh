#!/usr/bin/env bash
# Idle benchmark: what logagg costs when nothing happens, against pm2-logrotate's module
# process watching the same files, in one run.
#
#   bash bench/idle.sh
#
# One PM2 daemon (PM2 from node_modules, its own PM2_HOME in bench/work/idle/pm2) runs
# IDLE_APPS apps, each a shell that writes a few lines to stdout and stderr and then
# sleeps: 2 x IDLE_APPS log files (200 by default) in bench/work/idle/logs/pm2. In it,
# `pm2 install pm2-logrotate` with its default settings (max_size 10M, workerInterval
# 30 s, rotateInterval daily at midnight). Beside it, the logagg daemon (release build,
# default settings: rotation max_size 10MiB, 1 s commits, PM2 bus on) follows the same
# files and that PM2. Once logagg has indexed every line and both have been left alone
# for IDLE_SETTLE seconds, both processes are watched over the same IDLE_SECONDS window:
# CPU seconds (utime + stime, /proc/PID/stat) at the start and the end, VmRSS every
# second. Reported per minute: CPU s x 60 / IDLE_SECONDS; RSS: median and max of the samples.
#
# Environment:
#   IDLE_APPS=100       PM2 apps (two log files each)
#   IDLE_LINES=5        lines each app writes to each of its streams before it sleeps
#   IDLE_SECONDS=60     the measured window
#   IDLE_SETTLE=15      seconds left alone before it
#   BENCH_NO_BUILD=0    1 uses target/release/logagg as it is
#   BENCH_QUIET_WAIT=900  wait up to this long for an idle machine first
#
# Results: bench/work/idle-out/<UTC time>/ (results.md, results.json, samples.csv, logs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/work/idle
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
die() { printf 'idle bench: %s\n' "$*" >&2; exit 1; }

APPS=${IDLE_APPS:-100}
NLINES=${IDLE_LINES:-5}
SECS=${IDLE_SECONDS:-60}
SETTLE=${IDLE_SETTLE:-15}
OUT=$BENCH/work/idle-out/$(date -u +%Y%m%dT%H%M%SZ)
PM2=$ROOT/node_modules/.bin/pm2
BIN=$ROOT/target/release/logagg
export PM2_HOME=$WORK/pm2 PM2_DISABLE_VERSION_CHECK=true NO_COLOR=1

for tool in node npm python3 curl; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
    say "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x $BIN ]] || die "no binary at $BIN"
[[ -x $PM2 ]] || (cd "$ROOT" && npm ci --no-audit --no-fund >/dev/null)
VERSION="$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo "+modified src")"

DPID=""
cleanup() {
    if [[ -n $DPID ]] && kill -0 "$DPID" 2>/dev/null; then
        kill -TERM "$DPID" 2>/dev/null || true
        wait "$DPID" 2>/dev/null || true
    fi
    "$PM2" kill >/dev/null 2>&1 || true
}
trap cleanup EXIT

# A PM2 left over from an interrupted run in the same home.
"$PM2" kill >/dev/null 2>&1 || true
rm -rf "$WORK"
mkdir -p "$WORK/logs/pm2" "$PM2_HOME" "$OUT"

say "PM2 in ${PM2_HOME#"$ROOT"/}: pm2 install pm2-logrotate (default settings)"
"$PM2" ping >/dev/null
"$PM2" install pm2-logrotate >"$OUT/install.log" 2>&1 || die "pm2 install pm2-logrotate failed: $(tail -5 "$OUT/install.log")"
pkg=$(find "$PM2_HOME/modules" -path '*/pm2-logrotate/package.json' -not -path '*/node_modules/*/node_modules/*' | head -1)
LR_VERSION=$(node -p "require('$pkg').version")
PM2_VERSION=$(node -p "require('$ROOT/node_modules/pm2/package.json').version")

say "$APPS apps, $((2 * APPS)) log files"
python3 - "$APPS" "$NLINES" "$WORK" >"$WORK/ecosystem.json" <<'EOF'
import json, sys
apps, n, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
script = f'for i in $(seq {n}); do echo "idle app $NAME line $i"; echo "idle app $NAME warning $i" >&2; done; exec sleep 1000000'
print(json.dumps({"apps": [{
    "name": f"idle-{i:03d}", "script": "/bin/sh", "args": ["-c", script], "interpreter": "none",
    "autorestart": False, "time": True, "env": {"NAME": f"idle-{i:03d}"},
    "out_file": f"{work}/logs/pm2/idle-{i:03d}-out.log", "error_file": f"{work}/logs/pm2/idle-{i:03d}-error.log",
} for i in range(apps)]}, indent=1))
EOF
"$PM2" start "$WORK/ecosystem.json" >"$OUT/start.log" 2>&1 || die "pm2 start failed: $(tail -5 "$OUT/start.log")"
expected=$((2 * APPS * NLINES))
for _ in $(seq 300); do
    have=$(cat "$WORK"/logs/pm2/*.log 2>/dev/null | wc -l)
    ((have >= expected)) && break
    sleep 0.2
done
((have == expected)) || die "the apps wrote $have lines, expected $expected"
nfiles=$(find "$WORK/logs/pm2" -name '*.log' | wc -l)

LR_PID=$("$PM2" jlist 2>/dev/null | python3 -c '
import json, sys
t = sys.stdin.read()
for a in json.loads(t[t.index("["):]):
    if a.get("name") == "pm2-logrotate" and a.get("pid"):
        print(a["pid"])' || true)
[[ -n $LR_PID ]] || die "no pm2-logrotate process in pm2 jlist"
GOD_PID=$(cat "$PM2_HOME/pm2.pid")

cat >"$WORK/logagg.toml" <<EOF
# written by bench/idle.sh: defaults, except where things go
data_dir = "$WORK/state"

[sources]
paths = ["$WORK/logs/pm2/*.log"]

[api]
listen = "127.0.0.1:0"

[pm2]
home = "$PM2_HOME"

[rotation]
archive_dir = "$WORK/archive"
EOF
"$BIN" --config "$WORK/logagg.toml" config check >"$OUT/config-resolved.toml" 2>&1 ||
    die "the bench config is refused: $(cat "$OUT/config-resolved.toml")"
say "logagg daemon on the same $nfiles files"
LOGAGG_LOG=${LOGAGG_LOG:-info} "$BIN" --config "$WORK/logagg.toml" daemon 2>"$OUT/logagg.log" &
DPID=$!
for _ in $(seq 500); do
    [[ -s $WORK/state/api.addr ]] && break
    kill -0 "$DPID" 2>/dev/null || die "the daemon exited: $(tail -3 "$OUT/logagg.log")"
    sleep 0.02
done
ADDR=$(cat "$WORK/state/api.addr")
total=0
for _ in $(seq 120); do
    total=$(curl -sf "http://$ADDR/api/search?limit=1&kind=line" | sed -n 's/^{"total":\([0-9]*\).*/\1/p')
    ((${total:-0} >= expected)) && break
    sleep 0.5
done
((${total:-0} == expected)) || die "logagg indexed ${total:-0} lines, expected $expected"

say "both left alone for ${SETTLE}s, then ${SECS}s measured"
sleep "$SETTLE"
wait_quiet
cpu_of() { sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }'; }
rss_of() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
b0=$(busy_s)
la0=$(cpu_of "$DPID") lr0=$(cpu_of "$LR_PID") g0=$(cpu_of "$GOD_PID")
echo "t_s,logagg_rss_kib,pm2_logrotate_rss_kib,pm2_god_rss_kib" >"$OUT/samples.csv"
t0=$(now)
for i in $(seq "$SECS"); do
    sleep 1
    kill -0 "$DPID" 2>/dev/null || die "the daemon exited: $(tail -3 "$OUT/logagg.log")"
    echo "$i,$(rss_of "$DPID"),$(rss_of "$LR_PID"),$(rss_of "$GOD_PID")" >>"$OUT/samples.csv"
done
t1=$(now)
la1=$(cpu_of "$DPID") lr1=$(cpu_of "$LR_PID") g1=$(cpu_of "$GOD_PID")
b1=$(busy_s)
threads=$(awk '/^Threads/ { print $2 }' "/proc/$DPID/status")
la_hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$DPID/status")
# What the resident memory is: heap and stacks (anon) or mapped index files (file).
read -r la_anon la_file < <(awk '/^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } END { print a, f }' "/proc/$DPID/status")
lr_anon=$(awk '/^RssAnon/ { print $2 }' "/proc/$LR_PID/status")

python3 - "$OUT" <<EOF
import csv, json, statistics
out = "$OUT"
wall = $t1 - $t0
rows = list(csv.DictReader(open(f"{out}/samples.csv")))
def proc(name, col, c0, c1):
    rss = [int(r[col]) / 1024 for r in rows]
    return {"name": name, "cpu_s": c1 - c0, "cpu_s_per_min": (c1 - c0) * 60 / wall,
            "rss_median_mib": statistics.median(rss), "rss_max_mib": max(rss)}
res = {"meta": {"date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "logagg": "$VERSION", "pm2": "$PM2_VERSION",
                "pm2_logrotate": "$LR_VERSION", "node": "$(node --version)", "apps": $APPS, "files": $nfiles,
                "lines": $expected, "seconds": wall, "logagg_threads": $threads, "logagg_hwm_mib": $la_hwm / 1024,
                "machine_busy_s": $b1 - $b0, "logagg_rss_anon_mib": $la_anon / 1024,
                "logagg_rss_file_mib": $la_file / 1024, "pm2_logrotate_rss_anon_mib": $lr_anon / 1024},
       "procs": [proc("logagg daemon", "logagg_rss_kib", $la0, $la1),
                 proc("pm2-logrotate module", "pm2_logrotate_rss_kib", $lr0, $lr1),
                 proc("PM2 daemon (God)", "pm2_god_rss_kib", $g0, $g1)]}
json.dump(res, open(f"{out}/results.json", "w"), indent=1)
m, (la, lr, god) = res["meta"], res["procs"]
with open(f"{out}/results.md", "w") as f:
    p = lambda *a: print(*a, file=f)
    p(f"Idle benchmark, {m['date']}, logagg {m['logagg']}: {m['files']} files of {m['apps']} PM2 apps "
      f"(PM2 {m['pm2']}, pm2-logrotate {m['pm2_logrotate']}, Node {m['node']}), {m['seconds']:.0f} s measured.\n")
    p("| process | CPU s | CPU s per minute | RSS MiB (median) | RSS MiB (max) |")
    p("| --- | ---: | ---: | ---: | ---: |")
    for r in res["procs"]:
        p(f"| {r['name']} | {r['cpu_s']:.2f} | {r['cpu_s_per_min']:.3f} | {r['rss_median_mib']:.1f} | {r['rss_max_mib']:.1f} |")
    p(f"\nlogagg: {m['logagg_threads']} threads; at the end RssAnon {m['logagg_rss_anon_mib']:.1f} MiB (heap, stacks), "
      f"RssFile {m['logagg_rss_file_mib']:.1f} MiB (binary, mapped index files); "
      f"VmHWM {m['logagg_hwm_mib']:.1f} MiB (its peak since start, ingest included). "
      f"pm2-logrotate's RssAnon: {m['pm2_logrotate_rss_anon_mib']:.1f} MiB. "
      f"The whole machine was busy {m['machine_busy_s']:.1f} CPU s in the window.")
    p(f"\nTargets: RSS {la['rss_max_mib']:.1f} MiB (max) vs < 30 MiB: {'met' if la['rss_max_mib'] < 30 else 'MISSED'}; "
      f"CPU {la['cpu_s_per_min']:.3f} s/min vs < 0.1: {'met' if la['cpu_s_per_min'] < 0.1 else 'MISSED'}.")
print(open(f"{out}/results.md").read())
EOF
say "details in ${OUT#"$ROOT"/}"
