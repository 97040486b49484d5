#!/usr/bin/env python3
"""Writes a synthetic PM2 log backlog for bench/ingest.sh.

Five services, eleven files, the shapes PM2 really writes:

  api     fork mode, `time: true`            api-out.log, api-error.log
  worker  cluster x2, `time: true`           worker-{out,error}-{0,1}.log
  duck    log_date_format "YYYY-MM-DD HH:mm:ss.SSS Z"   duck-out.log, duck-error.log
  web     no PM2 prefix, the app logs `[LEVEL] ...`      web-out.log, web-error.log
  billing `time: true` + pino JSON objects               billing-out.log

Messages are ~100-200 bytes with levels (winston `info: `, `[WARN]`, `Error: ...`,
stack-trace lines without a level), request ids, sequence numbers and a little
non-ASCII text. The output is deterministic for a given size (fixed seed).

Prints one JSON object: {"lines": N, "bytes": B, "files": {...}} (also written to
<out>/../manifest.json by the caller).
"""

import argparse
import json
import os
import random
import sys
import time

# Share of the total bytes each file gets (sums to 1.0).
FILES = [
    ("api-out.log", "api", "out", "pm2"),
    ("api-error.log", "api", "err", "pm2"),
    ("worker-out-0.log", "worker", "out", "pm2"),
    ("worker-out-1.log", "worker", "out", "pm2"),
    ("worker-error-0.log", "worker", "err", "pm2"),
    ("worker-error-1.log", "worker", "err", "pm2"),
    ("duck-out.log", "duck", "out", "dayjs"),
    ("duck-error.log", "duck", "err", "dayjs"),
    ("web-out.log", "web", "out", "none"),
    ("web-error.log", "web", "err", "none"),
    ("billing-out.log", "billing", "out", "json"),
]
SHARE = {
    "api-out.log": 0.27,
    "api-error.log": 0.03,
    "worker-out-0.log": 0.11,
    "worker-out-1.log": 0.11,
    "worker-error-0.log": 0.015,
    "worker-error-1.log": 0.015,
    "duck-out.log": 0.18,
    "duck-error.log": 0.02,
    "web-out.log": 0.13,
    "web-error.log": 0.02,
    "billing-out.log": 0.10,
}

PATHS = [
    "/api/v1/users/{id}", "/api/v1/orders/{id}/items", "/api/v1/search?q=shoes&page={n}",
    "/api/v1/carts/{id}", "/healthz", "/api/v1/payments/{id}/capture", "/static/app.{n}.js",
    "/api/v1/sessions", "/api/v1/products/{id}/reviews?sort=recent", "/api/v1/inventory/{id}",
]
METHODS = ["GET", "GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH"]
STATUSES = [200] * 14 + [201, 204, 301, 304, 400, 401, 404, 409, 500, 502, 503]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "okhttp/4.12.0",
          "python-requests/2.31", "Go-http-client/2.0", "Safari/605.1.15"]
TENANTS = ["acme-corp", "globex", "initech", "umbrella-eu", "hooli", "stark-industries"]
JOBS = ["send-email", "resize-image", "sync-inventory", "compute-report", "purge-cache",
        "index-document", "charge-subscription", "export-csv"]
CITIES = ["Zürich", "São Paulo", "Kraków", "東京", "Montréal", "Reykjavík", "Berlin", "Lyon"]
ERRORS = [
    "Error: connect ECONNREFUSED 10.0.3.17:5432",
    "TypeError: Cannot read properties of undefined (reading 'id')",
    "Error: ETIMEDOUT upstream payments.internal:443 after 30000ms",
    "UnhandledPromiseRejectionWarning: Error: socket hang up",
    "RangeError: Maximum call stack size exceeded",
]
STACK = [
    "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1595:16)",
    "    at Object.<anonymous> (/srv/app/src/routes/orders.js:{n}:17)",
    "    at processTicksAndRejections (node:internal/process/task_queues:95:5)",
    "    at async Promise.all (index {k})",
    "    at Layer.handle [as handle_request] (/srv/app/node_modules/express/lib/router/layer.js:95:5)",
]


def hexid(r, n=16):
    return "%0*x" % (n, r.getrandbits(4 * n))


class Clock:
    """A per-file clock that advances a few ms per line and caches the second's text."""

    def __init__(self, start, step_ms):
        self.ms = start * 1000
        self.step = step_ms
        self.sec = None
        self.iso = self.dayjs = ""

    def tick(self, r):
        self.ms += r.randint(0, self.step)
        sec = self.ms // 1000
        if sec != self.sec:
            self.sec = sec
            t = time.localtime(sec)
            self.iso = time.strftime("%Y-%m-%dT%H:%M:%S", t)
            off = time.strftime("%z", t)
            self.dayjs_base = time.strftime("%Y-%m-%d %H:%M:%S", t)
            self.dayjs_off = off[:3] + ":" + off[3:]
        return self.ms % 1000


def out_message(r, service, seq):
    k = r.random()
    if service == "worker":
        job = r.choice(JOBS)
        if k < 0.80:
            return ("info: job %s id=%s attempt=%d finished in %dms queue=default "
                    "tenant=%s seq=%d items=%d" % (job, hexid(r, 12), r.randint(1, 3),
                                         r.randint(3, 9000), r.choice(TENANTS), seq,
                                         r.randint(0, 500)))
        if k < 0.95:
            return ("debug: job %s id=%s picked by worker pid=%d lag=%dms seq=%d"
                    % (job, hexid(r, 12), r.randint(1000, 65000), r.randint(0, 400), seq))
        return ("warn: job %s id=%s retrying after %s (attempt %d/5) seq=%d"
                % (job, hexid(r, 12), r.choice(ERRORS)[:40], r.randint(2, 5), seq))
    # api / duck / web: request logs
    m = r.choice(METHODS)
    p = r.choice(PATHS).replace("{id}", str(r.randint(1, 9_999_999))).replace(
        "{n}", str(r.randint(1, 99)))
    st = r.choice(STATUSES)
    ms = r.randint(1, 2500)
    rid = hexid(r)
    if service == "web":
        lvl = "[INFO]" if st < 400 else "[WARN]"
        return ('%s %s %s %d %dms rid=%s ua="%s" referer="https://shop.example.com/c/%d" seq=%d'
                % (lvl, m, p, st, ms, rid, r.choice(AGENTS), r.randint(1, 9999), seq))
    if k < 0.03:
        return ("info: user %d updated profile city=%s locale=fr-CH seq=%d rid=%s"
                % (r.randint(1, 999999), r.choice(CITIES), seq, rid))
    lvl = "info" if st < 400 else ("warn" if st < 500 else "error")
    return ('%s: %s %s %d %d bytes %dms rid=%s ip=10.%d.%d.%d ua="%s" seq=%d'
            % (lvl, m, p, st, r.randint(80, 90000), ms, rid, r.randint(0, 255),
               r.randint(0, 255), r.randint(1, 254), r.choice(AGENTS), seq))


def err_message(r, service, seq):
    k = r.random()
    if k < 0.45:
        return ("%s rid=%s seq=%d" % (r.choice(ERRORS), hexid(r), seq))
    if k < 0.90:
        return r.choice(STACK).replace("{n}", str(r.randint(1, 800))).replace(
            "{k}", str(r.randint(0, 9)))
    return ("[WARN] slow query took %dms: SELECT * FROM orders WHERE customer_id = $1 "
            "AND created_at > $2 seq=%d" % (r.randint(500, 20000), seq))


def json_message(r, seq, ms_epoch):
    lvl = r.choice((30, 30, 30, 30, 30, 20, 40, 50))
    return ('{"level":%d,"time":%d,"pid":%d,"hostname":"prod-eu-2","invoice":"inv_%s",'
            '"amount":%d,"currency":"EUR","msg":"invoice %s","seq":%d}'
            % (lvl, ms_epoch, 4242, hexid(r, 10), r.randint(100, 99999),
               r.choice(("created", "paid", "sent", "voided")), seq))


def write_file(path, name, service, stream, style, target_bytes, start, seed):
    r = random.Random(seed)
    clock = Clock(start, 12 if stream == "out" else 400)
    lines = 0
    written = 0
    seq = 0
    buf = []
    bufbytes = 0
    with open(path, "wb") as f:
        while written < target_bytes:
            seq += 1
            ms = clock.tick(r)
            if style == "json":
                msg = json_message(r, seq, clock.ms)
            elif stream == "out":
                msg = out_message(r, service, seq)
            else:
                msg = err_message(r, service, seq)
            if style == "pm2" or style == "json":
                line = "%s: %s\n" % (clock.iso, msg)
            elif style == "dayjs":
                line = "%s.%03d %s: %s\n" % (clock.dayjs_base, ms, clock.dayjs_off, msg)
            else:
                line = msg + "\n"
            b = line.encode()
            buf.append(b)
            bufbytes += len(b)
            lines += 1
            written += len(b)
            if bufbytes >= 1 << 20:
                f.write(b"".join(buf))
                buf.clear()
                bufbytes = 0
        f.write(b"".join(buf))
    return lines, written


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="directory for the *.log files")
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--only", help="write only this file (used for parallel runs)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    total = int(a.gib * (1 << 30))
    # Timestamps: the backlog ends about now, so the default 30-day retention would keep
    # it too (the bench config sets a long retention anyway).
    files = {}
    for i, (name, service, stream, style) in enumerate(FILES):
        if a.only and name != a.only:
            continue
        target = int(total * SHARE[name]) + 1
        # Out files step ~6 ms/line, err files ~200 ms/line: start so both end near now.
        start = int(time.time()) - 3 * 86400
        lines, size = write_file(os.path.join(a.out, name), name, service, stream, style,
                                 target, start, 1000 + i)
        files[name] = {"lines": lines, "bytes": size}
    print(json.dumps({"lines": sum(v["lines"] for v in files.values()),
                      "bytes": sum(v["bytes"] for v in files.values()),
                      "files": files}))


if __name__ == "__main__":
    sys.exit(main())
