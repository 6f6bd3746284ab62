#!/usr/bin/env bash
# Drill: high availability. Two sift daemons on one PostgreSQL database, in one Kafka
# consumer group (tansu), HTTP intake forwarded to the topic (kafka.forward_http), HTTP
# senders spread over both. Faults in 12 independent parts of the estate (a switch, four
# hosts, four apps each). Mid-load one daemon is killed with SIGKILL; the other takes its
# partitions over; then the killed one comes back and rejoins. Checks: every alert a
# sender had acknowledged is stored; each fault is exactly one incident holding all its
# alerts, rooted at its switch (none duplicated or split because its alerts crossed
# daemons); the take-over time (kill to the last alert sent meanwhile stored).
# Needs TEST_DATABASE_URL. `--long`: more alerts per fault.
source "$(dirname "$0")/lib.sh"
[ -n "${TEST_DATABASE_URL:-}" ] || { echo "DRILL ha skipped: TEST_DATABASE_URL is not set"; exit 0; }
TANSU=$(tansu_bin)
SIFT=$(sift_bin)
E2E_DIR=$(mktemp -d /tmp/sift-drill-ha.XXXXXX)
ROUNDS=1; [ "$LONG" = 1 ] && ROUNDS=5
DB="sift_drill_ha_$$"
psql "$TEST_DATABASE_URL" -qAtc "CREATE DATABASE $DB" >/dev/null
trap 'rc=$?; psql "$TEST_DATABASE_URL" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1; (exit $rc); cleanup' EXIT
PG="${TEST_DATABASE_URL%/*}/$DB"

KP=$(free_port); BROKER="127.0.0.1:$KP"
"$TANSU" broker --listener-url "tcp://$BROKER" --advertised-listener-url "tcp://$BROKER" \
  --storage-engine memory://tansu/ >"$E2E_DIR/tansu.log" 2>&1 &
started $!
wait_for 30 "tansu on $BROKER" bash -c "exec 3<>/dev/tcp/127.0.0.1/$KP"
"$TANSU" topic create ha-alerts --broker "tcp://$BROKER" --partitions 4 >>"$E2E_DIR/tansu.log" 2>&1
"$TANSU" topic create ha-dead-letter --broker "tcp://$BROKER" --partitions 1 >>"$E2E_DIR/tansu.log" 2>&1

# The estate: 12 parts, switch <- 4 hosts <- 4 apps each (apps depend on hosts, hosts on
# their switch). Parts are not connected: each is its own correlation domain.
python3 - "$E2E_DIR/cmdb.json" <<'PY'
import json, sys
cis, rels = [], []
for d in range(12):
    cis.append({"id": f"sw-{d}", "type": "network", "owner_group": "net"})
    for k in range(4):
        cis.append({"id": f"host-{d}-{k}", "type": "host"})
        cis.append({"id": f"app-{d}-{k}", "type": "application"})
        rels.append({"from": f"host-{d}-{k}", "to": f"sw-{d}", "type": "depends_on"})
        rels.append({"from": f"app-{d}-{k}", "to": f"host-{d}-{k}", "type": "depends_on"})
json.dump({"cis": cis, "relations": rels}, open(sys.argv[1], "w"))
PY
SIFT_STORE__URL="$PG" "$SIFT" cmdb import "$E2E_DIR/cmdb.json" >>"$E2E_DIR/import.log" 2>&1 \
  || die "cmdb import failed: $(tail -3 "$E2E_DIR/import.log")"

PA=$(free_port); PB=$(free_port)
run() {  # NAME PORT
  start_sift "$1" "$2" SIFT_STORE__URL="$PG" SIFT_INGEST__TICK_INTERVAL=1s \
    SIFT_KAFKA__BROKERS="$BROKER" SIFT_KAFKA__GROUP_ID=sift-ha \
    SIFT_KAFKA__DEAD_LETTER_TOPIC=ha-dead-letter \
    SIFT_KAFKA__TOPICS='[{"name":"ha-alerts","format":"alert_list"}]' \
    SIFT_KAFKA__FORWARD_HTTP=true \
    SIFT_KAFKA__CLIENT='{"session.timeout.ms":"6000","heartbeat.interval.ms":"1000"}'
}
run a "$PA"; PID_A=$SIFT_PID
run b "$PB"
sleep 5  # both in the group

# send PHASE PORTS...: each part's alerts of a phase, spread over the ports given;
# acknowledged alerts go to acked.txt (one fingerprint-defining CI+name per line).
send() {
  local phase=$1; shift
  python3 - "$phase" "$ROUNDS" "$E2E_DIR/acked.txt" "$@" <<'PY'
import datetime, json, sys, urllib.request
phase, rounds, out, ports = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
sent = 0
for r in range(rounds):
    for d in range(12):
        # Phase 1: the switch and the hosts; 2: the apps of one host; 3: the other apps.
        if phase == "1":
            cis = [f"sw-{d}"] + [f"host-{d}-{k}" for k in range(4)]
        elif phase == "2":
            cis = [f"app-{d}-0", f"app-{d}-1"]
        else:
            cis = [f"app-{d}-2", f"app-{d}-3"]
        for i, ci in enumerate(cis):
            name = f"Down{r}"
            body = json.dumps([{"status": "firing", "labels": {"alertname": name, "ci": ci},
                                "startsAt": now}]).encode()
            port = ports[(d + i) % len(ports)]
            for attempt in range(20):
                try:
                    resp = urllib.request.urlopen(urllib.request.Request(
                        f"http://127.0.0.1:{port}/api/v2/alerts", body,
                        {"content-type": "application/json"}), timeout=10)
                    if resp.status == 200:
                        open(out, "a").write(f"{ci} {name}\n")
                        sent += 1
                        break
                except Exception:
                    import time; time.sleep(0.5)
print(sent)
PY
}
# stored_all: every acknowledged alert is in the store (read through daemon b).
stored_all() {
  python3 - "$PB" "$E2E_DIR/acked.txt" <<'PY'
import json, sys, urllib.request
port, acked = int(sys.argv[1]), {tuple(l.split()) for l in open(sys.argv[2]) if l.strip()}
stored, cursor = set(), None
while True:
    url = f"http://127.0.0.1:{port}/api/v1/alerts?limit=1000" + (f"&cursor={cursor}" if cursor else "")
    page = json.load(urllib.request.urlopen(url))
    stored |= {(a["labels"].get("ci"), a["labels"]["alertname"]) for a in page["alerts"]}
    cursor = page.get("next_cursor")
    if not cursor:
        break
sys.exit(0 if acked <= stored else 1)
PY
}

: >"$E2E_DIR/acked.txt"
n1=$(send 1 "$PA" "$PB")
wait_for 60 "phase 1 stored" stored_all
kill -9 "$PID_A"
t_kill=$SECONDS
n2=$(send 2 "$PB")
wait_for 120 "phase 2 stored after the take-over" stored_all
takeover=$((SECONDS - t_kill))
log "daemon a killed; b stored everything sent meanwhile within ${takeover}s"
run a "$PA"
sleep 5  # a rejoins the group
n3=$(send 3 "$PA" "$PB")
wait_for 60 "phase 3 stored after the rejoin" stored_all

# One incident per part, rooted at its switch, holding all 13 alerts of each round.
verdict=$(python3 - "$PB" "$ROUNDS" <<'PY'
import collections, json, sys, urllib.request
port, rounds = int(sys.argv[1]), int(sys.argv[2])
incs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/incidents?limit=1000"))["incidents"]
by_root = collections.Counter(i["root_cause_ci"] for i in incs if i["status"] != "closed")
parts_ok = sum(1 for d in range(12) if by_root.get(f"sw-{d}") == 1)
sizes = [i["alert_count"] for i in incs if (i["root_cause_ci"] or "").startswith("sw-")]
full = sum(1 for s in sizes if s == 13 * rounds)
print(f"{len(incs)} {parts_ok} {full}")
PY
)
read -r incidents parts_ok full <<<"$verdict"
acked=$(wc -l <"$E2E_DIR/acked.txt")
ok=0
[ "$parts_ok" = 12 ] && [ "$full" = 12 ] && [ "$incidents" = 12 ] && ok=1
report ha "$ok" acked=$acked sent_per_phase=$n1/$n2/$n3 all_acked_stored=yes incidents=$incidents \
  parts_one_incident=$parts_ok/12 incidents_complete=$full/12 takeover_s=$takeover
finish
