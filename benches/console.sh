#!/usr/bin/env bash
# The console's page times at scale (a benchmark, not a test; docs/console.md, "Scale"):
# a release `sift serve` on SQLite with auth off, loaded with 10,000 open incidents (a
# distinct alert on a distinct unknown host each) and one incident of 10,000 alerts (the
# same alert on 10,000 instances); then each page is fetched RUNS times (default 5) and the
# median and worst are printed. Needs curl and python3. Kills what it started.
#   benches/console.sh            # builds the release binary when missing
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
SIFT=${SIFT:-$TARGET/release/sift}
[ -x "$SIFT" ] || cargo build --release --bin sift
DIR=$(mktemp -d /tmp/sift-bench-console.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -u SIFT_AUTH__TOKENS SIFT_STORE__URL="sqlite://$DIR/sift.db" SIFT_SERVER__LISTEN="127.0.0.1:$PORT" \
  "$SIFT" serve >"$DIR/sift.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 60); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.5; done

python3 - "$PORT" <<'PY'
import datetime, json, sys, urllib.request
port = sys.argv[1]
ts = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
def post(alerts):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/alerts/alertmanager",
                                 json.dumps({"version": "4", "alerts": alerts}).encode(),
                                 {"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=300).read()
for b in range(10):
    post([{"status": "firing", "labels": {"alertname": f"Check{n}", "host": f"h{n}", "severity": "warning"},
           "startsAt": ts, "fingerprint": f"inc-{n}"} for n in range(b * 1000, b * 1000 + 1000)])
for b in range(10):
    post([{"status": "firing", "labels": {"alertname": "NodeDiskFull", "instance": f"node{n}:9100", "severity": "critical"},
           "startsAt": ts, "fingerprint": f"big-{n}"} for n in range(b * 1000, b * 1000 + 1000)])
PY
BIG=$(curl -fsS "http://127.0.0.1:$PORT/api/v1/alerts?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["alerts"][0]["incident_id"])')
echo "loaded: 10,000 incidents of one alert, $BIG with 10,000 alerts"
printf '%-34s %10s %10s %9s\n' page median worst bytes
for p in "/" "/?status=open" "/?cursor=INC0005000" "/?q=check9" "/?service=none" "/incidents/$BIG" "/incidents/INC0000005" "/noise"; do
  times=()
  for _ in $(seq 1 "$RUNS"); do
    times+=("$(curl -fsS -o "$DIR/page" -w '%{time_total}' "http://127.0.0.1:$PORT$p")")
  done
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  median=$(echo "$sorted" | sed -n "$(( (RUNS + 1) / 2 ))p")
  worst=$(echo "$sorted" | tail -n 1)
  printf '%-34s %9.0fms %9.0fms %9s\n' "$p" "$(echo "$median*1000" | bc)" "$(echo "$worst*1000" | bc)" "$(wc -c <"$DIR/page")"
done
