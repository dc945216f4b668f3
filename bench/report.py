#!/usr/bin/env python3
"""Renders bench/run's raw measurements as the markdown results page.

Input: a TSV of `scenario, metric, server, rep, value` lines (one per measurement) and a TSV of `scenario, load
average` lines. Output (stdout): the machine, the medians per scenario and server, the Rill/Redis ratio, the issue's
target for that line and whether this run met it. Medians, not means: one run disturbed by a compile elsewhere on
the machine should not move the table.

Where NATS JetStream ran (server `jetstream`, in the XADD and drain scenarios only) the table gets a JetStream
column and a Rill/JetStream ratio, left empty on the other lines. The targets stay Rill/Redis ratios.
"""

import argparse
import os
import platform
import statistics
import sys
from collections import OrderedDict

# Targets from issues #6 and #10, as (test on the ratio or on Rill's value, text shown).
# Ratios are Rill/Redis; for latency and memory lower is better.
TARGETS = [
    (lambda s, m: s.startswith("1. XADD") and "P16" in s and s.endswith("always"), ("ratio", ">=", 1.5)),
    (lambda s, m: s.startswith("1. XADD") and s.endswith("always"), ("ratio", ">=", 2.0)),
    (lambda s, m: s.startswith("1. XADD") and s.endswith("everysec"), ("ratio", ">=", 1.0)),
    (lambda s, m: s.startswith("2. Drain"), ("ratio", ">=", 1.5)),
    (lambda s, m: s.startswith("7. XADD 1 conns") or s.startswith("7. XADD 1000 conns"), ("ratio", ">=", 1.0)),
    (lambda s, m: s.startswith("3.") and m == "p99 ms", ("ratio", "<=", 1.0)),
    (lambda s, m: s.startswith("4. RSS"), ("ratio", "<=", 0.10)),
    (lambda s, m: s.startswith("5. Restart after SIGKILL"), ("rill", "<=", 0.5)),
    (lambda s, m: s.startswith("5. Restart"), ("rill", "<=", 2.0)),
    # Issue #14: XADD on a 3-replica shard at least 0.7× of one node's `always`.
    (lambda s, m: s.startswith("9.") and "3 replicas / 1 node" in s, ("rill", ">=", 0.7)),
]


def target_for(scenario, metric):
    for matches, target in TARGETS:
        if matches(scenario, metric):
            return target
    return None


def fmt(value):
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value < 1 else f"{value:.2f}"


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "memory": mem,
        "cpu": cpu,
        "kernel": platform.release(),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--loads", required=True)
    ap.add_argument("--mode", required=True)
    ap.add_argument("--reps", required=True)
    ap.add_argument("--elapsed", required=True)
    ap.add_argument("--rill-commit", required=True)
    ap.add_argument("--redis-version", required=True)
    ap.add_argument("--jetstream-version", help="nats-server version, when JetStream ran")
    args = ap.parse_args()

    values = OrderedDict()  # (scenario, metric) -> {server: [values]}
    with open(args.raw) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5:
                continue
            scenario, metric, server, _rep, value = parts
            try:
                number = float(value)
            except ValueError:
                print(f"report.py: unparsable value {value!r} for {scenario} / {server}", file=sys.stderr)
                continue
            values.setdefault((scenario, metric), {}).setdefault(server, []).append(number)

    def median(per_server, server):
        return statistics.median(per_server[server]) if per_server.get(server) else None

    with_js = any(per_server.get("jetstream") for per_server in values.values())
    m = machine()
    out = []
    out.append(f"# Rill vs Redis{' vs NATS JetStream' if with_js else ''} — {args.mode} run")
    out.append("")
    js_text = ""
    if with_js:
        js_text = (
            f"NATS JetStream: nats-server {args.jetstream_version or 'unknown'}, file storage, 1 replica, "
            "`sync_interval: always` in the `always` rows and the drain, its default sync (every 2 min) in the "
            "`everysec` rows; publish + PubAck stands for XADD, a shared durable pull consumer "
            "(FetchNoWait 100, acks) for the drain (see bench/README.md). "
        )
    out.append(
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}. "
        f"Rill {args.rill_commit}, Redis {args.redis_version}. {js_text}"
        f"Medians of {args.reps} run(s) per server, alternating; total {int(args.elapsed) // 60} min "
        f"{int(args.elapsed) % 60} s."
    )
    out.append("")
    if with_js:
        out.append("| Scenario | Metric | Rill | Redis | JetStream | Rill/Redis | Rill/JetStream | Target | Met |")
        out.append("|---|---|---:|---:|---:|---:|---:|---|:-:|")
    else:
        out.append("| Scenario | Metric | Rill | Redis | Rill/Redis | Target | Met |")
        out.append("|---|---|---:|---:|---:|---|:-:|")
    for (scenario, metric), per_server in values.items():
        rill = median(per_server, "rill")
        redis = median(per_server, "redis")
        ratio = rill / redis if rill is not None and redis else None
        target = target_for(scenario, metric)
        target_text, met = "", ""
        if target:
            what, op, bound = target
            subject = ratio if what == "ratio" else rill
            target_text = f"{'ratio' if what == 'ratio' else 'Rill'} {'≥' if op == '>=' else '≤'} {bound:g}"
            if what == "rill":
                target_text += " s"
            if subject is not None:
                ok = subject >= bound if op == ">=" else subject <= bound
                met = "✓" if ok else "✗"
        ratio_text = f"{ratio:.2f}×" if ratio is not None else "–"
        if with_js:
            js = median(per_server, "jetstream")
            js_ratio = rill / js if rill is not None and js else None
            js_ratio_text = f"{js_ratio:.2f}×" if js_ratio is not None else "–"
            out.append(
                f"| {scenario} | {metric} | {fmt(rill)} | {fmt(redis)} | {fmt(js)} | {ratio_text} | {js_ratio_text} "
                f"| {target_text} | {met} |"
            )
        else:
            out.append(
                f"| {scenario} | {metric} | {fmt(rill)} | {fmt(redis)} | {ratio_text} | {target_text} | {met} |"
            )
    out.append("")
    loads = []
    with open(args.loads) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2:
                loads.append(f"{parts[0]} {parts[1]}")
    if loads:
        out.append("Load average (1/5/15 min) when each scenario started: " + "; ".join(loads) + ".")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
