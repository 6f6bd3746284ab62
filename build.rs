//! Build script: stamps `sift --version` with the git commit and the build date.
//!
//! It must never fail the build: outside a git checkout (a source tarball, a container
//! build without `.git`) or without `git` on the PATH the commit is "unknown". It uses no
//! dependency beyond std.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Reproducible builds pin the date (https://reproducible-builds.org/specs/source-date-epoch/).
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = git_commit(&manifest_dir).unwrap_or_else(|| "unknown".to_string());
    let date = build_date();
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    // Not SIFT_*: cargo also sets this variable when it runs the binary (`cargo run`,
    // `cargo test`), and sift reads every SIFT_* variable as configuration.
    println!("cargo:rustc-env=BUILD_LONG_VERSION={version} ({commit} {date})");
}

/// `git rev-parse --short HEAD` of the checkout the crate sits at the top of, and the
/// rerun-if-changed lines that make a new commit or a checkout rerun this script.
fn git_commit(manifest_dir: &Path) -> Option<String> {
    // Only this repository's commit: a copy of the sources inside some other checkout
    // (vendored, unpacked into a monorepo) must not take that checkout's commit.
    let top = git(manifest_dir, &["rev-parse", "--show-toplevel"])?;
    let same = match (Path::new(&top).canonicalize(), manifest_dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        return None;
    }
    let commit = git(manifest_dir, &["rev-parse", "--short", "HEAD"])?;

    // HEAD moves on checkout; the branch's ref moves on commit. `--git-path` resolves both
    // for linked worktrees too (HEAD per worktree, refs in the common dir). Only existing
    // paths are watched: cargo reruns on every build for a path that does not exist.
    let watch = |p: PathBuf| {
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    };
    let path = |rel: &str| {
        git(manifest_dir, &["rev-parse", "--git-path", rel]).map(|p| manifest_dir.join(p))
    };
    if let Some(head) = path("HEAD") {
        watch(head);
    }
    if let Some(reference) = git(manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        if let Some(file) = path(&reference) {
            if file.exists() {
                watch(file);
            } else if let Some(dir) = file.parent() {
                // A packed ref: the commit writes it as a loose file into this directory.
                watch(dir.to_path_buf());
            }
        }
        if let Some(packed) = path("packed-refs") {
            watch(packed);
        }
    }
    Some(commit)
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// UTC date of the build (or of SOURCE_DATE_EPOCH), `YYYY-MM-DD`.
fn build_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
