//! The `sift` command line as a shell user meets it: the version it names, and a log that
//! stays out of the way (quiet unless `-v`, no colour codes in pipes and files).

mod common;

use std::process::Command;

use common::{Backend, Db};

/// `git rev-parse --short HEAD` of this checkout, when the sources are one.
fn checkout_commit() -> Option<String> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let same = std::fs::canonicalize(top).ok()? == std::fs::canonicalize(dir).ok()?;
    if same {
        git(&["rev-parse", "--short", "HEAD"])
    } else {
        None
    }
}

#[tokio::test]
async fn version_names_the_commit_and_the_build_date() {
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");
    let (ok, out) = db.run(&["--version"]);
    assert!(ok, "sift --version failed: {out}");
    // sift 0.1.0 (abc1234 2026-12-06)
    let line = out.trim();
    let rest = line
        .strip_prefix(&format!("sift {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("expected `sift VERSION (COMMIT DATE)`, got {line:?}"));
    let (commit, date) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("expected `COMMIT DATE` in {line:?}"));
    let expected = checkout_commit().unwrap_or_else(|| "unknown".into());
    assert_eq!(commit, expected, "commit in {line:?}");
    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .unwrap_or_else(|e| panic!("build date in {line:?}: {e}"));
    assert!(
        date <= chrono::Utc::now().date_naive(),
        "build date {date} is in the future"
    );
}

#[tokio::test]
async fn cli_commands_log_only_warnings_unless_verbose_and_never_colour_a_pipe() {
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");

    // A fresh store: `migrate` applies every migration, which the daemon logs at INFO.
    let out = db.command().arg("migrate").output().expect("run sift");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sift migrate failed: {stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("migrations applied"),
        "the answer goes to stdout"
    );
    assert_eq!(stderr, "", "no log lines without -v");

    // -v shows the INFO log; stderr is a pipe, so no colour even without NO_COLOR.
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");
    let out = db
        .command()
        .args(["migrate", "-v"])
        .env_remove("NO_COLOR")
        .output()
        .expect("run sift");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sift migrate -v failed: {stderr}");
    assert!(
        stderr.contains("INFO") && stderr.contains("applied migration"),
        "-v logs the migrations: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escape codes in a pipe: {stderr:?}"
    );

    // Warnings and errors still show without -v: a store that cannot be opened.
    let out = db
        .command()
        .arg("migrate")
        .env("SIFT_STORE__URL", "sqlite:///nonexistent-dir/x/sift.db")
        .output()
        .expect("run sift");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot open store"),
        "the error shows: {stderr}"
    );
}

#[tokio::test]
async fn a_refused_postgres_connection_is_named_as_such() {
    // Port 1 on loopback: nothing listens there, the kernel refuses at once.
    let err = common::pg_admin_connect("postgres://postgres:secret@127.0.0.1:1/postgres")
        .await
        .expect_err("nothing listens on 127.0.0.1:1");
    assert!(
        err.to_lowercase().contains("connection refused"),
        "the error says what happened: {err}"
    );
    assert!(
        err.contains("TEST_DATABASE_URL") && !err.contains("secret"),
        "it names the variable, not the password: {err}"
    );
}
