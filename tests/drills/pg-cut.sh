#!/usr/bin/env bash
# Drill: PostgreSQL unreachable for 10 s in the middle of a load (the connection to it
# cut by a proxy, as a network partition or a database restart would). Checks: every
# alert acknowledged (2xx) is stored, refusals are 503s that say what failed, /readyz
# says not ready during the cut, and sift recovers by itself. Needs TEST_DATABASE_URL
# naming 127.0.0.1:5432. `--long`: a 60 s cut.
source "$(dirname "$0")/lib.sh"
[ -n "${TEST_DATABASE_URL:-}" ] || { echo "DRILL pg-cut skipped: TEST_DATABASE_URL is not set"; exit 0; }
SIFT=$(sift_bin)
E2E_DIR=$(mktemp -d /tmp/sift-drill-pgcut.XXXXXX)
CUT=10; [ "$LONG" = 1 ] && CUT=60
DB="sift_drill_cut_$$"
psql "$TEST_DATABASE_URL" -qAtc "CREATE DATABASE $DB" >/dev/null
trap 'rc=$?; psql "$TEST_DATABASE_URL" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1; (exit $rc); cleanup' EXIT
PX=$(free_port)
# The proxy: forwards to 127.0.0.1:5432; SIGUSR1 cuts every connection and refuses new
# ones, SIGUSR2 serves again.
python3 - "$PX" <<'PY' &
import asyncio, signal, sys
port = int(sys.argv[1])
state = {"up": True, "conns": set()}
async def pipe(r, w):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def handle(r, w):
    if not state["up"]:
        w.close(); return
    try:
        pr, pw = await asyncio.open_connection("127.0.0.1", 5432)
    except Exception:
        w.close(); return
    state["conns"].update([w, pw])
    await asyncio.gather(pipe(r, pw), pipe(pr, w))
def cut():
    state["up"] = False
    for w in list(state["conns"]):
        w.transport.abort()
    state["conns"].clear()
def restore():
    state["up"] = True
async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, cut)
    loop.add_signal_handler(signal.SIGUSR2, restore)
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY
PROXY=$!; started $PROXY
wait_for 10 "proxy" bash -c "exec 3<>/dev/tcp/127.0.0.1/$PX"
URL=$(sed "s#127.0.0.1:5432/[^?]*#127.0.0.1:$PX/$DB#" <<<"$TEST_DATABASE_URL")
PORT=$(free_port)
start_sift sift "$PORT" SIFT_STORE__URL="$URL" SIFT_INGEST__TICK_INTERVAL=500ms

# Load for CUT + 20 s: a sender posting new alerts; acknowledged ones to acked.txt, the
# status of every answer to codes.txt (503 bodies to refusals.txt).
python3 - "$PORT" "$((CUT + 20))" "$E2E_DIR" <<'PY' &
import http.client, json, sys, time
port, secs, d = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
end, i = time.time() + secs, 0
acked, codes, refusals = open(f"{d}/acked.txt", "w"), open(f"{d}/codes.txt", "w"), open(f"{d}/refusals.txt", "w")
while time.time() < end:
    names = [f"Cut{i}-{k}" for k in range(10)]
    body = json.dumps({"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": n,
        "instance": "pg-cut:9100"}, "startsAt": "2026-12-06T00:00:00Z"} for n in names]})
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/api/v1/alerts/alertmanager", body, {"content-type": "application/json"})
        r = c.getresponse(); text = r.read().decode()
        codes.write(f"{r.status}\n")
        if r.status == 200:
            acked.write("\n".join(names) + "\n")
        else:
            refusals.write(text + "\n")
    except Exception as e:
        codes.write("000\n")
    i += 1
    time.sleep(0.05)
for f in (acked, codes, refusals): f.close()
PY
LOAD=$!; started $LOAD
sleep 5
kill -USR1 "$PROXY"; log "PostgreSQL cut for ${CUT}s"
sleep 2
ready_cut=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")
sleep $((CUT - 2))
kill -USR2 "$PROXY"; t0=$SECONDS; log "PostgreSQL back"
wait_for 60 "ready again" curl -fsS "http://127.0.0.1:$PORT/readyz"
recovered=$((SECONDS - t0))
wait "$LOAD" 2>/dev/null || true
stored_ok=$(python3 - "$PORT" "$E2E_DIR/acked.txt" <<'PY'
import json, sys, urllib.request
port = int(sys.argv[1]); acked = {l.strip() for l in open(sys.argv[2]) if l.strip()}
stored, cursor = set(), None
while True:
    url = f"http://127.0.0.1:{port}/api/v1/alerts?limit=1000" + (f"&cursor={cursor}" if cursor else "")
    page = json.load(urllib.request.urlopen(url))
    stored |= {a["labels"]["alertname"] for a in page["alerts"]}
    cursor = page.get("next_cursor")
    if not cursor:
        break
print(f"{len(acked)} {len(acked - stored)}")
PY
)
read -r acked lost <<<"$stored_ok"
n200=$(grep -c '^200$' "$E2E_DIR/codes.txt" || true)
n503=$(grep -c '^503$' "$E2E_DIR/codes.txt" || true)
other=$(grep -vc -E '^(200|503)$' "$E2E_DIR/codes.txt" || true)
vague=$(grep -c 'shutting down' "$E2E_DIR/refusals.txt" || true)
ok=0
[ "$lost" = 0 ] && [ "$other" = 0 ] && [ "$vague" = 0 ] && [ "$ready_cut" = 503 ] && [ "$n503" -ge 1 ] && ok=1
report pg-cut "$ok" cut_s=$CUT acked_alerts=$acked lost=$lost answers_200=$n200 answers_503=$n503 \
  other_answers=$other readyz_during_cut=$ready_cut recovered_s=$recovered
finish
