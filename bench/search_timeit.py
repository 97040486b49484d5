#!/usr/bin/env python3
"""Latency of `GET /api/search` for bench/search.sh.

    search_timeit.py --addr HOST:PORT --runs R --warmup W NAME=QUERYSTRING...

For every NAME, W untimed requests, then R timed ones, interleaved across the queries
(a, b, c, a, b, c, ...) so a change in the machine's load hits all of them alike. One
keep-alive HTTP/1.1 connection (what a browser or `logagg search` holding a connection
does): a figure is the wall time from sending the request to having read the whole JSON
body (loopback HTTP, the query, the hits' stored documents, JSON encoding), not the
start-up of a client process. The server's own `took_ms` is recorded beside it.

Prints JSON: per query p50/p99/min/max/mean of the client wall time (ms), the median
and p99 of took_ms, the total and the number of hits of the last response.
"""

import argparse
import http.client
import json
import statistics
import sys
import time


def pct(sorted_v, p):
    """Nearest-rank percentile: p99 of 50 samples is the largest one."""
    if not sorted_v:
        return float("nan")
    i = min(len(sorted_v) - 1, max(0, int(round(p / 100 * len(sorted_v) + 0.5)) - 1))
    return sorted_v[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("queries", nargs="+")
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    qs = []
    for q in a.queries:
        name, _, query = q.partition("=")
        qs.append((name, query))

    def one(query):
        t0 = time.perf_counter()
        conn.request("GET", "/api/search?" + query)
        resp = conn.getresponse()
        body = resp.read()
        wall = (time.perf_counter() - t0) * 1000
        if resp.status != 200:
            sys.exit(f"search_timeit: {query}: HTTP {resp.status}: {body[:300]!r}")
        return wall, json.loads(body)

    last = {}
    for _ in range(a.warmup):
        for name, query in qs:
            last[name] = one(query)[1]
    walls = {name: [] for name, _ in qs}
    tooks = {name: [] for name, _ in qs}
    for _ in range(a.runs):
        for name, query in qs:
            w, r = one(query)
            walls[name].append(w)
            tooks[name].append(r["took_ms"])
            last[name] = r
    out = []
    for name, query in qs:
        w = sorted(walls[name])
        t = sorted(tooks[name])
        out.append({
            "name": name, "query": query, "runs": a.runs,
            "p50_ms": pct(w, 50), "p99_ms": pct(w, 99), "min_ms": w[0], "max_ms": w[-1],
            "mean_ms": statistics.mean(w),
            "took_p50_ms": pct(t, 50), "took_p99_ms": pct(t, 99),
            "total": last[name]["total"], "hits": len(last[name]["hits"]),
        })
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
