#!/usr/bin/env python3
"""Summarize the load benchmark: medians over rounds per case, ratios to cases 2 and 1.

usage: summarize.py results.jsonl[,more.jsonl...] CLK_TCK case5-cache.txt peak-rss.txt "settings"

Several results files (comma-separated) are pooled: their rounds are taken together.
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
    7: "authgate, public route with case 4's token header",
    8: "authgate C (VARIANT), public route",
    9: "authgate C (VARIANT), RS256 JWT, cache hit",
}


def main():
    path, tck, cache_file, rss_file, settings = sys.argv[1:6]
    tck = int(tck)
    runs = {}  # case -> its runs, in order
    rounds = {}  # (file, round) -> [(case, run)], in the order they ran
    lines = [(i, line) for i, p in enumerate(path.split(",")) for line in open(p)]
    for i, line in lines:
        r = json.loads(line)
        secs = r["duration_us"] / 1e6
        run = {
            "rps": r["requests"] / secs,
            "p50": r["p50_us"] / 1000, "p99": r["p99_us"] / 1000, "p999": r["p999_us"] / 1000,
            "errors": r["errors"],
            "cpu_us": r["cpu_ticks"] / tck * 1e6 / max(r["requests"], 1),
            "rss_mb": r["rss_kb"] / 1024,
        }
        runs.setdefault(r["case"], []).append(run)
        rounds.setdefault((i, r["round"]), []).append((r["case"], run))
    med = {c: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for c, rs in runs.items()}
    print(f"Settings: {settings}; medians of {len(rounds)} rounds"
          f" (case 2 ran {len(runs[2]) // len(rounds)} times per round).\n")
    print("| case | req/s | p50 ms | p99 ms | p99.9 ms | errors | CPU µs/req | RSS MB |"
          " req/s vs 2 | CPU vs 2 | p99 − case 2 | req/s vs 1 | CPU vs 1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in sorted(med):
        m = med[c]
        rel = lambda base: (
            f"{m['rps'] / med[base]['rps']:.2f}×", f"{m['cpu_us'] / med[base]['cpu_us']:.2f}×")
        r2, c2 = rel(2) if c != 1 else ("", "")
        r1, c1 = rel(1) if c != 1 and 1 in med else ("", "")
        dp99 = f"{m['p99'] - med[2]['p99']:+.3f} ms" if c not in (1, 2) else ""
        errors = sum(x["errors"] for x in runs[c])
        print(f"| {c}. {NAMES[c]} | {m['rps']:,.0f} | {m['p50']:.3f} | {m['p99']:.3f} |"
              f" {m['p999']:.3f} | {errors} | {m['cpu_us']:.1f} | {m['rss_mb']:.0f} |"
              f" {r2} | {c2} | {dp99} | {r1} | {c1} |")
    # The machine's speed drifts (a shared VM: the same case moves by a quarter between runs a
    # few seconds apart), so each run is compared with the case-2 runs next to it in time: the
    # mean of the one just before and the one just after (the run order brackets cases 3 and 4).
    print("\nEach run against the case-2 runs next to it in time (median over rounds, then the"
          " range); the first row is case 2 against itself, the method's noise:\n")
    print("| case | req/s vs 2 | CPU vs 2 | p50 − case 2 | p99 − case 2 |")
    print("|---|---:|---:|---:|---:|")
    paired = {}
    compare = lambda run, base: (
        run["rps"] / base["rps"], run["cpu_us"] / base["cpu_us"],
        run["p50"] - base["p50"], run["p99"] - base["p99"])
    for order in rounds.values():
        twos = [r for cc, r in order if cc == 2]
        # The method's own noise: case 2 against its earlier run in the same round (same code,
        # a few seconds apart). A difference inside this row's range is not a measurement.
        if len(twos) >= 2:
            paired.setdefault("A/A", []).append(compare(twos[1], twos[0]))
        for i, (c, run) in enumerate(order):
            if c == 2:
                continue
            before = [r for cc, r in order[:i] if cc == 2][-1:]
            after = [r for cc, r in order[i + 1:] if cc == 2][:1]
            near = before + after
            if not near:
                continue
            base = {k: statistics.mean(r[k] for r in near) for k in ("rps", "cpu_us", "p50", "p99")}
            paired.setdefault(c, []).append(compare(run, base))
    for c in ["A/A"] + sorted(k for k in paired if k not in ("A/A", 1)):
        if c not in paired:
            continue
        col = lambda k, fmt: (
            f"{fmt(statistics.median(x[k] for x in paired[c]))}"
            f" [{fmt(min(x[k] for x in paired[c]))} to {fmt(max(x[k] for x in paired[c]))}]")
        ratio = lambda v: f"{v:.2f}×"
        ms = lambda v: f"{v:+.3f} ms"
        name = "2. against itself: its second run vs its first" if c == "A/A" else f"{c}. {NAMES[c]}"
        print(f"| {name} | {col(0, ratio)} | {col(1, ratio)} | {col(2, ms)} |"
              f" {col(3, ms)} |")
    if 1 in paired:
        vs_nginx = statistics.median(1 / x[1] for x in paired[1])
        print(f"\nCase 2's CPU per request against nginx's (case 1) next to it: {vs_nginx:.2f}×"
              " (median).")
    print()
    print("Case 5 token cache (authgate B):", " ".join(l.strip() for l in open(cache_file)))
    print("Peak RSS (authgate A, B, C if run):", ", ".join(l.split(":")[1].strip() for l in open(rss_file)))


main()
