#!/usr/bin/env python3
"""Load: concurrent searches and followers while lines are written at a steady rate.

LOAD_WRITERS files get lines `load <file> <seq> <pad>` at LOAD_RATE lines/s in total for
LOAD_SECONDS; meanwhile LOAD_SEARCHERS threads send `GET /api/search` (a word, limit 100)
in a loop and LOAD_FOLLOWERS `GET /api/tail?n=0` streams count their `record` and
`dropped` events. Afterwards: every written line is in the index exactly once (the
total of the load lines equals what was written, and per-file counts match), each
follower saw received + dropped = written, and the search latencies are reported.
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse


def get_json(addr, path, timeout=60):
    host, port = addr.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, json.loads(body)


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]


class Follower:
    """`curl -sN` on /api/tail into a file (a process of its own, so Python's speed does
    not decide whether a follower keeps up); counted once the run is over."""

    def __init__(self, addr, path):
        self.path = path
        self.proc = subprocess.Popen(
            ["curl", "-sN", f"http://{addr}/api/tail?n=0&service=load"],
            stdout=open(path, "wb"), stderr=subprocess.DEVNULL)

    def finish(self):
        self.proc.terminate()
        self.proc.wait()
        records = dropped = 0
        event = None
        with open(self.path, "rb") as f:
            for line in f:
                if line.startswith(b"event: "):
                    event = line[7:].strip()
                elif line.startswith(b"data: ") and event == b"record":
                    records += 1
                elif line.startswith(b"data: ") and event == b"dropped":
                    dropped += json.loads(line[6:])["dropped"]
        return {"records": records, "dropped": dropped, "error": None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--rate", type=int, default=50000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--searchers", type=int, default=50)
    ap.add_argument("--followers", type=int, default=20)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    stop = threading.Event()
    followers = [Follower(a.addr, os.path.join(a.out, f"follower-{i}.sse"))
                 for i in range(a.followers)]
    time.sleep(2)  # every follower connected

    lat = []
    errors = []
    lat_lock = threading.Lock()

    def searcher():
        q = "/api/search?" + urllib.parse.urlencode({"q": "load", "service": "load"})
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                status, _ = get_json(a.addr, q)
                dt = (time.perf_counter() - t0) * 1000
                with lat_lock:
                    (lat if status == 200 else errors).append(dt if status == 200 else status)
            except Exception as e:
                with lat_lock:
                    errors.append(repr(e))

    searchers = [threading.Thread(target=searcher, daemon=True) for _ in range(a.searchers)]
    for s in searchers:
        s.start()

    # The writers: one file each (load-out-N.log: service "load", instance N), lines
    # written in batches every 10 ms to keep the total rate.
    written = [0] * a.writers
    t_start = time.time()
    files = [open(os.path.join(a.dir, f"load-out-{i}.log"), "ab", buffering=0)
             for i in range(a.writers)]
    step = 0.01
    per_step = max(1, round(a.rate * step / a.writers))
    pad = "x" * 60
    next_t = time.time()
    while time.time() - t_start < a.seconds:
        for i, f in enumerate(files):
            base = written[i]
            f.write("".join(f"load {i} {base + k} {pad}\n" for k in range(per_step)).encode())
            written[i] += per_step
        next_t += step
        delay = next_t - time.time()
        if delay > 0:
            time.sleep(delay)
    write_s = time.time() - t_start
    for f in files:
        f.close()
    total = sum(written)

    # Wait for the index to hold every line (or 120 s), searches still going.
    deadline = time.time() + 120
    indexed = 0
    while time.time() < deadline:
        _, body = get_json(a.addr, "/api/search?service=load&limit=1")
        indexed = body["total"]
        if indexed >= total:
            break
        time.sleep(0.5)
    caught_up_s = time.time() - t_start
    time.sleep(2)  # followers drain
    stop.set()
    per_file = []
    for i in range(a.writers):
        _, body = get_json(a.addr, "/api/search?" + urllib.parse.urlencode(
            {"service": "load", "q": f"\"load {i}\"", "limit": 1}))
        per_file.append(body["total"])

    fol = [f.finish() for f in followers]
    res = {
        "rate_asked": a.rate, "seconds": a.seconds, "written": total,
        "write_rate": total / write_s, "indexed": indexed, "per_file_written": written,
        "per_file_indexed": per_file, "caught_up_s": caught_up_s,
        "searches": len(lat), "search_errors": len(errors),
        "search_p50_ms": pct(lat, 50), "search_p99_ms": pct(lat, 99),
        "followers": fol,
    }
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=2)
    complete = sum(1 for x in fol if x["records"] + x["dropped"] == total and not x["error"])
    lossless = indexed == total and per_file == written
    print(f"| measure | value |\n| --- | --- |")
    print(f"| lines written | {total:,} in {write_s:.1f} s ({total / write_s:,.0f} lines/s) |")
    print(f"| lines in the index | {indexed:,} ({'every line once' if lossless else 'MISMATCH'}; per file {per_file} of {written}) |")
    print(f"| index caught up | {caught_up_s:.1f} s after the first line |")
    print(f"| searches ({a.searchers} clients) | {len(lat):,} answered, {len(errors)} errors; p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms |")
    print(f"| followers ({a.followers}) | {complete} of {a.followers} saw records + dropped = written; "
          f"records min {min(x['records'] for x in fol):,} max {max(x['records'] for x in fol):,}; "
          f"dropped max {max(x['dropped'] for x in fol):,} |")
    return 0 if lossless and complete == a.followers and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
