#!/usr/bin/env bash
# Load harness: the same wrk load against a release sift on SQLite, sift on PostgreSQL
# (a fresh database) and the Debian prometheus-alertmanager, one after the other, then one
# table. Every server listens on 127.0.0.1 only; every load is bounded in time.
#
#   benches/load.sh                       # 60 s per server, then 10 s of new alerts each
#   DURATION=20 NEW_DURATION=5 PG_URL=postgres://postgres@127.0.0.1:5432 benches/load.sh
#
# Load: benches/wrk-alerts.lua (POST /api/v2/alerts, 100 distinct alerts a body, rotating
# over 200k distinct alerts), wrk -t2 -c8. Each server starts empty and gets the identical
# request sequence. 60 s by default: the first pass over the 200k alerts (new alerts, the
# costliest events for a server that stores them) takes sift 5-15 s on the 2-core VM, so a
# short run measures mostly that warm-up and a long one the steady storm of re-sends; the
# second load below measures new alerts on their own. Every server also gets NEW_DURATION
# seconds of benches/wrk-new.lua, from empty: alerts never seen before, each body 100 new
# ones. Then a "bad input" run on sift/SQLite (benches/wrk-mixed.lua: every 10th body
# malformed) and an idle-connection check (clients that connect and send nothing must be
# disconnected by sift's header read timeout).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}
NEW_DURATION=${NEW_DURATION:-10}
CONNS=${CONNS:-8}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PG_DB=${PG_DB:-sift_load}
PORT=${PORT:-19400}
AM=${AM:-prometheus-alertmanager}
TARGET=${CARGO_TARGET_DIR:-target}
WORK=$(mktemp -d /tmp/sift-load.XXXXXX)
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill "$PID"; wait "$PID" 2>/dev/null || true; fi
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
  echo "127.0.0.1:$PORT is already in use; set PORT" >&2; exit 1
fi
cargo build --release --bin sift >&2
SIFT=$(realpath "$TARGET/release/sift")

wait_port() { # wait until 127.0.0.1:$PORT answers (at most 30 s)
  for _ in $(seq 300); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/$1" && return 0
    kill -0 "$PID" 2>/dev/null || { echo "server exited; log:" >&2; cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "server did not come up" >&2; exit 1
}
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$PID/status"; } # kB
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

start_sift() { # $1 = store url
  (cd "$WORK" && SIFT_SERVER__LISTEN=127.0.0.1:$PORT SIFT_STORE__URL="$1" SIFT_LOG__LEVEL=warn \
    exec "$SIFT" serve >"$WORK/server.log" 2>&1) &
  PID=$!
  wait_port healthz
}
start_am() {
  cat >"$WORK/am.yml" <<'YML'
route:
  receiver: none
receivers:
  - name: none
YML
  mkdir -p "$WORK/am-data"
  "$AM" --config.file="$WORK/am.yml" --storage.path="$WORK/am-data" \
    --web.listen-address=127.0.0.1:$PORT --cluster.listen-address= --log.level=warn \
    >"$WORK/server.log" 2>&1 &
  PID=$!
  wait_port "-/ready"
}
# run NAME SCRIPT SECONDS: drive the running server, print one row to $WORK/table-SCRIPT,
# remember alerts/s, p99 and peak RSS under NAME/SCRIPT.
declare -A RATE P99 RSS
run() {
  local out
  out=$(timeout $(($3 + 30)) wrk -t2 -c"$CONNS" -d"${3}s" --timeout 10s \
    -s "benches/$2" "http://127.0.0.1:$PORT")
  read -r _ rate p50 p99 non2xx sockerr <<<"$(grep '^RESULT' <<<"$out")"
  local rss; rss=$(hwm)
  RATE[$1/$2]=$rate; P99[$1/$2]=$p99; RSS[$1/$2]=$rss
  printf '%-22s %10s %9s %9s %8s %8s %10s\n' "$1" "$rate" "$p50" "$p99" "$non2xx" "$sockerr" "$((rss / 1024))" >>"$WORK/table-$2"
}
# each SCRIPT SECONDS: the load against the three servers, each started empty.
each() {
  printf '%-22s %10s %9s %9s %8s %8s %10s\n' server "alerts/s" "p50 ms" "p99 ms" non-2xx "sock err" "peak MiB" >"$WORK/table-$1"
  echo "== $1: sift, SQLite (synchronous=full) ==" >&2
  rm -f "$WORK"/sift.db*
  start_sift "sqlite://$WORK/sift.db"; run sift-sqlite "$1" "$2"; stop
  echo "== $1: sift, PostgreSQL ($PG_URL/$PG_DB, fresh) ==" >&2
  psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB" >&2
  start_sift "$PG_URL/$PG_DB"; run sift-postgres "$1" "$2"; stop
  echo "== $1: prometheus-alertmanager ($($AM --version 2>&1 | head -1)) ==" >&2
  rm -rf "$WORK/am-data"
  start_am; run alertmanager "$1" "$2"; stop
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
# report SCRIPT SECONDS: the table and sift's ratios to Alertmanager.
report() {
  echo
  echo "wrk -t2 -c$CONNS -d${2}s -s benches/$1; peak MiB = VmHWM after the load"
  cat "$WORK/table-$1"
  for s in sift-sqlite sift-postgres; do
    echo "$s / alertmanager: alerts/s $(ratio "${RATE[$s/$1]}" "${RATE[alertmanager/$1]}")x," \
      "p99 $(ratio "${P99[$s/$1]}" "${P99[alertmanager/$1]}")x, peak RSS $(ratio "${RSS[$s/$1]}" "${RSS[alertmanager/$1]}")x"
  done
}

each wrk-alerts.lua "$DURATION"
each wrk-new.lua "$NEW_DURATION"
report wrk-alerts.lua "$DURATION"
report wrk-new.lua "$NEW_DURATION"

echo
echo "== bad input under load: sift/SQLite, every 10th body malformed ==" >&2
rm -f "$WORK"/sift.db*
start_sift "sqlite://$WORK/sift.db"
out=$(timeout $((DURATION + 30)) wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 10s \
  -s benches/wrk-mixed.lua "http://127.0.0.1:$PORT")
read -r _ good reqs bad other p99 <<<"$(grep '^MIXED' <<<"$out")"
echo "bad input (wrk-mixed.lua): $reqs requests, good alerts/s $good, 4xx $bad (expected ~$((reqs / 10))), other $other, p99 $p99 ms, peak MiB $(( $(hwm) / 1024 ))"

echo "== idle connections: 50 clients connect and send nothing ==" >&2
python3 - "$PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
t0 = time.time()
for s in socks:
    s.settimeout(max(0.1, 60 - (time.time() - t0)))
closed, still_open = 0, 0
for s in socks:
    try:
        closed += s.recv(1) == b""
    except (socket.timeout, TimeoutError):
        still_open += 1
    except ConnectionResetError:
        closed += 1
print(f"idle connections: {closed} of 50 closed by sift after {time.time() - t0:.1f} s, {still_open} still open after 60 s")
PY
stop
