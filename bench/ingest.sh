#!/usr/bin/env bash
# Ingest benchmark: how fast logagg indexes a PM2 backlog, against lnav loading the same
# files in the same run (plus wc/rg/gzip for the raw read speed of this machine).
#
#   bash bench/ingest.sh
#
# Environment:
#   BENCH_GIB=1         size of the generated backlog in GiB (cached in bench/work/logs)
#   BENCH_POLL=0        also poll the API every this many seconds during ingest (0: only at the end)
#   BENCH_TIMEOUT=1800  give up on the daemon after this many seconds
#   BENCH_BASELINES=1   0 skips the wc/rg/gzip baselines
#   BENCH_LNAV=1        0 skips lnav
#   BENCH_RUNS=3        logagg runs (each from an empty index); the median run is reported
#   BENCH_NO_BUILD=0    1 uses target/release/logagg as it is
#   BENCH_REV=          a git revision (e.g. HEAD) to build and measure instead of the
#                       work tree: exported to bench/work/src-<sha>, built in
#                       bench/work/target, so edits in progress do not leak in
#   BENCH_QUIET_WAIT=900  before each measurement, wait up to this many seconds for the
#                       machine to be idle (other builds would skew a 2-core box)
#
# Results go to bench/work/out/<UTC timestamp>/ (results.md, results.json, the daemon's
# log, /usr/bin/time reports, an RSS/total timeline). bench/work is git-ignored.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/work
LOGS=$WORK/logs/pm2
GIB=${BENCH_GIB:-1}
POLL=${BENCH_POLL:-0}
RUNS=${BENCH_RUNS:-3}
TIMEOUT=${BENCH_TIMEOUT:-1800}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$WORK/out/$STAMP
BIN=$ROOT/target/release/logagg

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
# Tools

need_apt=()
[[ -x /usr/bin/time ]] || need_apt+=(time)
command -v curl >/dev/null || need_apt+=(curl)
command -v python3 >/dev/null || need_apt+=(python3)
if [[ ${BENCH_LNAV:-1} != 0 ]] && ! command -v lnav >/dev/null; then need_apt+=(lnav); fi
if [[ ${BENCH_BASELINES:-1} != 0 ]] && ! command -v rg >/dev/null; then need_apt+=(ripgrep); fi
if ((${#need_apt[@]})); then
    say "installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${need_apt[@]}" >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y "${need_apt[@]}" >/dev/null; } ||
        die "cannot install ${need_apt[*]}"
fi

if [[ -n ${BENCH_REV:-} ]]; then
    SHA=$(git -C "$ROOT" rev-parse --verify "$BENCH_REV^{commit}") || die "no revision $BENCH_REV"
    VERSION="$SHA ($BENCH_REV)"
    SRC=$WORK/src-${SHA:0:12}
    if [[ ! -f $SRC/Cargo.toml ]]; then
        mkdir -p "$SRC"
        git -C "$ROOT" archive "$SHA" | tar -x -C "$SRC"
    fi
    # Reuse the work tree's compiled dependencies: only logagg itself is rebuilt.
    if [[ ! -d $WORK/target/release && -d $ROOT/target/release ]]; then
        mkdir -p "$WORK/target"
        cp -a "$ROOT/target/release" "$WORK/target/" 2>/dev/null || true
    fi
    say "cargo build --release of $BENCH_REV (${SHA:0:12})"
    (cd "$SRC" && CARGO_TARGET_DIR=$WORK/target cargo build --release --quiet)
    BIN=$WORK/target/release/logagg
else
    VERSION="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown) (work tree$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ", src/ modified"))"
    if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
        say "cargo build --release"
        (cd "$ROOT" && cargo build --release --quiet)
    fi
fi
[[ -x $BIN ]] || die "no binary at $BIN"

mkdir -p "$OUT"

# ---------------------------------------------------------------------------------------
# The backlog: generated once per size and generator version, then reused.

GEN=$BENCH/gen_pm2_logs.py
GEN_ID="gib=$GIB gen=$(sha256sum "$GEN" | cut -c1-16)"
MANIFEST=$WORK/logs/manifest.json
# Cached files must still be what was generated (a daemon with rotation on may have
# renamed or truncated them): same names, same sizes.
backlog_intact() {
    [[ -f $MANIFEST && "$(cat "$WORK/logs/id" 2>/dev/null)" == "$GEN_ID" ]] || return 1
    python3 - "$MANIFEST" "$LOGS" <<'EOF'
import json, os, sys
m = json.load(open(sys.argv[1]))
names = sorted(n for n in os.listdir(sys.argv[2]) if n.endswith(".log"))
ok = names == sorted(m["files"]) and all(
    os.path.getsize(os.path.join(sys.argv[2], n)) == f["bytes"] for n, f in m["files"].items())
sys.exit(0 if ok else 1)
EOF
}
if ! backlog_intact; then
    need_kib=$(python3 -c "print(int($GIB * 1.1 * 1024 * 1024 + 3 * $GIB * 1024 * 1024))")
    free_kib=$(df -Pk "$WORK/.." | awk 'NR == 2 { print $4 }')
    ((free_kib > need_kib)) ||
        die "need ~$((need_kib / 1024 / 1024)) GiB free under bench/ (logs + index), have $((free_kib / 1024 / 1024))"
    say "generating $GIB GiB of PM2 logs in $LOGS"
    rm -rf "$WORK/logs"
    mkdir -p "$LOGS"
    gen_backlog "$GEN" "$LOGS" "$GIB" "$MANIFEST"
    echo "$GEN_ID" >"$WORK/logs/id"
fi
N=$(python3 -c "import json; print(json.load(open('$MANIFEST'))['lines'])")
BYTES=$(python3 -c "import json; print(json.load(open('$MANIFEST'))['bytes'])")
FILES=("$LOGS"/*.log)
say "backlog: ${#FILES[@]} files, $N lines, $BYTES bytes"

# ---------------------------------------------------------------------------------------
# Measuring

# rows of: tool|wall_s|rss_kib|cpu_s|others_cpu_s|note
ROWS=$OUT/rows.txt
: >"$ROWS"


# Fields of a `/usr/bin/time -v` report.
rss_kib() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"; }
cpu_s() { awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.2f", u + s }' "$1"; }

# CPU seconds that other processes used during a measurement: a check on the figures.
others_s() { calc "$2 - $1 - $3"; }

# measure NAME NOTE CMD...: runs CMD under /usr/bin/time, stdout to $OUT/NAME.out.
measure() {
    local name=$1 note=$2 t0 t1 b0 b1 cpu
    shift 2
    wait_quiet
    b0=$(busy_s)
    t0=$(now)
    /usr/bin/time -v -o "$OUT/$name.time" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" ||
        die "$name failed: $(tail -3 "$OUT/$name.err")"
    t1=$(now)
    b1=$(busy_s)
    cpu=$(cpu_s "$OUT/$name.time")
    echo "$name|$(calc "$t1 - $t0")|$(rss_kib "$OUT/$name.time")|$cpu|$(others_s "$b0" "$b1" "$cpu")|$note" >>"$ROWS"
}

# calc EXPR: floating-point arithmetic (awk, so no bc is needed).
# (The parentheses matter: in awk, `printf ..., a > b` writes to a file named b.)

# ---------------------------------------------------------------------------------------
# Baselines. `wc -l` also warms the page cache so every tool below reads from memory.

say "wc -l (also warms the page cache)"
measure "wc -l" "read + count newlines" wc -l "${FILES[@]}"
wc_lines=$(tail -1 "$OUT/wc -l.out" | awk '{ print $1 }')
[[ $wc_lines == "$N" ]] || die "wc -l counts $wc_lines lines, the manifest says $N"
if [[ ${BENCH_BASELINES:-1} != 0 ]]; then
    say "rg -c error"
    measure "rg -c error" "regex scan, 2 threads" rg -c --no-messages error "${FILES[@]}"
    say "gzip -1"
    measure "gzip -1" "what rotation's compression costs, 1 core" \
        bash -c 'cat "$@" | gzip -1 >/dev/null' _ "${FILES[@]}"
fi

# ---------------------------------------------------------------------------------------
# logagg

DATA=$WORK/data
CFG=$WORK/logagg.toml
rm -rf "$DATA"
cat >"$CFG" <<EOF
# written by bench/ingest.sh
data_dir = "$DATA"

[sources]
paths = ["$LOGS/*.log"]

[index]
commit_interval = "1s"
# The backlog's timestamps must not age out while the bench runs, however old the
# cached files are.
retention = "36500d"

[api]
listen = "127.0.0.1:0"
EOF
# Rotation (where the binary has it) would rename and truncate the backlog mid-run: off,
# and any archive stays under bench/work.
if "$BIN" --config "$CFG" config check 2>/dev/null | grep -q '^\[rotation\]'; then
    cat >>"$CFG" <<EOF

[rotation]
max_size = ""
max_age = ""
archive_dir = "$WORK/archive"
EOF
fi
# Nor should it talk to a PM2 that happens to run on this machine.
if "$BIN" --config "$CFG" config check 2>/dev/null | grep -q '^\[pm2\]'; then
    printf '\n[pm2]\nhome = "%s"\n' "$WORK/no-pm2" >>"$CFG"
fi
"$BIN" --config "$CFG" config check >"$OUT/config-resolved.toml" 2>&1 ||
    die "the bench config is refused: $(cat "$OUT/config-resolved.toml")"

# logagg_run K: one daemon on the backlog from an empty data_dir to the commit that holds
# every line; its log, samples and figures go to $OUT/run-K (row, shutdown_s, index_bytes).
logagg_run() {
    say "logagg daemon on the backlog (commit_interval 1s), waiting for total == $N (run $1 of $RUNS)"
    rm -rf "$DATA"
    RUN=$OUT/run-$1
    mkdir -p "$RUN"
    DLOG=$RUN/logagg.log
    SAMPLES=$RUN/logagg-samples.csv
    echo "t_s,committed,api_total,rss_kib,rss_anon_kib,rss_file_kib,api_took_ms" >"$SAMPLES"
    wait_quiet
    b0=$(busy_s)
    t0=$(now)
    LOGAGG_LOG=${LOGAGG_LOG:-info,logagg::index=debug,tantivy=warn} \
        /usr/bin/time -v -o "$RUN/logagg.time" "$BIN" --config "$CFG" daemon 2>"$DLOG" &
    TIME_PID=$!
    DPID=""
    cleanup() {
        if [[ -n $DPID ]] && kill -0 "$DPID" 2>/dev/null; then kill -TERM "$DPID" 2>/dev/null || true; fi
    }
    trap cleanup EXIT
    for _ in $(seq 200); do
        DPID=$(ps -o pid= --ppid "$TIME_PID" | tr -d ' ' | head -1)
        [[ -n $DPID ]] && break
        sleep 0.01
    done
    [[ -n $DPID ]] || die "the daemon did not start: $(tail -3 "$DLOG")"
    for _ in $(seq 500); do
        [[ -s $DATA/api.addr ]] && break
        kill -0 "$DPID" 2>/dev/null || die "the daemon exited: $(tail -3 "$DLOG")"
        sleep 0.02
    done
    ADDR=$(cat "$DATA/api.addr")
    # Two ways of knowing that every line is searchable. The daemon logs each commit with
    # its record count (cheap to watch: the log grows by one line a second). The API's
    # /api/search?limit=1 gives the searchable total, but with no query it counts and ranks
    # every document, which at millions of lines costs hundreds of ms of CPU per call: on a
    # 2-core box polling it every second slows ingest measurably, so by default it is asked
    # only once the commits say all lines are in (BENCH_POLL=1 polls it every second too).
    committed() { awk '/ committed records=/ { sub(/.*records=/, ""); s += $1 } END { print s + 0 }' "$DLOG"; }
    api_total() {
        local resp
        resp=$(curl -sf "http://$ADDR/api/search?limit=1" || true)
        total=$(sed -n 's/^{"total":\([0-9]*\).*/\1/p' <<<"$resp")
        took=$(sed -n 's/.*"took_ms":\([0-9.]*\).*/\1/p' <<<"$resp")
    }
    total=""
    took=""
    t_poll=""
    next_poll=$(calc "$t0 + $POLL")
    i=0
    while :; do
        # Four checks a second; each costs a few forks, well under 1% of a core.
        sleep 0.25
        i=$((i + 1))
        kill -0 "$DPID" 2>/dev/null || die "the daemon exited: $(tail -3 "$DLOG")"
        t=$(now)
        done_lines=$(committed)
        if ((done_lines == 0 && i == 40)) && [[ $POLL == 0 ]]; then
            # 10 s without a commit line: the log format or LOGAGG_LOG is not what this
            # script reads; fall back to watching the API (and its cost).
            say "warning: no 'committed records=' lines in the daemon's log; polling the API every 2 s"
            POLL=2
            next_poll=$t
        fi
        polled=""
        if ((done_lines >= N)) || { [[ $POLL != 0 ]] && (($(calc "$t >= $next_poll" | cut -d. -f1))); }; then
            api_total
            t=$(now)
            polled=1
            next_poll=$(calc "$t + $POLL")
        fi
        if [[ -n $polled ]] || ((i % 4 == 0)); then
            read -r rss anon file < <(awk '/^VmRSS/ { r = $2 } /^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } END { print r, a, f }' "/proc/$DPID/status")
            echo "$(calc "$t - $t0"),$done_lines,${polled:+${total:-}},$rss,$anon,$file,${polled:+${took:-}}" >>"$SAMPLES"
        fi
        if [[ -n $polled && ${total:-0} -ge $N ]]; then
            t_poll=$t
            break
        fi
        if ((done_lines >= N)); then
            # Committed but not yet visible: the reader reload follows the commit log line.
            continue
        fi
        if (($(calc "$t - $t0 > $TIMEOUT" | cut -d. -f1))); then
            die "timeout: $done_lines of $N lines committed after ${TIMEOUT}s"
        fi
    done
    [[ $total == "$N" ]] || die "the index holds $total lines, expected $N (duplicates?)"
    b1=$(busy_s)
    d_cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$DPID/stat")
    t_sig=$(now)
    kill -TERM "$DPID"
    wait "$TIME_PID" || die "the daemon failed: $(tail -3 "$DLOG")"
    DPID=""
    python3 "$BENCH/commits.py" "$DLOG" "$t0" "$N" >"$RUN/commits.json"
    full_s=$(python3 -c "import json; v = json.load(open('$RUN/commits.json'))['seconds_to_full']; print(v if v else '')")
    [[ -n $full_s ]] || full_s=$(calc "$t_poll - $t0")
    poll_s=$(calc "$t_poll - $t0")
    t_exit=$(now)
    shutdown_s=$(calc "$t_exit - $t_sig")
    # CPU up to the moment all lines were in (the shutdown's is in logagg.time).
    echo "logagg|$full_s|$(rss_kib "$RUN/logagg.time")|$d_cpu|$(others_s "$b0" "$b1" "$d_cpu")|start → last commit holds all lines (the API confirmed it at $(printf %.1f "$poll_s") s)" >"$RUN/row"
    echo "$shutdown_s" >"$RUN/shutdown_s"
    du -sb "$DATA/index" | cut -f1 >"$RUN/index_bytes"
}

# Several runs, because this VM's CPU time for the same work varies by a third from one
# minute to the next: the table shows the median run by lines/s, and the report lists all.
for k in $(seq "$RUNS"); do logagg_run "$k"; done
MEDIAN_RUN=$(for k in $(seq "$RUNS"); do echo "$k $(cut -d'|' -f2 "$OUT/run-$k/row")"; done |
    sort -k2,2g | awk '{ r[NR] = $1 } END { print r[int((NR + 1) / 2)] }')
for f in logagg.log logagg-samples.csv logagg.time commits.json; do cp "$OUT/run-$MEDIAN_RUN/$f" "$OUT/$f"; done
cat "$OUT/run-$MEDIAN_RUN/row" >>"$ROWS"
shutdown_s=$(cat "$OUT/run-$MEDIAN_RUN/shutdown_s")
index_bytes=$(cat "$OUT/run-$MEDIAN_RUN/index_bytes")
for k in $(seq "$RUNS"); do cat "$OUT/run-$k/row"; done >"$OUT/logagg-runs.txt"

# ---------------------------------------------------------------------------------------
# lnav: headless, loads and indexes every file, then answers from its lnav_file table.

if [[ ${BENCH_LNAV:-1} != 0 ]]; then
    say "lnav -n on the same files"
    mkdir -p "$WORK/lnav-home"
    HOME=$WORK/lnav-home measure lnav "headless load + line index, one SQL query" \
        lnav -n -q -c ';SELECT sum(lines) AS lines, count(*) AS files FROM lnav_file' \
        -c ':write-csv-to -' "${FILES[@]}"
    lnav_lines=$(sed -n 2p "$OUT/lnav.out" | cut -d, -f1)
    [[ $lnav_lines == "$N" ]] || die "lnav reports $lnav_lines lines, expected $N"
fi

# ---------------------------------------------------------------------------------------
# Report

python3 - "$ROWS" "$N" "$BYTES" "$OUT" "$index_bytes" "$shutdown_s" "$VERSION" >"$OUT/results.md" <<'EOF'
import json, sys
rows_path, n, nbytes, out, index_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
shutdown_s, version = float(sys.argv[6]), sys.argv[7]
rows = []
for line in open(rows_path):
    name, wall, rss, cpu, others, note = line.rstrip("\n").split("|", 5)
    rows.append({"tool": name, "wall_s": float(wall), "rss_mib": int(rss) / 1024,
                 "cpu_s": float(cpu), "others_cpu_s": max(0.0, float(others)), "note": note})
ref = next(r for r in rows if r["tool"] == "logagg")
order = ["logagg", "lnav", "wc -l", "rg -c error", "gzip -1"]
rows.sort(key=lambda r: order.index(r["tool"]) if r["tool"] in order else 99)
print(f"logagg {version}\n")
print(f"Backlog: {n:,} lines, {nbytes / 1e6:,.0f} MB ({nbytes / 2**30:.2f} GiB); "
      f"logagg index: {index_bytes / 1e6:,.0f} MB.\n")
print("| tool | wall s | lines/s | MB/s | peak RSS MiB | CPU s | other procs' CPU s | wall vs logagg | RSS vs logagg | what it did |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for r in rows:
    w = r["wall_s"]
    r["lines_per_s"] = n / w
    r["mb_per_s"] = nbytes / 1e6 / w
    print(f"| {r['tool']} | {w:.2f} | {n / w:,.0f} | {nbytes / 1e6 / w:,.1f} | "
          f"{r['rss_mib']:,.1f} | {r['cpu_s']:.1f} | {r['others_cpu_s']:.1f} | {w / ref['wall_s']:.2f}x | "
          f"{r['rss_mib'] / ref['rss_mib']:.2f}x | {r['note']} |")
import os
cores = os.cpu_count() or 1
for r in rows:
    # Other processes' share of what this machine could do during the measurement.
    share = r["others_cpu_s"] / (cores * r["wall_s"])
    if share > 0.10 and r["wall_s"] > 1:
        print(f"\nWARNING: other processes used {share:.0%} of the machine while {r['tool']} "
              f"ran; its figures are skewed (run again on an idle machine).")
runs = []
for line in open(f"{out}/logagg-runs.txt"):
    _, wall, rss, cpu, others, _ = line.rstrip("\n").split("|", 5)
    runs.append({"lines_per_s": n / float(wall), "cpu_s": float(cpu), "rss_mib": int(rss) / 1024,
                 "others_cpu_s": max(0.0, float(others))})
if len(runs) > 1:
    print(f"\nlogagg, {len(runs)} runs in a row (the table shows the median one): "
          + "; ".join(f"{r['lines_per_s']:,.0f} lines/s, {r['cpu_s']:.1f} CPU s, {r['rss_mib']:.0f} MiB" for r in runs)
          + ".")
c = json.load(open(f"{out}/commits.json"))
if c.get("steady_median_lps"):
    print(f"\nlogagg per one-second commit (steady state, {c['steady_commits']} commits): "
          f"median {c['steady_median_lps']:,.0f} lines/s, min {c['steady_min_lps']:,.0f}, "
          f"max {c['steady_max_lps']:,.0f}; commit took median {c['commit_ms_median']} ms, "
          f"max {c['commit_ms_max']} ms.")
print(f"\nlogagg shutdown (SIGTERM → exit): {shutdown_s:.1f} s; peak RSS is over the whole "
      f"process life, shutdown included.")
target_lps, target_rss = 200_000, 200
print(f"\nTargets: {n / ref['wall_s']:,.0f} lines/s vs 200,000 → "
      f"{'met' if n / ref['wall_s'] >= target_lps else 'MISSED'}; peak RSS "
      f"{ref['rss_mib']:.0f} MiB vs 200 MiB → {'met' if ref['rss_mib'] < target_rss else 'MISSED'}.")
json.dump({"version": version, "lines": n, "bytes": nbytes, "index_bytes": index_bytes, "shutdown_s": shutdown_s, "rows": rows,
           "runs": runs,
           "commits": {k: v for k, v in c.items() if k != "per_commit"}},
          open(f"{out}/results.json", "w"), indent=1)
EOF
cat "$OUT/results.md"
echo
say "details in ${OUT#"$ROOT"/}"
