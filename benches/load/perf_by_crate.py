#!/usr/bin/env python3
"""Where a request's CPU time goes, per crate, in ns per request: MODE=perf's table.

Shares of samples (case*-top.txt) cannot be compared between cases, since each case's samples
add up to 100 %. This divides each crate's samples by the requests of the same sampled run, so
the columns are comparable and a case's extra cost over case 2 reads off a row.

    perf_by_crate.py OUT_DIR SAMPLE_HZ CASE [CASE ...]

OUT_DIR holds results.jsonl (round 1 of each case: the sampled run) and perf/case<N>.data.
"""
import collections
import json
import re
import subprocess
import sys

# Symbol prefixes that name the crate (or library) a sample was in, checked in order.
CRATES = [
    "authgate", "pingora_core", "pingora_proxy", "pingora_http", "pingora_pool",
    "pingora_timeout", "tokio", "http", "httparse", "bytes", "moka", "sha2", "base64",
    "hashbrown", "crossbeam", "core", "alloc", "std",
]
MIMALLOC = re.compile(r"^_?mi_")


def crate_of(dso, symbol):
    if "kernel" in dso:
        return "kernel"
    if "vdso" in dso:
        return "vdso (clock reads)"
    if "libc" in dso:
        return "libc (memcpy mostly)"
    if MIMALLOC.match(symbol):
        return "mimalloc"
    # The first crate path in the symbol: `<authgate::proxy::AuthProxy as pingora_proxy::..>`
    # is authgate's.
    for path in re.findall(r"([a-z_][a-z0-9_]*)::", symbol):
        for crate in CRATES:
            if path == crate or path.startswith(crate + "_"):
                return crate
    return "other"


def samples_by_crate(data):
    report = subprocess.run(
        ["perf", "report", "-q", "-i", data, "--stdio", "-n", "--sort", "comm,dso,sym",
         "--percent-limit", "0"],
        capture_output=True, text=True, check=False,
    ).stdout
    by_crate = collections.Counter()
    for line in report.splitlines():
        # "  1.23%  1234  authgate proxy  authgate  [.] symbol"
        m = re.match(r"\s*[\d.]+%\s+(\d+)\s+authgate proxy\s+(\S+)\s+\[.\]\s+(.*)", line)
        if m:
            by_crate[crate_of(m.group(2), m.group(3).strip())] += int(m.group(1))
    return by_crate


def main():
    out, hz, cases = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    requests = {}
    with open(f"{out}/results.jsonl") as f:
        for line in f:
            run = json.loads(line)
            if run["round"] == 1:
                requests[str(run["case"])] = run["requests"]
    ns_per_sample = 1e9 / hz
    table = {
        c: {k: n * ns_per_sample / requests[c] for k, n in samples_by_crate(f"{out}/perf/case{c}.data").items()}
        for c in cases
    }
    first = table[cases[0]]
    crates = sorted(set().union(*table.values()), key=lambda k: -first.get(k, 0))
    print("ns per request, by crate (the gateway's threads; one sampled run per case)\n")
    print("| crate | " + " | ".join(f"case {c}" for c in cases) + " |")
    print("|---|" + "---:|" * len(cases))
    print("| **total** | " + " | ".join(f"**{sum(table[c].values()):,.0f}**" for c in cases) + " |")
    for k in crates:
        row = [table[c].get(k, 0) for c in cases]
        if max(row) >= 10:
            print(f"| {k} | " + " | ".join(f"{v:,.0f}" for v in row) + " |")


if __name__ == "__main__":
    main()
