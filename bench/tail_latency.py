#!/usr/bin/env python3
"""Write-to-screen delay of followers of the same lines, in one run.

Two scenarios:
  pm2:    a PM2 app (bench/lat_app.js) writes lines stamped with the wall-clock time of
          its console.log; followers: `tail -F` on its out file, `pm2 logs --raw` on the
          app, `logagg tail --raw` on its service. The delay includes PM2's own relay
          from the app's stdout to the file (the same for all three).
  direct: this script appends stamped lines to a file itself (write(2), O_APPEND);
          followers: `tail -F` and `logagg tail`. The delay is file to screen.
Then both again with each follower alone, in turn, on the same app and file (what a user
running one of them sees; at once they share the 2 cores with each other).
Each follower's stdout is read here and stamped on arrival; delay = arrival - written.
Prints markdown tables and writes results.json into --out.
"""
import argparse
import json
import os
import re
import selectors
import subprocess
import sys
import threading
import time

LINE = re.compile(rb"lat (\d+) (\d+)")


def pct(sorted_ms, p):
    if not sorted_ms:
        return float("nan")
    i = min(len(sorted_ms) - 1, max(0, int(round(p / 100 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[i]


def measure(followers, n, budget_s, start_writer):
    """Starts the followers, lets them connect, starts the writer, collects delays."""
    procs = {}
    sel = selectors.DefaultSelector()
    for name, cmd in followers.items():
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
        os.set_blocking(p.stdout.fileno(), False)
        sel.register(p.stdout, selectors.EVENT_READ, name)
        procs[name] = p
    time.sleep(2.0)  # every follower connected and waiting
    start_writer()
    delays = {name: {} for name in followers}
    bufs = {name: b"" for name in followers}
    deadline = time.time() + budget_s
    while time.time() < deadline and any(len(d) < n for d in delays.values()):
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
            "p90_ms": pct(ms, 90),
            "p99_ms": pct(ms, 99),
            "max_ms": ms[-1] if ms else float("nan"),
            # Each line's delay by sequence number, for looking at the slow ones.
            "by_seq": {str(k): round(v, 3) for k, v in sorted(d.items())},
        }
    return rows


def table(title, rows, n, base):
    print(f"{title}\n")
    print(f"| follower | lines seen of {n} | p50 ms | p90 ms | p99 ms | max ms | p99 / {base} p99 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['lines']} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | "
              f"{r['max_ms']:.3f} | {r['p99_ms'] / rows[base]['p99_ms']:.2f} |")
    print()


def paired(rows, name, base):
    """Per line, `name`'s delay minus `base`'s: a delay both saw (PM2 or the app late, or
    this script) cancels out, which the two p99s alone do not show."""
    a, b = rows[name]["by_seq"], rows[base]["by_seq"]
    diffs = sorted(a[k] - b[k] for k in a if k in b)
    return {
        "lines": len(diffs),
        "p50_ms": pct(diffs, 50),
        "p90_ms": pct(diffs, 90),
        "p99_ms": pct(diffs, 99),
        "first_share": sum(1 for d in diffs if d < 0) / len(diffs) if diffs else float("nan"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--interval-ms", type=int, required=True)
    ap.add_argument("--dir", required=True, help="the logs/pm2 directory logagg follows")
    ap.add_argument("--pm2", required=True)
    ap.add_argument("--logagg", required=True)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--app", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    budget = a.n * a.interval_ms / 1000 + 30

    # 1. A PM2 app.
    app_file = os.path.join(a.dir, "lat-out.log")
    open(app_file, "ab").close()
    start_delay = 2000

    def start_app():
        subprocess.run(
            [a.pm2, "start", a.app, "--name", "lat", "--no-autorestart", "--time",
             "--output", app_file, "--error", os.path.join(a.dir, "lat-error.log")],
            check=True, stdout=subprocess.DEVNULL,
            env={**os.environ, "LAT_N": str(a.n), "LAT_INTERVAL_MS": str(a.interval_ms),
                 "LAT_START_DELAY_MS": str(start_delay)},
        )

    pm2_rows = measure(
        {
            "tail -F": ["tail", "-F", "-n", "0", app_file],
            "pm2 logs": [a.pm2, "logs", "lat", "--raw", "--lines", "0"],
            "logagg tail": [a.logagg, "--addr", a.addr, "tail", "-n", "0", "--raw",
                            "--service", "lat"],
        },
        a.n, budget + start_delay / 1000, start_app)
    subprocess.run([a.pm2, "delete", "lat"], stdout=subprocess.DEVNULL, check=False)

    # 2. Lines appended to a file directly.
    direct_file = os.path.join(a.dir, "direct-out.log")
    open(direct_file, "ab").close()

    def write_direct():
        def run():
            fd = os.open(direct_file, os.O_WRONLY | os.O_APPEND)
            for seq in range(a.n):
                os.write(fd, f"lat {seq} {time.time_ns()}\n".encode())
                time.sleep(a.interval_ms / 1000)
            os.close(fd)
        threading.Thread(target=run, daemon=True).start()

    direct_rows = measure(
        {
            "tail -F": ["tail", "-F", "-n", "0", direct_file],
            "logagg tail": [a.logagg, "--addr", a.addr, "tail", "-n", "0", "--raw",
                            "--service", "direct"],
        },
        a.n, budget, write_direct)

    # 3. Each follower alone, in turn, on the same app and the same file: what a user
    # running one of them sees. At once, the three (two of them Node processes) and the
    # app, PM2 and this script share 2 cores, and a line's delay is also the others' work.
    alone = {"pm2": {}, "direct": {}}
    pm2_followers = {
        "tail -F": ["tail", "-F", "-n", "0", app_file],
        "pm2 logs": [a.pm2, "logs", "lat", "--raw", "--lines", "0"],
        "logagg tail": [a.logagg, "--addr", a.addr, "tail", "-n", "0", "--raw", "--service", "lat"],
    }
    direct_followers = {
        "tail -F": ["tail", "-F", "-n", "0", direct_file],
        "logagg tail": [a.logagg, "--addr", a.addr, "tail", "-n", "0", "--raw",
                        "--service", "direct"],
    }
    for name, cmd in pm2_followers.items():
        alone["pm2"].update(measure({name: cmd}, a.n, budget + start_delay / 1000, start_app))
        subprocess.run([a.pm2, "delete", "lat"], stdout=subprocess.DEVNULL, check=False)
    for name, cmd in direct_followers.items():
        alone["direct"].update(measure({name: cmd}, a.n, budget, write_direct))

    pair = paired(pm2_rows, "logagg tail", "pm2 logs")
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"n": a.n, "interval_ms": a.interval_ms, "pm2": pm2_rows,
                   "direct": direct_rows, "paired": pair, "alone": alone}, f, indent=2)
    table("From a PM2 app's console.log to the screen:", pm2_rows, a.n, "pm2 logs")
    print("The same lines, logagg tail's delay minus pm2 logs' (negative: logagg first):\n")
    print("| lines | p50 ms | p90 ms | p99 ms | logagg tail first |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {pair['lines']} | {pair['p50_ms']:+.3f} | {pair['p90_ms']:+.3f} | "
          f"{pair['p99_ms']:+.3f} | {pair['first_share']:.0%} |")
    print()
    table("From a write(2) to the file to the screen:", direct_rows, a.n, "tail -F")
    table("Each follower alone, in turn: from a PM2 app's console.log to the screen:",
          alone["pm2"], a.n, "pm2 logs")
    table("Each follower alone, in turn: from a write(2) to the file to the screen:",
          alone["direct"], a.n, "tail -F")
    complete = all(r["lines"] == a.n
                   for rows in (pm2_rows, direct_rows, alone["pm2"], alone["direct"])
                   for r in rows.values())
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
