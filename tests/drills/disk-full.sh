#!/usr/bin/env bash
# Drill: SQLite on a tiny tmpfs that fills under load, then grows. Every acknowledged
# alert must be stored, every refusal must be a 503 that says what failed, /readyz must
# say not ready while writes fail, and ingest must resume by itself once there is room
# (no restart). Needs root (mount). `--long`: a larger file system and more alerts.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { echo "DRILL disk-full skipped: needs root to mount a tmpfs"; exit 0; }

SIFT=$(sift_bin)
E2E_DIR=$(mktemp -d /tmp/sift-drill-disk.XXXXXX)
MNT="$E2E_DIR/fs"; mkdir -p "$MNT"
SIZE=4m; [ "$LONG" = 1 ] && SIZE=32m
mount -t tmpfs -o size=$SIZE tmpfs "$MNT"
trap 'rc=$?; umount -l "$MNT" 2>/dev/null; (exit $rc); cleanup' EXIT
PORT=$(free_port)
start_sift sift "$PORT" SIFT_STORE__URL="sqlite://$MNT/sift.db" SIFT_INGEST__TICK_INTERVAL=500ms

# Bodies of 200 new alerts each, until the disk is full.
acked=0; refused=0; bad=0; i=0
while [ $i -lt 400 ]; do
  python3 - "$i" >"$E2E_DIR/body.json" <<'PY'
import json, sys
i = int(sys.argv[1])
alerts = [{"status": "firing", "labels": {"alertname": f"Fill{i}", "instance": f"h{i}-{k}:9100",
           "job": "drill", "pad": "x" * 300}, "startsAt": "2026-12-06T00:00:00Z"} for k in range(200)]
print(json.dumps({"version": "4", "alerts": alerts}))
PY
  code=$(curl -s -o "$E2E_DIR/answer.json" -w '%{http_code}' -XPOST -H 'content-type: application/json' \
    --data-binary @"$E2E_DIR/body.json" "http://127.0.0.1:$PORT/api/v1/alerts/alertmanager" || echo 000)
  case "$code" in
    200) acked=$((acked + 200)) ;;
    503) refused=$((refused + 1))
         grep -q 'shutting down' "$E2E_DIR/answer.json" && bad=$((bad + 1))
         [ $refused -ge 3 ] && break ;;
    *) bad=$((bad + 1)); break ;;
  esac
  i=$((i + 1))
done
ready_full=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")
errors=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^sift_store_write_errors_total/ {print $2}')
log "acknowledged $acked alerts, then $refused refusals; /readyz $ready_full; write errors $errors"

mount -o remount,size=256m "$MNT"
t0=$SECONDS
wait_for 60 "ready again after the disk grew" curl -fsS "http://127.0.0.1:$PORT/readyz"
recovered=$((SECONDS - t0))
code=$(post "$PORT" "$E2E_DIR/body.json")
stored=$(python3 - "$MNT/sift.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(c.execute("select count(*) from alerts where fingerprint is not null").fetchone()[0])
PY
)
expected=$((acked + 200))
ok=0
[ "$refused" -ge 1 ] && [ "$bad" = 0 ] && [ "$ready_full" = 503 ] && [ "$code" = 200 ] \
  && [ "$stored" -ge "$expected" ] && ok=1
report disk-full "$ok" acknowledged=$acked refused=$refused wrong_answers=$bad readyz_when_full=$ready_full \
  write_errors=${errors:-0} recovered_s=$recovered after_grow=$code stored=$stored expected_at_least=$expected
finish
