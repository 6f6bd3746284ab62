-- wrk script: the load of wrk-alerts.lua with every 10th request a malformed body
-- (truncated JSON, wrong types, empty labels, not JSON at all, in turn). Counts responses
-- by class across threads: good bodies must get 2xx, bad ones 4xx.
--   wrk -t2 -c8 -d20s -s benches/wrk-mixed.lua http://127.0.0.1:9400
local per_body, n_bodies = 100, 2000
local bodies = {}
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
local garbage = {
  string.sub(bodies[1], 1, 5000),                          -- truncated JSON
  '[{"labels":{"alertname":7},"startsAt":"yesterday"}]',   -- wrong types
  '[{"labels":{}}]',                                       -- no labels
  string.rep("\0\255garbage", 2000),                      -- not JSON at all
}
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function() good, bad, other = 0, 0, 0 end
local counter = 0
request = function()
  counter = counter + 1
  local b
  if counter % 10 == 0 then
    b = garbage[(counter / 10) % #garbage + 1]
  else
    b = bodies[(counter % n_bodies) + 1]
  end
  return wrk.format("POST", "/api/v2/alerts", {["Content-Type"] = "application/json"}, b)
end
-- Connections answer out of order with each other, so responses are counted by class:
-- 2xx (the good bodies), 4xx (should be exactly the bad ones), anything else.
response = function(status, headers, body)
  if status >= 200 and status < 300 then good = good + 1
  elseif status >= 400 and status < 500 then bad = bad + 1
  else other = other + 1 end
end
done = function(summary, latency, requests)
  local g, b, o = 0, 0, 0
  for _, t in ipairs(threads) do
    g = g + t:get("good"); b = b + t:get("bad"); o = o + t:get("other")
  end
  local secs = summary.duration / 1e6
  io.write(string.format("requests %d: 2xx %d (%.0f good alerts/s), 4xx %d, other %d, p99 %.1f ms\n",
    summary.requests, g, g * per_body / secs, b, o, latency:percentile(99) / 1000))
  io.write(string.format("MIXED %.0f %d %d %d %.1f\n", g * per_body / secs, summary.requests, b, o,
    latency:percentile(99) / 1000))
end
