//! The offline commands of the command line: they read the daemon's configuration and
//! work on the store or on files directly, with no daemon running (`migrate`, `cmdb
//! import`, `replay`, `tune`, `problems cluster`, `incidents import`, `causality learn`). Each
//! prints its answer on stdout and what went wrong on stderr; the binary dispatches to
//! them (`src/main.rs`).
//!
//! They are glue: read files, call the library (store, replay, clustering, learning),
//! print. What they compute belongs in the library, where the daemon and the tests reach
//! it too.

use std::path::Path;

use anyhow::{Context, bail};

use crate::app::open_store;
use crate::cmdb::{CiMapper, CmdbFile, Topology};
use crate::config::Config;
use crate::sources::alertmanager;

/// Bad lines of an input file listed one by one on stderr; the rest are counted. The rule
/// for every command reading a file of records (replay, problems cluster, incidents
/// import): each bad line named as FILE:LINE: reason, and the file refused unless
/// `--skip-bad`.
const MAX_BAD_LISTED: usize = 50;

/// `sift migrate`: applies the migrations the store lacks.
pub async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    store.close().await;
    println!("migrations applied to {}", store.backend());
    Ok(())
}

fn read_cmdb(path: &Path) -> anyhow::Result<CmdbFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    CmdbFile::parse(&text).with_context(|| format!("{}", path.display()))
}

/// `sift cmdb import FILE`: the CMDB file's CIs and relations, checked against the stored
/// CIs and upserted in one transaction; a file refused imports nothing.
pub async fn cmdb_import(cfg: &Config, file: &Path) -> anyhow::Result<()> {
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
    tx.commit().await?;
    store.close().await;
    println!(
        "imported {} CIs and {} relations from {}",
        doc.cis.len(),
        doc.relations.len(),
        file.display()
    );
    Ok(())
}

/// `sift replay`: recorded alerts through the correlation core, no store, no clock.
pub fn replay(
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
    let changes: Vec<crate::cmdb::Change> = match changes {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let mut de = serde_json::Deserializer::from_str(&text);
            let list: Vec<crate::cmdb::Change> = serde_path_to_error::deserialize(&mut de)
                .map_err(|e| anyhow::anyhow!("{}: {}: {}", p.display(), e.path(), e.inner()))?;
            crate::cmdb::change::validate(&list, |id| topo.node(id).is_some())
                .with_context(|| format!("{} rejected", p.display()))?;
            list
        }
        None => Vec::new(),
    };
    let parsed = read_alerts(cfg, alerts, skip_bad)?;
    let events = parsed.len();
    let mapper = CiMapper::new(cfg.mapping.labels.clone());
    // As a daemon that has seen this history would: the rules' holds learned from it
    // fill in those `[correlate.rule_hold]` does not name; with `window = "auto"`, the
    // windows its lags give replace the configured ones.
    let learnt = crate::replay::with_learned(cfg.correlate(), &topo, &mapper, &parsed);
    for (name, hold) in &learnt.holds {
        eprintln!(
            "learned: {name} fires {}s after the trouble it reports (its for:)",
            hold.num_seconds()
        );
    }
    for (relation, w) in &learnt.windows {
        eprintln!(
            "learned: window {}s for relation type {relation}",
            w.num_seconds()
        );
    }
    let out = crate::replay::run(&topo, &mapper, learnt.cfg, changes, parsed);
    let json = serde_json::to_string_pretty(
        &serde_json::json!({"incidents": crate::view::IncidentView::all(&out.incidents)}),
    )?;
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

/// `sift problems cluster`: problem candidates from a history file, no store.
/// Alertmanager alert objects, one per line of `alerts`. Bad lines are named; with
/// `skip_bad` the rest are read, else nothing is.
fn read_alerts(
    cfg: &Config,
    alerts: &Path,
    skip_bad: bool,
) -> anyhow::Result<Vec<crate::alert::Alert>> {
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
            "{bad} bad lines in {}; nothing read (--skip-bad reads the rest)",
            alerts.display()
        );
    }
    Ok(parsed)
}

pub fn tune(
    cfg: &Config,
    cmdb: &Path,
    alerts: &Path,
    incidents: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let doc = read_cmdb(cmdb)?;
    doc.validate(|_| false)
        .with_context(|| format!("{} rejected", cmdb.display()))?;
    let topo = Topology::from_file(&doc);
    let parsed = read_alerts(cfg, alerts, false)?;
    let truth = match incidents {
        Some(p) => Some(read_groups(p)?),
        None => None,
    };
    let report = crate::tune::tune(
        &topo,
        &CiMapper::new(cfg.mapping.labels.clone()),
        &cfg.correlate(),
        &parsed,
        truth.as_deref(),
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::tune::render(&report));
    }
    Ok(())
}

/// Incidents' alert lists: `{"incidents": [{"alert_fingerprints": [...]}, ...]}` (what
/// `sift replay` writes) or JSON lines of such objects.
fn read_groups(p: &Path) -> anyhow::Result<Vec<Vec<crate::alert::Fingerprint>>> {
    #[derive(serde::Deserialize)]
    struct Group {
        alert_fingerprints: Vec<crate::alert::Fingerprint>,
    }
    #[derive(serde::Deserialize)]
    struct Doc {
        incidents: Vec<Group>,
    }
    let text =
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
    if let Ok(d) = serde_json::from_str::<Doc>(&text) {
        return Ok(d
            .incidents
            .into_iter()
            .map(|g| g.alert_fingerprints)
            .collect());
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let g: Group = serde_json::from_str(line).map_err(|e| {
            anyhow::anyhow!(
                "{}:{}: {e} (expected {{\"incidents\": [...]}} or one object with \"alert_fingerprints\" per line)",
                p.display(),
                i + 1
            )
        })?;
        out.push(g.alert_fingerprints);
    }
    Ok(out)
}

pub fn problems_cluster(
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
    let report = crate::problem::cluster_report(
        &batch.records,
        topo.as_ref(),
        &cfg.problems.cluster(),
        &[],
    )?;
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
fn csv_mapping(arg: &str) -> anyhow::Result<crate::problem::import::Mapping> {
    use crate::problem::import::{Mapping, PRESETS};
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
fn read_history(path: &Path, mapping: Option<&str>) -> anyhow::Result<crate::problem::ParsedBatch> {
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
        return Ok(crate::problem::parse_batch(&text));
    };
    let m = csv_mapping(m)?;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut batch = crate::problem::ParsedBatch::default();
    let summary =
        crate::problem::import::read_csv(std::io::BufReader::new(file), &m, |r| match r {
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

/// `sift incidents import`: a history file (JSON lines or CSV through a mapping) into
/// the store, streamed in chunks, in one transaction.
pub async fn incidents_import(
    cfg: &Config,
    path: &Path,
    mapping: Option<&str>,
    skip_bad: bool,
) -> anyhow::Result<()> {
    const CHUNK: usize = 1000;
    let store = open_store(cfg).await?;
    let mut tx = store.begin().await?;
    let (send, mut recv) = tokio::sync::mpsc::channel::<Vec<crate::problem::HistoryRecord>>(4);
    let path_owned = path.to_path_buf();
    let mapping_owned = mapping.map(str::to_string);
    // The file is read on a blocking thread and handed over in chunks: a large export is
    // never held whole.
    let reader =
        tokio::task::spawn_blocking(move || -> anyhow::Result<crate::problem::ParsedBatch> {
            // Only the bad rows are kept here (reasons capped, all counted).
            let mut bad = crate::problem::ParsedBatch::default();
            match mapping_owned {
                Some(m) => {
                    let m = csv_mapping(&m)?;
                    let file = std::fs::File::open(&path_owned)
                        .with_context(|| format!("cannot open {}", path_owned.display()))?;
                    let mut chunk = Vec::with_capacity(CHUNK);
                    let mut closed = false;
                    crate::problem::import::read_csv(
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
    tx.commit().await?;
    println!(
        "imported {received} records from {} ({new} new, {} updated, {} bad rows skipped)",
        path.display(),
        received - new,
        bad.bad_total
    );
    Ok(())
}

/// `sift causality learn`: the causality graph learned from recorded alerts, no store.
pub fn causality_learn(
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
    let h = history_from_lines(
        &alerts.display().to_string(),
        &text,
        &cfg.normalize(),
        &topo,
        &CiMapper::new(cfg.mapping.labels.clone()),
        &learn,
    )
    .map_err(anyhow::Error::msg)?;
    let learned = crate::causality::learn(&h, &learn)?;
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

/// Reads a history from JSON lines (one Alertmanager alert object per line, as `sift
/// replay` reads them): each firing alert is an occurrence. A bad line is named as
/// `name:line`. Here, not in `causality`: parsing a wire format is the edge's job.
fn history_from_lines(
    name: &str,
    text: &str,
    normalize: &crate::sources::Normalize,
    topo: &Topology,
    mapper: &CiMapper,
    cfg: &crate::causality::LearnConfig,
) -> Result<crate::causality::History, String> {
    let mut h = crate::causality::History::new().with_topology(topo);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let a = alertmanager::parse_line(line, normalize)
            .map_err(|e| format!("{name}:{}: {e}", i + 1))?;
        h.push_alert(topo, mapper, cfg, &a);
    }
    Ok(h)
}
