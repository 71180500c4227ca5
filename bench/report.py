#!/usr/bin/env python3
"""Summarizes one run of bench/run.sh: reads the wrk outputs in a results directory, prints the
table and the §12 ratios, and writes summary.json and summary.md beside them.

Usage: bench/report.py RESULTS_DIR
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

TARGETS = ("direct", "nginx", "gateway", "baseline", "litellm")
MODES = ("json", "stream")

# §12 targets.
MIN_THROUGHPUT_RATIO = 0.5  # gateway / nginx, at 16 and 64 connections
JUDGED_CONNECTIONS = (16, 64)
MAX_ADDED_P50_MS_1 = 0.5  # gateway − direct, one connection
MAX_ADDED_P99_MS_1 = 2.0
MAX_ADDED_P99_MS_PACED = 5.0  # at 16 connections and moderate load
RUN_NAME = re.compile(r"^wrk-(json|stream)-(load|paced)-c(\d+)-(\w+)\.txt$")


def read_run(path: Path, target: str) -> dict | None:
    text = path.read_text(errors="replace").splitlines()
    tagged = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in text if line[:4] in ("CPU_", "LOAD")}
    cpu_ms = switched = None
    if "CPU_BEFORE" in tagged and "CPU_AFTER" in tagged:
        before, after = json.loads(tagged["CPU_BEFORE"]), json.loads(tagged["CPU_AFTER"])
        proc = "upstream" if target == "direct" else target
        cpu_ms = after[proc] - before[proc]
        if f"{proc}_switches" in after:
            switched = after[f"{proc}_switches"] - before[f"{proc}_switches"]
    for line in text:
        if line.startswith("BENCH_RESULT "):
            r = json.loads(line.removeprefix("BENCH_RESULT "))
            secs = r["duration_us"] / 1e6
            lat = r["latency_us"]
            return {
                "requests": r["requests"],
                "rps": r["requests"] / secs if secs else 0.0,
                "p50_ms": lat["p50"] / 1000,
                "p90_ms": lat["p90"] / 1000,
                "p99_ms": lat["p99"] / 1000,
                "p999_ms": lat.get("p999", lat["max"]) / 1000,
                "max_ms": lat["max"] / 1000,
                "errors": sum(r["errors"].values()),
                "error_detail": r["errors"],
                # CPU of the target's own process tree per request (the upstream's for direct).
                "cpu_us_per_req": cpu_ms * 1000 / r["requests"] if cpu_ms is not None and r["requests"] else None,
                # Its threads' context switches per request (each a sleep and a wake-up).
                "switches_per_req": switched / r["requests"] if switched is not None and r["requests"] else None,
                "load_before": tagged.get("LOAD_BEFORE"),
            }
    return None


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def load_runs(out: Path) -> dict:
    """runs[(mode, phase, connections)][target] = run"""
    runs: dict = {}
    for path in sorted(out.glob("wrk-*.txt")):
        m = RUN_NAME.match(path.name)
        if m:
            mode, phase, conns, target = m.group(1), m.group(2), int(m.group(3)), m.group(4)
            run = read_run(path, target)
            if run:
                runs.setdefault((mode, phase, conns), {})[target] = run
    return runs


def fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def table(runs: dict, w) -> None:
    w("| mode | phase | conns | target | req/s | p50 ms | p99 ms | p99.9 ms | max ms | CPU µs/req | switches/req | non-2xx/errors |")
    w("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (mode, phase, conns), by_target in sorted(runs.items(), key=lambda kv: (MODES.index(kv[0][0]), kv[0][1], kv[0][2])):
        for t in TARGETS:
            r = by_target.get(t)
            if r:
                w(
                    f"| {mode} | {phase} | {conns} | {t} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                    f"{r['p999_ms']:.2f} | {r['max_ms']:.1f} | {fmt(r['cpu_us_per_req'], ',.0f')} | "
                    f"{fmt(r.get('switches_per_req'), '.1f')} | {r['errors']} |"
                )


def throughput(runs: dict, w, ratios: dict) -> bool:
    ok_all = True
    w("| mode | conns | gateway/nginx req/s | gateway/direct | nginx/direct | gateway/litellm | gateway/baseline |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for (mode, phase, conns), t in sorted(runs.items(), key=lambda kv: (MODES.index(kv[0][0]), kv[0][2])):
        if phase != "load" or not all(k in t for k in ("gateway", "nginx", "direct")):
            continue
        g = t["gateway"]["rps"]
        ratio = g / t["nginx"]["rps"]
        judged = conns in JUDGED_CONNECTIONS
        ok = ratio >= MIN_THROUGHPUT_RATIO
        ok_all &= ok or not judged
        row = {"gateway_over_nginx": ratio, "gateway_over_direct": g / t["direct"]["rps"],
               "nginx_over_direct": t["nginx"]["rps"] / t["direct"]["rps"]}
        cells = [f"{ratio:.2f}" + (f" {verdict(ok)}" if judged else ""), f"{row['gateway_over_direct']:.2f}",
                 f"{row['nginx_over_direct']:.2f}"]
        for other in ("litellm", "baseline"):
            if other in t and t[other]["rps"]:
                row[f"gateway_over_{other}"] = g / t[other]["rps"]
                cells.append(f"{row[f'gateway_over_{other}']:.1f}")
            else:
                cells.append("–")
        ratios[f"{mode}-c{conns}"] = row
        w(f"| {mode} | {conns} | " + " | ".join(cells) + " |")
    return ok_all


def latency(runs: dict, w, ratios: dict) -> bool:
    ok_all = True
    w("| mode | phase | conns | added p50 | added p99 | added p99.9 | target |")
    w("|---|---|---:|---:|---:|---:|---|")
    for (mode, phase, conns), t in sorted(runs.items(), key=lambda kv: (MODES.index(kv[0][0]), kv[0][1], kv[0][2])):
        if "gateway" not in t or "direct" not in t:
            continue
        g, d = t["gateway"], t["direct"]
        added = {k: g[k] - d[k] for k in ("p50_ms", "p99_ms", "p999_ms")}
        if phase == "load" and conns == 1:
            ok = added["p50_ms"] < MAX_ADDED_P50_MS_1 and added["p99_ms"] < MAX_ADDED_P99_MS_1
            goal = f"p50 < {MAX_ADDED_P50_MS_1}, p99 < {MAX_ADDED_P99_MS_1}: {verdict(ok)}"
        elif phase == "paced":
            ok = added["p99_ms"] < MAX_ADDED_P99_MS_PACED
            goal = f"p99 < {MAX_ADDED_P99_MS_PACED}: {verdict(ok)}"
        else:
            ok, goal = True, "at saturation: not judged"
        ok_all &= ok
        ratios[f"{mode}-{phase}-c{conns}-added_ms"] = added
        w(
            f"| {mode} | {phase} | {conns} | {added['p50_ms']:+.2f} ms | {added['p99_ms']:+.2f} ms | "
            f"{added['p999_ms']:+.2f} ms | {goal} |"
        )
    return ok_all


def main() -> int:
    out = Path(sys.argv[1])
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    runs = load_runs(out)
    lines: list[str] = []
    w = lines.append
    table(runs, w)
    ratios: dict = {}
    w("")
    all_ok = throughput(runs, w, ratios)
    w("")
    all_ok &= latency(runs, w, ratios)
    loads = [float(r["load_before"].split()[0]) for t in runs.values() for r in t.values() if r.get("load_before")]
    if loads:
        w("")
        w(
            f"Machine load (1-minute average) before the runs: {min(loads):.2f} to {max(loads):.2f} "
            f"on {meta.get('machine', {}).get('cpus', '?')} CPUs (wrk and the targets themselves included)."
        )
    errors = sum(r["errors"] for t in runs.values() for r in t.values())
    if errors:
        all_ok = False
        w("")
        w(f"WARNING: {errors} requests failed or were not 2xx; see the wrk-*.txt files.")
    billing_path = out / "billing.jsonl"
    checks = [json.loads(l) for l in billing_path.read_text().splitlines()] if billing_path.exists() else []
    if checks:
        bad = [c for c in checks if not c["ok"]]
        billed = sum(float(c["billed"]) for c in checks)
        w("")
        w(
            f"Billing check after each of {len(checks)} gateway runs: charged = completed (+ at most one in "
            f"flight per connection), no hold left: {'OK' if not bad else 'MISMATCH in ' + ', '.join(c['run'] for c in bad)} "
            f"({billed:,.0f} requests billed in all)."
        )
        all_ok &= not bad
    text = "\n".join(lines)
    print(text)
    (out / "summary.md").write_text(text + "\n")
    flat = {f"{m}-{p}-c{c}": t for (m, p, c), t in runs.items()}
    (out / "summary.json").write_text(json.dumps({"meta": meta, "runs": flat, "ratios": ratios,
                                                  "billing": checks}, indent=2) + "\n")
    print(f"\n§12 targets: {'all met' if all_ok else 'NOT all met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
