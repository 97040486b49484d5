#!/usr/bin/env python3
"""Times shell commands for bench/rotation.sh's compression table.

    rot_timeit.py --reps R --bytes N NAME=COMMAND...

Runs every COMMAND (through `bash -c`) R times, interleaved (a, b, c, a, b, c, ...) so a
change in the machine's load hits all of them alike, after one untimed warm-up run of
each (--warmup N: N such runs). Per command: wall seconds (median, min, max), CPU seconds (user + system of the
command and its children, median) and MB/s = N / 10^6 / median wall. Prints JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def run(cmd):
    t0 = time.perf_counter()
    p = subprocess.Popen(["bash", "-c", cmd])
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"rot_timeit: {cmd!r} exited {code}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("commands", nargs="+")
    a = ap.parse_args()
    cmds = []
    for c in a.commands:
        name, _, cmd = c.partition("=")
        cmds.append((name, cmd))
    for _ in range(a.warmup):
        for _, cmd in cmds:
            run(cmd)
    times = {name: [] for name, _ in cmds}
    for _ in range(a.reps):
        for name, cmd in cmds:
            times[name].append(run(cmd))
    out = []
    for name, cmd in cmds:
        walls = [t[0] for t in times[name]]
        cpus = [t[1] for t in times[name]]
        med = statistics.median(walls)
        out.append({
            "name": name,
            "command": cmd,
            "reps": a.reps,
            "wall_median_s": med,
            "wall_min_s": min(walls),
            "wall_max_s": max(walls),
            "cpu_median_s": statistics.median(cpus),
            "max_rss_kib": max(t[2] for t in times[name]),
            "mb_per_s": a.bytes / 1e6 / med,
        })
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
