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
