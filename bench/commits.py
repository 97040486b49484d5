#!/usr/bin/env python3
"""Reads the daemon's log (LOGAGG_LOG with logagg::index=debug) and reports when the
index held all N lines, and the per-commit ingest rate.

usage: commits.py DAEMON_LOG START_EPOCH N

Each commit logs `committed records=R took_ms=T` with a UTC timestamp taken after the
commit finished (the reader reload follows within microseconds). The sum of `records`
reaching N is the moment every line became searchable, without the up-to-one-poll error
of watching the API. Prints one JSON object.
"""

import datetime as dt
import json
import re
import statistics
import sys

LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z\s+DEBUG\s+\S*index\S*: committed "
    r"records=(\d+) took_ms=(\d+)"
)


def epoch(stamp):
    # Python 3.10 cannot parse more than 6 fractional digits; tracing prints 6.
    whole, _, frac = stamp.partition(".")
    t = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return t.timestamp() + (float("0." + frac) if frac else 0.0)


def main():
    path, start, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    commits = []
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if m:
                commits.append((epoch(m.group(1)), int(m.group(2)), int(m.group(3))))
    total = 0
    full_at = None
    prev = start
    rates = []  # (records per second of wall time between commit ends, commit ms)
    for t, records, took in commits:
        total += records
        rates.append((records / max(t - prev, 1e-6), took, records, t - start))
        prev = t
        if full_at is None and total >= n:
            full_at = t
            break
    # Steady state: drop the first commit (start-up, index creation) and the last one
    # (a partial interval).
    steady = [r for r, _, _, _ in rates[1:-1]]
    took = [c for _, c, _, _ in rates]
    out = {
        "commits": len(rates),
        "indexed": total,
        "seconds_to_full": None if full_at is None else full_at - start,
        "steady_commits": len(steady),
        "steady_median_lps": statistics.median(steady) if steady else None,
        "steady_min_lps": min(steady) if steady else None,
        "steady_max_lps": max(steady) if steady else None,
        "commit_ms_median": statistics.median(took) if took else None,
        "commit_ms_max": max(took) if took else None,
        "per_commit": [
            {"at_s": round(at, 3), "records": rec, "lps": round(r), "commit_ms": c}
            for r, c, rec, at in rates
        ],
    }
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
