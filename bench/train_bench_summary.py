#!/usr/bin/python3
"""Tables for bench/train_bench.sh: per-configuration medians and per-round ratios (median [min..max]).
Usage: train_bench_summary.py results.jsonl"""
import collections
import json
import statistics as st
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = collections.defaultdict(dict)  # round -> config -> row
for r in rows:
    by[r["round"]][r["config"]] = r
cfgs = list(dict.fromkeys(r["config"] for r in rows))


def med(xs):
    return f"{st.median(xs):.{3 if st.median(xs) < 10 else 1}f}" if xs else "-"


def rng(xs):
    return f"{st.median(xs):.2f} [{min(xs):.2f}..{max(xs):.2f}]" if xs else "-"


print(f"rounds: {len(by)}\n")
print("| config | events/s (global, median) | wall ms/step | djct t_step ms | data ms | compute ms | comm ms | data share | comm share | outside t_step (logging) share |")
print("|---|---|---|---|---|---|---|---|---|---|")
for c in cfgs:
    rs = [by[k][c] for k in by if c in by[k]]
    ev = [r["events_per_s"] for r in rs]
    if c.startswith("ddp"):
        print(f"| {c} | {st.median(ev):,.0f} | {med([1e3 * 128 * r['world'] / r['events_per_s'] for r in rs])} | "
              f"(step {med([r['step_ms_median'] for r in rs])}) | - | - | - | - | - | - |")
        continue
    g = lambda k: [r[k] for r in rs]
    share = lambda k: med([100 * r[k] / r["wall_per_step_ms"] for r in rs]) + "%"
    outside = med([100 * (r["wall_per_step_ms"] - r["t_step_ms"]) / r["wall_per_step_ms"] for r in rs]) + "%"
    print(f"| {c} | {st.median(ev):,.0f} | {med(g('wall_per_step_ms'))} | {med(g('t_step_ms'))} | {med(g('t_data_ms'))} | "
          f"{med(g('t_compute_ms'))} | {med(g('t_comm_ms'))} | {share('t_data_ms')} | {share('t_comm_ms')} | {outside} |")

ratios = [("djct 2 ranks / DDP 2 processes (target >= 2)", "djct2", "ddp2"),
          ("djct 2 ranks / djct 2 ranks --no-average (target >= 0.9)", "djct2", "djct2_noavg"),
          ("djct 2 ranks --no-average / DDP 2 processes (the bound of the first ratio: no gradient communication)",
           "djct2_noavg", "ddp2"),
          ("djct 2 ranks overlap / --no-overlap (what overlap saves)", "djct2", "djct2_noovl"),
          ("256 KiB buckets: overlap / --no-overlap", "djct2_sb", "djct2_sb_noovl"),
          ("djct 2 ranks --no-fsync / DDP 2 processes", "djct2_nofsync", "ddp2"),
          ("djct 2 ranks --no-fsync / default (cost of the per-row journal fsync)", "djct2_nofsync", "djct2"),
          ("djct 1 rank / DDP 1 process", "djct1", "ddp1"),
          ("djct 1 rank --no-fsync / DDP 1 process", "djct1_nofsync", "ddp1"),
          ("djct 2 ranks / 1 rank (scaling)", "djct2", "djct1"),
          ("djct 2 ranks --no-average / 1 rank (compute scaling bound)", "djct2_noavg", "djct1"),
          ("DDP 2 / 1 process (scaling)", "ddp2", "ddp1")]
print("\n| ratio of events/s (per round) | median [min..max] |\n|---|---|")
for name, a, b in ratios:
    xs = [by[k][a]["events_per_s"] / by[k][b]["events_per_s"] for k in by if a in by[k] and b in by[k]]
    if xs:
        print(f"| {name} | {rng(xs)} |")
