#!/usr/bin/env bash
# The console in real browsers: Debian's `chromium` and `chromium-driver`, and Debian's
# `firefox-esr` (installed with apt-get when missing) with geckodriver (Mozilla's WebDriver
# server, not packaged by Debian: `cargo install geckodriver` into the tools cache, once).
# Each driver is started here and tests/console_browser.rs drives the headless browser
# through it (`cargo test --test console_browser -- --ignored`), Chromium then Firefox. Each of
# the test's waits is bounded (20 s); run it under `timeout`, as .ci/run does. A failing
# step leaves a screenshot and the page's HTML in $E2E_DIR/screenshots, and the work
# directory is kept. It kills what it started; safe to re-run.
source "$(dirname "$0")/lib.sh"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  log "installing chromium and chromium-driver"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if ! command -v firefox-esr >/dev/null; then
  log "installing firefox-esr"
  apt-cache show firefox-esr >/dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq firefox-esr >/dev/null
fi
GECKODRIVER=$(geckodriver_bin)

E2E_DIR=$(mktemp -d /tmp/sift-e2e-console.XXXXXX)
mkdir -p "$E2E_DIR/screenshots"
cd "$(dirname "$0")/../.."

# run_in BROWSER DRIVER_URL: the browser test against one WebDriver server.
run_in() {
  local browser=$1 url=$2 shots="$E2E_DIR/screenshots/$1"
  mkdir -p "$shots"
  if ! CONSOLE_BROWSER="$browser" WEBDRIVER_URL="$url" CONSOLE_SCREENSHOTS="$shots" \
    cargo test --quiet --test console_browser -- --ignored --nocapture \
    >"$E2E_DIR/browser-test-$browser.log" 2>&1; then
    ls -1 "$shots" >&2 || true
    die "the browser test failed in $browser (screenshots in $shots)"
  fi
  grep '^step ok' "$E2E_DIR/browser-test-$browser.log" || true
  log "console in $browser: passed"
}

CP=$(free_port)
chromedriver --port="$CP" --allowed-ips=127.0.0.1 >"$E2E_DIR/chromedriver.log" 2>&1 &
started $!
wait_for 30 "chromedriver on :$CP" curl -fsS "http://127.0.0.1:$CP/status"
log "chromedriver on :$CP ($(chromium --version 2>/dev/null || echo chromium))"
run_in chromium "http://127.0.0.1:$CP"

GP=$(free_port)
"$GECKODRIVER" --port "$GP" --host 127.0.0.1 >"$E2E_DIR/geckodriver.log" 2>&1 &
started $!
wait_for 30 "geckodriver on :$GP" curl -fsS "http://127.0.0.1:$GP/status"
log "geckodriver on :$GP ($(firefox-esr --version 2>/dev/null || echo firefox))"
run_in firefox "http://127.0.0.1:$GP"
