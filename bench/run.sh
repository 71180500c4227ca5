#!/usr/bin/env bash
# creditgate's gateway benchmark (PRODUCT.md §12, issue 14), in one run on one machine:
#
#   direct    wrk -> upstream                                 (Debian's nginx answering fixed
#                                                              Messages responses: JSON and SSE)
#   nginx     wrk -> plain nginx reverse proxy -> upstream    (keep-alive pool, no buffering)
#   gateway   wrk -> creditgate serve -> upstream             (full billing: every request held
#                                                              and settled in SQLite or, with
#                                                              BENCH_POSTGRES_URL, Postgres)
#   baseline  (BENCH_BASELINE_BIN) the same gateway setup from another creditgate binary
#   litellm   (BENCH_LITELLM=1) LiteLLM's proxy, no database, in its own venv -> upstream
#
# The upstream is the cheapest server at hand (nginx's `return` with a response captured once from
# the simulated upstream), so what is measured is the proxy, not the upstream.
#
# For a JSON and a streaming POST /v1/messages, each target gets the same load:
#   load   closed loop (each connection sends its next request as soon as the last answer is
#          complete) at each of BENCH_CONNECTION_LIST (default "1 16 64"): throughput, and the
#          added latency at one connection;
#   paced  16 connections, each pausing BENCH_PACED_DELAY_MS before every request (moderate load):
#          the added latency at 16 connections.
# After every gateway run the billing is checked: the credits spent in that run are a whole
# number of requests at the probe's price, equal to the requests wrk completed (plus at most one
# in flight per connection when it stopped), and no hold is left.
# Then the ledger micro-benchmark (cargo bench -p creditgate-storage) unless BENCH_SKIP_LEDGER=1.
#
# Prints a table and the §12 ratios; raw outputs go to bench-results/<UTC time>/ (git-ignored).
# Every process it starts is stopped on exit. See docs/benchmarks.md.
#
# Settings (environment): BENCH_DURATION (seconds per run, default 10), BENCH_CONNECTION_LIST
# ("1 16 64"), BENCH_PACED_CONNECTIONS (16), BENCH_THREADS (wrk threads, 2), BENCH_WARMUP
# (seconds, 2), BENCH_PACED_DELAY_MS (20), BENCH_MODEL (claude-haiku-4-5), BENCH_OUTPUT_TOKENS (64),
# BENCH_MODES ("json stream"), BENCH_SKIP_BUILD=1 (use the existing release binary), BENCH_BIN
# (another creditgate binary), BENCH_SKIP_LEDGER=1, BENCH_BASELINE_BIN, BENCH_LITELLM=1,
# BENCH_LEASE=true and BENCH_BASELINE_LEASE=true (admit against a credit lease, docs/ledger.md),
# BENCH_PERF=<connections> (perf record -g of the gateway during its load run at that many
# connections: perf-<mode>-c<connections>.data in the raw outputs; needs linux-perf;
# BENCH_PERF_CALL_GRAPH=dwarf follows calls through libc and the allocator, at a higher cost).
# BENCH_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres: the gateways' ledgers in
# Postgres databases of their own instead of SQLite files).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-10}
CONNECTION_LIST=${BENCH_CONNECTION_LIST:-1 16 64}
PACED_CONNECTIONS=${BENCH_PACED_CONNECTIONS:-16}
THREADS=${BENCH_THREADS:-2}
WARMUP=${BENCH_WARMUP:-2}
PACED_DELAY_MS=${BENCH_PACED_DELAY_MS:-20}
MODEL=${BENCH_MODEL:-claude-haiku-4-5}
OUTPUT_TOKENS=${BENCH_OUTPUT_TOKENS:-64}
MODES=${BENCH_MODES:-json stream}
ORG_CREDITS=100000000
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
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ] && [ -z "${BENCH_BIN:-}" ]; then
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
declare -A PIDS=()

stop_pid() {
  local pid=$1
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Each gateway's database: a SQLite file, or with BENCH_POSTGRES_URL (a URL whose user may create
# databases) a Postgres database of its own, created here and dropped on exit.
PG_DATABASES=()
database_of() { # name
  if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
    echo "${BENCH_POSTGRES_URL%/*}/creditgate_bench_$$_$1"
  else
    echo "sqlite://$WORK/$1.db"
  fi
}

cleanup() {
  local name
  for name in "${!PIDS[@]}"; do
    stop_pid "${PIDS[$name]}"
  done
  for name in "${PG_DATABASES[@]}"; do
    psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
  done
  cp "$WORK"/*.log "$OUT"/ 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until FILE has a line matching REGEX (or PID dies); prints the first match.
wait_line() {
  local file=$1 regex=$2 pid=$3 line
  for _ in $(seq 1 600); do
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

# 1. The upstream's answers: one JSON and one SSE response, captured once from the simulated
#    upstream (exact wire shapes and usage), then served by nginx without the simulator.
log "capturing the upstream's responses from the simulated upstream"
"$BIN" upstream-sim --listen "$HOST:0" >"$WORK/sim.out" 2>"$WORK/sim.log" &
PIDS[sim]=$!
SIM_URL=$(json_field "$(wait_line "$WORK/sim.out" '^\{' "${PIDS[sim]}")" base_url)
for mode in json stream; do
  curl -fsS -o "$WORK/upstream-$mode.body" "$SIM_URL/v1/messages" -H 'x-api-key: sim' \
    -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \
    --data-binary "@$WORK/body-$mode.json"
done
stop_pid "${PIDS[sim]}"
unset 'PIDS[sim]'
cp "$WORK"/upstream-*.body "$OUT"/

# Common nginx settings: foreground, own pid/log/temp paths, no access log.
nginx_head() { # name
  cat <<EOF
daemon off;
master_process on;
worker_processes auto;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1/body;
  proxy_temp_path $WORK/$1/proxy;
  fastcgi_temp_path $WORK/$1/fastcgi;
  uwsgi_temp_path $WORK/$1/uwsgi;
  scgi_temp_path $WORK/$1/scgi;
  keepalive_requests 1000000;
EOF
}

start_nginx() { # name
  mkdir -p "$WORK/$1"
  "$NGINX" -p "$WORK/$1" -c "$WORK/$1/nginx.conf" -e "$WORK/$1-error.log" >"$WORK/$1.out" 2>&1 &
  PIDS[$1]=$!
}

wait_http() { # url name
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null -X POST "$1" -d '{}' && return 0
    kill -0 "${PIDS[$2]}" 2>/dev/null || { cat "$WORK/$2-error.log" >&2; die "$2 exited"; }
    sleep 0.1
  done
  die "$2 did not answer at $1"
}

# 2. The upstream: /json/v1/messages and /stream/v1/messages answer the captured responses, as
#    static files (a POST to a file is a 405 to nginx; error_page turns it into the file, 200).
UP_PORT=$(free_port)
mkdir -p "$WORK/upstream/www/json/v1" "$WORK/upstream/www/stream/v1"
cp "$WORK/upstream-json.body" "$WORK/upstream/www/json/v1/messages"
cp "$WORK/upstream-stream.body" "$WORK/upstream/www/stream/v1/messages"
# nginx's workers may run as another user: they must reach the files (nothing else in $WORK).
chmod 711 "$WORK"
chmod -R a+rX "$WORK/upstream"
{
  nginx_head upstream
  cat <<EOF
  server {
    listen $HOST:$UP_PORT reuseport;
    tcp_nodelay on;
    root $WORK/upstream/www;
    add_header request-id req_bench always;
    location /json/ { default_type application/json; error_page 405 =200 \$uri; }
    location /stream/ { default_type text/event-stream; error_page 405 =200 \$uri; }
  }
}
EOF
} >"$WORK/upstream/nginx.conf"
log "starting the upstream (nginx, fixed responses) on $HOST:$UP_PORT"
start_nginx upstream
UP_URL="http://$HOST:$UP_PORT"
wait_http "$UP_URL/json/v1/messages" upstream

# 3. The plain reverse proxy in front of it.
PROXY_PORT=$(free_port)
mkdir -p "$WORK/nginx"
{
  nginx_head nginx
  cat <<EOF
  upstream up {
    server $HOST:$UP_PORT;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen $HOST:$PROXY_PORT;
    tcp_nodelay on;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
EOF
} >"$WORK/nginx/nginx.conf"
log "starting the nginx reverse proxy on $HOST:$PROXY_PORT"
start_nginx nginx
wait_http "http://$HOST:$PROXY_PORT/json/v1/messages" nginx

# 4. The gateway (and the baseline): one SQLite database each, a well-funded organization. The
#    upstream's base URL carries the mode (/json or /stream), so a gateway is started per mode,
#    on the same database.
setup_gateway() { # name binary
  local name=$1 bin=$2 db org
  db=$(database_of "$name")
  log "$name: its ledger in ${db%%:*}"
  if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
    PG_DATABASES+=("${db##*/}")
    psql "$BENCH_POSTGRES_URL" -qc "CREATE DATABASE ${db##*/}" >/dev/null
  fi
  org=$(json_field "$("$bin" --database "$db" org create --name bench --json)" id)
  "$bin" --database "$db" credits grant --org "$org" --amount "$ORG_CREDITS" --json >/dev/null
  json_field "$("$bin" --database "$db" keys create --org "$org" --name bench --json)" secret >"$WORK/$name.key"
}

start_gateway() { # name binary mode
  local name=$1 bin=$2 mode=$3 lease=${BENCH_LEASE:-false}
  [ "$name" = baseline ] && lease=${BENCH_BASELINE_LEASE:-false}
  cat >"$WORK/$name-$mode.toml" <<EOF
credit_lease = $lease
listen = "$HOST:0"
database_url = "$(database_of "$name")"
spool_path = "$WORK/$name.spool"
admin_key = "bench-admin-$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
[upstream]
base_url = "$UP_URL/$mode"
api_keys = ["bench-upstream-key"]
[billing]
credit_name = "credit"
credit_usd = "0.005"
price_multiplier = "0.70"
EOF
  "$bin" serve --config "$WORK/$name-$mode.toml" >"$WORK/$name.out" 2>"$WORK/$name-$mode.log" &
  PIDS[$name]=$!
  wait_line "$WORK/$name-$mode.log" 'listening on http://' "${PIDS[$name]}" | grep -oE 'http://[0-9.:]+' >"$WORK/$name.url"
}

# 5. LiteLLM's proxy (optional): its own venv under bench/, no database, the same upstream. It
#    refuses to start without a master key; requests carry it as x-api-key.
LITELLM_KEY="sk-bench-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
start_litellm() { # mode
  local venv=$ROOT/bench/.litellm-venv port
  if [ ! -x "$venv/bin/litellm" ]; then
    log "installing LiteLLM's proxy into bench/.litellm-venv (once)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'litellm[proxy]'
  fi
  port=$(free_port)
  cat >"$WORK/litellm-$1.yaml" <<EOF
model_list:
  - model_name: $MODEL
    litellm_params:
      model: anthropic/$MODEL
      api_base: $UP_URL/$1
      api_key: bench-upstream-key
general_settings:
  master_key: $LITELLM_KEY
EOF
  "$venv/bin/litellm" --config "$WORK/litellm-$1.yaml" --host "$HOST" --port "$port" \
    >"$WORK/litellm.out" 2>"$WORK/litellm-$1.log" &
  PIDS[litellm]=$!
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null "http://$HOST:$port/health/liveliness" && break
    kill -0 "${PIDS[litellm]}" 2>/dev/null || { cat "$WORK/litellm-$1.log" >&2; die "litellm exited"; }
    sleep 0.2
  done
  echo "http://$HOST:$port" >"$WORK/litellm.url"
  echo "$LITELLM_KEY" >"$WORK/litellm.key"
}

TARGETS=(direct nginx gateway)
setup_gateway gateway "$BIN"
if [ -n "${BENCH_BASELINE_BIN:-}" ]; then
  [ -x "$BENCH_BASELINE_BIN" ] || die "no baseline binary at $BENCH_BASELINE_BIN"
  setup_gateway baseline "$BENCH_BASELINE_BIN"
  TARGETS+=(baseline)
fi
[ "${BENCH_LITELLM:-0}" = 1 ] && TARGETS+=(litellm)

# ------------------------------------------------------------------------------- load
cpu_of() { # target: the process tree whose CPU a run of this target is charged
  case $1 in
    direct) echo "upstream=${PIDS[upstream]}" ;;
    *) echo "$1=${PIDS[$1]}" ;;
  esac
}

run_wrk() { # mode phase connections target seconds delay_ms outfile
  local mode=$1 phase=$2 conns=$3 target=$4 secs=$5 delay=$6 outfile=$7 url path key
  case $target in
    direct) url=$UP_URL path=/$mode/v1/messages key=bench ;;
    nginx) url="http://$HOST:$PROXY_PORT" path=/$mode/v1/messages key=bench ;;
    *) url=$(cat "$WORK/$target.url") path=/v1/messages key=$(cat "$WORK/$target.key") ;;
  esac
  local threads=$THREADS
  [ "$conns" -lt "$threads" ] && threads=$conns
  { echo "CPU_BEFORE $(python3 "$ROOT/bench/cpu.py" "$(cpu_of "$target")")"
    echo "LOAD_BEFORE $(cut -d' ' -f1-3 /proc/loadavg)"; } >"$outfile.cpu"
  local perf_pid=""
  if [ "$target" = gateway ] && [ "$phase" = load ] && [ "$conns" = "${BENCH_PERF:-}" ] \
    && [[ $outfile != *warmup* ]]; then
    perf record -q -F 499 --call-graph "${BENCH_PERF_CALL_GRAPH:-fp}" -p "${PIDS[gateway]}" -o "$OUT/perf-$mode-c$conns.data" \
      -- sleep "$secs" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  BENCH_BODY_FILE="$WORK/body-$mode.json" BENCH_PATH=$path BENCH_KEY=$key BENCH_DELAY_MS=$delay \
    timeout $((secs + 60)) wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 30s --latency \
    -s "$ROOT/bench/post.lua" "$url$path" >"$outfile" 2>&1 \
    || { cat "$outfile" >&2; die "wrk failed against $target"; }
  echo "CPU_AFTER $(python3 "$ROOT/bench/cpu.py" "$(cpu_of "$target")")" >>"$outfile.cpu"
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  cat "$outfile.cpu" >>"$outfile"
  rm -f "$outfile.cpu"
}

# The organization's credits (balance, pending) through the gateway's own API.
credits_of() { curl -fsS "$(cat "$WORK/$1.url")/v1/credits" -H "x-api-key: $(cat "$WORK/$1.key")"; }

# Billing check of one gateway run: the balance drop since the last check, in requests at the
# probe's price, against what wrk completed (warm-up included) plus at most one per connection.
check_billing() { # target completed connections label
  local credits
  for _ in $(seq 1 300); do
    credits=$(credits_of "$1")
    [ "$(json_field "$credits" pending)" = 0 ] && break
    sleep 0.1
  done
  python3 - "$WORK/$1.balance" "$credits" "$(cat "$WORK/unit-cost")" "$2" "$3" "$4" >>"$OUT/billing.jsonl" <<'EOF'
import json, sys
from decimal import Decimal
state, credits, unit, completed, conns, label = sys.argv[1:7]
before = Decimal(open(state).read())
after = Decimal(json.loads(credits)["balance"])
open(state, "w").write(str(after))
billed = (before - after) / Decimal(unit)
extra = billed - int(completed)
ok = billed == billed.to_integral_value() and 0 <= extra <= int(conns) and json.loads(credits)["pending"] == "0"
print(json.dumps({"run": label, "billed": str(billed.normalize()), "completed": int(completed),
                  "in_flight": str(extra.normalize()), "pending": json.loads(credits)["pending"], "ok": ok}))
EOF
}

completed_of() { sed -n 's/^BENCH_RESULT //p' "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }

# A priced request through the gateway: what one benchmark request costs (the same either mode).
probe() { # target mode
  local url key
  url=$(cat "$WORK/$1.url") key=$(cat "$WORK/$1.key")
  curl -fsS -D "$OUT/probe-$1-$2.headers" -o "$OUT/probe-$1-$2.body" "$url/v1/messages" \
    -H "x-api-key: $key" -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \
    --data-binary "@$WORK/body-$2.json"
  if [ "$2" = json ]; then
    grep -i '^x-creditgate-charged:' "$OUT/probe-$1-json.headers" | tr -d '\r' | awk '{print $2}' >"$WORK/unit-cost"
    [ -s "$WORK/unit-cost" ] || die "the gateway's JSON response had no x-creditgate-charged header"
  else
    grep -q '^: creditgate ' "$OUT/probe-$1-stream.body" || die "the gateway's stream had no closing cost comment"
    local charged
    charged=$(sed -n 's/^: creditgate //p' "$OUT/probe-$1-stream.body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["charged"])')
    # Streams cost what the same answer costs as JSON; a stream-only run prices from it.
    [ -s "$WORK/unit-cost" ] || echo "$charged" >"$WORK/unit-cost"
    [ "$charged" = "$(cat "$WORK/unit-cost")" ] || die "a stream cost $charged, the same answer as JSON $(cat "$WORK/unit-cost")"
  fi
}

measure() { # mode phase connections target delay
  local mode=$1 phase=$2 conns=$3 target=$4 delay=$5 name
  name="$mode-$phase-c$conns-$target"
  log "$mode / $phase / $conns connections / $target: ${WARMUP}s warm-up, ${DURATION}s measured"
  local completed=0
  if [ "$WARMUP" -gt 0 ]; then
    run_wrk "$mode" "$phase" "$conns" "$target" "$WARMUP" "$delay" "$OUT/warmup-$name.txt"
    completed=$(completed_of "$OUT/warmup-$name.txt")
  fi
  run_wrk "$mode" "$phase" "$conns" "$target" "$DURATION" "$delay" "$OUT/wrk-$name.txt"
  completed=$((completed + $(completed_of "$OUT/wrk-$name.txt")))
  case $target in
    gateway|baseline) check_billing "$target" "$completed" $((conns * 2)) "$name" ;;
  esac
}

for mode in $MODES; do
  for target in "${TARGETS[@]}"; do
    case $target in
      gateway) start_gateway gateway "$BIN" "$mode" ;;
      baseline) start_gateway baseline "$BENCH_BASELINE_BIN" "$mode" ;;
      litellm) start_litellm "$mode" ;;
    esac
    case $target in
      gateway|baseline)
        probe "$target" "$mode"
        json_field "$(credits_of "$target")" balance >"$WORK/$target.balance" ;;
    esac
    for conns in $CONNECTION_LIST; do
      measure "$mode" load "$conns" "$target" 0
    done
    measure "$mode" paced "$PACED_CONNECTIONS" "$target" "$PACED_DELAY_MS"
    case $target in
      gateway|baseline)
        # The gateway's own counters of the runs (how leased settlements were grouped, ...).
        curl -fsS "$(cat "$WORK/$target.url")/metrics" \
          -H "authorization: Bearer $(sed -n 's/^admin_key = "\(.*\)"$/\1/p' "$WORK/$target-$mode.toml")" \
          >"$OUT/metrics-$target-$mode.txt" || true ;;
    esac
    case $target in
      gateway|baseline|litellm) stop_pid "${PIDS[$target]}"; unset "PIDS[$target]" ;;
    esac
  done
done

python3 - "$OUT" "$STAMP" "$NGINX" "$DURATION" "$WARMUP" "$CONNECTION_LIST" "$PACED_CONNECTIONS" \
  "$PACED_DELAY_MS" "$MODEL" "$OUTPUT_TOKENS" <<'EOF'
import json, platform, subprocess, sys
out, stamp, nginx, duration, warmup, conns, paced_conns, paced_delay, model, tokens = sys.argv[1:11]
def sh(*cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return ""
    text = (r.stdout + r.stderr).strip()
    return text.splitlines()[0] if text else ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
meta = {
    "time_utc": stamp,
    "machine": {"cpus": len(open("/proc/cpuinfo").read().split("processor")) - 1, "cpu_model": cpu,
                "kernel": platform.release()},
    "settings": {"duration_s": int(duration), "warmup_s": int(warmup), "connections": [int(c) for c in conns.split()],
                 "paced_connections": int(paced_conns), "paced_delay_ms": int(paced_delay), "model": model,
                 "output_tokens": int(tokens)},
    "versions": {"nginx": sh(nginx, "-v"), "wrk": sh("wrk", "-v"),
                 "creditgate": sh("git", "describe", "--always", "--dirty")},
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
echo "creditgate benchmark $STAMP: $(nproc) CPUs, ${DURATION}s per run, connections $CONNECTION_LIST;" \
  "paced = $PACED_CONNECTIONS connections, ${PACED_DELAY_MS} ms pause per request"
python3 "$ROOT/bench/report.py" "$OUT"
echo
echo "raw outputs: bench-results/$STAMP/"
