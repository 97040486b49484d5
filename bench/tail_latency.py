#!/usr/bin/env python3
"""Write-to-screen delay of three followers of the same PM2 app, in one run.

Starts `tail -F`, `pm2 logs --raw` and `logagg tail --raw`, then the app (bench/lat_app.js),
which stamps each line with the wall-clock time it was written. Each follower's stdout is
read here and stamped on arrival; delay = arrival - written. Prints a markdown table and
writes results.json next to it.
"""
import argparse
import json
import os
import re
import selectors
import subprocess
import sys
import time

LINE = re.compile(rb"lat (\d+) (\d+)")


def pct(sorted_ms, p):
    if not sorted_ms:
        return float("nan")
    i = min(len(sorted_ms) - 1, max(0, int(round(p / 100 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--interval-ms", type=int, required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--pm2", required=True)
    ap.add_argument("--logagg", required=True)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--app", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    open(a.file, "ab").close()
    followers = {
        "tail -F": ["tail", "-F", "-n", "0", a.file],
        "pm2 logs": [a.pm2, "logs", "lat", "--raw", "--lines", "0"],
        "logagg tail": [a.logagg, "--addr", a.addr, "tail", "-n", "0", "--raw", "--service", "lat"],
    }
    procs = {}
    sel = selectors.DefaultSelector()
    for name, cmd in followers.items():
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
        os.set_blocking(p.stdout.fileno(), False)
        sel.register(p.stdout, selectors.EVENT_READ, name)
        procs[name] = p
    time.sleep(2.0)  # every follower connected and waiting
    start_delay = 2000
    subprocess.run(
        [a.pm2, "start", a.app, "--name", "lat", "--no-autorestart", "--time",
         "--output", a.file, "--error", a.file + ".err"],
        check=True, stdout=subprocess.DEVNULL,
        env={**os.environ, "LAT_N": str(a.n), "LAT_INTERVAL_MS": str(a.interval_ms),
             "LAT_START_DELAY_MS": str(start_delay)},
    )
    delays = {name: {} for name in followers}
    bufs = {name: b"" for name in followers}
    deadline = time.time() + start_delay / 1000 + a.n * a.interval_ms / 1000 + 30
    while time.time() < deadline and any(len(d) < a.n for d in delays.values()):
        for key, _ in sel.select(timeout=0.5):
            now_ns = time.time_ns()
            name = key.data
            chunk = key.fileobj.read()
            if not chunk:
                continue
            bufs[name] += chunk
            *lines, bufs[name] = bufs[name].split(b"\n")
            for line in lines:
                m = LINE.search(line)
                if m:
                    seq, written = int(m.group(1)), int(m.group(2))
                    delays[name].setdefault(seq, (now_ns - written) / 1e6)
    for p in procs.values():
        p.kill()
        p.wait()

    rows = {}
    for name, d in delays.items():
        ms = sorted(d.values())
        rows[name] = {
            "lines": len(ms),
            "p50_ms": pct(ms, 50),
            "p99_ms": pct(ms, 99),
            "max_ms": ms[-1] if ms else float("nan"),
        }
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"n": a.n, "interval_ms": a.interval_ms, "followers": rows}, f, indent=2)
    base = rows["pm2 logs"]["p99_ms"]
    print(f"| follower | lines seen of {a.n} | p50 ms | p99 ms | max ms | p99 / pm2 logs p99 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['lines']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
              f"{r['max_ms']:.3f} | {r['p99_ms'] / base:.2f} |")
    return 0 if all(r["lines"] == a.n for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
