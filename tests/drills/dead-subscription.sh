#!/usr/bin/env bash
# Drill: a webhook receiver that is dead (nothing listens) with a backlog of events.
# sift must stay idle (CPU bounded) while the backlog waits, and ingest must not slow
# down. `--long`: a larger backlog.
source "$(dirname "$0")/lib.sh"
SIFT=$(sift_bin)
E2E_DIR=$(mktemp -d /tmp/sift-drill-dead.XXXXXX)
PORT=$(free_port); DEAD=$(free_port)
N=2000; [ "$LONG" = 1 ] && N=20000
start_sift sift "$PORT" SIFT_STORE__URL="sqlite://$E2E_DIR/sift.db" \
  SIFT_NOTIFY__ALLOW_NETWORKS='["127.0.0.1/32"]' \
  SIFT_NOTIFY__WEBHOOKS="[{\"name\":\"dead\",\"url\":\"http://127.0.0.1:$DEAD/hook\",\"max_attempts\":1000}]"
# N incidents (one unknown host each): N incident.opened events for the dead receiver.
python3 - "$N" "$E2E_DIR" <<'PY'
import json, sys
n, d = int(sys.argv[1]), sys.argv[2]
for b in range(0, n, 1000):
    alerts = [{"status": "firing", "labels": {"alertname": f"Dead{i}", "instance": f"d{i}:9100"},
               "startsAt": "2026-12-06T00:00:00Z"} for i in range(b, min(n, b + 1000))]
    open(f"{d}/backlog-{b}.json", "w").write(json.dumps({"version": "4", "alerts": alerts}))
PY
for f in "$E2E_DIR"/backlog-*.json; do [ "$(post "$PORT" "$f")" = 200 ] || die "backlog not stored"; done
sleep 3
c0=$(cpu_seconds "$SIFT_PID"); sleep 10; c1=$(cpu_seconds "$SIFT_PID")
idle_cpu=$(python3 -c "print(round($c1 - $c0, 2))")
pending=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^sift_outbox_pending/ {print $2}')
failed=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^sift_notify_deliveries_total.*outcome="failed"/ {s += $2} END {print s + 0}')
ok=0
python3 -c "import sys; sys.exit(0 if $idle_cpu < 1.0 else 1)" && [ "${pending:-0}" -ge "$N" ] && ok=1
report dead-subscription "$ok" backlog=$N pending=${pending:-0} idle_cpu_s_per_10s=$idle_cpu failed_attempts=$failed
finish
