//! `sift-problem-eval`: scores sift's problem clustering and the (CI, alertname) baseline
//! on seeded synthetic six-month histories (see `sift_eval::problem`), one line per seed
//! and the mean over seeds. With `--out DIR` it also writes each history as
//! `sift problems cluster` input.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use sift::problem::ProblemConfig;
use sift_eval::problem::{Scores, combined, evaluate, generate, generate_with, grid};

#[derive(Parser, Debug)]
#[command(about = "Evaluate sift's problem clustering on synthetic incident histories")]
struct Args {
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    #[arg(long)]
    eps: Option<f64>,
    #[arg(long)]
    min_pts: Option<usize>,
    /// False-discovery rate of candidates (default: `[problems] fdr`).
    #[arg(long)]
    fdr: Option<f64>,
    /// Largest candidate as a share of the history (default: `[problems] max_share`).
    #[arg(long)]
    max_share: Option<f64>,
    /// Instead of per-seed scores: put estates of consecutive seeds side by side until the
    /// history has this many incidents, cluster it once and report the time and scores.
    #[arg(long)]
    scale: Option<usize>,
    /// Sweep the generator's knobs (each alone, then together): per cell the mean over
    /// `--seeds` seeds, then the mean over cells and the worst cell.
    #[arg(long)]
    grid: bool,
    /// Instead: cluster the BPI Challenge 2014 `Detail Incident.csv` at this path (read
    /// with the `bpi2014` preset) and score the candidates against `KM number`.
    #[arg(long)]
    bpi: Option<PathBuf>,
    /// Also write cmdb-<seed>.json, incidents-<seed>.jsonl and truth-<seed>.json here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let mut cfg = ProblemConfig::default();
    if let Some(e) = args.eps {
        cfg.eps = e;
    }
    if let Some(m) = args.min_pts {
        cfg.min_pts = m;
    }
    if let Some(f) = args.fdr {
        cfg.fdr = f;
    }
    if let Some(m) = args.max_share {
        cfg.max_share = m;
    }
    if let Some(n) = args.scale {
        let h = combined(args.first_seed, n);
        let t = Instant::now();
        let (s, b) = evaluate(&h, &cfg)?;
        println!(
            "{} incidents, {} CIs, {} true problems: clustered and scored in {:.2} s",
            h.records.len(),
            h.cmdb.cis.len(),
            h.problems.len(),
            t.elapsed().as_secs_f64()
        );
        println!(
            "sift F1 {:.3} (P {:.3} R {:.3}) root top-1 {:.3}, {} candidates, {} mostly one-off; baseline F1 {:.3}",
            s.f1, s.precision, s.recall, s.root_top1, s.candidates, s.mostly_one_off, b.f1
        );
        return Ok(());
    }
    if args.grid {
        return run_grid(&args, &cfg);
    }
    if let Some(p) = &args.bpi {
        return run_bpi(p, &cfg);
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    println!(
        "{:>6} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "seed", "incidents", "problems", "sift F1", "top1", "cands", "1-offs", "base F1", "ms"
    );
    let mut rows: Vec<(Scores, Scores)> = Vec::new();
    for seed in args.first_seed..args.first_seed + args.seeds {
        let h = generate(seed);
        if let Some(dir) = &args.out {
            std::fs::write(
                dir.join(format!("cmdb-{seed}.json")),
                serde_json::to_string_pretty(&h.cmdb)?,
            )?;
            let mut lines = String::new();
            for r in &h.records {
                lines.push_str(&serde_json::to_string(r)?);
                lines.push('\n');
            }
            std::fs::write(dir.join(format!("incidents-{seed}.jsonl")), lines)?;
            std::fs::write(
                dir.join(format!("truth-{seed}.json")),
                serde_json::to_string_pretty(&serde_json::json!({
                    "problems": h.problems, "truth": h.truth
                }))?,
            )?;
        }
        let t = Instant::now();
        let (s, b) = evaluate(&h, &cfg).with_context(|| format!("seed {seed}"))?;
        println!(
            "{:>6} {:>9} {:>9} {:>8.3} {:>8.3} {:>8} {:>8} {:>8.3} {:>8}",
            seed,
            h.records.len(),
            h.problems.len(),
            s.f1,
            s.root_top1,
            s.candidates,
            s.mostly_one_off,
            b.f1,
            t.elapsed().as_millis()
        );
        rows.push((s, b));
    }
    println!();
    println!(
        "mean over {} seeds ({} .. {})",
        rows.len(),
        args.first_seed,
        args.first_seed + args.seeds - 1
    );
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>10} {:>16}",
        "grouping", "precision", "recall", "F1", "root top-1", "mostly one-off"
    );
    for (name, pick) in [
        ("sift (DBSCAN, blocked)", 0usize),
        ("baseline (CI, alertname)>=3", 1),
    ] {
        let s: Vec<&Scores> = rows
            .iter()
            .map(|r| if pick == 0 { &r.0 } else { &r.1 })
            .collect();
        let mean = |f: fn(&Scores) -> f64| s.iter().map(|x| f(x)).sum::<f64>() / s.len() as f64;
        println!(
            "{:<28} {:>9.3} {:>9.3} {:>9.3} {:>10.3} {:>16}",
            name,
            mean(|x| x.precision),
            mean(|x| x.recall),
            mean(|x| x.f1),
            mean(|x| x.root_top1),
            s.iter().map(|x| x.mostly_one_off).sum::<usize>(),
        );
    }
    Ok(())
}

/// One grid cell: means over seeds, and the total of mostly-one-off candidates.
#[derive(Default, Clone, Copy)]
struct Cell {
    f1: f64,
    top1: f64,
    precision: f64,
    recall: f64,
    candidates: f64,
    one_offs: usize,
    base_f1: f64,
}

fn run_grid(args: &Args, cfg: &ProblemConfig) -> anyhow::Result<()> {
    println!(
        "{:<14} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7}",
        "cell", "F1", "P", "R", "top1", "cands", "1-offs", "base F1", "ms"
    );
    let mut cells: Vec<(&str, Cell)> = Vec::new();
    for (name, knobs) in grid() {
        let t = Instant::now();
        let mut c = Cell::default();
        for seed in args.first_seed..args.first_seed + args.seeds {
            let h = generate_with(seed, "", &knobs);
            let (s, b) = evaluate(&h, cfg).with_context(|| format!("{name} seed {seed}"))?;
            c.f1 += s.f1;
            c.top1 += s.root_top1;
            c.precision += s.precision;
            c.recall += s.recall;
            c.candidates += s.candidates as f64;
            c.one_offs += s.mostly_one_off;
            c.base_f1 += b.f1;
        }
        let n = args.seeds as f64;
        c.f1 /= n;
        c.top1 /= n;
        c.precision /= n;
        c.recall /= n;
        c.candidates /= n;
        c.base_f1 /= n;
        println!(
            "{:<14} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7.1} {:>7} {:>8.3} {:>7}",
            name,
            c.f1,
            c.precision,
            c.recall,
            c.top1,
            c.candidates,
            c.one_offs,
            c.base_f1,
            t.elapsed().as_millis()
        );
        cells.push((name, c));
    }
    let k = cells.len() as f64;
    println!();
    println!(
        "mean over {} cells x {} seeds ({} ..): F1 {:.3}, root top-1 {:.3}, mostly one-off {} in all",
        cells.len(),
        args.seeds,
        args.first_seed,
        cells.iter().map(|c| c.1.f1).sum::<f64>() / k,
        cells.iter().map(|c| c.1.top1).sum::<f64>() / k,
        cells.iter().map(|c| c.1.one_offs).sum::<usize>()
    );
    let worst = |f: fn(&Cell) -> f64| {
        cells
            .iter()
            .min_by(|a, b| f(&a.1).total_cmp(&f(&b.1)))
            .map(|c| (c.0, f(&c.1)))
            .unwrap_or_default()
    };
    let (wf, f1) = worst(|c| c.f1);
    let (wt, t1) = worst(|c| c.top1);
    let wo = cells
        .iter()
        .max_by_key(|c| c.1.one_offs)
        .map(|c| (c.0, c.1.one_offs))
        .unwrap_or_default();
    println!(
        "worst cell: F1 {f1:.3} ({wf}), root top-1 {t1:.3} ({wt}), mostly one-off {} ({})",
        wo.1, wo.0
    );
    Ok(())
}

/// Candidates on a real export against its known errors (`KM number`): purity (share of
/// a candidate's incidents resolved by its commonest article), coverage (share of the
/// incidents of recurring known errors — three or more incidents — that sit in a
/// candidate whose commonest article is theirs), the largest candidate's share.
fn run_bpi(path: &std::path::Path, cfg: &ProblemConfig) -> anyhow::Result<()> {
    use sift::problem::import::{Mapping, read_csv};
    use std::collections::HashMap;
    let mapping = Mapping::preset("bpi2014").context("bpi2014 preset")?;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let t = Instant::now();
    let mut records = Vec::new();
    let mut bad = Vec::new();
    let summary = read_csv(std::io::BufReader::new(file), &mapping, |r| match r {
        Ok(r) => records.push(r),
        Err(b) => bad.push(b),
    })
    .with_context(|| format!("{}", path.display()))?;
    let read_s = t.elapsed().as_secs_f64();
    for b in bad.iter().take(5) {
        eprintln!("line {}: {}", b.record, b.reason);
    }
    let t = Instant::now();
    let report = sift::problem::cluster_report(&records, None, cfg, &[])?;
    let cluster_s = t.elapsed().as_secs_f64();
    let km: HashMap<&str, &str> = records
        .iter()
        .filter_map(|r| r.known_error.as_deref().map(|k| (r.id.as_str(), k)))
        .collect();
    let mut km_size: HashMap<&str, usize> = HashMap::new();
    for k in km.values() {
        *km_size.entry(k).or_default() += 1;
    }
    let recurring: usize = km_size.values().filter(|&&n| n >= 3).sum();
    let (mut pure, mut members, mut covered, mut largest) = (0usize, 0usize, 0usize, 0usize);
    let mut purities = Vec::new();
    for c in &report.candidates {
        let mut per: HashMap<&str, usize> = HashMap::new();
        for id in &c.incident_ids {
            if let Some(k) = km.get(id.as_str()) {
                *per.entry(k).or_default() += 1;
            }
        }
        let (top, n) = per
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(k, n)| (*k, *n))
            .unwrap_or(("", 0));
        pure += n;
        members += c.incident_ids.len();
        purities.push(n as f64 / c.incident_ids.len().max(1) as f64);
        if km_size.get(top).copied().unwrap_or(0) >= 3 {
            covered += n;
        }
        largest = largest.max(c.incident_ids.len());
    }
    let n = records.len();
    println!(
        "{} rows: {} records, {} bad, {} empty rows; read in {:.2} s, clustered in {:.2} s",
        summary.rows + summary.empty_rows,
        n,
        summary.bad,
        summary.empty_rows,
        read_s,
        cluster_s
    );
    println!("features used: {}", report.features_used.join(", "));
    println!(
        "clusters tested {}, not significant {}, too broad (> {} incidents) {}",
        report.tested, report.not_significant, report.max_size, report.too_broad
    );
    println!(
        "candidates {}, incidents in them {} ({:.1}%), largest {} ({:.2}% of history)",
        report.candidates.len(),
        members,
        100.0 * members as f64 / n.max(1) as f64,
        largest,
        100.0 * largest as f64 / n.max(1) as f64
    );
    println!(
        "KM purity: weighted {:.3}, mean over candidates {:.3}; coverage of recurring known errors ({} incidents in KM groups of 3+): {:.3}",
        pure as f64 / members.max(1) as f64,
        purities.iter().sum::<f64>() / purities.len().max(1) as f64,
        recurring,
        covered as f64 / recurring.max(1) as f64
    );
    Ok(())
}
