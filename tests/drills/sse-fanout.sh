#!/usr/bin/env bash
# Drill: many live readers of GET /api/v1/events while new alerts storm in (each new
# alert opens an incident: every reader is sent every event, the worst case). Every
# reader must get events; ingest with readers must keep at least a fifth of its rate
# without them (the readers here share the machine's cores with sift and the load), and
# the daemon's peak memory is reported. `--long`: 500 readers, else 100.
source "$(dirname "$0")/lib.sh"
need wrk wrk
SIFT=$(sift_bin)
E2E_DIR=$(mktemp -d /tmp/sift-drill-sse.XXXXXX)
READERS=100; [ "$LONG" = 1 ] && READERS=500
DUR=8
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
rate() {  # PORT: alerts/s of a wrk-new storm of $DUR s
  wrk -t2 -c8 -d${DUR}s -s "$ROOT/benches/wrk-new.lua" "http://127.0.0.1:$1" 2>/dev/null \
    | awk '/Requests\/sec/ {print int($2 * 100)}'
}
P1=$(free_port)
start_sift alone "$P1" SIFT_STORE__URL="sqlite://$E2E_DIR/alone.db"
alone=$(rate "$P1"); kill "$SIFT_PID"
P2=$(free_port)
start_sift readers "$P2" SIFT_STORE__URL="sqlite://$E2E_DIR/readers.db"
python3 - "$P2" "$READERS" "$E2E_DIR/readers.out" <<'PY' &
import asyncio, sys
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
got = [0] * n
async def reader(i):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
    await w.drain()
    while True:
        chunk = await r.read(65536)
        if not chunk:
            return
        got[i] += chunk.count(b"\nevent: incident.") + chunk.startswith(b"event: incident.")
async def main():
    tasks = [asyncio.create_task(reader(i)) for i in range(n)]
    await asyncio.sleep(float(sys.argv[4]) if len(sys.argv) > 4 else 16)
    open(out, "w").write(f"{sum(1 for g in got if g > 0)} {min(got)}\n")
    for t in tasks: t.cancel()
asyncio.run(main())
PY
readers_pid=$!; started $readers_pid
sleep 3
with=$(rate "$P2")
peak=$(peak_mib "$SIFT_PID")
wait "$readers_pid" 2>/dev/null || true
read -r served min_events <"$E2E_DIR/readers.out"
ratio=$(python3 -c "print(round($with / max($alone, 1), 2))")
ok=0
python3 -c "import sys; sys.exit(0 if $ratio >= 0.2 else 1)" && [ "$served" = "$READERS" ] && ok=1
report sse-fanout "$ok" readers=$READERS alerts_per_s_alone=$alone alerts_per_s_with_readers=$with \
  ratio=$ratio readers_with_events=$served peak_mib=$peak
finish
