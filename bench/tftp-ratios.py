#!/usr/bin/env python3
"""Per-rep ratios of a TFTP run-anchors result (.jsonl), as markdown.

    python3 bench/tftp-ratios.py bench/results/anchors-<stamp>.jsonl [--cand bootfarm]
        [--refs tftpd-hpa,atftpd] [--metrics REGEX]

For every metric of the candidate: its value in each rep, then for each reference
the ratio candidate / reference *in the same rep* (like run-anchors' xR, but every
rep shown, and against more than one reference). n/s = the reference does not
support the cell (windowsize not echoed). Also prints the storms' retransmission
counts (bench-tftp's `retrans`: duplicate/out-of-order DATA + client timeouts) and
failures per server and rep.
"""
import argparse
import json
import re
import statistics


def fmt(v):
    if v is None:
        return "n/s"
    if isinstance(v, (int,)) or float(v).is_integer() and abs(v) >= 100:
        return "%d" % v
    v = float(v)
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl")
    ap.add_argument("--cand", default="bootfarm")
    ap.add_argument("--refs", default="tftpd-hpa,atftpd")
    ap.add_argument("--metrics", default=r"(MiB_s|cpu_s_per_GiB|makespan_s|failed|rss_main_hwm)")
    a = ap.parse_args()
    refs = [r for r in a.refs.split(",") if r]
    raw = {}  # (server, rep) -> metrics
    retr = {}  # (server, rep) -> {cell: (retrans, failed)}
    errors = []
    for line in open(a.jsonl):
        d = json.loads(line)
        if d.get("kind") == "raw":
            raw[(d["server"], d["rep"])] = d["metrics"]
            cells = {}
            for e in d["summary"].get("storm", []):
                if not e.get("skipped"):
                    cells["bs%d_ws%d" % (e["req_blksize"], e["req_windowsize"])] = (e.get("retrans"), e.get("failed"))
            retr[(d["server"], d["rep"])] = cells
        elif d.get("kind") == "error":
            errors.append(d)
    reps = sorted({r for (_, r) in raw})
    keys = []
    for (s, r), m in raw.items():
        if s == a.cand:
            for k in m:
                if k not in keys and re.search(a.metrics, k):
                    keys.append(k)
    hdr = ["metric", a.cand + " per rep"] + ["÷ %s per rep (median)" % r for r in refs]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for k in keys:
        vals = [raw.get((a.cand, r), {}).get(k) for r in reps]
        row = [k, ", ".join(fmt(v) for v in vals)]
        for ref in refs:
            rs = []
            for r, v in zip(reps, vals):
                rv = raw.get((ref, r), {}).get(k)
                rs.append(None if (v is None or rv is None or rv == 0) else v / rv)
            good = [x for x in rs if x is not None]
            if not good:
                row.append("n/s")
            else:
                row.append(", ".join("x%.2f" % x if x is not None else "–" for x in rs)
                           + " (**x%.2f**)" % statistics.median(good))
        print("| " + " | ".join(row) + " |")
    print()
    servers = []
    for (s, _r) in raw:
        if s not in servers:
            servers.append(s)
    cells = []
    for c in retr.values():
        for k in c:
            if k not in cells:
                cells.append(k)
    print("Storm retransmissions (client-counted duplicates/gaps + timeouts) / failed transfers, per rep:\n")
    print("| cell | " + " | ".join(servers) + " |")
    print("|" + "---|" * (len(servers) + 1))
    for cell in cells:
        row = [cell]
        for s in servers:
            xs = [retr.get((s, r), {}).get(cell) for r in reps]
            row.append(", ".join("n/s" if x is None else "%s/%s" % x for x in xs))
        print("| " + " | ".join(row) + " |")
    if errors:
        print("\nErrors:")
        for e in errors:
            print("* rep %d %s: %s" % (e["rep"] + 1, e["server"], e["error"]))


if __name__ == "__main__":
    main()
