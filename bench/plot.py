#!/usr/bin/python3
"""Draws docs/benchmarks.png from the CSV bench/suite.rs wrote in the same
run: end-to-end throughput against sessions (each sync latency, plain and
STARTTLS) and memory (PSS summed over each MTA's processes) against
sessions, tern beside Postfix. Usage: plot.py RESULTS.csv OUT.png"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src, out = sys.argv[1], sys.argv[2]
    rows = {}
    with open(src, newline="") as f:
        for r in csv.DictReader(f):
            rows[(r["key"], r["mta"])] = (float(r["median"]), float(r["min"]), float(r["max"]))
    colors = {"tern": "tab:blue", "Postfix": "tab:red"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    sessions = [1, 20, 50]
    styles = {("0", "false"): "-", ("0", "true"): "--", ("2", "false"): "-.", ("10", "false"): ":"}
    for mta in ("tern", "Postfix"):
        for (lat, tls), ls in styles.items():
            pts = [(s, rows.get((f"through lat={lat} s={s} tls={tls}", mta))) for s in sessions]
            pts = [(s, v) for s, v in pts if v]
            if not pts:
                continue
            xs = [s for s, _ in pts]
            med = [v[0] for _, v in pts]
            err = [[v[0] - v[1] for _, v in pts], [v[2] - v[0] for _, v in pts]]
            label = f"{mta}, {float(lat):g} ms/sync" + (", STARTTLS" if tls == "true" else "")
            ax1.errorbar(xs, med, yerr=err, ls=ls, marker="o", color=colors[mta], label=label, capsize=3)
    ax1.set_xlabel("parallel sessions")
    ax1.set_ylabel("messages/s end to end")
    ax1.set_title("Throughput (relay to smtp-sink, 1 KiB messages)")
    ax1.set_xticks(sessions)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    for mta in ("tern", "Postfix"):
        for kind, ls in (("pss", "-"), ("rss", "--")):
            pts = [(s, rows.get((f"{kind} s={s}", mta))) for s in (0, 50, 100)]
            pts = [(s, v) for s, v in pts if v]
            if not pts:
                continue
            ax2.plot([s for s, _ in pts], [v[0] / 1024 for _, v in pts], ls=ls, marker="o",
                     color=colors[mta], label=f"{mta} {kind.upper()} (summed)")
    ax2.set_xlabel("idle STARTTLS sessions held")
    ax2.set_ylabel("MiB")
    ax2.set_yscale("log")
    ax2.set_title("Memory of all the MTA's processes")
    ax2.set_xticks([0, 50, 100])
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
