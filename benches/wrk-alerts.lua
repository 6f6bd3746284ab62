-- wrk script: POST /api/v2/alerts with 100 distinct alerts per body, rotating over
-- 200,000 distinct alerts (2,000 bodies), as Prometheus sends them. The harness runs two
-- wrk threads; the second starts half way through the rotation, so the first pass over the
-- 200k alerts is 200k new alerts (not the two threads sending the same bodies in step).
--   wrk -t2 -c8 -d20s -s benches/wrk-alerts.lua http://127.0.0.1:9400
local bodies = {}
local per_body, n_bodies = 100, 2000
local starts = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 60)
local ends = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 3600)
for b = 0, n_bodies - 1 do
  local parts = {}
  for i = 0, per_body - 1 do
    local id = b * per_body + i
    parts[#parts + 1] = string.format(
      '{"labels":{"alertname":"LoadTest%d","instance":"host-%d:9100","job":"node","severity":"warning"},' ..
      '"annotations":{"summary":"load test"},"startsAt":"%s","endsAt":"%s"}',
      id % 50, id, starts, ends)
  end
  bodies[b + 1] = "[" .. table.concat(parts, ",") .. "]"
end
local threads = 0
setup = function(thread)
  thread:set("first_body", threads * n_bodies / 2)
  threads = threads + 1
end
local counter = 0
init = function()
  counter = first_body or 0
end
request = function()
  counter = counter + 1
  return wrk.format("POST", "/api/v2/alerts", {["Content-Type"] = "application/json"},
    bodies[(counter % n_bodies) + 1])
end
-- The summary (benches/wrk-report.lua, found beside this script).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "wrk-report.lua")
done = function(summary, latency, requests)
  report(summary, latency, per_body)
end
