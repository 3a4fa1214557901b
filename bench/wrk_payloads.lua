-- wrk script: POST real request bodies, one JSON body per line of a file, in a cycle.
--   wrk -t1 -c64 -d10s -s bench/wrk_payloads.lua URL -- BODIES.jsonl /predict
-- Prints one line "WRKJSON {...}" with counts and latency percentiles (microseconds).

local bodies = {}
local next_body = 0
local path = "/predict"
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  path = args[2] or path
  for line in io.lines(args[1]) do
    if #line > 0 then
      bodies[#bodies + 1] = line
    end
  end
  if #bodies == 0 then
    error("no request bodies in " .. tostring(args[1]))
  end
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", path, headers, bodies[next_body])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, '
      .. '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, '
      .. '"p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.mean, latency.max))
end
