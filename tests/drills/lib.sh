# Shared helpers of the drills (sourced): the end-to-end helpers plus pass/fail
# accounting. Each drill prints `DRILL <name> <metric>=<value> ... PASS|FAIL` lines.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

LONG=0
[ "${1:-}" = "--long" ] && LONG=1

DRILL_FAILED=0
# report NAME PASS_CONDITION_RESULT(0/1) KEY=VALUE...
report() {
  local name=$1 ok=$2; shift 2
  local verdict=PASS
  [ "$ok" = 1 ] || { verdict=FAIL; DRILL_FAILED=1; }
  echo "DRILL $name $* $verdict"
}
finish() { [ "$DRILL_FAILED" = 0 ] || die "a drill failed"; }

# CPU seconds (user + system) a process has used so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

# Peak resident MiB of a process.
peak_mib() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$1/status"; }

# post PORT BODY_FILE: POST alerts (Alertmanager webhook), prints the HTTP status.
post() {
  curl -s -o /dev/null -w '%{http_code}' -XPOST -H 'content-type: application/json' \
    --data-binary @"$2" "http://127.0.0.1:$1/api/v1/alerts/alertmanager" || echo 000
}

need() {
  if ! command -v "$1" >/dev/null; then
    log "installing $2"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
}
