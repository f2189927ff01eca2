-- wrk script for bench/run.ts. Configured by environment (read once when wrk loads the script):
--   BENCH_SCENARIO  get | list | post | patch | health
--   BENCH_PREFIX    makes POST e-mails unique across runs
--   BENCH_TOKEN     a bearer token sent on every request (the same one throughout, as a real client reuses it)
--   BENCH_VERSIONS  patch: a file of "id version" lines, every user's current row version; If-Match names it
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

local token = os.getenv("BENCH_TOKEN")
local versions_file = os.getenv("BENCH_VERSIONS")

local n = 0
local get_headers = {}
local json_headers = { ["Content-Type"] = "application/json" }
local patch_headers = { ["Content-Type"] = "application/merge-patch+json" }
if token and token ~= "" then
  local bearer = "Bearer " .. token
  get_headers["Authorization"] = bearer
  json_headers["Authorization"] = bearer
  patch_headers["Authorization"] = bearer
end

-- patch: the version each user is at. A PATCH that succeeds bumps it by one, so the next PATCH of
-- the same user names the next version; the thread patches only its own ids (id % threads), so no
-- other thread changes them behind its back.
local versions = {}

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  if scenario == "patch" and versions_file then
    for line in io.lines(versions_file) do
      local id, version = line:match("^(%d+) (%d+)$")
      if id then versions[tonumber(id)] = tonumber(version) end
    end
  end
end

local function own_id()
  local id = math.random(1, max_id)
  return id - (id % nthreads) + ((tid or 1) - 1) % nthreads
end

function request()
  if scenario == "get" then
    return wrk.format("GET", "/api/users/" .. math.random(1, max_id), get_headers)
  elseif scenario == "list" then
    return wrk.format("GET", "/api/users?limit=20", get_headers)
  elseif scenario == "health" then
    return wrk.format("GET", "/health")
  elseif scenario == "patch" then
    local id = own_id()
    while versions[id] == nil do id = own_id() end
    local version = versions[id]
    versions[id] = version + 1
    n = n + 1
    patch_headers["If-Match"] = '"' .. version .. '"'
    return wrk.format("PATCH", "/api/users/" .. id, patch_headers, '{"name":"Bench Patch ' .. n .. '"}')
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
