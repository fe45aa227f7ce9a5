#!/usr/bin/env python3
"""Summarize the load benchmark: medians over rounds per case, ratios to cases 2 and 1.

usage: summarize.py results.jsonl CLK_TCK case5-cache.txt peak-rss.txt "settings"
"""
import json
import statistics
import sys

NAMES = {
    1: "nginx reverse proxy",
    2: "authgate, public route",
    3: "authgate, session cookie",
    4: "authgate, RS256 JWT, cache hit",
    5: "authgate, fresh RS256 JWT (full verify)",
    6: "authgate, unauthenticated browser (302)",
}


def main():
    path, tck, cache_file, rss_file, settings = sys.argv[1:6]
    tck = int(tck)
    runs = {}
    for line in open(path):
        r = json.loads(line)
        secs = r["duration_us"] / 1e6
        runs.setdefault(r["case"], []).append({
            "rps": r["requests"] / secs,
            "p50": r["p50_us"] / 1000, "p99": r["p99_us"] / 1000, "p999": r["p999_us"] / 1000,
            "errors": r["errors"],
            "cpu_us": r["cpu_ticks"] / tck * 1e6 / max(r["requests"], 1),
            "rss_mb": r["rss_kb"] / 1024,
        })
    med = {c: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for c, rs in runs.items()}
    rounds = len(next(iter(runs.values())))
    print(f"Settings: {settings}; medians of {rounds} rounds.\n")
    print("| case | req/s | p50 ms | p99 ms | p99.9 ms | errors | CPU µs/req | RSS MB |"
          " req/s vs 2 | CPU vs 2 | p99 − case 2 | req/s vs 1 | CPU vs 1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in sorted(med):
        m = med[c]
        rel = lambda base: (
            f"{m['rps'] / med[base]['rps']:.2f}×", f"{m['cpu_us'] / med[base]['cpu_us']:.2f}×")
        r2, c2 = rel(2) if c != 1 else ("", "")
        r1, c1 = rel(1) if c != 1 else ("", "")
        dp99 = f"{m['p99'] - med[2]['p99']:+.3f} ms" if c not in (1, 2) else ""
        errors = sum(x["errors"] for x in runs[c])
        print(f"| {c}. {NAMES[c]} | {m['rps']:,.0f} | {m['p50']:.3f} | {m['p99']:.3f} |"
              f" {m['p999']:.3f} | {errors} | {m['cpu_us']:.1f} | {m['rss_mb']:.0f} |"
              f" {r2} | {c2} | {dp99} | {r1} | {c1} |")
    # The machine's speed drifts between rounds (a shared VM); cases of one round run back to
    # back, so their ratios within the round are steadier than ratios of medians.
    print("\nWithin each round, against case 2 (median over rounds, then the range):\n")
    print("| case | req/s vs 2 | CPU vs 2 | p99 − case 2 |")
    print("|---|---:|---:|---:|")
    for c in sorted(runs):
        if c in (1, 2):
            continue
        pairs = list(zip(runs[c], runs[2]))
        spread = lambda f, fmt: (
            f"{fmt(statistics.median(f(a, b) for a, b in pairs))}"
            f" [{fmt(min(f(a, b) for a, b in pairs))} to {fmt(max(f(a, b) for a, b in pairs))}]")
        ratio = lambda v: f"{v:.2f}×"
        print(f"| {c}. {NAMES[c]} | {spread(lambda a, b: a['rps'] / b['rps'], ratio)} |"
              f" {spread(lambda a, b: a['cpu_us'] / b['cpu_us'], ratio)} |"
              f" {spread(lambda a, b: a['p99'] - b['p99'], lambda v: f'{v:+.3f} ms')} |")
    print()
    print("Case 5 token cache (authgate B):", " ".join(l.strip() for l in open(cache_file)))
    print("Peak RSS (authgate A, B):", ", ".join(l.split(":")[1].strip() for l in open(rss_file)))


main()
