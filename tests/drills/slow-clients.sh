#!/usr/bin/env bash
# Drill: idle connections and slowloris senders (headers a byte every 2 s) hold no
# resources for long: each is closed once `server.header_read_timeout` (10 s) passes,
# file descriptors come back, and ingest goes on meanwhile. `--long`: 2,000 idle and
# 300 slow, else 300 and 100.
source "$(dirname "$0")/lib.sh"
SIFT=$(sift_bin)
E2E_DIR=$(mktemp -d /tmp/sift-drill-slow.XXXXXX)
IDLE=300; SLOW=100; [ "$LONG" = 1 ] && { IDLE=2000; SLOW=300; }
ulimit -n 8192 2>/dev/null || true
PORT=$(free_port)
start_sift sift "$PORT" SIFT_STORE__URL="sqlite://$E2E_DIR/sift.db"
fds_before=$(ls /proc/"$SIFT_PID"/fd | wc -l)
echo '{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"Meanwhile","instance":"x:1"},"startsAt":"2026-12-06T00:00:00Z"}]}' >"$E2E_DIR/one.json"
python3 - "$PORT" "$IDLE" "$SLOW" >"$E2E_DIR/result.txt" <<'PY' &
import socket, sys, time, threading
port, n_idle, n_slow = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n_idle + n_slow):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(0.01)
    socks.append(s)
start = time.time()
closed_at = [None] * len(socks)
header = b"POST /api/v1/alerts/alertmanager HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
sent = [0] * len(socks)
while time.time() - start < 40 and any(c is None for c in closed_at):
    for i, s in enumerate(socks):
        if closed_at[i] is not None:
            continue
        try:
            if i >= n_idle and sent[i] < len(header) and int(time.time() - start) // 2 >= sent[i]:
                s.send(header[sent[i]:sent[i] + 1]); sent[i] += 1
            if s.recv(4096) == b"":
                closed_at[i] = time.time() - start
        except socket.timeout:
            pass
        except OSError:
            closed_at[i] = time.time() - start
    time.sleep(0.2)
open_left = sum(1 for c in closed_at if c is None)
latest = max((c for c in closed_at if c is not None), default=0)
print(f"{open_left} {latest:.1f}")
PY
clients=$!
probe_ok=1
for _ in 1 2 3 4 5; do
  sleep 2
  [ "$(post "$PORT" "$E2E_DIR/one.json")" = 200 ] || probe_ok=0
done
wait "$clients"
read -r open_left latest <"$E2E_DIR/result.txt"
fds_after=$(ls /proc/"$SIFT_PID"/fd | wc -l)
ok=0
[ "$open_left" = 0 ] && [ "$probe_ok" = 1 ] && [ "$fds_after" -le $((fds_before + 5)) ] && ok=1
report slow-clients "$ok" idle=$IDLE slow=$SLOW still_open_after_40s=$open_left last_closed_s=$latest \
  ingest_meanwhile=$([ "$probe_ok" = 1 ] && echo ok || echo failed) fds_before=$fds_before fds_after=$fds_after
finish
