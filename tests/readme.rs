//! The README's commands, run as a user would run them, so the README cannot rot.
//!
//! Every ```` ```sh ```` block of README.md is run, in order, with bash in a temp dir
//! holding the repository's `config/`, with the built binary for `cargo run --release --`
//! (nothing is built in release mode here) and the daemon on a free port for
//! `localhost:9400`. The line `cargo run --release -- serve &` is where the test starts the
//! daemon itself (the spawn helper of tests/common, on port 0): the blocks before it run in
//! one bash session, the blocks from it on in another (so shell variables carry from block
//! to block, as in the user's one shell). Each `# -> X` line in a block is a promise: `X`
//! must be a line of that block's output (compared as JSON when it parses as JSON). The
//! README's `json` block, the incident of its 60-second picture, must be what the daemon
//! answered. Blocks marked `console` (building, installing, the test command itself) are
//! not run. Needs `bash`, `curl` and `jq`, as the README says; no network beyond 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Db, Sift};
use serde_json::Value;

const SERVE_LINE: &str = "cargo run --release -- serve &";
const CARGO_RUN: &str = "cargo run --release --";
/// Bound on one part of the walkthrough (it takes a second or two).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("read README.md")
}

/// The fenced code blocks of a Markdown text: (info string, body).
fn fenced_blocks(md: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in md.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_string(), String::new())),
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                blocks.extend(open.take());
            }
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README.md has an unclosed code block");
    blocks
}

/// The `# -> X` promises of a block.
fn promises(block: &str) -> Vec<String> {
    block
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("# -> "))
        .map(|s| s.trim().to_string())
        .collect()
}

/// Runs `script` with bash in `dir`, bounded; returns its output (stdout and stderr
/// together, in order). Panics with the output when it fails or overruns.
fn run_bash(dir: &Path, script: &str, env: &[(&str, &str)]) -> String {
    let out_path = dir.join("readme-script.out");
    let out = std::fs::File::create(&out_path).expect("create output file");
    let mut cmd = Command::new("bash");
    for (k, _) in std::env::vars() {
        if k.starts_with("SIFT_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.arg("-c")
        .arg(format!("set -euo pipefail\nexec 2>&1\n{script}"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone output file"))
        .stderr(out);
    let mut child = cmd.spawn().expect("run bash");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bash") {
            break Some(status);
        }
        if start.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => text,
        Some(s) => panic!("README commands failed ({s}):\n{script}\n--- output:\n{text}"),
        None => {
            panic!("README commands ran over {SCRIPT_TIMEOUT:?}:\n{script}\n--- output:\n{text}")
        }
    }
}

fn marker(i: usize) -> String {
    format!("@@readme-block {i}")
}

/// Splits a script's output at the block markers: (block index, its output lines).
fn split_output(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut parts: Vec<(usize, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(i) = line.strip_prefix("@@readme-block ") {
            parts.push((i.parse().expect("block index"), Vec::new()));
        } else if let Some((_, lines)) = parts.last_mut() {
            lines.push(line.to_string());
        }
    }
    parts
}

fn fulfils(line: &str, promise: &str) -> bool {
    match (
        serde_json::from_str::<Value>(line),
        serde_json::from_str::<Value>(promise),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => line.trim() == promise,
    }
}

#[tokio::test]
async fn readme_walkthrough_runs_and_keeps_its_promises() {
    for tool in ["bash", "curl", "jq"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "{tool} is needed to run the README's walkthrough (README, Prerequisites)"
        );
    }
    let blocks: Vec<String> = fenced_blocks(&readme())
        .into_iter()
        .filter(|(info, _)| info == "sh")
        .map(|(_, body)| body)
        .collect();
    assert!(
        blocks.len() >= 5,
        "README.md has too few sh blocks: {blocks:?}"
    );
    let serve_at = blocks
        .iter()
        .position(|b| b.lines().any(|l| l.trim() == SERVE_LINE))
        .expect("README's walkthrough starts the daemon with `cargo run --release -- serve &`");

    let db = Db::new(Backend::Sqlite).await.expect("sqlite store");
    std::os::unix::fs::symlink(repo().join("config"), db.path("config")).expect("link config/");
    let bin = format!("'{}'", env!("CARGO_BIN_EXE_sift"));
    let store = [("SIFT_STORE__URL", db.url.as_str())];

    // Before the daemon: the blocks up to the serve line (the CMDB import).
    let mut before = String::new();
    for (i, b) in blocks[..serve_at].iter().enumerate() {
        assert!(
            !b.contains("localhost:9400"),
            "block {i} talks to the daemon before it starts"
        );
        before.push_str(&format!(
            "printf '\\n{}\\n'\n{}\n",
            marker(i),
            b.replace(CARGO_RUN, &bin)
        ));
    }
    let mut outputs = split_output(&run_bash(db.dir.path(), &before, &store));

    // The daemon, as `cargo run --release -- serve` would run it there (reading the
    // repository's config/sift.toml), on a free port.
    let sift = Sift::start(&db, &[]);
    let addr = sift.base.trim_start_matches("http://").to_string();
    let mut after = String::new();
    for (i, b) in blocks.iter().enumerate().skip(serve_at) {
        let body: String = b
            .lines()
            .filter(|l| l.trim() != SERVE_LINE)
            .map(|l| format!("{l}\n"))
            .collect();
        let body = body
            .replace(CARGO_RUN, &bin)
            .replace("localhost:9400", &addr);
        after.push_str(&format!("printf '\\n{}\\n'\n{}\n", marker(i), body));
    }
    outputs.extend(split_output(&run_bash(db.dir.path(), &after, &store)));

    // Every block ran, and every promise holds.
    let ran: Vec<usize> = outputs.iter().map(|(i, _)| *i).collect();
    assert_eq!(ran, (0..blocks.len()).collect::<Vec<_>>(), "blocks run");
    for (i, lines) in &outputs {
        for p in promises(&blocks[*i]) {
            assert!(
                lines.iter().any(|l| fulfils(l, &p)),
                "README block {i} promises `{p}`, but printed:\n{}\n--- block:\n{}",
                lines.join("\n"),
                blocks[*i]
            );
        }
    }

    // What the walkthrough claims, checked through the API: one incident, acknowledged
    // before it resolved (the timestamps are now, so the timeline is in order), every
    // event of the re-sent alert counted, and a time to acknowledge of seconds, not days.
    let incidents = sift.incidents().await;
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = sift.get_ok("/api/v1/incidents/INC0000001").await;
    assert_eq!(inc["status"], "resolved", "{inc:#}");
    assert_eq!(inc["root_cause_ci"], "db-01", "{inc:#}");
    let kinds: Vec<&str> = inc["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    let pos = |k: &str| kinds.iter().position(|x| *x == k);
    assert!(
        matches!((pos("opened"), pos("acknowledged"), pos("resolved")), (Some(o), Some(a), Some(r)) if o < a && a < r),
        "timeline {kinds:?}"
    );
    let at = |k: &str| -> chrono::DateTime<chrono::Utc> {
        let e = inc["timeline"]
            .as_array()
            .and_then(|t| t.iter().find(|e| e["kind"] == k))
            .expect("timeline entry");
        e["at"].as_str().expect("at").parse().expect("RFC 3339")
    };
    assert!(at("opened") <= at("acknowledged") && at("acknowledged") <= at("resolved"));
    let now = chrono::Utc::now();
    assert!(
        now - at("opened") < chrono::Duration::minutes(5),
        "opened {}",
        at("opened")
    );
    // The README's 60-second picture is this incident as the daemon answered it (trimmed;
    // it shows it open, before the walkthrough resolves it).
    let picture = fenced_blocks(&readme())
        .into_iter()
        .find(|(info, _)| info == "json")
        .map(|(_, body)| serde_json::from_str::<Value>(&body).expect("README's JSON block parses"))
        .expect("README shows an incident in a json block");
    let mut now_open = inc.clone();
    now_open["status"] = "open".into();
    if let Err(at) = subset(&picture, &now_open, "") {
        panic!("README's incident differs from the daemon's at {at}:\n{inc:#}");
    }
    let alerts = sift.alerts().await;
    let down = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "PostgresDown")
        .expect("PostgresDown stored");
    // Two firing events (step 5 shows count 2) and the resolve: every event counts.
    assert_eq!(down["count"], 3, "{down:#}");
    let metrics = sift.get("/metrics").await.text;
    let samples = common::parse_prometheus(&metrics).expect("metrics parse");
    let tta = common::metric(
        &samples,
        "sift_incident_time_to_acknowledge_seconds_sum",
        &[("priority", "1")],
    );
    assert!((0.0..300.0).contains(&tta), "time to acknowledge {tta} s");
}

/// `Ok` when every field of `want` is in `got` with the same value (objects may leave
/// fields out; arrays and scalars are compared whole); else the path of the first
/// difference.
fn subset(want: &Value, got: &Value, path: &str) -> Result<(), String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                let here = format!("{path}.{k}");
                subset(v, g.get(k).unwrap_or(&Value::Null), &here)?;
            }
            Ok(())
        }
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => Ok(()),
        _ if want == got => Ok(()),
        _ => Err(format!("{path}: README {want}, daemon {got}")),
    }
}

/// README's test command is the one `.ci/run` runs.
#[test]
fn readme_test_command_is_the_ci_command() {
    let ci = std::fs::read_to_string(repo().join(".ci/run")).expect("read .ci/run");
    let command = ci
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && l.contains("cargo test"))
        .expect(".ci/run runs cargo test")
        .trim();
    let in_readme = fenced_blocks(&readme())
        .into_iter()
        .any(|(_, body)| body.lines().any(|l| l.trim() == command));
    assert!(
        in_readme,
        "README.md does not show .ci/run's test command `{command}`"
    );
}

/// README and docs/ link only inside the repository (or to the web): a user has nothing
/// beside the clone. (docs may still name a tool's default data path such as sift-eval's
/// `--data`; the README names nothing outside at all.)
#[test]
fn docs_link_only_inside_the_repository() {
    let root = repo();
    let mut files = vec![root.join("README.md"), root.join("deploy/README.md")];
    for e in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let p = e.expect("docs entry").path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read doc");
        if f == root.join("README.md") {
            assert!(
                !text.contains("../"),
                "{} points outside the repository",
                f.display()
            );
        }
        let base = f.parent().expect("parent");
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let target = rest.split([')', '#', ' ']).next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            // Resolve `..` by hand: the target need not exist yet to be judged.
            let mut parts: Vec<String> = base
                .strip_prefix(&root)
                .expect("inside the repo")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            for c in target.split('/') {
                match c {
                    "" | "." => {}
                    ".." => {
                        assert!(
                            parts.pop().is_some(),
                            "{} links outside the repository: {target}",
                            f.display()
                        );
                    }
                    c => parts.push(c.to_string()),
                }
            }
        }
    }
}

/// docs/configuration.md lists every key `config/sift.toml` sets, with the same default.
#[test]
fn configuration_reference_lists_every_key_of_sift_toml() {
    let toml = std::fs::read_to_string(repo().join("config/sift.toml")).expect("sift.toml");
    let doc = std::fs::read_to_string(repo().join("docs/configuration.md")).expect("doc");
    let mut section = String::new();
    let mut keys = 0;
    for line in toml.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once(" = ").expect("key = value");
        let row = format!("| `{section}.{key}` | `{value}` |");
        assert!(
            doc.contains(&row),
            "docs/configuration.md has no row starting `{row}`"
        );
        keys += 1;
    }
    assert!(keys > 50, "only {keys} keys found in sift.toml");
}
