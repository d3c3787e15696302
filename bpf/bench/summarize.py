#!/usr/bin/env python3
"""Turns the bench's raw rows into the markdown table of bench-results/datapath.md.

Input (stdin): one setup per line, tab-separated: label, TCP Gbit/s runs, UDP kpps runs,
TCP connections/s runs (each a comma-separated list, "nan" for a failed run), note.
Lines whose label starts with "no program" are the baseline (measured at the start and the end
of the same run); ratios are a setup's median over the median of all baseline runs pooled.
"""
import math
import statistics
import sys


def values(cell):
    return [float(v) for v in cell.split(",") if v and v != "nan"]


def median(cell):
    vs = values(cell)
    return statistics.median(vs) if vs else math.nan


def fmt(value, digits):
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def ratio(value, base):
    if math.isnan(value) or math.isnan(base) or base == 0:
        return "–"
    return f"{100 * value / base:.0f}%"


def runs(cell, digits):
    return " / ".join(
        "fail" if v == "nan" else f"{float(v):.{digits}f}" for v in cell.split(",") if v
    )


def main():
    rows = [line.rstrip("\n").split("\t") for line in sys.stdin if line.strip()]
    baselines = [r for r in rows if r[0].startswith("no program")]
    base = [median(",".join(r[col] for r in baselines)) for col in (1, 2, 3)]
    print("Ratios are to the median of all no-program runs (start and end pooled).")
    print()
    print("| setup | TCP Gbit/s | vs none | UDP 64 B kpps | vs none | TCP conn/s | vs none | note |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, tcp, udp, crr, note in rows:
        t, u, c = median(tcp), median(udp), median(crr)
        print(
            f"| {label} | {fmt(t, 2)} | {ratio(t, base[0])} | {fmt(u, 0)} | {ratio(u, base[1])}"
            f" | {fmt(c, 0)} | {ratio(c, base[2])} | {note} |"
        )
    print()
    print("<details><summary>every run (TCP Gbit/s; UDP kpps; conn/s)</summary>")
    print()
    for label, tcp, udp, crr, _ in rows:
        print(f"- {label}: {runs(tcp, 2)}; {runs(udp, 0)}; {runs(crr, 0)}")
    print()
    print("</details>")


if __name__ == "__main__":
    main()
