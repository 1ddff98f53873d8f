#!/usr/bin/env python3
"""What the two benchmark reports (scripts/lib/bench_report.py for BENCHMARKS.md, and
scripts/bench_refresh.py for its "Refresh scheduler" section) share: nearest-rank
percentiles and the summary that opens each, a count of what passed and a verdict table.
"""
import math


def percentile(values, fraction):
    ordered = sorted(values)  # nearest rank, like the Rust bench
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def verdict(ok):
    return "PASS" if ok else "**MISS**"


def summary_lines(rows, passed, column):
    """Markdown lines for `rows` of (name, measured, ok): "K of N {passed}" with the names of
    the missed ones, then a table whose first column is headed `column`."""
    missed = [row for row in rows if not row[2]]
    lines = [f"{len(rows) - len(missed)} of {len(rows)} {passed}"
             + (f"; **missed**: {'; '.join(row[0] for row in missed)}." if missed else "."),
             "",
             f"| {column} | measured | verdict |",
             "|---|---|---|"]
    lines += [f"| {name} | {measured} | {verdict(ok)} |" for name, measured, ok in rows]
    lines.append("")
    return lines
