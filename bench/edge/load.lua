-- wrk script for bench/edge/run.sh. Configured by environment variables:
--   LOAD_MODE    get | identify-unique | identify-fixed | identify-transient
--   LOAD_HEADER  name of the key header (default X-Environment-Key)
--   LOAD_KEY     its value
--   LOAD_TAG     makes identifiers unique across runs (identify-unique / -transient)
-- Prints one JSON line (prefixed RESULT) with requests/s, latency percentiles (ms) and errors.
local mode = os.getenv("LOAD_MODE") or "get"
local header = os.getenv("LOAD_HEADER") or "X-Environment-Key"
local key = os.getenv("LOAD_KEY") or ""
local tag = os.getenv("LOAD_TAG") or "t"

local threads = {}
local thread_no = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("tid", thread_no)
  table.insert(threads, thread)
end

local counter = 0

-- Five traits; trait_0..trait_4 are the properties the incident segments test (EQUAL
-- "value-{segment}-{condition}"): these values match segment 5 (all five conditions) for
-- every identity, and the other segments are evaluated and miss.
local function body(identifier, transient)
  local t = ""
  if transient then t = ',"transient":true' end
  return '{"identifier":"' .. identifier .. '"' .. t .. ',"traits":[' ..
    '{"trait_key":"trait_0","trait_value":"value-5-0"},' ..
    '{"trait_key":"trait_1","trait_value":"value-5-1"},' ..
    '{"trait_key":"trait_2","trait_value":"value-5-2"},' ..
    '{"trait_key":"trait_3","trait_value":"value-5-3"},' ..
    '{"trait_key":"trait_4","trait_value":"value-5-4"}]}'
end

local headers = {}
headers[header] = key

function init(args)
  if mode ~= "get" then
    headers["Content-Type"] = "application/json"
  end
end

function request()
  if mode == "get" then
    return wrk.format("GET", nil, headers, nil)
  end
  counter = counter + 1
  local identifier
  if mode == "identify-fixed" then
    identifier = "bench-fixed-user"
  else
    identifier = "u-" .. tag .. "-" .. tid .. "-" .. counter
  end
  return wrk.format("POST", nil, headers, body(identifier, mode == "identify-transient"))
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,' ..
    '"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,"bytes":%d,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000,
    summary.bytes, e.status, e.connect + e.read + e.write + e.timeout))
end
