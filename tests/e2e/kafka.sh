#!/usr/bin/env bash
# End to end with a real Kafka-compatible broker (nisshi, formerly tansu; in-memory storage) and a real
# producer (crates/sift-eval/examples/kafka_tool.rs, on sift's own librdkafka): alerts in every supported format are written to four topics while
# sift consumes them; sift is killed with SIGKILL mid-stream and restarted. Afterwards
# every alert must be stored exactly once (one alert per fingerprint, one incident per
# alert group) and the poison messages must sit in the dead-letter topic.
# Every wait is bounded (.ci/run adds an outer `timeout`); kills what it started.
source "$(dirname "$0")/lib.sh"

KBROKER=$(kafka_broker_bin)
SIFT=$(sift_bin)
# Debian's kcat (librdkafka 2.0) fails the broker's ApiVersions exchange; this tool uses the
# librdkafka sift is built with. `cargo test` builds examples; build it when missing.
TOOL="$(dirname "$SIFT")/examples/kafka_tool"
if [ ! -x "$TOOL" ]; then
  (cd "$(dirname "$0")/../.." && cargo build --example kafka_tool >&2)
fi
E2E_DIR=$(mktemp -d /tmp/sift-e2e-kafka.XXXXXX)
KP=$(free_port); SP=$(free_port)
BROKER="127.0.0.1:$KP"

"$KBROKER" broker --listener-url "tcp://$BROKER" --advertised-listener-url "tcp://$BROKER" \
  --storage-engine memory://nisshi/ >"$E2E_DIR/broker.log" 2>&1 &
started $!
wait_for 30 "the broker listening on $BROKER" bash -c "exec 3<>/dev/tcp/127.0.0.1/$KP"
for t in e2e-list e2e-am e2e-pd e2e-ce; do
  "$KBROKER" topic create "$t" --broker "tcp://$BROKER" --partitions 3 >>"$E2E_DIR/broker.log" 2>&1
done
"$KBROKER" topic create e2e-dead-letter --broker "tcp://$BROKER" --partitions 1 >>"$E2E_DIR/broker.log" 2>&1
log "broker (nisshi $KAFKA_BROKER_VERSION) on $BROKER with 4 topics of 3 partitions"

# N alerts per format, each its own alertname (so each is its own incident), in files of
# one message per line for the producer.
N=${E2E_KAFKA_N:-60}
python3 - "$E2E_DIR" "$N" <<'EOF'
import json, sys, os
d, n = sys.argv[1], int(sys.argv[2])
t = "2026-11-24T10:00:00Z"
def am(i):
    return {"version": "4", "status": "firing", "receiver": "kafka", "groupLabels": {},
            "alerts": [{"status": "firing", "labels": {"alertname": f"E2eAm{i}", "instance": f"am-{i}:9100"},
                        "annotations": {}, "startsAt": t, "fingerprint": f"am-{i:04d}"}]}
def lst(i):
    return [{"status": "firing", "labels": {"alertname": f"E2eList{i}", "instance": f"list-{i}:9100"},
             "startsAt": t, "fingerprint": f"list-{i:04d}"}]
def pd(i):
    return {"routing_key": "e2e", "event_action": "trigger", "dedup_key": f"pd-{i:04d}",
            "payload": {"summary": f"E2ePd{i}", "source": f"pd-{i}", "severity": "error", "timestamp": t}}
def ce(i):
    return {"specversion": "1.0", "id": f"ce-{i}", "source": "/e2e", "type": "com.example.alert_list",
            "datacontenttype": "application/json",
            "data": [{"status": "firing", "labels": {"alertname": f"E2eCe{i}"}, "startsAt": t,
                      "fingerprint": f"ce-{i:04d}"}]}
for name, f in [("list", lst), ("am", am), ("pd", pd), ("ce", ce)]:
    for half, rng in [("a", range(0, n // 2)), ("b", range(n // 2, n))]:
        with open(os.path.join(d, f"{name}-{half}.jsonl"), "w") as out:
            for i in rng:
                out.write(json.dumps(f(i)) + "\n")
with open(os.path.join(d, "poison.txt"), "w") as out:
    out.write("not json\n{\"alerts\": \"wrong shape\"}\n")
EOF
produce() { "$TOOL" produce "$BROKER" "$1" "$2" 2>>"$E2E_DIR/producer.log"; }

TOPICS='[{"name":"e2e-list","format":"alert_list"},{"name":"e2e-am","format":"alertmanager_webhook"},{"name":"e2e-pd","format":"pagerduty"},{"name":"e2e-ce","format":"cloudevents"}]'
run_sift() {
  start_sift "sift" "$SP" \
    SIFT_STORE__URL="sqlite://$E2E_DIR/sift.db" \
    SIFT_KAFKA__BROKERS="$BROKER" SIFT_KAFKA__GROUP_ID=sift-e2e \
    SIFT_KAFKA__DEAD_LETTER_TOPIC=e2e-dead-letter SIFT_KAFKA__TOPICS="$TOPICS" \
    SIFT_KAFKA__CLIENT='{"session.timeout.ms":"6000","heartbeat.interval.ms":"1000"}'
}
stored() { curl -fsS "http://127.0.0.1:$SP/api/v1/alerts?limit=1000" | jq '.alerts | length'; }

run_sift
log "sift consuming (pid $SIFT_PID)"
for f in list am pd ce; do produce "e2e-$f" "$E2E_DIR/$f-a.jsonl"; done
produce e2e-list "$E2E_DIR/poison.txt"
some_stored() { [ "$(stored)" -gt 0 ]; }
wait_for 60 "sift storing the first half" some_stored
before_kill=$(stored)
kill -9 "$SIFT_PID"
wait "$SIFT_PID" 2>/dev/null || true
log "killed sift with SIGKILL mid-stream ($before_kill of $((2 * N)) first-half alerts stored)"
for f in list am pd ce; do produce "e2e-$f" "$E2E_DIR/$f-b.jsonl"; done
log "second half produced while sift was down; restarting"
run_sift
TOTAL=$((4 * N))
all_stored() { [ "$(stored)" -ge "$TOTAL" ]; }
wait_for 120 "all $TOTAL alerts stored" all_stored

ALERTS=$(curl -fsS "http://127.0.0.1:$SP/api/v1/alerts?limit=1000")
INCS=$(curl -fsS "http://127.0.0.1:$SP/api/v1/incidents?limit=1000")
n_alerts=$(jq '.alerts | length' <<<"$ALERTS")
n_unique=$(jq '[.alerts[].fingerprint] | unique | length' <<<"$ALERTS")
n_incidents=$(jq '.incidents | length' <<<"$INCS")
n_linked=$(jq '[.alerts[].incident_id] | unique | length' <<<"$ALERTS")
redelivered=$(jq '[.alerts[] | select(.count > 1)] | length' <<<"$ALERTS")
log "alerts: $n_alerts (unique fingerprints $n_unique), incidents: $n_incidents, alerts with count > 1 (redelivered): $redelivered"
[ "$n_alerts" -eq "$TOTAL" ] || die "expected exactly $TOTAL alerts, found $n_alerts"
[ "$n_unique" -eq "$TOTAL" ] || die "duplicate fingerprints"
[ "$n_incidents" -eq "$TOTAL" ] || die "expected $TOTAL incidents (one per alert group), found $n_incidents"
[ "$n_linked" -eq "$TOTAL" ] || die "alerts and incidents do not pair up"
for f in list am pd ce; do
  k=$(jq --arg p "$f-" '[.alerts[] | select(.fingerprint | startswith($p))] | length' <<<"$ALERTS")
  [ "$k" -eq "$N" ] || die "format $f: $k alerts, expected $N"
done

dlq=$("$TOOL" dead-letters "$BROKER" e2e-dead-letter 2>>"$E2E_DIR/producer.log" | grep -c . || true)
log "dead-letter topic: $dlq messages with a sift-error header"
[ "$dlq" -ge 2 ] || die "expected the 2 poison messages in the dead-letter topic, found $dlq"
log "PASS kafka (nisshi) end to end"
