#!/usr/bin/env bash
# Reports at scale (issue 12; docs/benchmarks.md, "Reports"): on SQLite, 10 million usage records
# over 31 days with their rollups, then the 31-day daily usage report grouped by model and key
# (and a few others) timed as the HTTP route builds it; and hold+settle throughput with the
# rollups maintained vs switched off, in the same run. Run by hand (not part of scripts/test).
#
# Settings (environment): CREDITGATE_BENCH_RECORDS (10000000), CREDITGATE_BENCH_SECONDS (5, per
# throughput run), CREDITGATE_BENCH_ROUNDS (3 runs of each kind). Needs ~6 GB free in $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --locked -p creditgate-gateway --bench reports
