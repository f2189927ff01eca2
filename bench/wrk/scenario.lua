-- wrk script for bench/run.ts. Configured by environment (read once when wrk loads the script):
--   BENCH_SCENARIO  get | list | post | health
--   BENCH_PREFIX    makes POST e-mails unique across runs
--   BENCH_RATE      0: as fast as the connections go (closed loop); N: about N requests/s in total
--   BENCH_THREADS   wrk's -t, to split BENCH_RATE between threads
--   BENCH_MAX_ID    ids for GET /api/users/{id} are uniform in 1..BENCH_MAX_ID
-- Prints one line "BENCHJSON {...}" with the counts and latency percentiles (microseconds).
local scenario = os.getenv("BENCH_SCENARIO") or "get"
local prefix = os.getenv("BENCH_PREFIX") or "bench"
local total_rate = tonumber(os.getenv("BENCH_RATE") or "0")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local max_id = tonumber(os.getenv("BENCH_MAX_ID") or "10000")

local next_tid = 1
function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

local n = 0
local json_headers = { ["Content-Type"] = "application/json" }

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end

function request()
  if scenario == "get" then
    return wrk.format("GET", "/api/users/" .. math.random(1, max_id))
  elseif scenario == "list" then
    return wrk.format("GET", "/api/users?limit=20")
  elseif scenario == "health" then
    return wrk.format("GET", "/health")
  else
    n = n + 1
    local email = prefix .. "-" .. (tid or 0) .. "-" .. n .. "@bench.example"
    return wrk.format("POST", "/api/users", json_headers, '{"name":"Bench User","email":"' .. email .. '"}')
  end
end

if total_rate > 0 then
  -- Fixed rate without wrk2: each finished request claims the next free send slot of this thread's
  -- schedule (interval = threads/rate) and waits for it. Monotonic clock through LuaJIT's FFI.
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk_id, bench_timespec *tp);
  ]]
  local ts = ffi.new("bench_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval = 1000 * nthreads / total_rate
  local next_slot = 0
  function delay()
    local now = now_ms()
    if next_slot < now then next_slot = now end
    local wait = next_slot - now
    next_slot = next_slot + interval
    return wait
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean))
end
