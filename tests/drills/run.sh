#!/usr/bin/env bash
# Runs every drill (short sizes; `--long` for the full ones) and prints their DRILL
# lines as one table at the end. Exit status: non-zero when any drill failed.
# README, "Reliability drills", has the figures of the last full run.
set -uo pipefail
cd "$(dirname "$0")"
out=$(mktemp /tmp/sift-drills.XXXXXX)
rc=0
for d in disk-full dead-subscription kill9 sse-fanout; do
  echo "== drill $d"
  start=$SECONDS
  if ! timeout 600 "./$d.sh" "$@" 2>&1 | tee -a "$out" | grep -E '^(DRILL|\[e2e)'; then :; fi
  [ "${PIPESTATUS[0]}" = 0 ] || rc=1
  echo "== drill $d took $((SECONDS - start)) s"
done
echo "---- drills ----"
grep '^DRILL' "$out"
rm -f "$out"
exit $rc
