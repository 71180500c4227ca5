#!/usr/bin/env bash
# creditgate's gateway benchmark (PRODUCT.md §12), in one run on one machine:
#
#   direct   wrk -> simulated upstream                      (creditgate upstream-sim)
#   nginx    wrk -> nginx reverse proxy -> simulated upstream (Debian's nginx, keepalive, no buffering)
#   gateway  wrk -> creditgate serve -> simulated upstream  (full billing: hold + settle on SQLite)
#
# For a JSON and a streaming POST /v1/messages, each target gets the same load:
#   load   16 connections, closed loop (as fast as they go): throughput, and latency at saturation;
#   paced  16 connections, each pausing BENCH_PACED_DELAY_MS before every request (moderate load):
#          latency, from which the gateway's added latency over the direct upstream is read.
# Then the ledger micro-benchmark (cargo bench -p creditgate-storage) when it exists.
#
# Prints a table and the §12 ratios; raw outputs go to bench-results/<UTC time>/ (git-ignored).
# Every process it starts is stopped on exit. See docs/benchmarks.md.
#
# Settings (environment): BENCH_DURATION (seconds per run, default 10), BENCH_CONNECTIONS (16),
# BENCH_THREADS (wrk threads, 2), BENCH_WARMUP (seconds, 2), BENCH_PACED_DELAY_MS (20),
# BENCH_MODEL (claude-haiku-4-5), BENCH_OUTPUT_TOKENS (64), BENCH_SKIP_BUILD=1 (use the existing
# release binary), BENCH_BIN (another creditgate binary; implies nothing about building),
# BENCH_SKIP_LEDGER=1 (skip cargo bench), BENCH_BASELINE_BIN (an older creditgate binary: a fourth
# target, "baseline", the same gateway setup from that binary, measured in the same run so the
# report can say what a change cost, e.g. the settlement spool and SQLite synchronous=FULL).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
THREADS=${BENCH_THREADS:-2}
WARMUP=${BENCH_WARMUP:-2}
PACED_DELAY_MS=${BENCH_PACED_DELAY_MS:-20}
MODEL=${BENCH_MODEL:-claude-haiku-4-5}
OUTPUT_TOKENS=${BENCH_OUTPUT_TOKENS:-64}
ORG_CREDITS=10000000
HOST=127.0.0.1

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------------------- tools
need_install=()
command -v wrk >/dev/null 2>&1 || need_install+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_install+=(nginx)
if [ ${#need_install[@]} -gt 0 ]; then
  log "installing ${need_install[*]} (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_install[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v python3 >/dev/null 2>&1 || die "python3 is needed to read JSON and print the table"

# ------------------------------------------------------------------------------- build
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "cargo build --release -p creditgate"
  cargo build --release --locked -p creditgate
fi
BIN=${BENCH_BIN:-$ROOT/target/release/creditgate}
[ -x "$BIN" ] || die "no creditgate binary at $BIN"

# ------------------------------------------------------------------------------- processes
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/bench-results/$STAMP
mkdir -p "$OUT"
ln -sfn "$STAMP" "$ROOT/bench-results/latest"
WORK=$(mktemp -d -t creditgate-bench.XXXXXX)
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -INT "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # nginx's own logs are worth keeping beside the results.
  cp "$WORK"/*.log "$OUT"/ 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until FILE has a line matching REGEX (or PID dies); prints the first match.
wait_line() {
  local file=$1 regex=$2 pid=$3 line
  for _ in $(seq 1 300); do
    line=$(grep -m1 -E "$regex" "$file" 2>/dev/null || true)
    if [ -n "$line" ]; then
      printf '%s\n' "$line"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; die "process $pid exited early"; }
    sleep 0.1
  done
  cat "$file" >&2
  die "timed out waiting for /$regex/ in $file"
}

json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# 1. The simulated upstream, alone.
log "starting the simulated upstream"
"$BIN" upstream-sim --listen "$HOST:0" >"$WORK/sim.out" 2>"$WORK/sim.log" &
SIM_PID=$!
PIDS+=("$SIM_PID")
SIM_URL=$(json_field "$(wait_line "$WORK/sim.out" '^\{' "$SIM_PID")" base_url)
SIM_HOSTPORT=${SIM_URL#http://}

# 2. nginx in front of it: foreground, own pid/log/temp paths, keepalive upstream, no buffering.
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  keepalive_requests 1000000;
  upstream sim {
    server $SIM_HOSTPORT;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen $HOST:$NGINX_PORT;
    tcp_nodelay on;
    location / {
      proxy_pass http://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
EOF
log "starting nginx on $HOST:$NGINX_PORT"
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx-error.log" >"$WORK/nginx.out" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")

# 3. The gateway in front of it, with its own SQLite database and a well-funded organization.
DB_URL="sqlite://$WORK/bench.db"
ADMIN_KEY="bench-admin-$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
cli() { "$BIN" --database "$DB_URL" "$@" --json; }
ORG_ID=$(json_field "$(cli org create --name bench)" id)
cli credits grant --org "$ORG_ID" --amount "$ORG_CREDITS" >/dev/null
GATEWAY_KEY=$(json_field "$(cli keys create --org "$ORG_ID" --name bench)" secret)
cat >"$WORK/creditgate.toml" <<EOF
listen = "$HOST:0"
database_url = "$DB_URL"
admin_key = "$ADMIN_KEY"
[upstream]
base_url = "$SIM_URL"
api_keys = ["sim-bench-upstream-key"]
[billing]
credit_name = "credit"
credit_usd = "0.005"
price_multiplier = "0.70"
EOF
log "starting creditgate serve"
"$BIN" serve --config "$WORK/creditgate.toml" >"$WORK/gateway.out" 2>"$WORK/gateway.log" &
GATEWAY_PID=$!
PIDS+=("$GATEWAY_PID")
GATEWAY_URL=$(wait_line "$WORK/gateway.log" 'listening on http://' "$GATEWAY_PID" | grep -oE 'http://[0-9.:]+')

# 4. Optionally, the baseline: the same gateway setup from another binary (own database).
TARGETS=(direct nginx gateway)
declare -A KEYS=([direct]=$GATEWAY_KEY [nginx]=$GATEWAY_KEY [gateway]=$GATEWAY_KEY)
CPU_PIDS=(sim="$SIM_PID" nginx="$NGINX_PID" gateway="$GATEWAY_PID")
if [ -n "${BENCH_BASELINE_BIN:-}" ]; then
  [ -x "$BENCH_BASELINE_BIN" ] || die "no baseline binary at $BENCH_BASELINE_BIN"
  BASE_DB="sqlite://$WORK/baseline.db"
  bcli() { "$BENCH_BASELINE_BIN" --database "$BASE_DB" "$@" --json; }
  BASE_ORG=$(json_field "$(bcli org create --name bench)" id)
  bcli credits grant --org "$BASE_ORG" --amount "$ORG_CREDITS" >/dev/null
  KEYS[baseline]=$(json_field "$(bcli keys create --org "$BASE_ORG" --name bench)" secret)
  sed "s|^database_url = .*|database_url = \"$BASE_DB\"|" "$WORK/creditgate.toml" >"$WORK/baseline.toml"
  log "starting the baseline gateway ($BENCH_BASELINE_BIN)"
  "$BENCH_BASELINE_BIN" serve --config "$WORK/baseline.toml" >"$WORK/baseline.out" 2>"$WORK/baseline.log" &
  BASELINE_PID=$!
  PIDS+=("$BASELINE_PID")
  BASELINE_URL=$(wait_line "$WORK/baseline.log" 'listening on http://' "$BASELINE_PID" | grep -oE 'http://[0-9.:]+')
  TARGETS+=(baseline)
  CPU_PIDS+=(baseline="$BASELINE_PID")
fi

# Wait for nginx to answer too (through to the simulator).
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://$HOST:$NGINX_PORT/v1/models" -H 'anthropic-version: 2023-06-01' && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx-error.log" >&2; die "nginx exited"; }
  sleep 0.1
done

# ------------------------------------------------------------------------------- bodies
PROMPT="Write a short reply for the benchmark. [[sim output_tokens=$OUTPUT_TOKENS]]"
python3 - "$WORK" "$MODEL" "$PROMPT" <<'EOF'
import json, sys
work, model, prompt = sys.argv[1:4]
base = {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": prompt}]}
open(f"{work}/body-json.json", "w").write(json.dumps(base))
open(f"{work}/body-stream.json", "w").write(json.dumps(dict(base, stream=True)))
EOF
cp "$WORK"/body-*.json "$OUT"/

# One priced request per mode: what a benchmark request costs (the same usage either way).
probe() {
  curl -fsS -D "$WORK/probe-$1.headers" -o "$WORK/probe-$1.body" "$GATEWAY_URL/v1/messages" \
    -H "x-api-key: $GATEWAY_KEY" -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \
    --data-binary "@$WORK/body-$1.json"
}
probe json
probe stream
UNIT_COST=$(grep -i '^x-creditgate-charged:' "$WORK/probe-json.headers" | tr -d '\r' | awk '{print $2}')
[ -n "$UNIT_COST" ] || die "the gateway's JSON response had no x-creditgate-charged header"
grep -q '^: creditgate ' "$WORK/probe-stream.body" || die "the gateway's stream had no closing cost comment"
cp "$WORK"/probe-* "$OUT"/

# ------------------------------------------------------------------------------- load
declare -A URLS=([direct]=$SIM_URL [nginx]="http://$HOST:$NGINX_PORT" [gateway]=$GATEWAY_URL)
[ -n "${BASELINE_URL:-}" ] && URLS[baseline]=$BASELINE_URL

cpu() { python3 "$ROOT/bench/cpu.py" "${CPU_PIDS[@]}"; }

run_wrk() { # mode phase target seconds delay_ms outfile
  local mode=$1 phase=$2 target=$3 secs=$4 delay=$5 outfile=$6
  # CPU used by each process tree during the run, and the machine's load (shared cores).
  { echo "CPU_BEFORE $(cpu)"; echo "LOAD_BEFORE $(cut -d' ' -f1-3 /proc/loadavg)"; } >"$outfile.cpu"
  BENCH_BODY_FILE="$WORK/body-$mode.json" BENCH_KEY="${KEYS[$target]}" BENCH_DELAY_MS="$delay" \
    timeout $((secs + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --timeout 30s --latency \
    -s "$ROOT/bench/post.lua" "${URLS[$target]}/v1/messages" >"$outfile" 2>&1 \
    || { cat "$outfile" >&2; die "wrk failed against $target"; }
  echo "CPU_AFTER $(cpu)" >>"$outfile.cpu"
  cat "$outfile.cpu" >>"$outfile"
  rm -f "$outfile.cpu"
}

GATEWAY_COMPLETED=2 # the two probes
count_gateway() {
  local n
  n=$(sed -n 's/^BENCH_RESULT //p' "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
  GATEWAY_COMPLETED=$((GATEWAY_COMPLETED + n))
}

for mode in json stream; do
  for phase in load paced; do
    delay=0
    [ "$phase" = paced ] && delay=$PACED_DELAY_MS
    for target in "${TARGETS[@]}"; do
      log "$mode / $phase / $target: ${WARMUP}s warm-up, ${DURATION}s measured"
      if [ "$WARMUP" -gt 0 ]; then
        run_wrk "$mode" "$phase" "$target" "$WARMUP" "$delay" "$OUT/warmup-$mode-$phase-$target.txt"
        [ "$target" = gateway ] && count_gateway "$OUT/warmup-$mode-$phase-$target.txt"
      fi
      run_wrk "$mode" "$phase" "$target" "$DURATION" "$delay" "$OUT/wrk-$mode-$phase-$target.txt"
      [ "$target" = gateway ] && count_gateway "$OUT/wrk-$mode-$phase-$target.txt"
    done
  done
done

# ------------------------------------------------------------------------------- billing check
# Every gateway request was held and settled. What was spent must be a whole number of requests
# at the probe's price: the requests wrk completed, plus at most one in flight per connection when
# each run stopped (streams that wrk left mid-way are drained and charged in full). Holds still
# pending 30 s after the last run are reported apart: there should be none.
STREAM_UNIT_COST=$(sed -n 's/^: creditgate //p' "$WORK/probe-stream.body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["charged"])')
[ "$STREAM_UNIT_COST" = "$UNIT_COST" ] || die "a streamed request cost $STREAM_UNIT_COST, the same one as JSON $UNIT_COST"
for _ in $(seq 1 300); do
  CREDITS_JSON=$(curl -fsS "$GATEWAY_URL/v1/credits" -H "x-api-key: $GATEWAY_KEY")
  [ "$(json_field "$CREDITS_JSON" pending)" = 0 ] && break
  sleep 0.1
done
printf '%s\n' "$CREDITS_JSON" >"$OUT/gateway-credits.json"
GATEWAY_RUNS=$(find "$OUT" -name '*-gateway.txt' | wc -l)

python3 - "$OUT" "$CREDITS_JSON" "$UNIT_COST" "$ORG_CREDITS" "$GATEWAY_COMPLETED" "$GATEWAY_RUNS" <<EOF
import json, platform, subprocess, sys
from decimal import Decimal
out, credits, unit, granted = sys.argv[1], json.loads(sys.argv[2]), Decimal(sys.argv[3]), Decimal(sys.argv[4])
completed, runs = int(sys.argv[5]), int(sys.argv[6])
spent = granted - Decimal(credits["balance"])
billed = spent / unit
in_flight = billed - completed
charges_ok = billed == billed.to_integral_value() and 0 <= in_flight <= runs * $CONNECTIONS
holds_ok = Decimal(credits["pending"]) == 0
def sh(*cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return ""
    text = (r.stdout + r.stderr).strip()
    return text.splitlines()[0] if text else ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
meta = {
    "time_utc": "$STAMP",
    "machine": {"cpus": $(nproc), "cpu_model": cpu, "kernel": platform.release()},
    "settings": {"duration_s": $DURATION, "warmup_s": $WARMUP, "connections": $CONNECTIONS, "wrk_threads": $THREADS,
                 "paced_delay_ms": $PACED_DELAY_MS, "model": "$MODEL", "output_tokens": $OUTPUT_TOKENS},
    "versions": {"nginx": sh("$NGINX", "-v"), "wrk": sh("wrk", "-v"), "creditgate": sh("git", "describe", "--always", "--dirty")},
    "billing": {"unit_cost": str(unit), "spent": str(spent), "billed_requests": str(billed.normalize()),
                "completed_requests": completed, "in_flight_at_stops": str(in_flight.normalize()),
                "gateway_runs": runs, "pending": credits["pending"], "charges_ok": charges_ok, "holds_ok": holds_ok},
}
open(f"{out}/meta.json", "w").write(json.dumps(meta, indent=2) + "\n")
EOF

# ------------------------------------------------------------------------------- ledger
if [ "${BENCH_SKIP_LEDGER:-0}" != 1 ] && [ -d crates/creditgate-storage/benches ]; then
  log "cargo bench -p creditgate-storage (the ledger benchmark)"
  cargo bench --locked -p creditgate-storage 2>&1 | tee "$OUT/ledger-bench.txt" >&2 \
    || log "cargo bench -p creditgate-storage failed (see ledger-bench.txt)"
fi

# ------------------------------------------------------------------------------- report
echo
echo "creditgate benchmark $STAMP: $(nproc) CPUs, ${CONNECTIONS} connections, ${DURATION}s per run," \
  "paced = ${PACED_DELAY_MS} ms pause per request per connection"
python3 "$ROOT/bench/report.py" "$OUT"
echo
echo "raw outputs: bench-results/$STAMP/"
