#!/usr/bin/env python3
"""Turns the bench's raw rows into the markdown table of bench-results/datapath.md.

Input (stdin): one setup per line, tab-separated: label, TCP Gbit/s runs, UDP kpps runs,
TCP connections/s runs (each a comma-separated list, "nan" for a failed run), note.
The first line is the no-program baseline; ratios are medians over the baseline's median,
both measured in the same run.
"""
import math
import statistics
import sys


def median(cell):
    values = [float(v) for v in cell.split(",") if v and v != "nan"]
    return statistics.median(values) if values else math.nan


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
    base = [median(c) for c in rows[0][1:4]]
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
