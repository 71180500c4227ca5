#!/usr/bin/env python3
"""Summarizes one run of bench/run.sh: reads the wrk outputs in a results directory, prints the
table and the §12 ratios, and writes summary.json and summary.md beside them.

Usage: bench/report.py RESULTS_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = ("direct", "nginx", "gateway", "baseline")
MODES = ("json", "stream")
PHASES = ("load", "paced")

# §12 targets.
MIN_THROUGHPUT_RATIO = 0.5  # gateway / nginx
MAX_ADDED_P50_MS = 1.0  # gateway - direct, at moderate load
MAX_ADDED_P99_MS = 5.0
# Issue 7: what the gateway may lose against the baseline binary (BENCH_BASELINE_BIN).
MIN_BASELINE_RATIO = 0.9


def read_run(path: Path, target: str) -> dict | None:
    if not path.exists():
        return None
    text = path.read_text(errors="replace").splitlines()
    tagged = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in text if line[:4] in ("CPU_", "LOAD")}
    cpu_ms = None
    sim_cpu_ms = None
    load = tagged.get("LOAD_BEFORE")
    if "CPU_BEFORE" in tagged and "CPU_AFTER" in tagged:
        before, after = json.loads(tagged["CPU_BEFORE"]), json.loads(tagged["CPU_AFTER"])
        proc = "sim" if target == "direct" else target
        cpu_ms = after[proc] - before[proc]
        sim_cpu_ms = after["sim"] - before["sim"]
    for line in text:
        if line.startswith("BENCH_RESULT "):
            r = json.loads(line.removeprefix("BENCH_RESULT "))
            secs = r["duration_us"] / 1e6
            errors = sum(r["errors"].values())
            return {
                "requests": r["requests"],
                "rps": r["requests"] / secs if secs else 0.0,
                "p50_ms": r["latency_us"]["p50"] / 1000,
                "p90_ms": r["latency_us"]["p90"] / 1000,
                "p99_ms": r["latency_us"]["p99"] / 1000,
                "max_ms": r["latency_us"]["max"] / 1000,
                "errors": errors,
                "error_detail": r["errors"],
                "mbytes": r["bytes"] / 1e6,
                # CPU of the target's own process tree per request (the simulator for direct).
                "cpu_ms_per_req": cpu_ms / r["requests"] if cpu_ms is not None and r["requests"] else None,
                "sim_cpu_ms_per_req": sim_cpu_ms / r["requests"] if sim_cpu_ms is not None and r["requests"] else None,
                "load_before": load,
            }
    return None


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    out = Path(sys.argv[1])
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    runs: dict[str, dict[str, dict[str, dict | None]]] = {
        m: {p: {t: read_run(out / f"wrk-{m}-{p}-{t}.txt", t) for t in TARGETS} for p in PHASES} for m in MODES
    }
    lines: list[str] = []
    w = lines.append
    w("| mode | phase | target | req/s | p50 ms | p90 ms | p99 ms | max ms | CPU µs/req | non-2xx/errors |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for m in MODES:
        for p in PHASES:
            for t in TARGETS:
                r = runs[m][p][t]
                if r is None and t == "baseline":
                    continue
                if r is None:
                    w(f"| {m} | {p} | {t} | – | – | – | – | – | – | not run |")
                    continue
                cpu = "–" if r["cpu_ms_per_req"] is None else f"{r['cpu_ms_per_req'] * 1000:,.0f}"
                w(
                    f"| {m} | {p} | {t} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
                    f"{r['p99_ms']:.2f} | {r['max_ms']:.1f} | {cpu} | {r['errors']} |"
                )
    w("")
    ratios: dict[str, dict] = {}
    all_ok = True
    w("| mode | gateway/nginx req/s (≥ 0.5) | nginx/direct req/s | added p50, paced (< 1 ms) | added p99, paced (< 5 ms) | added p50 / p99 at full load |")
    w("|---|---:|---:|---:|---:|---:|")
    for m in MODES:
        load, paced = runs[m]["load"], runs[m]["paced"]
        row: dict = {}
        cells = []
        if load["gateway"] and load["nginx"] and load["direct"]:
            row["gateway_over_nginx_rps"] = load["gateway"]["rps"] / load["nginx"]["rps"]
            row["nginx_over_direct_rps"] = load["nginx"]["rps"] / load["direct"]["rps"]
            row["added_p50_ms_load"] = load["gateway"]["p50_ms"] - load["direct"]["p50_ms"]
            row["added_p99_ms_load"] = load["gateway"]["p99_ms"] - load["direct"]["p99_ms"]
            ok = row["gateway_over_nginx_rps"] >= MIN_THROUGHPUT_RATIO
            all_ok &= ok
            cells.append(f"{row['gateway_over_nginx_rps']:.2f} {verdict(ok)}")
            cells.append(f"{row['nginx_over_direct_rps']:.2f}")
        else:
            cells += ["–", "–"]
        if paced["gateway"] and paced["direct"]:
            row["added_p50_ms_paced"] = paced["gateway"]["p50_ms"] - paced["direct"]["p50_ms"]
            row["added_p99_ms_paced"] = paced["gateway"]["p99_ms"] - paced["direct"]["p99_ms"]
            ok50 = row["added_p50_ms_paced"] < MAX_ADDED_P50_MS
            ok99 = row["added_p99_ms_paced"] < MAX_ADDED_P99_MS
            all_ok &= ok50 and ok99
            cells.append(f"{row['added_p50_ms_paced']:+.2f} ms {verdict(ok50)}")
            cells.append(f"{row['added_p99_ms_paced']:+.2f} ms {verdict(ok99)}")
        else:
            cells += ["–", "–"]
        if "added_p50_ms_load" in row:
            cells.append(f"{row['added_p50_ms_load']:+.2f} / {row['added_p99_ms_load']:+.2f} ms")
        else:
            cells.append("–")
        ratios[m] = row
        w(f"| {m} | " + " | ".join(cells) + " |")
    if any(runs[m][p]["baseline"] for m in MODES for p in PHASES):
        w("")
        w("| mode | phase | gateway/baseline req/s (≥ 0.9) | gateway − baseline p50 | gateway − baseline p99 |")
        w("|---|---|---:|---:|---:|")
        for m in MODES:
            for p in PHASES:
                g, b = runs[m][p]["gateway"], runs[m][p]["baseline"]
                if not (g and b):
                    continue
                ratio = g["rps"] / b["rps"] if b["rps"] else 0.0
                ratios[m][f"gateway_over_baseline_rps_{p}"] = ratio
                ok = p != "load" or ratio >= MIN_BASELINE_RATIO
                all_ok &= ok
                verdict_cell = f" {verdict(ok)}" if p == "load" else ""
                w(
                    f"| {m} | {p} | {ratio:.2f}{verdict_cell} | {g['p50_ms'] - b['p50_ms']:+.2f} ms | "
                    f"{g['p99_ms'] - b['p99_ms']:+.2f} ms |"
                )
    loads = [float(r["load_before"].split()[0]) for m in MODES for p in PHASES for r in runs[m][p].values()
             if r and r.get("load_before")]
    if loads:
        w("")
        w(
            f"Machine load (1-minute average) before the runs: {min(loads):.2f} to {max(loads):.2f} "
            f"on {meta.get('machine', {}).get('cpus', '?')} CPUs (wrk and the targets themselves included)."
        )
    errors = sum(r["errors"] for m in MODES for p in PHASES for r in runs[m][p].values() if r)
    if errors:
        all_ok = False
        w("")
        w(f"WARNING: {errors} requests failed or were not 2xx; see the wrk-*.txt files.")
    billing = meta.get("billing")
    if billing:
        w("")
        w(
            f"Billing check (gateway): {billing['spent']} credits spent = {billing['billed_requests']} "
            f"requests at {billing['unit_cost']} each; wrk completed {billing['completed_requests']} "
            f"(+{billing['in_flight_at_stops']} in flight when its {billing['gateway_runs']} runs "
            f"stopped): {'OK' if billing['charges_ok'] else 'MISMATCH'}."
        )
        if not billing["holds_ok"]:
            w(
                f"WARNING: {billing['pending']} credits still held 30 s after the last run (holds "
                "that were never settled or released; see docs/benchmarks.md)."
            )
        all_ok &= bool(billing["charges_ok"])
    text = "\n".join(lines)
    print(text)
    (out / "summary.md").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps({"meta": meta, "runs": runs, "ratios": ratios}, indent=2) + "\n")
    print(f"\n§12 targets: {'all met' if all_ok else 'NOT all met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
