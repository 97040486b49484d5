#!/usr/bin/env python3
"""Counts the writer's lines in a set of log files (bench/rotation.sh).

    rot_count.py --expected N FILE...

FILEs are read in the order given (archives oldest first, then the live file); `.gz`
files are decompressed, and a gzip member that is cut short is read as far as it goes
and reported. A file that ends inside a line is continued by the next one (a collapse
rotation cuts at a block boundary); how often is reported. Prints one JSON object: lines read, distinct sequence numbers present,
lost (expected but absent), duplicated (occurrences beyond the first), malformed lines
(not `seq=NNNNNNN <time> ...` as bench/rot_writer.js writes them, e.g. torn or holding NUL
bytes), lines out of order, and the missing sequence numbers as ranges.
"""

import argparse
import gzip
import json
import re
import sys
import zlib

LINE = re.compile(
    rb"^seq=(\d{7}) \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ [A-Z]+ \S+ \d{3} \d+ms rid=[0-9a-f]{16} u=\d+$"
)


def read_bytes(path):
    """The bytes of one file, and a note if it was damaged."""
    if path.endswith(".gz"):
        data = b""
        try:
            with gzip.open(path, "rb") as f:
                data = f.read()
            note = None
        except (EOFError, OSError, zlib.error) as e:
            # What can be decompressed of a truncated member.
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            with open(path, "rb") as f:
                raw = f.read()
            try:
                data = d.decompress(raw)
            except zlib.error:
                data = b""
            note = f"damaged gzip: {e}"
    else:
        with open(path, "rb") as f:
            data = f.read()
        note = None
    return data, note


def ranges(nums):
    out = []
    for n in nums:
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expected", type=int, required=True)
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()

    seen = bytearray(a.expected + 1)
    lines = malformed = duplicated = unexpected = out_of_order = 0
    last = 0
    notes = []
    malformed_examples = []
    per_file = []
    carry = b""
    continued = 0
    for i, path in enumerate(a.files):
        data, note = read_bytes(path)
        if note:
            notes.append(f"{path}: {note}")
        # A file that ends inside a line (a collapse rotation cuts at a file-system block
        # boundary) is continued by the next file: the line is whole in the sequence of
        # files, which is what `zcat archives...; cat live` shows.
        data = carry + data
        carry = b""
        if data and not data.endswith(b"\n") and i + 1 < len(a.files):
            cut = data.rfind(b"\n") + 1
            carry, data = data[cut:], data[:cut]
            continued += 1
        file_lines = data.split(b"\n")
        if file_lines and file_lines[-1] == b"":
            file_lines.pop()
        first = None
        for raw in file_lines:
            lines += 1
            m = LINE.match(raw)
            if not m:
                malformed += 1
                if len(malformed_examples) < 5:
                    malformed_examples.append(raw[:160].decode("utf-8", "replace"))
                continue
            seq = int(m.group(1))
            if seq < 1 or seq > a.expected:
                unexpected += 1
                continue
            if first is None:
                first = seq
            if seq < last:
                out_of_order += 1
            last = seq
            if seen[seq]:
                duplicated += 1
            else:
                seen[seq] = 1
        per_file.append({"file": path, "lines": len(file_lines), "first_seq": first, "last_seq": last})
    missing = [i for i in range(1, a.expected + 1) if not seen[i]]
    present = a.expected - len(missing)
    json.dump(
        {
            "expected": a.expected,
            "files": len(a.files),
            "lines_read": lines,
            "present": present,
            "lost": len(missing),
            "duplicated": duplicated,
            "malformed": malformed,
            "unexpected_seq": unexpected,
            "out_of_order": out_of_order,
            "lines_continued_in_next_file": continued,
            "lost_ranges": ranges(missing)[:200],
            "malformed_examples": malformed_examples,
            "notes": notes,
            "per_file": per_file,
        },
        sys.stdout,
        indent=1,
    )
    print()


if __name__ == "__main__":
    main()
