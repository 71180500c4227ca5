-- wrk script for creditgate's benchmark: POSTs one fixed Messages API body on every connection
-- and prints one machine-readable result line when the run ends.
--
-- Environment:
--   BENCH_BODY_FILE  file holding the JSON request body (required)
--   BENCH_PATH       request path (default /v1/messages; the fixed upstream takes /json/… or
--                    /stream/…)
--   BENCH_KEY        value of the x-api-key header (the gateway's key; ignored by the others)
--   BENCH_DELAY_MS   pause before each request on a connection (0 = closed loop, as fast as
--                    possible); wrk's latency clock starts when the request is written, so the
--                    pause is not counted as latency

local body_file = assert(os.getenv("BENCH_BODY_FILE"), "BENCH_BODY_FILE is not set")
local f = assert(io.open(body_file, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/v1/messages"
wrk.body = body
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = os.getenv("BENCH_KEY") or "bench"

local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

-- Non-2xx responses are counted by wrk in summary.errors.status.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
