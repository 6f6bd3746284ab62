//! `sift-problem-eval`: scores sift's problem clustering and the (CI, alertname) baseline
//! on seeded synthetic six-month histories (see `sift::problem::eval`), one line per seed
//! and the mean over seeds. With `--out DIR` it also writes each history as
//! `sift problems cluster` input.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use sift::problem::ProblemConfig;
use sift::problem::eval::{Scores, combined, evaluate, generate};

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
    /// Instead of per-seed scores: put estates of consecutive seeds side by side until the
    /// history has this many incidents, cluster it once and report the time and scores.
    #[arg(long)]
    scale: Option<usize>,
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
