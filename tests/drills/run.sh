#!/usr/bin/env bash
# Runs every drill (short sizes; `--long` for the full ones) and prints their DRILL
# lines as one table at the end. Exit status: non-zero when any drill failed (its log
# is printed). README, "Reliability drills", has the figures of the last full run.
set -uo pipefail
cd "$(dirname "$0")"
table=$(mktemp /tmp/sift-drills.XXXXXX)
rc=0
# ha needs the nisshi broker: the short run skips it unless tests/e2e/kafka.sh (which
# .ci/run runs first) installed it; `--long` installs it (once, about 10 minutes).
drills="disk-full pg-cut dead-subscription kill9 fuzz slow-clients sse-fanout ha"
for d in $drills; do
  log=$(mktemp /tmp/sift-drill-log.XXXXXX)
  start=$SECONDS
  timeout 600 "./$d.sh" "$@" >"$log" 2>&1
  st=$?
  grep '^DRILL' "$log" | tee -a "$table"
  if [ "$st" != 0 ]; then
    rc=1
    echo "== drill $d FAILED (exit $st); its log:"
    tail -n 60 "$log"
  fi
  echo "== drill $d: $((SECONDS - start)) s"
  rm -f "$log"
done
echo "---- drills ----"
cat "$table"
rm -f "$table"
exit $rc
