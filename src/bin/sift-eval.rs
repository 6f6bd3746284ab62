//! `sift-eval`: scores sift's correlation and three naive baselines on seeded synthetic
//! scenarios (see `sift::eval`), one line per seed and a table averaged over seeds.
//! With `--out DIR` it also writes each scenario as `sift replay` input.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use sift::eval::{EstateSize, Evaluation, ROW_NAMES, Scores, evaluate, generate};

#[derive(Parser, Debug)]
#[command(about = "Evaluate sift's alert correlation on synthetic scenarios with known truth")]
struct Args {
    /// How many seeds (scenarios) to run.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// The first seed; seeds are first-seed .. first-seed + seeds.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Estate size for every seed (small | medium | large | huge); by default the seed
    /// picks it, cycling through all four.
    #[arg(long)]
    size: Option<String>,
    /// Also write cmdb-<seed>.json, alerts-<seed>.jsonl and truth-<seed>.json here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Instead of scoring: time `sift replay`'s core over this many alert events on a
    /// huge (~10k CI) estate of --first-seed, its alert stream repeated day after day.
    #[arg(long)]
    replay_bench: Option<usize>,
}

/// Times the replay core over `events` events (one thread, release build expected).
fn replay_bench(seed: u64, events: usize) -> anyhow::Result<()> {
    use sift::cmdb::{CiMapper, Topology};
    let w = sift::eval::replay_workload(seed, events)?;
    let topo = Topology::from_file(&w.cmdb);
    let t = std::time::Instant::now();
    let out = sift::replay::run(
        &topo,
        &CiMapper::default(),
        Default::default(),
        Vec::new(),
        w.alerts,
    );
    let secs = t.elapsed().as_secs_f64();
    println!(
        "replay: {events} alert events over {} CIs / {} relations ({} repeats of seed {seed}) in {secs:.2} s \
         = {:.0} events/s; {} incidents",
        topo.len(),
        topo.relation_count(),
        w.repeats,
        events as f64 / secs,
        out.incidents.len()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fixed = match args.size.as_deref() {
        None => None,
        Some(s) => match EstateSize::parse(s) {
            Some(z) => Some(z),
            None => bail!("--size {s:?}: expected small, medium, large or huge"),
        },
    };
    if let Some(n) = args.replay_bench {
        return replay_bench(args.first_seed, n);
    }
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    println!(
        "{:>6} {:>6} {:>6} {:>7} {:>7} {:>8} {:>8} {:>8}",
        "seed", "size", "CIs", "events", "alerts", "groups", "sift F1", "top1",
    );
    let mut evals: Vec<Evaluation> = Vec::new();
    for seed in args.first_seed..args.first_seed + args.seeds {
        let size = fixed.unwrap_or_else(|| EstateSize::for_seed(seed));
        let scn = generate(seed, size);
        if let Some(dir) = &args.out {
            let cmdb = serde_json::to_string_pretty(&scn.cmdb)?;
            std::fs::write(dir.join(format!("cmdb-{seed}.json")), cmdb)?;
            let mut lines = scn.alerts.join("\n");
            lines.push('\n');
            std::fs::write(dir.join(format!("alerts-{seed}.jsonl")), lines)?;
            let truth = serde_json::to_string_pretty(&scn.truth)?;
            std::fs::write(dir.join(format!("truth-{seed}.json")), truth)?;
        }
        let e = evaluate(&scn).with_context(|| format!("seed {seed}"))?;
        println!(
            "{:>6} {:>6} {:>6} {:>7} {:>7} {:>8} {:>8.3} {:>8.3}  ratio {:.2}",
            seed,
            size.as_str(),
            e.cis,
            e.events,
            e.alerts,
            e.true_groups,
            e.sift.f1,
            e.sift.root_top1,
            e.sift.group_ratio,
        );
        evals.push(e);
    }
    println!();
    println!(
        "averaged over {} seeds ({} .. {})",
        evals.len(),
        args.first_seed,
        args.first_seed + args.seeds - 1
    );
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>10} {:>17}",
        "grouping", "precision", "recall", "F1", "root top-1", "incidents/groups"
    );
    for (row, name) in ROW_NAMES.iter().enumerate() {
        let scores: Vec<&Scores> = evals.iter().map(|e| e.rows()[row]).collect();
        let mean =
            |f: fn(&Scores) -> f64| scores.iter().map(|s| f(s)).sum::<f64>() / scores.len() as f64;
        println!(
            "{:<24} {:>9.3} {:>9.3} {:>9.3} {:>10.3} {:>17.2}",
            name,
            mean(|s| s.precision),
            mean(|s| s.recall),
            mean(|s| s.f1),
            mean(|s| s.root_top1),
            mean(|s| s.group_ratio),
        );
    }
    Ok(())
}
