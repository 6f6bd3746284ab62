//! The `sift` command line: parses (the tree is `sift::cli::args`) and dispatches. The
//! offline commands (serve, migrate, cmdb import, replay, problems cluster, causality learn, incidents
//! import) run here; the online ones are `sift::cli`.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;

use anyhow::{Context, bail};
use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

use sift::app::open_store;
use sift::cli::{
    self,
    args::{CausalityCmd, Cli, Cmd, CmdbCmd, IncidentsCmd, ProblemsCmd},
};
use sift::cmdb::{CiMapper, CmdbFile, Topology};
use sift::config::Config;
use sift::sources::alertmanager;

fn main() -> anyhow::Result<()> {
    let matches = Cli::command()
        .version(env!("BUILD_LONG_VERSION"))
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The daemon's log is its record; a CLI command's answer is its output, so its log
    // stays at warnings unless asked for (no migration lines on every call).
    let level = match (cli.verbose, &cli.cmd) {
        (0, Cmd::Serve { .. }) => LogLevel::Configured,
        (0, _) => LogLevel::Default("warn"),
        (1, _) => LogLevel::Flag("info"),
        (2, _) => LogLevel::Flag("debug"),
        _ => LogLevel::Flag("trace"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let remote = cli.remote;
    rt.block_on(async move {
        let online = match cli.cmd {
            Cmd::Serve { config } => {
                return sift::app::serve(load(config.config.as_deref(), level)?).await;
            }
            Cmd::Migrate { config } => {
                let cfg = load(config.config.as_deref(), level)?;
                let store = open_store(&cfg).await?;
                store.close().await;
                println!("migrations applied to {}", store.backend());
                return Ok(());
            }
            Cmd::Cmdb {
                cmd: CmdbCmd::Import { file, config },
            } => return import(&load(config.config.as_deref(), level)?, &file).await,
            Cmd::Replay {
                cmdb,
                alerts,
                changes,
                config,
                output,
                skip_bad,
            } => {
                return replay(
                    &load(config.config.as_deref(), level)?,
                    &cmdb,
                    &alerts,
                    changes.as_deref(),
                    output.as_deref(),
                    skip_bad,
                );
            }
            Cmd::Problems {
                cmd:
                    ProblemsCmd::Cluster {
                        incidents,
                        cmdb,
                        config,
                        output,
                        skip_bad,
                        strict: _,
                        mapping,
                    },
            } => {
                return problems_cluster(
                    &load(config.config.as_deref(), level)?,
                    &incidents,
                    cmdb.as_deref(),
                    output.as_deref(),
                    skip_bad,
                    mapping.as_deref(),
                );
            }
            Cmd::Incidents {
                cmd:
                    IncidentsCmd::Import {
                        file,
                        mapping,
                        config,
                        skip_bad,
                    },
            } => {
                return incidents_import(
                    &load(config.config.as_deref(), level)?,
                    &file,
                    mapping.as_deref(),
                    skip_bad,
                )
                .await;
            }
            Cmd::Causality {
                cmd:
                    CausalityCmd::Learn {
                        alerts,
                        cmdb,
                        config,
                        output,
                    },
            } => {
                return causality_learn(
                    &load(config.config.as_deref(), level)?,
                    &alerts,
                    &cmdb,
                    output.as_deref(),
                );
            }
            Cmd::Completions { shell } => {
                clap_complete::generate(shell, &mut Cli::command(), "sift", &mut std::io::stdout());
                return Ok(());
            }
            Cmd::Incidents {
                cmd: IncidentsCmd::Online(c),
            } => cli::incidents(&remote, c).await,
            Cmd::Alerts { cmd } => cli::alerts(&remote, cmd).await,
            Cmd::Problems {
                cmd: ProblemsCmd::Online(c),
            } => cli::problems(&remote, c).await,
            Cmd::Cmdb {
                cmd: CmdbCmd::Online(c),
            } => cli::cmdb(&remote, c).await,
        };
        // Online commands: the error and an exit code that says what kind it was.
        if let Err(e) = online {
            eprintln!("sift: {e}");
            std::process::exit(e.exit_code());
        }
        Ok(())
    })
}

/// Bad lines of an input file listed one by one on stderr; the rest are counted. The rule
/// for every command reading a file of records (replay, problems cluster, incidents
/// import): each bad line named as FILE:LINE: reason, and the file refused unless
/// `--skip-bad`.
const MAX_BAD_LISTED: usize = 50;

/// Where the log filter comes from.
#[derive(Clone, Copy)]
enum LogLevel {
    /// `-v`: wins over `RUST_LOG` and `log.level`.
    Flag(&'static str),
    /// `RUST_LOG` when set, else this.
    Default(&'static str),
    /// `RUST_LOG` when set, else the config's `log.level`.
    Configured,
}

fn load(path: Option<&Path>, level: LogLevel) -> anyhow::Result<Config> {
    let cfg = Config::load(path)?;
    let rust_log = || {
        std::env::var("RUST_LOG")
            .ok()
            .and_then(|f| EnvFilter::try_new(f).ok())
    };
    let filter = match level {
        LogLevel::Flag(l) => Some(EnvFilter::new(l)),
        LogLevel::Default(l) => rust_log().or_else(|| Some(EnvFilter::new(l))),
        LogLevel::Configured => rust_log().or_else(|| EnvFilter::try_new(&cfg.log.level).ok()),
    }
    .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour())
        .with_writer(std::io::stderr);
    if cfg.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(cfg)
}

/// Colour only for a person at a terminal: never in files, pipes or journald, and never
/// when NO_COLOR is set to anything (https://no-color.org).
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn read_cmdb(path: &Path) -> anyhow::Result<CmdbFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    CmdbFile::parse(&text).with_context(|| format!("{}", path.display()))
}

async fn import(cfg: &Config, file: &Path) -> anyhow::Result<()> {
    let doc = read_cmdb(file)?;
    let store = open_store(cfg).await?;
    let mut tx = store.begin().await?;
    let in_file: std::collections::HashSet<&str> = doc.cis.iter().map(|c| c.id.as_str()).collect();
    let mut outside: Vec<String> = doc
        .relations
        .iter()
        .flat_map(|r| [r.source.clone(), r.target.clone()])
        .filter(|id| !in_file.contains(id.as_str()))
        .collect();
    outside.sort();
    outside.dedup();
    let known = tx.existing_cis(&outside).await?;
    doc.validate(|id| known.contains(id))
        .with_context(|| format!("{} rejected, nothing imported", file.display()))?;
    tx.upsert_cis(&doc.cis).await?;
    tx.upsert_relations(&doc.relations).await?;
    let next = tx.state().next_incident;
    tx.commit(next, true).await?;
    store.close().await;
    println!(
        "imported {} CIs and {} relations from {}",
        doc.cis.len(),
        doc.relations.len(),
        file.display()
    );
    Ok(())
}

fn replay(
    cfg: &Config,
    cmdb: &Path,
    alerts: &Path,
    changes: Option<&Path>,
    output: Option<&Path>,
    skip_bad: bool,
) -> anyhow::Result<()> {
    let doc = read_cmdb(cmdb)?;
    doc.validate(|_| false)
        .with_context(|| format!("{} rejected", cmdb.display()))?;
    let topo = Topology::from_file(&doc);
    let changes: Vec<sift::cmdb::Change> = match changes {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let mut de = serde_json::Deserializer::from_str(&text);
            let list: Vec<sift::cmdb::Change> = serde_path_to_error::deserialize(&mut de)
                .map_err(|e| anyhow::anyhow!("{}: {}: {}", p.display(), e.path(), e.inner()))?;
            sift::cmdb::change::validate(&list, |id| topo.node(id).is_some())
                .with_context(|| format!("{} rejected", p.display()))?;
            list
        }
        None => Vec::new(),
    };
    let text = std::fs::read_to_string(alerts)
        .with_context(|| format!("cannot read {}", alerts.display()))?;
    let n = cfg.normalize();
    let mut parsed = Vec::new();
    let mut bad = 0usize;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match alertmanager::parse_line(line, &n) {
            Ok(a) => parsed.push(a),
            Err(e) => {
                bad += 1;
                if bad <= MAX_BAD_LISTED {
                    eprintln!(
                        "{}:{}: {e} ({})",
                        alerts.display(),
                        i + 1,
                        if skip_bad { "skipped" } else { "refused" }
                    );
                }
            }
        }
    }
    if bad > MAX_BAD_LISTED {
        eprintln!(
            "{}: {} more bad lines not listed",
            alerts.display(),
            bad - MAX_BAD_LISTED
        );
    }
    if bad > 0 && !skip_bad {
        bail!(
            "{bad} bad lines in {}; nothing replayed (--skip-bad replays the rest)",
            alerts.display()
        );
    }
    let events = parsed.len();
    let out = sift::replay::run(
        &topo,
        &CiMapper::new(cfg.mapping.labels.clone()),
        cfg.correlate(),
        changes,
        parsed,
    );
    let json = serde_json::to_string_pretty(&serde_json::json!({"incidents": out.incidents}))?;
    match output {
        Some(p) => std::fs::write(p, json + "\n")
            .with_context(|| format!("cannot write {}", p.display()))?,
        None => println!("{json}"),
    }
    eprintln!(
        "replayed {events} alert events into {} incidents",
        out.incidents.len()
    );
    Ok(())
}

fn problems_cluster(
    cfg: &Config,
    incidents: &Path,
    cmdb: Option<&Path>,
    output: Option<&Path>,
    skip_bad: bool,
    mapping: Option<&str>,
) -> anyhow::Result<()> {
    let topo = match cmdb {
        Some(p) => {
            let doc = read_cmdb(p)?;
            doc.validate(|_| false)
                .with_context(|| format!("{} rejected", p.display()))?;
            Some(Topology::from_file(&doc))
        }
        None => None,
    };
    let batch = read_history(incidents, mapping)?;
    for b in &batch.bad {
        eprintln!(
            "{}:{}: {}{} ({})",
            incidents.display(),
            b.record,
            b.id.as_deref()
                .map(|i| format!("record {i}: "))
                .unwrap_or_default(),
            b.reason,
            if skip_bad { "skipped" } else { "refused" }
        );
    }
    if batch.bad_total > batch.bad.len() {
        eprintln!(
            "{}: {} more bad records not listed",
            incidents.display(),
            batch.bad_total - batch.bad.len()
        );
    }
    if let Some(t) = &topo {
        for r in &batch.records {
            if let Some(ci) = &r.ci
                && t.resolve(ci).is_none()
            {
                eprintln!(
                    "{}: record {}: unknown CI {ci:?} (kept, without topology)",
                    incidents.display(),
                    r.id
                );
            }
        }
    }
    if !skip_bad && batch.bad_total > 0 {
        bail!(
            "{} bad records in {}; nothing written (--skip-bad clusters the rest)",
            batch.bad_total,
            incidents.display()
        );
    }
    if batch.records.is_empty() {
        bail!("no usable history record in {}", incidents.display());
    }
    let report =
        sift::problem::cluster_report(&batch.records, topo.as_ref(), &cfg.problems.cluster(), &[])?;
    let problems = &report.candidates;
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "problems": problems,
        "features": report.features,
        "features_used": report.features_used,
        "clusters_tested": report.tested,
        "not_significant": report.not_significant,
        "too_broad": report.too_broad,
        "max_candidate_size": report.max_size,
    }))?;
    match output {
        Some(p) => std::fs::write(p, json + "\n")
            .with_context(|| format!("cannot write {}", p.display()))?,
        None => println!("{json}"),
    }
    eprintln!(
        "clustered {} incidents into {} problem candidates ({} records skipped)",
        batch.records.len(),
        problems.len(),
        batch.bad_total
    );
    eprintln!(
        "features used: {}; {} clusters tested, {} explained by their base rate, {} too broad (> {} incidents)",
        if report.features_used.is_empty() {
            "none".to_string()
        } else {
            report.features_used.join(", ")
        },
        report.tested,
        report.not_significant,
        report.too_broad,
        report.max_size
    );
    Ok(())
}

/// A `--mapping` argument: a preset name or a mapping file.
fn csv_mapping(arg: &str) -> anyhow::Result<sift::problem::import::Mapping> {
    use sift::problem::import::{Mapping, PRESETS};
    if let Some(m) = Mapping::preset(arg) {
        return Ok(m);
    }
    let path = Path::new(arg);
    if !path.exists() {
        bail!(
            "--mapping {arg:?} is neither a preset ({}) nor a file",
            PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Mapping::parse(&text).with_context(|| format!("{}", path.display()))
}

/// The records of a history file: JSON lines (or a JSON list), or CSV through a mapping,
/// streamed. A CSV without `--mapping` is refused rather than misread.
fn read_history(path: &Path, mapping: Option<&str>) -> anyhow::Result<sift::problem::ParsedBatch> {
    let Some(m) = mapping else {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            bail!(
                "{} looks like CSV: say how to read it with --mapping (servicenow, jira, bpi2014 or a mapping file)",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(sift::problem::parse_batch(&text));
    };
    let m = csv_mapping(m)?;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut batch = sift::problem::ParsedBatch::default();
    let summary = sift::problem::import::read_csv(std::io::BufReader::new(file), &m, |r| match r {
        Ok(r) => batch.records.push(r),
        Err(b) => batch.refuse(b),
    })
    .with_context(|| format!("{}", path.display()))?;
    for c in &summary.missing_columns {
        eprintln!(
            "{}: mapped column not in the file, left empty: {c}",
            path.display()
        );
    }
    if summary.empty_rows > 0 {
        eprintln!("{}: {} empty rows", path.display(), summary.empty_rows);
    }
    Ok(batch)
}

async fn incidents_import(
    cfg: &Config,
    path: &Path,
    mapping: Option<&str>,
    skip_bad: bool,
) -> anyhow::Result<()> {
    const CHUNK: usize = 1000;
    let store = open_store(cfg).await?;
    let mut tx = store.begin().await?;
    let (send, mut recv) = tokio::sync::mpsc::channel::<Vec<sift::problem::HistoryRecord>>(4);
    let path_owned = path.to_path_buf();
    let mapping_owned = mapping.map(str::to_string);
    // The file is read on a blocking thread and handed over in chunks: a large export is
    // never held whole.
    let reader =
        tokio::task::spawn_blocking(move || -> anyhow::Result<sift::problem::ParsedBatch> {
            // Only the bad rows are kept here (reasons capped, all counted).
            let mut bad = sift::problem::ParsedBatch::default();
            match mapping_owned {
                Some(m) => {
                    let m = csv_mapping(&m)?;
                    let file = std::fs::File::open(&path_owned)
                        .with_context(|| format!("cannot open {}", path_owned.display()))?;
                    let mut chunk = Vec::with_capacity(CHUNK);
                    let mut closed = false;
                    sift::problem::import::read_csv(
                        std::io::BufReader::new(file),
                        &m,
                        |r| match r {
                            Ok(r) => {
                                chunk.push(r);
                                if chunk.len() == CHUNK && !closed {
                                    closed =
                                        send.blocking_send(std::mem::take(&mut chunk)).is_err();
                                }
                            }
                            Err(b) => bad.refuse(b),
                        },
                    )
                    .with_context(|| format!("{}", path_owned.display()))?;
                    if !chunk.is_empty() && !closed {
                        let _ = send.blocking_send(chunk);
                    }
                }
                None => {
                    let batch = read_history(&path_owned, None)?;
                    bad.bad = batch.bad;
                    bad.bad_total = batch.bad_total;
                    for c in batch.records.chunks(CHUNK) {
                        if send.blocking_send(c.to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
            Ok(bad)
        });
    let (mut received, mut new) = (0u64, 0u64);
    while let Some(chunk) = recv.recv().await {
        received += chunk.len() as u64;
        new += tx.upsert_history(&chunk).await?;
    }
    let bad = reader.await.context("reading the history failed")??;
    for b in bad.bad.iter().take(MAX_BAD_LISTED) {
        eprintln!(
            "{}:{}: {}{}",
            path.display(),
            b.record,
            b.id.as_deref()
                .map(|i| format!("record {i}: "))
                .unwrap_or_default(),
            b.reason
        );
    }
    if bad.bad_total > MAX_BAD_LISTED {
        eprintln!("... and {} more bad rows", bad.bad_total - MAX_BAD_LISTED);
    }
    if bad.bad_total > 0 && !skip_bad {
        bail!(
            "{} bad rows in {}; nothing imported (--skip-bad stores the rest)",
            bad.bad_total,
            path.display()
        );
    }
    if received == 0 {
        bail!("no usable history record in {}", path.display());
    }
    let next = tx.state().next_incident;
    tx.commit(next, false).await?;
    println!(
        "imported {received} records from {} ({new} new, {} updated, {} bad rows skipped)",
        path.display(),
        received - new,
        bad.bad_total
    );
    Ok(())
}

fn causality_learn(
    cfg: &Config,
    alerts: &Path,
    cmdb: &Path,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let doc = read_cmdb(cmdb)?;
    doc.validate(|_| false)
        .with_context(|| format!("{} rejected", cmdb.display()))?;
    let topo = Topology::from_file(&doc);
    let text = std::fs::read_to_string(alerts)
        .with_context(|| format!("cannot read {}", alerts.display()))?;
    let learn = cfg.causality.learn();
    let h = sift::causality::history_from_lines(
        &alerts.display().to_string(),
        &text,
        &cfg.normalize(),
        &topo,
        &CiMapper::new(cfg.mapping.labels.clone()),
        &learn,
    )
    .map_err(anyhow::Error::msg)?;
    let learned = sift::causality::learn(&h, &learn)?;
    let json = serde_json::to_string_pretty(&learned)?;
    match output {
        Some(p) => std::fs::write(p, json + "\n")
            .with_context(|| format!("cannot write {}", p.display()))?,
        None => println!("{json}"),
    }
    let s = &learned.summary;
    eprintln!(
        "learned {} edges from {} occurrences of {} alert types on {} CIs{}",
        learned.edges.len(),
        s.occurrences,
        s.types,
        s.cis,
        s.note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    Ok(())
}
