-- The summary wrk-alerts.lua and wrk-new.lua print when a run ends (loaded by both):
-- two lines for people, then one line for benches/load.sh.
function report(summary, latency, per_body)
  local secs = summary.duration / 1e6
  io.write(string.format("alerts/s: %.0f  (requests/s %.1f x %d)\n",
    summary.requests / secs * per_body, summary.requests / secs, per_body))
  io.write(string.format("latency p50 %.1f ms  p99 %.1f ms  non-2xx %d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status))
  -- Machine-readable: accepted (2xx) alerts/s, p50 ms, p99 ms, non-2xx responses, socket
  -- errors (connect, read, write, timeout).
  local e = summary.errors
  io.write(string.format("RESULT %.0f %.1f %.1f %d %d\n",
    (summary.requests - e.status) / secs * per_body,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, e.status,
    e.connect + e.read + e.write + e.timeout))
end
