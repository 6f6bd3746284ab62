#!/usr/bin/env bash
# End to end with the real Prometheus and Alertmanager (Debian packages):
# a rule that always fires; Prometheus alerts straight to sift (/api/v2/alerts, bearer
# token) and to an Alertmanager that routes to sift's webhook (basic auth). The alert must
# reach sift from both, open an incident, and resolve (alert and incident) once the rule
# stops firing. Every wait is bounded (run it under `timeout`, as .ci/run does); it kills
# what it started; safe to re-run.
source "$(dirname "$0")/lib.sh"

if ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null; then
  log "installing prometheus and prometheus-alertmanager"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null
fi

SIFT=$(sift_bin)
E2E_DIR=$(mktemp -d /tmp/sift-e2e-prom.XXXXXX)
OP=e2e-operator-token
VIEW=e2e-viewer-token
SP=$(free_port); PP=$(free_port); AP=$(free_port)

start_sift sift "$SP" \
  SIFT_STORE__URL="sqlite://$E2E_DIR/sift.db" \
  SIFT_INGEST__TICK_INTERVAL=1s \
  SIFT_AUTH__TOKENS="[{\"token\":\"$OP\",\"role\":\"operator\",\"name\":\"e2e\"},{\"token\":\"$VIEW\",\"role\":\"viewer\"}]"
log "sift on :$SP"

cat >"$E2E_DIR/alertmanager.yml" <<EOF
route:
  receiver: sift
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sift
    webhook_configs:
      - url: http://127.0.0.1:$SP/api/v1/alerts/alertmanager
        send_resolved: true
        http_config:
          basic_auth: {username: alertmanager, password: $OP}
EOF
prometheus-alertmanager --config.file="$E2E_DIR/alertmanager.yml" \
  --storage.path="$E2E_DIR/am-data" --web.listen-address="127.0.0.1:$AP" \
  --cluster.listen-address= >"$E2E_DIR/alertmanager.log" 2>&1 &
started $!
wait_for 30 "alertmanager ready" curl -fsS "http://127.0.0.1:$AP/-/ready"
log "alertmanager on :$AP"

rule() {
  cat >"$E2E_DIR/rules.yml" <<EOF
groups:
  - name: sift-e2e
    interval: 1s
    rules:
      - alert: SiftE2eDown
        expr: vector(1) $1 0
        for: 0s
        labels: {severity: critical, instance: "e2e-host:9100", job: e2e}
        annotations: {summary: "end-to-end test alert"}
EOF
}
rule ">"
cat >"$E2E_DIR/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - api_version: v2
      static_configs: [{targets: ["127.0.0.1:$SP"]}]
      authorization: {credentials: $OP}
    - api_version: v2
      static_configs: [{targets: ["127.0.0.1:$AP"]}]
EOF
prometheus --config.file="$E2E_DIR/prometheus.yml" --storage.tsdb.path="$E2E_DIR/prom-data" \
  --web.listen-address="127.0.0.1:$PP" --web.enable-lifecycle \
  --rules.alert.resend-delay=1s >"$E2E_DIR/prometheus.log" 2>&1 &
started $!
wait_for 60 "prometheus ready" curl -fsS "http://127.0.0.1:$PP/-/ready"
log "prometheus on :$PP"

received() { # received SOURCE: alert events sift counted from SOURCE
  curl -fsS "http://127.0.0.1:$SP/metrics" |
    awk -v s="source=\"$1\"" '/^sift_alerts_received_total/ && index($0, s) && !/rejected/ {n += $2} END {print n+0}'
}
from_both() { [ "$(received prometheus)" -gt 0 ] && [ "$(received alertmanager)" -gt 0 ]; }
alert_is() { # alert_is STATUS
  api "$SP" "$VIEW" "/api/v1/alerts" |
    jq -e --arg s "$1" '[.alerts[] | select(.labels.alertname == "SiftE2eDown")] | length == 1 and .[0].status == $s'
}
open_incident() {
  api "$SP" "$VIEW" "/api/v1/incidents?status=open" | jq -e '.incidents | length >= 1'
}

wait_for 60 "the alert from Prometheus and from Alertmanager" from_both
wait_for 30 "one firing SiftE2eDown alert" alert_is firing
wait_for 30 "an open incident" open_incident
INC=$(api "$SP" "$VIEW" "/api/v1/alerts" | jq -r '.alerts[] | select(.labels.alertname == "SiftE2eDown") | .incident_id')
[ -n "$INC" ] && [ "$INC" != null ] || die "the alert has no incident"
log "firing: one alert (from prometheus: $(received prometheus) events, alertmanager: $(received alertmanager)), incident $INC"

AM_BEFORE=$(received alertmanager)
rule "<"
curl -fsS -X POST "http://127.0.0.1:$PP/-/reload" >/dev/null
log "rule no longer fires; prometheus reloaded"

wait_for 60 "the alert resolved" alert_is resolved
incident_resolved() { api "$SP" "$VIEW" "/api/v1/incidents/$INC" | jq -e '.status == "resolved"'; }
wait_for 60 "incident $INC resolved" incident_resolved
am_sent_resolved() { [ "$(received alertmanager)" -gt "$AM_BEFORE" ]; }
wait_for 60 "Alertmanager's resolved notification" am_sent_resolved
log "resolved: alert and incident $INC (alertmanager events: $(received alertmanager))"
log "PASS prometheus + alertmanager end to end"
