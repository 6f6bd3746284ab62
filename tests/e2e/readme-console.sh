#!/usr/bin/env bash
# The README's `console` blocks (prerequisites, the first command, install), run as a new
# user would, so they cannot rot. tests/readme.rs runs the `sh` blocks (the walkthrough)
# inside `cargo test`; these need a release build, root and Debian's package lists, so
# .ci/run runs them here, last. Every line of every `console` block must be one this script
# knows how to check: a new line fails the run until it is handled here.
#
# What is checked, line by line:
# - `sudo apt-get install PKGS`: every package exists in Debian's lists (`apt-get -s`, which
#   installs nothing).
# - `sudo sed -i EXPR pg_hba.conf`: EXPR turns Debian 12's default IPv4 line into trust, on
#   a copy (this machine's own file is left alone).
# - `sudo systemctl restart postgresql`: not run (no systemd here; .ci/run starts
#   PostgreSQL with pg_ctlcluster).
# - `cargo run --release -- serve`: built and run on a free port with a throwaway database;
#   must answer /healthz and /readyz.
# - the test command: not run here (it is .ci/run's own step; tests/readme.rs checks the two
#   are the same).
# - `cargo install --locked --path .`: installed under a temporary --root; then
#   `sift --version` must print `sift VERSION (COMMIT DATE)`.
# The container build in the README's prose needs docker.io's base images, which this
# machine cannot reach; it is not run.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
REPO=$PWD
E2E_DIR=$(mktemp -d /tmp/sift-e2e-readme.XXXXXX)
ROOT="$E2E_DIR/root"

# The console blocks' lines, without comments and blank lines, joined where a line ends in \.
lines=$(awk '
  /^```console$/ { inside = 1; next }
  /^```/ { inside = 0; next }
  inside { print }
' README.md | sed -e 's/[[:space:]]*#.*$//' -e '/^[[:space:]]*$/d')
[ -n "$lines" ] || die "README.md has no console block"

checked=0
while IFS= read -r line; do
  cmd=${line#sudo }
  case "$cmd" in
    "apt-get install "*)
      pkgs=${cmd#apt-get install }
      if ! apt-cache show build-essential >/dev/null 2>&1; then apt-get update -qq; fi
      # shellcheck disable=SC2086 # the README's package list, split as the shell would
      apt-get -s install $pkgs >"$E2E_DIR/apt.log" 2>&1 ||
        die "README's apt-get line names a package Debian does not have: $(tail -3 "$E2E_DIR/apt.log")"
      log "ok: apt-get line ($pkgs)"
      ;;
    "sed -i "*pg_hba.conf)
      expr=$(sed -E "s/^sed -i '(.*)' [^ ]*pg_hba\.conf$/\1/" <<<"$cmd")
      printf 'host    all             all             127.0.0.1/32            scram-sha-256\n' \
        >"$E2E_DIR/pg_hba.conf"
      sed -i "$expr" "$E2E_DIR/pg_hba.conf"
      grep -qE '^host +all +all +127\.0\.0\.1/32 +trust$' "$E2E_DIR/pg_hba.conf" ||
        die "README's sed line does not turn the default pg_hba line into trust: $(cat "$E2E_DIR/pg_hba.conf")"
      log "ok: pg_hba.conf sed line"
      ;;
    "systemctl restart postgresql")
      log "not run: $line (no systemd here)"
      ;;
    "cargo run --release -- serve")
      port=$(free_port)
      log "building and running: $cmd (on :$port)"
      cargo build --release --locked --bin sift >"$E2E_DIR/build.log" 2>&1 ||
        die "release build failed: $(tail -20 "$E2E_DIR/build.log")"
      (cd "$E2E_DIR" && exec env -u RUST_LOG SIFT_SERVER__LISTEN="127.0.0.1:$port" \
        cargo run --quiet --release --manifest-path "$REPO/Cargo.toml" -- serve) \
        >"$E2E_DIR/serve.log" 2>&1 &
      started $!
      wait_for 120 "cargo run --release -- serve answering /healthz" \
        curl -fsS "http://127.0.0.1:$port/healthz"
      wait_for 30 "/readyz" curl -fsS "http://127.0.0.1:$port/readyz"
      [ -f "$E2E_DIR/sift.db" ] || die "serve did not make ./sift.db in its working directory"
      log "ok: $cmd (healthz, readyz, ./sift.db)"
      ;;
    *"cargo test --locked")
      log "not run here: the test command (.ci/run's own step)"
      ;;
    "cargo install --locked --path .")
      log "running: $cmd --root $ROOT"
      cargo install --quiet --locked --path . --root "$ROOT" >"$E2E_DIR/install.log" 2>&1 ||
        die "cargo install failed: $(tail -20 "$E2E_DIR/install.log")"
      log "ok: $cmd"
      ;;
    "sift --version")
      [ -x "$ROOT/bin/sift" ] || die "sift --version before cargo install in the README"
      v=$("$ROOT/bin/sift" --version)
      [[ "$v" =~ ^sift\ [0-9]+\.[0-9]+\.[0-9]+\ \(([0-9a-f]{7,}(-dirty)?|unknown)\ [0-9]{4}-[0-9]{2}-[0-9]{2}\)$ ]] ||
        die "sift --version printed '$v', not 'sift VERSION (COMMIT DATE)'"
      log "ok: sift --version: $v"
      ;;
    *)
      die "README console line this script does not know how to check: $line"
      ;;
  esac
  checked=$((checked + 1))
done <<<"$lines"

log "PASS readme console blocks ($checked lines)"
