# Shared helpers for the end-to-end scripts (sourced, not run).
# Every process a script starts is registered with `started PID` and killed on exit.
# A script's work directory, E2E_DIR, is removed when it passes and kept (its path and the
# tail of its logs printed) when it fails; E2E_KEEP=1 keeps it either way.

set -euo pipefail

E2E_PIDS=()
started() { E2E_PIDS+=("$1"); }
# The script's own shell: a background job (`cmd &`) is a subshell that inherits the EXIT
# trap, and must not kill, report or remove anything when it ends.
E2E_SHELL=$BASHPID
cleanup() {
  local rc=$?
  [ "$BASHPID" = "$E2E_SHELL" ] || exit "$rc"
  for pid in "${E2E_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${E2E_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${E2E_DIR:-}" ] && [ -d "$E2E_DIR" ]; then
    if [ "$rc" != 0 ]; then
      echo "---- logs in $E2E_DIR ----" >&2
      for f in "$E2E_DIR"/*.log; do
        [ -f "$f" ] || continue
        echo "==== $f (last 40 lines)" >&2
        tail -n 40 "$f" >&2
      done
      echo "---- failed (exit $rc): work directory kept: $E2E_DIR ----" >&2
    elif [ "${E2E_KEEP:-0}" = 1 ]; then
      echo "work directory kept (E2E_KEEP=1): $E2E_DIR" >&2
    else
      # --one-file-system: never into a file system a drill mounted there and could not
      # unmount.
      rm -rf --one-file-system "$E2E_DIR" ||
        echo "warning: could not remove $E2E_DIR" >&2
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 124' TERM INT

log() { echo "[e2e $(date -u +%H:%M:%S)] $*"; }
die() { echo "[e2e] FAIL: $*" >&2; exit 1; }

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND every 0.5 s.
wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || die "timed out after ${secs}s waiting for: $what"
    sleep 0.5
  done
}

# The sift binary: the one cargo built for the tests (debug), built when missing.
sift_bin() {
  local target="${CARGO_TARGET_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target}"
  if [ ! -x "$target/debug/sift" ]; then
    (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && cargo build --bin sift >&2)
  fi
  echo "$target/debug/sift"
}

# The Kafka-compatible broker (in-memory storage): nisshi, the project formerly named
# tansu, pinned. 0.7.0-pre.2 is the newest that builds with this machine's Rust (1.95;
# 0.7.0 and later need 1.96) and the first whose group coordinator evicts a member whose
# session expired and rebalances its partitions to the others, as Kafka does (tansu 0.6
# dropped the member but told the survivor its old assignment again, so a killed
# consumer's partitions waited for its return). No version has KIP-848
# (group.protocol=consumer): sift uses the classic protocol. Installed once into the tools
# cache outside the clone (51 minutes measured with three other builds on the 2 cores;
# tansu 0.6, of about the same size, took 8 on idle ones); a cached binary of another
# version is replaced.
KAFKA_BROKER_VERSION=0.7.0-pre.2
kafka_broker_installed() {
  "${SIFT_TOOLS:-$HOME/.cache/sift-tools}/bin/nisshi" --version 2>/dev/null |
    grep -qF "$KAFKA_BROKER_VERSION"
}
kafka_broker_bin() {
  local tools="${SIFT_TOOLS:-$HOME/.cache/sift-tools}"
  if ! kafka_broker_installed; then
    log "installing nisshi $KAFKA_BROKER_VERSION into $tools" >&2
    local t0=$SECONDS
    CARGO_TARGET_DIR="$tools/target" cargo install --quiet --locked nisshi \
      --version "=$KAFKA_BROKER_VERSION" --no-default-features --features dynostore \
      --force --root "$tools" >&2
    log "nisshi installed in $((SECONDS - t0))s" >&2
  fi
  echo "$tools/bin/nisshi"
}

# geckodriver (Mozilla's WebDriver server for Firefox; Debian does not package it),
# installed once into the tools cache outside the clone (a few minutes on 2 cores).
geckodriver_bin() {
  local tools="${SIFT_TOOLS:-$HOME/.cache/sift-tools}"
  if [ ! -x "$tools/bin/geckodriver" ]; then
    log "installing geckodriver into $tools" >&2
    local t0=$SECONDS
    CARGO_TARGET_DIR="$tools/target" cargo install --quiet geckodriver --root "$tools" >&2
    log "geckodriver installed in $((SECONDS - t0))s" >&2
  fi
  echo "$tools/bin/geckodriver"
}

# start_sift NAME PORT [ENV=VALUE...]: runs `sift serve` in $E2E_DIR, logs to NAME.log,
# waits until it answers /healthz. Sets SIFT_PID.
start_sift() {
  local name=$1 port=$2; shift 2
  env -u RUST_LOG SIFT_SERVER__LISTEN="127.0.0.1:$port" "$@" \
    "$SIFT" serve >>"$E2E_DIR/$name.log" 2>&1 &
  SIFT_PID=$!
  started "$SIFT_PID"
  wait_for 30 "sift $name on :$port" curl -fsS "http://127.0.0.1:$port/healthz"
}

# api PORT TOKEN PATH: GET a sift API path as JSON.
api() { curl -fsS -H "Authorization: Bearer $2" "http://127.0.0.1:$1$3"; }
