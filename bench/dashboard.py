#!/usr/bin/env python3
"""Dashboard pages' server time with a year of usage (docs/benchmarks.md, "Dashboard pages").

Starts `creditgate demo` (its real SQLite file), adds a year of usage rollups for the demo
organization — day and hour rollups for 365 days × KEYS keys × 5 models, the rows the settle
maintains — signs in through the sign-in form, then times each page over many requests on one
keep-alive connection over loopback and prints min, p50, p99 and max in milliseconds.

Usage: CREDITGATE_BIN=target/release/creditgate .venv/bin/python bench/dashboard.py [RUNS]
(RUNS per page, default 200; `CREDITGATE_BENCH_KEYS`, default 20.)
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sdk"))
# The SDK tests' demo process and HTTP library (recent SDKs ship it as `httpx2`).
from creditgate_support import DemoProcess, httpx, sqlite_path  # noqa: E402

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
DAYS = 365
MODELS = ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1", "claude-sonnet-4-6", "claude-opus-4-5")

# One rollup row per (bucket, key, model): `?1` width, `?2` first bucket, `?3` buckets, `?4` org,
# `?5` keys (the first is `?6`, the demo's own key). Sums are deterministic and made to satisfy the table's CHECKs (credits ≥ 0).
SEED = """
WITH RECURSIVE b(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM b WHERE i < ?3 - 1),
k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < ?5 - 1),
m(n, name) AS (VALUES (0, 'claude-haiku-4-5'), (1, 'claude-sonnet-4-5'), (2, 'claude-opus-4-1'),
                      (3, 'claude-sonnet-4-6'), (4, 'claude-opus-4-5'))
INSERT OR IGNORE INTO usage_rollups
SELECT ?1, ?2 + i * ?1, ?4, CASE WHEN j = 0 THEN ?6 ELSE printf('key_bench%011d', j) END, m.name, '', '0-200k', '', '',
       10 + (i + j) % 7, 10000 + i % 997, 0, 0, 2000, 500 + j, 0, 0,
       30000000 + n * 1000, 0, 0, 600000, 7500000 + j * 1000, 0, 0,
       3000000000, 0, 0, 60000000, 750000000, 0, 0, 5400000
FROM b, k, m
"""


def seed(db: Path, org: str, keys: int, demo_key: str) -> int:
    now = datetime.now(timezone.utc)
    today = int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)
    first_day = today - (DAYS - 1) * DAY_MS
    conn = sqlite3.connect(db, timeout=30)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        with conn:
            conn.execute(SEED, (DAY_MS, first_day, DAYS, org, keys, demo_key))
            conn.execute(SEED, (HOUR_MS, first_day, DAYS * 24, org, keys, demo_key))
        (rows,) = conn.execute("SELECT COUNT(*) FROM usage_rollups WHERE org = ?", (org,)).fetchone()
    finally:
        conn.close()
    return rows


def sign_in(client: httpx.Client, info: dict) -> None:
    r = client.post(
        "/sign-in", data={"email": info["dashboard_email"], "password": info["dashboard_password"]}
    )
    assert r.status_code == 303, (r.status_code, r.text[:500])


def time_page(client: httpx.Client, path: str, runs: int) -> list[float]:
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    return sorted(out)


def pct(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(round(p / 100 * (len(sorted_ms) - 1))))]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    keys = int(os.environ.get("CREDITGATE_BENCH_KEYS", "20"))
    demo = DemoProcess()
    try:
        info = demo.info
        db = sqlite_path(info["database_url"])
        started = time.perf_counter()
        org = info["organization_id"]
        rows = seed(db, org, keys, info["api_key_id"])
        print(f"seeded {rows} rollup rows ({DAYS} days x {keys} keys x {len(MODELS)} models, day and hour)"
              f" in {time.perf_counter() - started:.1f} s")
        year_ago = (datetime.now(timezone.utc) - timedelta(days=DAYS - 1)).date()
        old = f"/usage?from={year_ago}&to={year_ago + timedelta(days=30)}"
        pages = [
            ("/ (overview)", "/"),
            ("/usage (last 30 days)", "/usage"),
            ("/usage (31 days a year ago)", old),
            ("/auto-reload", "/auto-reload"),
            ("/keys/{id}", f"/keys/{info['api_key_id']}"),
        ]
        with httpx.Client(base_url=info["base_url"], timeout=30) as client:
            sign_in(client, info)
            print(f"\n{'page':32} {'min ms':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   ({runs} runs each)")
            for name, path in pages:
                ms = time_page(client, path, runs)
                print(f"{name:32} {ms[0]:8.2f} {pct(ms, 50):8.2f} {pct(ms, 99):8.2f} {ms[-1]:8.2f}")
    finally:
        demo.stop()
        demo.cleanup_log()


if __name__ == "__main__":
    main()
