#!/usr/bin/env bash
# Drill: kill -9 under load, on SQLite and on PostgreSQL (when TEST_DATABASE_URL is set).
# Senders post new alerts and re-sends; every alert acknowledged (2xx) must be stored
# after the crashes, with a count at least the number of acknowledged sends of it.
# `--long`: more rounds.
source "$(dirname "$0")/lib.sh"
SIFT=$(sift_bin)
E2E_DIR=$(mktemp -d /tmp/sift-drill-kill9.XXXXXX)
ROUNDS=3; [ "$LONG" = 1 ] && ROUNDS=10

drill() {  # NAME STORE_URL
  local name=$1 url=$2 port
  port=$(free_port)
  : >"$E2E_DIR/acked-$name.txt"
  for round in $(seq 1 "$ROUNDS"); do
    start_sift "$name" "$port" SIFT_STORE__URL="$url"
    # Three senders for ~3 s; each line of acked-*.txt is an acknowledged send.
    python3 - "$port" "$round" "$E2E_DIR/acked-$name.txt" <<'PY' &
import json, sys, threading, time, urllib.request
port, rnd, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
def sender(t):
    i = 0
    end = time.time() + 3
    while time.time() < end:
        # New alerts of this round and re-sends of round 1's.
        ids = [f"r{rnd}-t{t}-{i}-{k}" for k in range(20)] + [f"r1-t{t}-{i % 50}-{k}" for k in range(5)]
        body = json.dumps({"version": "4", "alerts": [{"status": "firing", "labels": {
            "alertname": "Kill9", "instance": f"{a}:9100"}, "startsAt": "2026-12-06T00:00:00Z"} for a in ids]}).encode()
        try:
            r = urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/alerts/alertmanager", body,
                {"content-type": "application/json"}), timeout=10)
            if r.status == 200:
                with lock, open(out, "a") as f:
                    f.write("\n".join(ids) + "\n")
        except Exception:
            pass
        i += 1
threads = [threading.Thread(target=sender, args=(t,)) for t in range(3)]
for th in threads: th.start()
for th in threads: th.join()
PY
    local load=$!
    sleep 1.5
    kill -9 "$SIFT_PID"
    wait "$load" 2>/dev/null || true
  done
  start_sift "$name" "$port" SIFT_STORE__URL="$url"
  # Stored alerts and counts, through the API (pages of 1000).
  python3 - "$port" "$E2E_DIR/acked-$name.txt" "$E2E_DIR/result-$name.txt" <<'PY'
import collections, json, sys, urllib.request
port, acked_file, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
acked = collections.Counter(l.strip() for l in open(acked_file) if l.strip())
stored = {}
cursor = None
while True:
    url = f"http://127.0.0.1:{port}/api/v1/alerts?limit=1000" + (f"&cursor={cursor}" if cursor else "")
    page = json.load(urllib.request.urlopen(url))
    for a in page["alerts"]:
        stored[a["labels"]["instance"].split(":")[0]] = a["count"]
    cursor = page.get("next_cursor")
    if not cursor:
        break
lost = [a for a in acked if a not in stored]
short = [a for a, n in acked.items() if a in stored and stored[a] < n]
open(out, "w").write(f"{sum(acked.values())} {len(acked)} {len(stored)} {len(lost)} {len(short)}\n")
PY
  kill "$SIFT_PID"; wait "$SIFT_PID" 2>/dev/null || true
  local sends distinct stored lost short
  read -r sends distinct stored lost short <"$E2E_DIR/result-$name.txt"
  local ok=0
  [ "$lost" = 0 ] && [ "$short" = 0 ] && [ "$distinct" -gt 0 ] && ok=1
  report "kill9-$name" "$ok" rounds=$ROUNDS acked_sends=$sends acked_alerts=$distinct stored_alerts=$stored \
    lost=$lost count_short=$short
}

drill sqlite "sqlite://$E2E_DIR/sift.db"
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  db="sift_drill_$$"
  psql "$TEST_DATABASE_URL" -qAtc "CREATE DATABASE $db" >/dev/null
  drill postgres "${TEST_DATABASE_URL%/*}/$db"
  psql "$TEST_DATABASE_URL" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
fi
finish
