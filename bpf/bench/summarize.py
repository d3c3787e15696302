#!/usr/bin/env python3
"""Turns the bench's raw rows into the markdown table of bench-results/datapath.md.

Input (stdin): one setup per line, tab-separated: label; then for TCP Gbit/s, UDP kpps and TCP
connections/s two comma-separated lists: the setup's runs and the no-program runs paired with
them (pair k = the k-th of each, measured back to back in ABBA order; "nan" = failed run);
then a note. A setup's ratio is the median of its per-pair ratios, so drift of the shared
machine between pairs cancels out.
"""
import math
import statistics
import sys


def values(cell):
    return [float(v) for v in cell.split(",") if v]


def median(vs):
    vs = [v for v in vs if not math.isnan(v)]
    return statistics.median(vs) if vs else math.nan


def cell(on, off, digits):
    """`setup (no program) ratio` for one metric."""
    ons, offs = values(on), values(off)
    ratios = [a / b for a, b in zip(ons, offs) if b > 0 and not math.isnan(a / b)]
    ratio = f"{100 * median(ratios):.0f}%" if ratios else "–"
    m_on, m_off = median(ons), median(offs)
    fmt = lambda v: "–" if math.isnan(v) else f"{v:.{digits}f}"  # noqa: E731
    return f"{fmt(m_on)} ({fmt(m_off)}) | {ratio}"


def runs(on, off, digits):
    return ", ".join(
        f"{a:.{digits}f}/{b:.{digits}f}" for a, b in zip(values(on), values(off))
    )


def main():
    rows = [line.rstrip("\n").split("\t") for line in sys.stdin if line.strip()]
    print("Each cell: median with the setup (median of the paired runs without any program or")
    print("rule); the ratio is the median of the per-pair ratios.")
    print()
    print("| setup | TCP Gbit/s | TCP ratio | UDP 64 B kpps | UDP ratio | TCP conn/s | conn/s ratio | note |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, t1, t0, u1, u0, c1, c0, note in rows:
        print(f"| {label} | {cell(t1, t0, 2)} | {cell(u1, u0, 0)} | {cell(c1, c0, 0)} | {note} |")
    print()
    print("<details><summary>every pair (with / without)</summary>")
    print()
    for label, t1, t0, u1, u0, c1, c0, _ in rows:
        print(f"- {label}: TCP {runs(t1, t0, 2)}; UDP {runs(u1, u0, 0)}; conn/s {runs(c1, c0, 0)}")
    print()
    print("</details>")


if __name__ == "__main__":
    main()
