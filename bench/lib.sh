# Helpers shared by the benchmark scripts (sourced, not run).

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
calc() { awk "BEGIN { printf \"%.6f\", ($1) }"; }
now() { date +%s.%N; }

# Busy CPU seconds of the whole machine so far (user+nice+system+irq+softirq+steal).
busy_s() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat; }

# Waits until the machine has been idle (under 10% busy) for 3 s, at most
# BENCH_QUIET_WAIT seconds; a benchmark on 2 cores next to a cargo build means nothing.
wait_quiet() {
    local deadline b0 b1 pct
    deadline=$(($(date +%s) + ${BENCH_QUIET_WAIT:-900}))
    while :; do
        b0=$(busy_s)
        sleep 3
        b1=$(busy_s)
        pct=$(calc "100 * ($b1 - $b0) / (3 * $(nproc))" | cut -d. -f1)
        ((pct < 10)) && return 0
        if (($(date +%s) > deadline)); then
            say "warning: the machine is still ${pct}% busy with other work; measuring anyway"
            return 0
        fi
        say "machine ${pct}% busy with other work; waiting for it to be idle"
        sleep 10
    done
}

# gen_backlog GEN LOGS GIB MANIFEST: writes GIB GiB of PM2 logs into LOGS with the
# generator GEN, one process per file and as many at a time as there are cores, and the
# manifest (lines, bytes, per-file sizes) to MANIFEST.
gen_backlog() {
    local gen=$1 logs=$2 gib=$3 manifest=$4 names
    mkdir -p "$logs"
    names=$(python3 -c "import importlib.util as u; s=u.spec_from_file_location('g','$gen'); m=u.module_from_spec(s); s.loader.exec_module(m); print(' '.join(f[0] for f in m.FILES))")
    # shellcheck disable=SC2086
    printf '%s\n' $names |
        xargs -P "$(nproc)" -I{} python3 "$gen" --out "$logs" --gib "$gib" --only {} >"$manifest.parts"
    python3 - "$manifest.parts" >"$manifest" <<'PY'
import json, sys
files = {}
for line in open(sys.argv[1]):
    files.update(json.loads(line)["files"])
print(json.dumps({"lines": sum(f["lines"] for f in files.values()),
                  "bytes": sum(f["bytes"] for f in files.values()), "files": files}))
PY
    rm -f "$manifest.parts"
}

# start_logagg BIN WORK LOG [VAR=value ...]: the daemon in WORK, data_dir WORK/state,
# following WORK/logs/pm2/*.log, its API on a free loopback port, stderr to LOG, the
# given variables in its environment. Sets DAEMON_PID and ADDR once it answers.
start_logagg() {
    local bin=$1 work=$2 log=$3
    shift 3
    (cd "$work" && exec env LOGAGG_API_LISTEN=127.0.0.1:0 "$@" "$bin" daemon \
        --data-dir "$work/state" --path "$work/logs/pm2/*.log" 2>"$log") &
    DAEMON_PID=$!
    for _ in $(seq 100); do [[ -s $work/state/api.addr ]] && break; sleep 0.1; done
    ADDR=$(cat "$work/state/api.addr")
}

# bench_config FILE DATA LOGS WORK: a logagg config for a benchmark daemon: DATA as
# data_dir, LOGS/*.log, 1 s commits, no retention to speak of (cached backlogs are old),
# API on a free port, no rotation (it would rename the backlog mid-run; any archive
# stays in WORK) and no PM2 (a PM2 running on this machine must not be talked to).
bench_config() {
    cat >"$1" <<EOF2
data_dir = "$2"

[sources]
paths = ["$3/*.log"]

[index]
commit_interval = "1s"
retention = "36500d"

[api]
listen = "127.0.0.1:0"

[rotation]
max_size = ""
max_age = ""
archive_dir = "$4/archive"

[pm2]
home = "$4/no-pm2"
EOF2
}
