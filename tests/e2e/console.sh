#!/usr/bin/env bash
# The console in a real browser: Debian's `chromium` and `chromium-driver` (installed with
# apt-get when missing); chromedriver is started here and tests/console_browser.rs drives
# headless Chromium through it (`cargo test --test console_browser -- --ignored`). Each of
# the test's waits is bounded (20 s); run it under `timeout`, as .ci/run does. A failing
# step leaves a screenshot and the page's HTML in $E2E_DIR/screenshots, and the work
# directory is kept. It kills what it started; safe to re-run.
source "$(dirname "$0")/lib.sh"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  log "installing chromium and chromium-driver"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

E2E_DIR=$(mktemp -d /tmp/sift-e2e-console.XXXXXX)
mkdir -p "$E2E_DIR/screenshots"
CP=$(free_port)
chromedriver --port="$CP" --allowed-ips=127.0.0.1 >"$E2E_DIR/chromedriver.log" 2>&1 &
started $!
wait_for 30 "chromedriver on :$CP" curl -fsS "http://127.0.0.1:$CP/status"
log "chromedriver on :$CP ($(chromium --version 2>/dev/null || echo chromium))"

cd "$(dirname "$0")/../.."
if ! CHROMEDRIVER_URL="http://127.0.0.1:$CP" CONSOLE_SCREENSHOTS="$E2E_DIR/screenshots" \
  cargo test --quiet --test console_browser -- --ignored --nocapture >"$E2E_DIR/browser-test.log" 2>&1; then
  ls -1 "$E2E_DIR/screenshots" >&2 || true
  die "the browser test failed (screenshots in $E2E_DIR/screenshots)"
fi
grep '^step ok' "$E2E_DIR/browser-test.log" || true
log "console in the browser: passed"
