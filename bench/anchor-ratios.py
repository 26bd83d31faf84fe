#!/usr/bin/env python3
"""Per-rep values and same-rep ratios of a run-anchors result (.jsonl), as markdown.

    python3 bench/anchor-ratios.py bench/results/anchors-<stamp>.jsonl \\
        --servers kea,kea-mem,bootfarm,bootfarm-nosync --ref kea [--metrics REGEX]

For every metric matching REGEX and every server: median [min-max] over reps, then
the value in each rep and (for servers other than the reference) the ratio
server / reference *in the same rep*, like run-anchors' xR but with every rep shown.
The phases of one rep (DHCP: closed, open, perfdhcp) are merged, unlike a plain
`raw[(server, rep)] = metrics`, which would keep only the last phase.
Errors recorded by run-anchors (a server that did not start, ...) are listed.
"""
import argparse
import json
import re
import statistics


def fmt(v):
    if v is None:
        return "–"
    v = float(v)
    if v.is_integer() and abs(v) >= 100:
        return "%d" % v
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl")
    ap.add_argument("--servers", help="comma list (default: the run's plan)")
    ap.add_argument("--ref", help="reference server (default: the run's reference)")
    ap.add_argument("--metrics", default=".")
    a = ap.parse_args()
    raw, errors, meta = {}, [], {}
    for line in open(a.jsonl):
        d = json.loads(line)
        if d.get("kind") == "meta":
            meta = d
        elif d.get("kind") == "raw":
            raw.setdefault((d["server"], d["rep"]), {}).update(d["metrics"])
        elif d.get("kind") == "error":
            errors.append(d)
    proto = next(iter(meta.get("plan", {})), None)
    servers = a.servers.split(",") if a.servers else meta["plan"][proto]
    ref = a.ref or meta["refs"][proto]
    reps = sorted({r for (_, r) in raw})
    keys = []
    for s in servers:
        for r in reps:
            for k in raw.get((s, r), {}):
                if k not in keys and re.search(a.metrics, k):
                    keys.append(k)
    print("run %s, reference %s, reps %s\n" % (meta.get("stamp"), ref, len(reps)))
    hdr = "| metric | server | median [min–max] | " + " | ".join("rep %d" % (r + 1) for r in reps) + " |"
    print(hdr)
    print("|" + "---|" * (3 + len(reps)))
    for k in keys:
        for s in servers:
            vals = [raw.get((s, r), {}).get(k) for r in reps]
            got = [v for v in vals if isinstance(v, (int, float))]
            if not got:
                continue
            agg = "%s [%s–%s]" % (fmt(statistics.median(got)), fmt(min(got)), fmt(max(got)))
            cells = []
            for r, v in zip(reps, vals):
                rv = raw.get((ref, r), {}).get(k)
                if v is None:
                    cells.append("–")
                elif s == ref or not rv:
                    cells.append(fmt(v))
                else:
                    cells.append("%s (x%.2f)" % (fmt(v), v / rv))
            print("| %s | %s | %s | %s |" % (k, s, agg, " | ".join(cells)))
    if errors:
        print("\nerrors:")
        for e in errors:
            print("* rep %d %s %s: %s" % (e["rep"] + 1, e["server"], e.get("phase") or "", e["error"]))


if __name__ == "__main__":
    main()
