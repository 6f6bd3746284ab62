-- wrk script: a storm of alerts never seen before. POST /api/v2/alerts, 100 alerts a body
-- in the shape of wrk-alerts.lua, but no alert is ever sent twice (each wrk thread counts
-- in its own stride), so every event is a first sighting: a new alert row, its incident
-- membership and timeline entry for sift, a new in-memory alert for Alertmanager. This is
-- the costliest traffic for a server that stores what it acknowledges.
--   wrk -t2 -c8 -d10s -s benches/wrk-new.lua http://127.0.0.1:9400
local per_body = 100
local starts = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 60)
local ends = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 3600)
local threads = 0
setup = function(thread)
  thread:set("stride_at", threads)
  threads = threads + 1
end
local counter = 0
request = function()
  -- Bodies 0, 16, 32, … for thread 0, 1, 17, 33, … for thread 1 (up to 16 threads).
  local first = (counter * 16 + (stride_at or 0)) * per_body
  counter = counter + 1
  local parts = {}
  for i = 0, per_body - 1 do
    local id = first + i
    parts[#parts + 1] = string.format(
      '{"labels":{"alertname":"LoadTest%d","instance":"host-%d:9100","job":"node","severity":"warning"},' ..
      '"annotations":{"summary":"load test"},"startsAt":"%s","endsAt":"%s"}',
      id % 50, id, starts, ends)
  end
  return wrk.format("POST", "/api/v2/alerts", {["Content-Type"] = "application/json"},
    "[" .. table.concat(parts, ",") .. "]")
end
-- The summary (benches/wrk-report.lua, found beside this script).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "wrk-report.lua")
done = function(summary, latency, requests)
  report(summary, latency, per_body)
end
