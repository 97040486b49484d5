#!/usr/bin/env bash
# Rotation benchmark: logagg's rotation against pm2-logrotate on the same workload, in one
# run, plus logagg's compressor against `gzip -6` on the same file.
#
#   bash bench/rotation.sh
#
# Workload: bench/rot_writer.js under PM2 (fork mode) writes ROT_RATE lines/s for
# ROT_SECONDS s, each line `seq=NNNNNNN <time> ...` (~105 bytes), to its PM2 out_file.
#
#   A. pm2-logrotate (`pm2 install pm2-logrotate`, max_size ROT_MAX_SIZE, compress true,
#      workerInterval 1, retain 100000) in its own PM2_HOME, bench/work/rotA/pm2. Twice:
#      as installed (3.0.0 ignores `compress true`: plain archives), and with that bug
#      fixed in its app.js (gzip level 9 archives, as configured).
#   B. logagg (target/release/logagg daemon: tails and indexes the file, rotates it at
#      the same max_size, compresses) beside its own PM2, bench/work/rotB/pm2; then the
#      same with rotation off (tailing and indexing only: logagg cannot rotate without
#      indexing, so the difference is what its rotation costs).
#
# After each run the archives (oldest first) and the live file are read back and the
# sequence numbers counted: lost = written - present, duplicated, malformed. CPU seconds
# (utime + stime from /proc/PID/stat, from the writer's start until rotation has
# settled) and peak RSS (VmHWM) of the rotating process: the pm2-logrotate module
# process, or the logagg daemon.
#
# Compression: one ~ROT_COMPRESS_MIB MiB file of the same lines, compressed by `gzip -6`,
# by logagg's archive writer (bench/rot_compress.rs, calling
# logagg::rotate::archive::write_archive) and by pm2-logrotate's Node zlib settings
# (bench/rot_zlib.js), ROT_COMPRESS_REPS times each, interleaved.
#
# Environment:
#   ROT_RATE=5000           lines/s of the writer
#   ROT_SECONDS=30          how long it writes (lines = rate x seconds)
#   ROT_MAX_SIZE=256K       max_size for both tools (pm2-logrotate's syntax, K = KiB)
#   ROT_RUNS=1              rounds to run (each: the pm2-logrotate variants, then logagg)
#   ROT_LOGROTATE_VARIANTS="stock gzipfix"
#                           stock: pm2-logrotate as installed, where `compress true` has
#                           no effect (keymetrics/pm2-logrotate#201); gzipfix: the same
#                           with that bug fixed in its app.js, so it gzips as configured
#   ROT_LOGAGG_MODES="rotate norotate"
#                           rotate: logagg with max_size ROT_MAX_SIZE; norotate: the same
#                           daemon with rotation off, so rotation's share of its CPU shows
#   ROT_COMPRESS_MIB=100    size of the compression input (0 skips the compression table)
#   ROT_COMPRESS_REPS=5     timed repetitions per compressor
#   ROT_COMPRESS_WARMUP=1   untimed warm-up runs per compressor (0 for a 1 GiB input)
#   ROT_PIGZ=1              also time `pigz -6` (all cores) when pigz is installed
#   BENCH_NO_BUILD=0        1 uses target/release/logagg as it is
#   BENCH_REV=              a git revision (e.g. HEAD) to build and measure instead of the
#                           work tree: exported to bench/work/src-<sha>, built in
#                           bench/work/target (as bench/ingest.sh does)
#   BENCH_QUIET_WAIT=900    before each measurement wait up to this long for an idle machine
#   ROT_WAIT_INGEST=1       0: do not wait for a running bench/ingest.sh to finish
#
# Results go to bench/work/rot-out/<UTC time>/ (results.md, results.json, per-run counts,
# logagg's log, PM2 and module logs). bench/work is git-ignored.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/work
RATE=${ROT_RATE:-5000}
SECONDS_RUN=${ROT_SECONDS:-30}
LINES=$((RATE * SECONDS_RUN))
MAX_SIZE=${ROT_MAX_SIZE:-256K}
RUNS=${ROT_RUNS:-1}
VARIANTS=${ROT_LOGROTATE_VARIANTS:-stock gzipfix}
LOGAGG_MODES=${ROT_LOGAGG_MODES:-rotate norotate}
COMPRESS_MIB=${ROT_COMPRESS_MIB:-100}
COMPRESS_REPS=${ROT_COMPRESS_REPS:-5}
COMPRESS_WARMUP=${ROT_COMPRESS_WARMUP:-1}
PIGZ=""
if [[ ${ROT_PIGZ:-1} != 0 ]] && command -v pigz >/dev/null; then PIGZ=$(command -v pigz); fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$WORK/rot-out/$STAMP
A=$WORK/rotA
B=$WORK/rotB
PM2=$ROOT/node_modules/.bin/pm2
BIN=$ROOT/target/release/logagg

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
die() { printf 'rotation bench: %s\n' "$*" >&2; exit 1; }

for tool in node npm python3 curl gzip cargo; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# max_size in bytes, as pm2-logrotate reads it (K, M, G are binary; logagg reads them
# the same way).
MAX_BYTES=$(python3 - "$MAX_SIZE" <<'EOF'
import sys
s = sys.argv[1]
mult = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(s[-1:], 1)
print(int(s.rstrip("KMG")) * mult)
EOF
)

# ---------------------------------------------------------------------------------------
# Processes we start, and their clean-up (also on failure).

PM2_HOMES=()   # every PM2_HOME a daemon may run in: `pm2 kill` each at exit
LOGAGG_PID=""  # the logagg daemon, while it runs

pm2_in() {
    local home=$1
    shift
    PM2_HOME=$home PM2_DISABLE_VERSION_CHECK=true NO_COLOR=1 "$PM2" "$@"
}

pm2_stop_all() {
    local home
    for home in "${PM2_HOMES[@]}"; do
        if [[ -S $home/rpc.sock || -f $home/pm2.pid ]]; then
            pm2_in "$home" kill >/dev/null 2>&1 || true
        fi
    done
    PM2_HOMES=()
}

cleanup() {
    local rc=$?
    if [[ -n $LOGAGG_PID ]] && kill -0 "$LOGAGG_PID" 2>/dev/null; then
        kill -TERM "$LOGAGG_PID" 2>/dev/null || true
        wait "$LOGAGG_PID" 2>/dev/null || true
    fi
    pm2_stop_all
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------
# Measuring helpers

# CPU seconds (utime + stime) of one process. The command name in /proc/PID/stat may
# hold spaces ("PM2 v7.0.4: God"), so fields are counted after its closing parenthesis.
cpu_of() { sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }'; }
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }

# The other benchmark must not share the two cores with this one.
wait_ingest() {
    [[ ${ROT_WAIT_INGEST:-1} == 0 ]] && return 0
    local said=""
    while pgrep -f bench/ingest.sh >/dev/null; do
        [[ -n $said ]] || say "bench/ingest.sh is running; waiting for it to finish"
        said=1
        sleep 10
    done
}

# pid_of_app HOME NAME: the pid of a PM2 app, from `pm2 jlist`, once it is online.
pid_of_app() {
    pm2_in "$1" jlist 2>/dev/null | python3 -c '
import json, sys
text = sys.stdin.read()
apps = json.loads(text[text.index("["):]) if "[" in text else []
for a in apps:
    if a.get("name") == sys.argv[1] and a.get("pm2_env", {}).get("status") == "online" and a.get("pid"):
        print(a["pid"])
        break
' "$2"
}

wait_app_pid() {
    local pid=""
    for _ in $(seq 150); do
        pid=$(pid_of_app "$1" "$2" || true)
        [[ -n $pid ]] && break
        sleep 0.2
    done
    [[ -n $pid ]] || die "PM2 app $2 did not come online (PM2_HOME $1)"
    echo "$pid"
}

# Newest modification time (epoch seconds) of the files matching a glob, 0 for none.
newest_mtime() { stat -c %Y "$@" 2>/dev/null | sort -n | tail -1 || true; }

# The writer's ecosystem file for one run directory.
writer_ecosystem() {
    local dir=$1
    cat >"$dir/writer.json" <<EOF
{
  "apps": [{
    "name": "writer",
    "script": "$BENCH/rot_writer.js",
    "cwd": "$dir",
    "exec_mode": "fork",
    "autorestart": false,
    "out_file": "$dir/logs/writer-out.log",
    "error_file": "$dir/logs/writer-error.log",
    "env": { "ROT_RATE": "$RATE", "ROT_LINES": "$LINES", "ROT_DONE": "$dir/writer.done" }
  }]
}
EOF
}

wait_writer_done() {
    local dir=$1 deadline
    deadline=$(($(date +%s) + SECONDS_RUN * 3 + 60))
    until [[ -s $dir/writer.done ]]; do
        (($(date +%s) < deadline)) || die "the writer did not finish in $dir"
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------
# Set-up: PM2 from the repository, the logagg binary, the compression helper.

wait_ingest
if [[ ! -x $PM2 ]]; then
    say "npm ci (PM2 pinned by package.json)"
    (cd "$ROOT" && npm ci --no-audit --no-fund >/dev/null)
fi
[[ -x $PM2 ]] || die "no PM2 at $PM2"
PM2_VERSION=$(node -p "require('$ROOT/node_modules/pm2/package.json').version")

# LOGAGG_SRC: the logagg sources measured; TARGET: their cargo target directory.
if [[ -n ${BENCH_REV:-} ]]; then
    SHA=$(git -C "$ROOT" rev-parse --verify "$BENCH_REV^{commit}") || die "no revision $BENCH_REV"
    VERSION="${SHA:0:7} ($BENCH_REV)"
    # The same clean export and target directory as bench/ingest.sh.
    LOGAGG_SRC=$WORK/src-${SHA:0:12}
    TARGET=$WORK/target
    if [[ ! -f $LOGAGG_SRC/Cargo.toml ]]; then
        mkdir -p "$LOGAGG_SRC"
        git -C "$ROOT" archive "$SHA" | tar -x -C "$LOGAGG_SRC"
    fi
    if [[ ! -d $TARGET/release && -d $ROOT/target/release ]]; then
        mkdir -p "$TARGET"
        cp -a "$ROOT/target/release" "$TARGET/" 2>/dev/null || true
    fi
    say "cargo build --release of $BENCH_REV (${SHA:0:12})"
    (cd "$LOGAGG_SRC" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet)
    BIN=$TARGET/release/logagg
else
    VERSION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) (work tree$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ", src/ modified"))"
    LOGAGG_SRC=$ROOT
    TARGET=$ROOT/target
    if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
        say "cargo build --release"
        (cd "$ROOT" && cargo build --release --quiet)
    fi
fi
[[ -x $BIN ]] || die "no binary at $BIN"

COMP=$WORK/rot-compress
if [[ $COMPRESS_MIB != 0 ]]; then
    # A crate of its own in bench/work, with logagg as a path dependency and the
    # repository's lock file; the same release profile, so the dependencies already
    # built in target/ are reused.
    mkdir -p "$COMP/src"
    cp "$BENCH/rot_compress.rs" "$COMP/src/main.rs"
    cp "$LOGAGG_SRC/Cargo.lock" "$COMP/Cargo.lock"
    cat >"$COMP/Cargo.toml" <<EOF
# written by bench/rotation.sh
[package]
name = "rot-compress"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
logagg = { path = "$LOGAGG_SRC" }

[profile.release]
debug = 1

[workspace]
EOF
    say "building the compression helper (bench/rot_compress.rs)"
    (cd "$COMP" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet)
    COMP_BIN=$TARGET/release/rot-compress
    [[ -x $COMP_BIN ]] || die "no binary at $COMP_BIN"
fi

mkdir -p "$OUT"
RUNS_JSONL=$OUT/runs.jsonl
: >"$RUNS_JSONL"

# ---------------------------------------------------------------------------------------
# A: pm2-logrotate

HOME_A=$A/pm2
LR_VERSION=""
setup_a() {
    say "A: a PM2 daemon in $HOME_A, pm2 install pm2-logrotate"
    rm -rf "$A"
    mkdir -p "$HOME_A" "$A/logs"
    PM2_HOMES+=("$HOME_A")
    pm2_in "$HOME_A" ping >/dev/null
    pm2_in "$HOME_A" install pm2-logrotate >"$OUT/A-install.log" 2>&1 ||
        die "pm2 install pm2-logrotate failed: $(tail -5 "$OUT/A-install.log")"
    pm2_in "$HOME_A" set pm2-logrotate:max_size "$MAX_SIZE" >/dev/null
    pm2_in "$HOME_A" set pm2-logrotate:compress true >/dev/null
    pm2_in "$HOME_A" set pm2-logrotate:workerInterval 1 >/dev/null
    pm2_in "$HOME_A" set pm2-logrotate:retain 100000 >/dev/null
    # Millisecond names: at one rotation a second, the default YYYY-MM-DD_HH-mm-ss can
    # give two archives the same name, and the second (opened 'w+') overwrites the first.
    pm2_in "$HOME_A" set pm2-logrotate:dateFormat YYYY-MM-DD_HH-mm-ss-SSS >/dev/null
    local pkg
    pkg=$(find "$HOME_A/modules" -path '*/pm2-logrotate/package.json' -not -path '*/node_modules/*/node_modules/*' | head -1)
    [[ -n $pkg ]] || die "pm2-logrotate is not under $HOME_A/modules after pm2 install"
    LR_VERSION=$(node -p "require('$pkg').version")
    local lr_pm2
    lr_pm2=$(find "$HOME_A/modules" -path '*/node_modules/pm2/package.json' | head -1)
    LR_PM2_VERSION=$([[ -n $lr_pm2 ]] && node -p "require('$lr_pm2').version" || echo "?")
    pm2_in "$HOME_A" conf pm2-logrotate >"$OUT/A-conf.txt" 2>&1 || true
    # pm2-logrotate 3.0.0 never compresses when configured with `pm2 set`: pmx casts the
    # stored "true" to a boolean, and its parseBool() only accepts the string "true"
    # (keymetrics/pm2-logrotate#201, fix proposed in #202). The "gzip fix" variant runs
    # the same app.js with parseBool() also accepting a boolean.
    LR_APP=$(dirname "$pkg")/app.js
    cp "$LR_APP" "$A/app.js.stock"
    python3 - "$A/app.js.stock" "$A/app.js.gzipfix" <<'PYEOF'
import sys
src = open(sys.argv[1]).read()
head = "const parseBool = (str, defaultVal = false) => {\n"
assert src.count(head) == 1, "parseBool() not found in pm2-logrotate's app.js"
fixed = src.replace(head, head + "  if (typeof str === 'boolean') return str; // bench/rotation.sh: keymetrics/pm2-logrotate#201\n")
open(sys.argv[2], "w").write(fixed)
PYEOF
    say "pm2-logrotate $LR_VERSION installed (its own pm2 dependency: $LR_PM2_VERSION)"
}

# run_a RUN VARIANT: VARIANT is stock (pm2-logrotate as installed: `compress true` is
# ignored, archives are plain copies) or gzipfix (the same with parseBool fixed, so it
# gzips its archives as configured).
run_a() {
    local run=$1 variant=$2 lr_pid god_pid w_pid c0 c1 g0 g1 w1 b0 b1 t0 t1 t2 hwm deadline tool tag
    case $variant in
    stock) tool="pm2-logrotate" tag=A$run ;;
    gzipfix) tool="pm2-logrotate + gzip fix" tag=Az$run ;;
    *) die "unknown pm2-logrotate variant $variant" ;;
    esac
    say "$tag: $tool, $LINES lines at $RATE/s, max_size $MAX_SIZE"
    pm2_in "$HOME_A" delete writer >/dev/null 2>&1 || true
    rm -rf "$A/logs" "$A/writer.done" "$A/writer.json"
    mkdir -p "$A/logs"
    writer_ecosystem "$A"
    cp "$A/app.js.$variant" "$LR_APP"
    # A fresh module process (with that app.js): its peak RSS is of this run only.
    pm2_in "$HOME_A" restart pm2-logrotate >/dev/null
    lr_pid=$(wait_app_pid "$HOME_A" pm2-logrotate)
    god_pid=$(cat "$HOME_A/pm2.pid")
    sleep 2 # its pm2.connect and first tick
    wait_ingest
    wait_quiet
    c0=$(cpu_of "$lr_pid")
    g0=$(cpu_of "$god_pid")
    b0=$(busy_s)
    t0=$(now)
    pm2_in "$HOME_A" start "$A/writer.json" >/dev/null
    w_pid=$(wait_app_pid "$HOME_A" writer)
    wait_writer_done "$A"
    t1=$(now)
    # Settled: the live file under max_size and no archive written for 3 s (the worker
    # ticks every second).
    deadline=$(($(date +%s) + 60))
    quiet_since=""
    while (($(date +%s) < deadline)); do
        sleep 0.5
        local size newest
        size=$(stat -c %s "$A/logs/writer-out.log" 2>/dev/null || echo 0)
        newest=$(newest_mtime "$A"/logs/writer-out__*)
        if ((size < MAX_BYTES)) && (($(date +%s) - ${newest:-0} >= 3)); then
            break
        fi
    done
    c1=$(cpu_of "$lr_pid")
    g1=$(cpu_of "$god_pid")
    w1=$(cpu_of "$w_pid")
    b1=$(busy_s)
    t2=$(now)
    hwm=$(hwm_kib "$lr_pid")
    [[ $(pid_of_app "$HOME_A" pm2-logrotate) == "$lr_pid" ]] ||
        say "warning: the pm2-logrotate process was restarted during the run"
    # Archives in time order (the names sort so), then the live file.
    local files=()
    mapfile -t files < <(find "$A/logs" -maxdepth 1 -name 'writer-out__*' | sort)
    python3 "$BENCH/rot_count.py" --expected "$LINES" "${files[@]}" "$A/logs/writer-out.log" >"$OUT/$tag-count.json"
    ls -l "$A/logs" >"$OUT/$tag-files.txt"
    # The module's logs accumulate over the runs; the last copy has them all.
    cp "$HOME_A/logs/pm2-logrotate-out.log" "$OUT/A-module-out.log" 2>/dev/null || true
    cp "$HOME_A/logs/pm2-logrotate-error.log" "$OUT/A-module-err.log" 2>/dev/null || true
    local gz_bytes
    gz_bytes=$( ((${#files[@]})) && du -cb "${files[@]}" | tail -1 | cut -f1 || echo 0)
    local gz_count
    gz_count=$(printf '%s\n' "${files[@]}" | grep -c '\.gz$' || true)
    python3 - "$OUT/$tag-count.json" >>"$RUNS_JSONL" <<EOF
import json, sys
c = json.load(open(sys.argv[1]))
print(json.dumps({"tool": "$tool", "variant": "$variant", "run": $run, "rotations": ${#files[@]},
    "compressed_archives": $gz_count, "archive_bytes": $gz_bytes,
    "writer_s": $(calc "$t1 - $t0"), "window_s": $(calc "$t2 - $t0"),
    "cpu_s": $(calc "$c1 - $c0"), "peak_rss_kib": $hwm, "pm2_daemon_cpu_s": $(calc "$g1 - $g0"),
    "writer_cpu_s": $w1, "machine_cpu_s": $(calc "$b1 - $b0"),
    "count": {k: v for k, v in c.items() if k != "per_file"}}))
EOF
    pm2_in "$HOME_A" delete writer >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------------------------------
# B: logagg

# run_b RUN MODE: MODE is rotate (max_size as for pm2-logrotate) or norotate (rotation
# off: what tailing and indexing alone cost, to tell rotation's share of logagg's CPU).
run_b() {
    local run=$1 mode=$2 home=$B/pm2 cfg=$B/logagg.toml god_pid w_pid c0 c1 g0 g1 w1 b0 b1 t0 t1 t2 hwm addr deadline
    local tool tag max
    case $mode in
    rotate) tool="logagg" tag=B$run max=$MAX_SIZE ;;
    norotate) tool="logagg, rotation off" tag=Bn$run max="" ;;
    *) die "unknown logagg mode $mode" ;;
    esac
    say "$tag: $tool, $LINES lines at $RATE/s, max_size ${max:-off}"
    rm -rf "$B"
    mkdir -p "$home" "$B/logs/archive" "$B/data"
    PM2_HOMES+=("$home")
    pm2_in "$home" ping >/dev/null
    god_pid=$(cat "$home/pm2.pid")
    writer_ecosystem "$B"
    cat >"$cfg" <<EOF
# written by bench/rotation.sh
data_dir = "$B/data"

[sources]
paths = ["$B/logs/*.log"]

[index]
commit_interval = "1s"

[api]
listen = "127.0.0.1:0"

[pm2]
home = "$home"

[rotation]
max_size = "$max"
max_age = ""
retain = 0
max_archive_age = ""
compress = true
archive_dir = "$B/logs/archive"
EOF
    "$BIN" --config "$cfg" config check >"$OUT/$tag-config-resolved.toml" 2>&1 ||
        die "logagg refuses the bench config: $(cat "$OUT/$tag-config-resolved.toml")"
    local dlog=$OUT/$tag-logagg.log
    LOGAGG_LOG=${LOGAGG_LOG:-info} "$BIN" --config "$cfg" daemon 2>"$dlog" &
    LOGAGG_PID=$!
    for _ in $(seq 500); do
        [[ -s $B/data/api.addr ]] && break
        kill -0 "$LOGAGG_PID" 2>/dev/null || die "logagg exited: $(tail -3 "$dlog")"
        sleep 0.02
    done
    addr=$(cat "$B/data/api.addr")
    for _ in $(seq 250); do
        curl -sf "http://$addr/healthz" >/dev/null && break
        sleep 0.02
    done
    curl -sf "http://$addr/healthz" >/dev/null || die "logagg does not answer on $addr"
    wait_ingest
    wait_quiet
    c0=$(cpu_of "$LOGAGG_PID")
    g0=$(cpu_of "$god_pid")
    b0=$(busy_s)
    t0=$(now)
    pm2_in "$home" start "$B/writer.json" >/dev/null
    w_pid=$(wait_app_pid "$home" writer)
    wait_writer_done "$B"
    t1=$(now)
    # Settled: every line searchable, every archive compressed, the live file under
    # max_size, no archive written for 3 s.
    local total="" size newest plain
    deadline=$(($(date +%s) + 120))
    while :; do
        sleep 0.5
        kill -0 "$LOGAGG_PID" 2>/dev/null || die "logagg exited: $(tail -3 "$dlog")"
        # Lines only: the index also holds PM2 event markers ("writer started").
        total=$(curl -sf "http://$addr/api/search?limit=1&kind=line" | sed -n 's/^{"total":\([0-9]*\).*/\1/p')
        size=$(stat -c %s "$B/logs/writer-out.log" 2>/dev/null || echo 0)
        newest=$(newest_mtime "$B"/logs/archive/writer-out.*)
        plain=$(find "$B/logs/archive" -maxdepth 1 -name '*.log' | wc -l)
        if [[ ${total:-0} -ge $LINES ]] && ((plain == 0)) && { [[ -z $max ]] || ((size < MAX_BYTES)); } &&
            (($(date +%s) - ${newest:-0} >= 3)); then
            break
        fi
        if (($(date +%s) > deadline)); then
            say "warning: logagg did not settle (total ${total:-?} of $LINES, $plain uncompressed archives, live file $size bytes)"
            break
        fi
    done
    c1=$(cpu_of "$LOGAGG_PID")
    g1=$(cpu_of "$god_pid")
    w1=$(cpu_of "$w_pid")
    b1=$(busy_s)
    t2=$(now)
    hwm=$(hwm_kib "$LOGAGG_PID")
    curl -sf "http://$addr/api/status" >"$OUT/$tag-status.json" || echo '{}' >"$OUT/$tag-status.json"
    local all_docs
    all_docs=$(curl -sf "http://$addr/api/search?limit=1" | sed -n 's/^{"total":\([0-9]*\).*/\1/p')
    kill -TERM "$LOGAGG_PID"
    wait "$LOGAGG_PID" || say "warning: logagg exited with $? after SIGTERM"
    LOGAGG_PID=""
    local files=()
    mapfile -t files < <(find "$B/logs/archive" -maxdepth 1 -name 'writer-out.*' | sort)
    python3 "$BENCH/rot_count.py" --expected "$LINES" "${files[@]}" "$B/logs/writer-out.log" >"$OUT/$tag-count.json"
    ls -l "$B/logs" "$B/logs/archive" >"$OUT/$tag-files.txt"
    local gz_bytes
    gz_bytes=$( ((${#files[@]})) && du -cb "${files[@]}" | tail -1 | cut -f1 || echo 0)
    python3 - "$OUT/$tag-count.json" "$OUT/$tag-status.json" "$dlog" >>"$RUNS_JSONL" <<EOF
import json, re, sys
c = json.load(open(sys.argv[1]))
try:
    st = json.load(open(sys.argv[2]))
except ValueError:
    st = {}
live = [f for f in st.get("files", []) if f.get("path", "").endswith("/writer-out.log")]
log = open(sys.argv[3], errors="replace").read().splitlines()
print(json.dumps({"tool": "$tool", "variant": "$mode", "run": $run, "rotations": ${#files[@]},
    "compressed_archives": sum(1 for f in """${files[*]}""".split() if f.endswith(".gz")), "archive_bytes": $gz_bytes,
    "writer_s": $(calc "$t1 - $t0"), "window_s": $(calc "$t2 - $t0"),
    "cpu_s": $(calc "$c1 - $c0"), "peak_rss_kib": $hwm, "pm2_daemon_cpu_s": $(calc "$g1 - $g0"),
    "writer_cpu_s": $w1, "machine_cpu_s": $(calc "$b1 - $b0"), "index_total": int("${total:-0}" or 0), "index_docs": int("${all_docs:-0}" or 0),
    "status_rotations": st.get("rotations"), "copytruncate_lost_bytes": st.get("copytruncate_lost_bytes"),
    "methods": sorted({f.get("last_method") for f in live if f.get("last_method")}),
    "last_errors": [f.get("last_error") for f in live if f.get("last_error")],
    "log_warnings": sum(1 for l in log if re.search(r"\bWARN\b|\bERROR\b", l)),
    "count": {k: v for k, v in c.items() if k != "per_file"}}))
EOF
    pm2_in "$home" kill >/dev/null 2>&1 || true
    PM2_HOMES=("${PM2_HOMES[@]/$home/}")
}

# ---------------------------------------------------------------------------------------
# The runs

setup_a
for run in $(seq "$RUNS"); do
    for variant in $VARIANTS; do
        run_a "$run" "$variant"
    done
    for mode in $LOGAGG_MODES; do
        run_b "$run" "$mode"
    done
done
pm2_stop_all

# ---------------------------------------------------------------------------------------
# Compression: the same kind of lines, one file, in the page cache.

COMP_JSON=$OUT/compress.json
echo '[]' >"$COMP_JSON"
if [[ $COMPRESS_MIB != 0 ]]; then
    INPUT=$COMP/input.log
    want=$((COMPRESS_MIB * 1024 * 1024))
    if [[ ! -f $INPUT ]] || (($(stat -c %s "$INPUT") < want)) || (($(stat -c %s "$INPUT") > want + 2 * 1024 * 1024)); then
        say "generating $COMPRESS_MIB MiB of writer lines"
        node "$BENCH/rot_writer.js" --generate "$want" "$INPUT" >/dev/null
    fi
    in_bytes=$(stat -c %s "$INPUT")
    cat "$INPUT" >/dev/null # into the page cache
    say "compression: gzip -6, logagg write_archive (level 6), Node zlib level 9 (pm2-logrotate); $COMPRESS_REPS runs each"
    wait_ingest
    wait_quiet
    pigz_cmd=()
    [[ -n $PIGZ ]] && pigz_cmd=("pigz -6 > file ($(nproc) threads)='$PIGZ' -6 -c '$INPUT' >'$COMP/pigz.out.gz'")
    python3 "$BENCH/rot_timeit.py" --reps "$COMPRESS_REPS" --warmup "$COMPRESS_WARMUP" --bytes "$in_bytes" \
        "gzip -6 > /dev/null=gzip -6 -c '$INPUT' >/dev/null" \
        "gzip -6 > file + sync=gzip -6 -c '$INPUT' >'$COMP/gzip.out.gz' && sync '$COMP/gzip.out.gz'" \
        "${pigz_cmd[@]}" \
        "logagg write_archive level 6='$COMP_BIN' '$INPUT' '$COMP/logagg.out.gz' 6 >/dev/null" \
        "pm2-logrotate zlib level 9=node '$BENCH/rot_zlib.js' '$INPUT' '$COMP/zlib9.out.gz' >/dev/null" \
        >"$OUT/compress-times.json"
    python3 - "$OUT/compress-times.json" "$in_bytes" "$COMP" >"$COMP_JSON" <<'EOF'
import json, os, sys
rows = json.load(open(sys.argv[1]))
n, comp = int(sys.argv[2]), sys.argv[3]
# gzip -6 is deterministic: the file it wrote is the size it sends to /dev/null.
gz6 = os.path.getsize(os.path.join(comp, "gzip.out.gz"))
sizes = {"gzip -6 > /dev/null": gz6, "gzip -6 > file + sync": gz6,
         "logagg write_archive level 6": os.path.getsize(os.path.join(comp, "logagg.out.gz")),
         "pm2-logrotate zlib level 9": os.path.getsize(os.path.join(comp, "zlib9.out.gz"))}
for r in rows:
    if r["name"].startswith("pigz"):
        sizes[r["name"]] = os.path.getsize(os.path.join(comp, "pigz.out.gz"))
for r in rows:
    r["bytes_in"] = n
    r["bytes_out"] = sizes[r["name"]]
print(json.dumps(rows))
EOF
    # The archives must decompress to the input.
    for f in logagg.out.gz zlib9.out.gz ${PIGZ:+pigz.out.gz}; do
        gzip -dc "$COMP/$f" | cmp -s - "$INPUT" || die "$f does not decompress to the input"
    done
fi

# ---------------------------------------------------------------------------------------
# Report

MACHINE="$(nproc) vCPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
python3 - "$RUNS_JSONL" "$COMP_JSON" "$OUT" <<EOF >"$OUT/results.md"
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
comp = json.load(open(sys.argv[2]))
out = sys.argv[3]
meta = {"date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "machine": "$MACHINE", "logagg": "$VERSION",
        "pm2": "$PM2_VERSION", "pm2_logrotate": "$LR_VERSION", "pm2_logrotate_pm2_dep": "${LR_PM2_VERSION:-?}",
        "node": "$(node --version)", "gzip": "$(gzip --version | head -1)",
        "rate": $RATE, "seconds": $SECONDS_RUN, "lines": $LINES, "max_size": "$MAX_SIZE", "max_bytes": $MAX_BYTES}
print(f"Rotation benchmark, {meta['date']}: {meta['machine']}")
print(f"logagg {meta['logagg']}; PM2 {meta['pm2']}; pm2-logrotate {meta['pm2_logrotate']} "
      f"(its pm2 dependency {meta['pm2_logrotate_pm2_dep']}); Node {meta['node']}; {meta['gzip']}.")
print(f"\nWorkload: {meta['lines']:,} lines ({meta['rate']:,}/s for {meta['seconds']} s, ~105 bytes each) "
      f"from one PM2 fork-mode app; max_size {meta['max_size']} ({meta['max_bytes']:,} bytes) for both.\n")
print("| tool | run | rotations (gzipped) | lines written | lines present | lost | duplicated | malformed | CPU s | peak RSS MiB | archives MB | PM2 daemon CPU s | writer CPU s | others' CPU s |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in runs:
    c = r["count"]
    r["others_cpu_s"] = max(0.0, r["machine_cpu_s"] - r["cpu_s"] - r["pm2_daemon_cpu_s"] - r["writer_cpu_s"])
    print(f"| {r['tool']} | {r['run']} | {r['rotations']} ({r['compressed_archives']}) | {c['expected']:,} | "
          f"{c['present']:,} | {c['lost']} | {c['duplicated']} | {c['malformed']} | {r['cpu_s']:.2f} | "
          f"{r['peak_rss_kib'] / 1024:.1f} | {r['archive_bytes'] / 1e6:.2f} | {r['pm2_daemon_cpu_s']:.2f} | "
          f"{r['writer_cpu_s']:.2f} | {r['others_cpu_s']:.1f} |")
tools = list(dict.fromkeys(r["tool"] for r in runs))
def med(tool, f):
    v = [f(r) for r in runs if r["tool"] == tool]
    return statistics.median(v) if v else None
summary = {t: {"lost": med(t, lambda r: r["count"]["lost"]), "duplicated": med(t, lambda r: r["count"]["duplicated"]),
               "cpu_s": med(t, lambda r: r["cpu_s"]), "peak_rss_kib": med(t, lambda r: r["peak_rss_kib"]),
               "rotations": med(t, lambda r: r["rotations"]), "archive_bytes": med(t, lambda r: r["archive_bytes"])}
           for t in tools}
refs = [t for t in tools if t.startswith("pm2-logrotate")]
if refs:
    print(f"\nMedians over {max(r['run'] for r in runs)} run(s), and logagg's ratio to each pm2-logrotate variant:\n")
    print("| tool | rotations | lost | lost per rotation | CPU s | CPU s per rotation | peak RSS MiB | "
          + " | ".join(f"CPU vs {t} | RSS vs {t}" for t in refs) + " |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---: | ---:" for _ in refs) + " |")
    for t in tools:
        m = summary[t]
        rot = m["rotations"]
        per_rot = (lambda v, f: format(v / rot, f)) if rot else (lambda v, f: "-")
        cells = " | ".join(f"{m['cpu_s'] / summary[x]['cpu_s']:.1f}x | {m['peak_rss_kib'] / summary[x]['peak_rss_kib']:.2f}x"
                           if summary[x]["cpu_s"] else "- | -" for x in refs)
        print(f"| {t} | {m['rotations']:g} | {m['lost']:g} | {per_rot(m['lost'], '.2f')} | {m['cpu_s']:.2f} | "
              f"{per_rot(m['cpu_s'], '.3f')} | {m['peak_rss_kib'] / 1024:.1f} | {cells} |")
if "logagg" in summary and "logagg, rotation off" in summary:
    d = summary["logagg"]["cpu_s"] - summary["logagg, rotation off"]["cpu_s"]
    print(f"\nlogagg's CPU with rotation minus without (medians): {d:.2f} s for {summary['logagg']['rotations']:g} "
          f"rotations, {d / (summary['logagg']['rotations'] or 1):.3f} s per rotation; the rest is tailing and indexing.")
    summary["logagg"]["rotation_cpu_s"] = d
for r in runs:
    if r["tool"].startswith("logagg"):
        print(f"\n{r['tool']} run {r['run']}: index holds {r['index_total']:,} lines (expected {r['count']['expected']:,}; "
              f"{r['index_docs']:,} documents with PM2 event markers); "
              f"methods {r['methods']}; status rotations {r['status_rotations']}; copytruncate lost bytes "
              f"{r['copytruncate_lost_bytes']}; warnings in its log {r['log_warnings']}; errors {r['last_errors']}.")
for r in runs:
    c = r["count"]
    if c["lost_ranges"]:
        rs = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in c["lost_ranges"][:12])
        more = " ..." if len(c["lost_ranges"]) > 12 else ""
        print(f"\n{r['tool']} run {r['run']}: lost seq {rs}{more} ({len(c['lost_ranges'])} gaps)")
    if c.get("lines_continued_in_next_file"):
        print(f"\n{r['tool']} run {r['run']}: {c['lines_continued_in_next_file']} files end inside a line that the "
              "next file continues (a collapse cuts at a block boundary); each such line is counted once, whole.")
    if c["notes"] or c["malformed_examples"] or c["unexpected_seq"] or c["out_of_order"]:
        print(f"\n{r['tool']} run {r['run']}: notes {c['notes']}, malformed {c['malformed_examples']}, "
              f"unexpected {c['unexpected_seq']}, out of order {c['out_of_order']}")
if comp:
    ref = next(r for r in comp if r["name"] == "gzip -6 > /dev/null")
    print(f"\nCompression of one {comp[0]['bytes_in'] / 2**20:.0f} MiB file of writer lines "
          f"({comp[0]['bytes_in']:,} bytes, page cache), median of {comp[0]['reps']} runs:\n")
    print("| compressor | wall s (min-max) | MB/s | vs gzip -6 | CPU s | output MB | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in comp:
        print(f"| {r['name']} | {r['wall_median_s']:.2f} ({r['wall_min_s']:.2f}-{r['wall_max_s']:.2f}) | "
              f"{r['mb_per_s']:.1f} | {r['mb_per_s'] / ref['mb_per_s']:.2f}x | {r['cpu_median_s']:.2f} | "
              f"{r['bytes_out'] / 1e6:.2f} | {r['bytes_in'] / r['bytes_out']:.2f} |")
json.dump({"meta": meta, "runs": runs, "summary": summary, "compression": comp}, open(f"{out}/results.json", "w"), indent=1)
EOF
cat "$OUT/results.md"
echo
say "details in ${OUT#"$ROOT"/}"
