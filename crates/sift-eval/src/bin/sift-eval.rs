//! `sift-eval`: scores sift's correlation and naive baselines on seeded synthetic
//! scenarios (see `sift_eval`), one line per seed and a table averaged over seeds.
//! With `--out DIR` it also writes each scenario as `sift replay` input. `--grid` runs
//! the generalization grid (worlds away from the generator's defaults), `--nezha` and
//! `--telecom` the real data sets under `--data`.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use sift::correlate::CorrelateConfig;
use sift_eval::{
    EstateSize, Evaluation, ROW_NAMES, Scores, evaluate, generate, grid, nezha, telecom,
};

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
    /// Run the generalization grid instead: every cell (knob levels) on --grid-seeds
    /// seeds from --first-seed (sizes cycle medium, small, large, huge).
    #[arg(long)]
    grid: bool,
    /// Seeds per grid cell.
    #[arg(long, default_value_t = 16)]
    grid_seeds: u64,
    /// Convert, replay and score the Nezha Online Boutique data (<data>/nezha-ob).
    #[arg(long)]
    nezha: bool,
    /// Convert, replay and measure the telecom alarm storm (<data>/telecom-24v).
    #[arg(long)]
    telecom: bool,
    /// Learn alarm causality on telecom-24v and telecom-18v and score it against the
    /// experts' graphs (precision, recall, F1, learning time).
    #[arg(long)]
    causality: bool,
    /// Causality: the lag window in seconds (default: the learner's).
    #[arg(long)]
    causality_window_s: Option<i64>,
    /// Causality: the false-discovery rate (default: the learner's).
    #[arg(long)]
    causality_fdr: Option<f64>,
    /// Causality: instead of scoring, time learning from this many alarms (telecom-24v
    /// repeated back to back, each copy after the last).
    #[arg(long)]
    causality_bench: Option<usize>,
    /// Learned causality in correlation: learn from the first half of each history
    /// (the synthetic grid's scenarios, a Nezha day, the telecom-24v storm), correlate
    /// the second half with and without the graph, and print both.
    #[arg(long)]
    learn_causality: bool,
    /// Where the real data sets are.
    #[arg(long, default_value = "../shared/data")]
    data: PathBuf,
    /// Nezha alert rules: thresholds at median + k robust standard deviations.
    #[arg(long, default_value_t = 5.0)]
    nezha_k: f64,
    /// Nezha truth: a fault's window, minutes after its injection.
    #[arg(long, default_value_t = 5)]
    nezha_window_min: i64,
    /// Telecom: how long a point alarm stays active, in seconds.
    #[arg(long, default_value_t = 300)]
    telecom_hold_s: i64,
}

/// Times the replay core over `events` events (one thread, release build expected).
fn replay_bench(seed: u64, events: usize) -> anyhow::Result<()> {
    use sift::cmdb::{CiMapper, Topology};
    let w = sift_eval::replay_workload(seed, events)?;
    let topo = Topology::from_file(&w.cmdb);
    // What `sift replay` learns first (holds and windows), timed apart: the target is the
    // replay's.
    let t = std::time::Instant::now();
    let learnt =
        sift::replay::with_learned(Default::default(), &topo, &CiMapper::default(), &w.alerts);
    let learn_secs = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let out = sift::replay::run(
        &topo,
        &CiMapper::default(),
        learnt.cfg,
        Vec::new(),
        w.alerts,
    );
    let secs = t.elapsed().as_secs_f64();
    println!(
        "learning (holds {}, windows {:?}): {learn_secs:.2} s",
        learnt.holds.len(),
        learnt.windows
    );
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
    if let Some(n) = args.causality_bench {
        return causality_bench(&args, n);
    }
    if args.learn_causality {
        return run_learn_causality(&args);
    }
    if args.grid || args.nezha || args.telecom || args.causality {
        if args.grid {
            run_grid(args.first_seed, args.grid_seeds)?;
        }
        if args.nezha {
            run_nezha(&args)?;
        }
        if args.telecom {
            run_telecom(&args)?;
        }
        if args.causality {
            run_causality(&args)?;
        }
        return Ok(());
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
        "{:<24} {:>9} {:>9} {:>9} {:>10} {:>17} {:>10}",
        "grouping", "precision", "recall", "F1", "root top-1", "incidents/groups", "B-cubed F1"
    );
    for (row, name) in ROW_NAMES.iter().enumerate() {
        let scores: Vec<&Scores> = evals.iter().map(|e| e.rows()[row]).collect();
        let mean =
            |f: fn(&Scores) -> f64| scores.iter().map(|s| f(s)).sum::<f64>() / scores.len() as f64;
        println!(
            "{:<24} {:>9.3} {:>9.3} {:>9.3} {:>10.3} {:>17.2} {:>10.3}",
            name,
            mean(|s| s.precision),
            mean(|s| s.recall),
            mean(|s| s.f1),
            mean(|s| s.root_top1),
            mean(|s| s.group_ratio),
            mean(|s| s.bcubed_f1),
        );
    }
    Ok(())
}

fn frac((k, n): (usize, usize)) -> String {
    if n == 0 {
        "-".into()
    } else {
        format!("{k}/{n}")
    }
}

/// The generalization grid: one row per cell, then mean and worst cell per scorer.
fn run_grid(first: u64, per_cell: u64) -> anyhow::Result<()> {
    if per_cell == 0 {
        bail!("--grid-seeds must be at least 1");
    }
    let seeds: Vec<u64> = (first..first + per_cell).collect();
    let cells = grid::cells();
    println!(
        "grid: {} cells x seeds {}..={} (sizes cycle medium, small, large, huge); \
         F1 and B-cubed F1 are means over seeds, root top-1 is pooled over the cell's faults",
        cells.len(),
        first,
        first + per_cell - 1
    );
    println!(
        "{:>3} {:<62} {:>6} {:>6} {:>6} {:>9} {:>7} {:>6} | {:>6} {:>6} | {:>6}",
        "#",
        "cell",
        "F1",
        "B3 F1",
        "top1",
        "alerted",
        "silent",
        "inc/g",
        "dep F1",
        "dep B3",
        "win F1"
    );
    let sift = 0;
    let dep = ROW_NAMES.len() - 1;
    let win = 3;
    let mut results = Vec::new();
    // GRID_CELLS=3,6 (env) runs only those cells, to look into one.
    let only: Option<Vec<usize>> = std::env::var("GRID_CELLS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    for (i, cell) in cells.iter().enumerate() {
        if only.as_ref().is_some_and(|o| !o.contains(&i)) {
            continue;
        }
        let r = grid::run_cell(cell, &seeds).with_context(|| format!("cell {}", cell.name()))?;
        let s = &r.scorers[sift];
        println!(
            "{:>3} {:<62} {:>6.3} {:>6.3} {:>6.3} {:>9} {:>7} {:>6.2} | {:>6.3} {:>6.3} | {:>6.3}",
            i,
            cell.name(),
            s.f1,
            s.bcubed_f1,
            s.root_top1,
            frac(s.root_alerted),
            frac(s.root_silent),
            s.group_ratio,
            r.scorers[dep].f1,
            r.scorers[dep].bcubed_f1,
            r.scorers[win].f1,
        );
        results.push(r);
    }
    println!();
    println!(
        "{:<24} {:>18} {:>18} {:>18} {:>18}",
        "scorer: mean / worst", "pair F1", "B-cubed F1", "root top-1", "incidents/group"
    );
    for (row, name) in ROW_NAMES.iter().enumerate() {
        let f1 = grid::summarize(&results, row, |s| s.f1);
        let b3 = grid::summarize(&results, row, |s| s.bcubed_f1);
        let top = grid::summarize(&results, row, |s| s.root_top1);
        let ratios: Vec<f64> = results.iter().map(|r| r.scorers[row].group_ratio).collect();
        let mean_ratio = ratios.iter().sum::<f64>() / ratios.len() as f64;
        let far = ratios
            .iter()
            .copied()
            .max_by(|a, b| (a - 1.0).abs().total_cmp(&(b - 1.0).abs()))
            .unwrap_or(f64::NAN);
        println!(
            "{:<24} {:>7.3} / {:.3} #{:<2} {:>7.3} / {:.3} #{:<2} {:>7.3} / {:.3} #{:<2} {:>7.2} / {:.2}",
            name,
            f1.mean,
            f1.worst,
            f1.worst_cell,
            b3.mean,
            b3.worst,
            b3.worst_cell,
            top.mean,
            top.worst,
            top.worst_cell,
            mean_ratio,
            far,
        );
    }
    Ok(())
}

fn causality_bench(args: &Args, n: usize) -> anyhow::Result<()> {
    use sift_eval::telecom;
    let Some(dir) = data_dir(args, "telecom-24v") else {
        return Ok(());
    };
    let read =
        |f: &str| std::fs::read_to_string(dir.join(f)).with_context(|| format!("reading {f}"));
    let base = telecom::parse_alarms(&read("Alarm.csv")?)?;
    let links = telecom::parse_edges("Topology_edges.csv", &read("Topology_edges.csv")?)?;
    let span = base.iter().map(|a| a.end).max().unwrap_or(0) + 1;
    let alarms: Vec<telecom::Alarm> = (0..)
        .flat_map(|k: i64| {
            base.iter().map(move |a| telecom::Alarm {
                start: a.start + k * span,
                end: a.end + k * span,
                ..*a
            })
        })
        .take(n)
        .collect();
    let dag = telecom::parse_edges("DAG_edges.csv", &read("DAG_edges.csv")?)?;
    let (_, s) = sift_eval::causality::run(
        &alarms,
        &links,
        &dag,
        &sift::causality::LearnConfig::default(),
    );
    println!(
        "causality bench: {} alarms ({} types) learned in {:.2} s (one thread): {} edges, F1 {:.3}",
        s.alarms,
        s.types,
        s.learn_time.as_secs_f64(),
        s.learned_edges,
        s.f1
    );
    Ok(())
}

fn run_causality(args: &Args) -> anyhow::Result<()> {
    let mut cfg = sift::causality::LearnConfig::default();
    if let Some(w) = args.causality_window_s {
        cfg.window_s = w;
    }
    if let Some(q) = args.causality_fdr {
        cfg.fdr = q;
    }
    cfg.validate()?;
    println!(
        "causality (window {} s, fdr {}): {:>6} {:>5} {:>5} {:>7} {:>7} {:>9} {:>6} {:>6} {:>7}",
        cfg.window_s,
        cfg.fdr,
        "alarms",
        "types",
        "truth",
        "learned",
        "correct",
        "precision",
        "recall",
        "F1",
        "learn s"
    );
    for name in ["telecom-24v", "telecom-18v"] {
        let Some(dir) = data_dir(args, name) else {
            continue;
        };
        let (_, s) = sift_eval::causality::run_dir(&dir, &cfg)
            .with_context(|| format!("telecom data in {}", dir.display()))?;
        println!(
            "{name:>33}: {:>6} {:>5} {:>5} {:>7} {:>7} {:>9.3} {:>6.3} {:>6.3} {:>7.2}",
            s.alarms,
            s.types,
            s.truth_edges,
            s.learned_edges,
            s.correct,
            s.precision,
            s.recall,
            s.f1,
            s.learn_time.as_secs_f64()
        );
    }
    Ok(())
}

fn data_dir(args: &Args, name: &str) -> Option<PathBuf> {
    let dir = args.data.join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "{name}: skipped, {} is not a directory (point --data at the real data sets)",
            dir.display()
        );
        None
    }
}

fn run_nezha(args: &Args) -> anyhow::Result<()> {
    let Some(dir) = data_dir(args, "nezha-ob") else {
        return Ok(());
    };
    let settings = nezha::Settings {
        k: args.nezha_k,
        window_min: args.nezha_window_min,
    };
    let cfg = eval_config();
    let mut faults = Vec::new();
    let mut base_faults: Vec<(&'static str, Vec<nezha::FaultResult>)> = Vec::new();
    println!(
        "Nezha Online Boutique ({}): rules at median + {} robust sd of each pod's day, fault window {} min",
        dir.display(),
        settings.k,
        settings.window_min
    );
    println!(
        "{:<12} {:>5} {:>4} {:>9} {:>7} {:>10} {:>7} {:>10} | {:>15} {:>15}",
        "day",
        "pods",
        "CIs",
        "relations",
        "alerts",
        "incidents",
        "pair F1",
        "B-cubed F1",
        "window F1 / B3",
        "dep F1 / B3"
    );
    for day in nezha::days(&dir)? {
        let mut r = nezha::run_day(&day, &cfg, settings)
            .with_context(|| format!("Nezha day {}", day.display()))?;
        let b = |i: usize| {
            r.baselines
                .get(i)
                .map(|b| format!("{:.3} / {:.3}", b.grouping.f1, b.grouping.bcubed_f1))
                .unwrap_or_default()
        };
        println!(
            "{:<12} {:>5} {:>4} {:>9} {:>7} {:>10} {:>7.3} {:>10.3} | {:>15} {:>15}",
            r.day,
            r.pods,
            r.cis,
            r.relations,
            r.episodes,
            r.incidents,
            r.grouping.f1,
            r.grouping.bcubed_f1,
            b(0),
            b(1)
        );
        for f in &mut r.faults {
            f.day = r.day.clone();
        }
        faults.extend(r.faults);
        for bl in r.baselines {
            match base_faults.iter_mut().find(|x| x.0 == bl.name) {
                Some(x) => x.1.extend(bl.faults),
                None => base_faults.push((bl.name, bl.faults)),
            }
        }
    }
    if std::env::var_os("NEZHA_FAULTS").is_some() {
        for f in &faults {
            println!(
                "  {} {} {:<22} {:<15} {:?} alerts {} named {:?}{}",
                f.day,
                f.at,
                f.service,
                f.kind,
                f.seen,
                f.alerts,
                f.named,
                if f.correct { " ok" } else { "" }
            );
        }
    }
    println!();
    println!(
        "{:<16} {:>6} {:>7} {:>13} {:>13} {:>13}",
        "fault type", "faults", "unseen", "root alerted", "only callers", "seen, named"
    );
    for row in nezha::by_type(&faults) {
        let named = (
            row.root_alerted.0 + row.only_callers.0,
            row.root_alerted.1 + row.only_callers.1,
        );
        println!(
            "{:<16} {:>6} {:>7} {:>13} {:>13} {:>13}",
            row.kind,
            row.faults,
            row.unseen,
            frac(row.root_alerted),
            frac(row.only_callers),
            frac(named),
        );
    }
    for (name, bf) in &base_faults {
        if let Some(row) = nezha::by_type(bf).pop() {
            println!(
                "{:<16} {:>6} {:>7} {:>13} {:>13} {:>13}",
                format!("all, {}", name.split(' ').next().unwrap_or(name)),
                row.faults,
                row.unseen,
                frac(row.root_alerted),
                frac(row.only_callers),
                frac((
                    row.root_alerted.0 + row.only_callers.0,
                    row.root_alerted.1 + row.only_callers.1
                )),
            );
        }
    }
    println!(
        "(k/n: the root service named in k of the n faults in that class; rows 'all, time' and \
         'all, dependency' are the 5-minute window and dependency-alerted-10m baselines)"
    );
    Ok(())
}

fn run_telecom(args: &Args) -> anyhow::Result<()> {
    let Some(dir) = data_dir(args, "telecom-24v") else {
        return Ok(());
    };
    let r = telecom::run_dir(&dir, args.telecom_hold_s, &eval_config())
        .with_context(|| format!("telecom data in {}", dir.display()))?;
    println!(
        "telecom storm ({}): {} alarms, {} alerts (alarms of a type on a device within {} s folded), \
         {} devices, {} relations",
        dir.display(),
        r.sift.alarms,
        r.sift.episodes,
        args.telecom_hold_s,
        r.devices,
        r.relations
    );
    println!(
        "{:<22} {:>9} {:>15} {:>16} {:>15} {:>18}",
        "grouping",
        "incidents",
        "alarms/incident",
        "largest (alarms)",
        "largest (alerts)",
        "pairs DAG-linked"
    );
    for (name, s) in [
        ("sift", &r.sift),
        ("time window 5m", &r.window),
        ("(any two alerts)", &r.any_two),
    ] {
        println!(
            "{:<22} {:>9} {:>15.1} {:>16} {:>15} {:>11.3} of {}",
            name,
            s.incidents,
            s.alarms_per_incident,
            s.largest_alarms,
            s.largest_episodes,
            s.linked_share(),
            s.pairs
        );
    }
    println!(
        "(pairs: grouped alerts of different alarm types; DAG-linked: the expert graph links the types either way)"
    );
    Ok(())
}

/// `--learn-causality`: the grid, Nezha and telecom-24v, each learned on its first half
/// and scored on its second half without and with the graph.
fn run_learn_causality(args: &Args) -> anyhow::Result<()> {
    use sift_eval::learned;
    let ccfg = CorrelateConfig::default();
    let lcfg = sift::causality::LearnConfig::default();
    let per_cell = args.grid_seeds.max(1);
    let seeds: Vec<u64> = (args.first_seed..args.first_seed + per_cell).collect();
    let cells = grid::cells();
    println!(
        "learned causality, grid: {} cells x seeds {}..={}; each scenario learned on the alerts \
         before its median start, scored on the rest (without -> with the graph)",
        cells.len(),
        args.first_seed,
        args.first_seed + per_cell - 1
    );
    println!(
        "{:>3} {:<62} {:>6} | {:>15} {:>15} {:>15} {:>13}",
        "#", "cell", "edges", "pair F1", "B-cubed F1", "root top-1", "inc/group"
    );
    let mut results = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        let (r, edges) = learned::run_cell(cell, &seeds, &ccfg, &lcfg)
            .with_context(|| format!("cell {}", cell.name()))?;
        let (a, b) = (&r.scorers[0], &r.scorers[1]);
        println!(
            "{:>3} {:<62} {:>6.1} | {:.3} -> {:.3} {:.3} -> {:.3} {:.3} -> {:.3} {:.2} -> {:.2}",
            i,
            cell.name(),
            edges,
            a.f1,
            b.f1,
            a.bcubed_f1,
            b.bcubed_f1,
            a.root_top1,
            b.root_top1,
            a.group_ratio,
            b.group_ratio
        );
        results.push(r);
    }
    println!();
    println!(
        "{:<10} {:>22} {:>22} {:>22} {:>10}",
        "mean/worst", "pair F1", "B-cubed F1", "root top-1", "inc/group"
    );
    for (row, name) in ["without", "with"].iter().enumerate() {
        let f1 = grid::summarize(&results, row, |s| s.f1);
        let b3 = grid::summarize(&results, row, |s| s.bcubed_f1);
        let top = grid::summarize(&results, row, |s| s.root_top1);
        let ratio = results
            .iter()
            .map(|r| r.scorers[row].group_ratio)
            .sum::<f64>()
            / results.len().max(1) as f64;
        println!(
            "{:<10} {:>7.3} / {:.3} (#{:<2}) {:>7.3} / {:.3} (#{:<2}) {:>7.3} / {:.3} (#{:<2}) {:>10.2}",
            name,
            f1.mean,
            f1.worst,
            f1.worst_cell,
            b3.mean,
            b3.worst,
            b3.worst_cell,
            top.mean,
            top.worst,
            top.worst_cell,
            ratio
        );
    }
    let worse: Vec<String> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.scorers[1].f1 < r.scorers[0].f1 - 0.0005)
        .map(|(i, r)| format!("#{i} {:+.3}", r.scorers[1].f1 - r.scorers[0].f1))
        .collect();
    println!(
        "cells where pair F1 fell: {}",
        if worse.is_empty() {
            "none".to_string()
        } else {
            worse.join(", ")
        }
    );

    if let Some(dir) = data_dir(args, "nezha-ob") {
        let settings = nezha::Settings {
            k: args.nezha_k,
            window_min: args.nezha_window_min,
        };
        let days = nezha::days(&dir)?
            .iter()
            .map(|d| nezha::load_day(d, settings))
            .collect::<Result<Vec<_>, _>>()?;
        println!();
        println!("Nezha: learned on one day, scored on the other (without -> with)");
        println!(
            "{:<24} {:>5} | {:>15} {:>15} {:>17} {:>17} {:>11}",
            "learned on -> scored on",
            "edges",
            "pair F1",
            "B-cubed F1",
            "root alerted",
            "only callers",
            "incidents"
        );
        for (i, l) in days.iter().enumerate() {
            for (j, d) in days.iter().enumerate() {
                if i == j {
                    continue;
                }
                let r = learned::nezha_split(l, d, &ccfg, &lcfg, settings);
                let named = |res: &nezha::DayResult, seen: nezha::Seen| {
                    let fs: Vec<_> = res.faults.iter().filter(|f| f.seen == seen).collect();
                    format!("{}/{}", fs.iter().filter(|f| f.correct).count(), fs.len())
                };
                println!(
                    "{:<24} {:>5} | {:.3} -> {:.3} {:.3} -> {:.3} {:>7} -> {:<7} {:>7} -> {:<7} {:>4} -> {:<4}",
                    format!("{} -> {}", r.learned_on, r.scored_on),
                    r.edges,
                    r.without.grouping.f1,
                    r.with.grouping.f1,
                    r.without.grouping.bcubed_f1,
                    r.with.grouping.bcubed_f1,
                    named(&r.without, nezha::Seen::RootAlerted),
                    named(&r.with, nezha::Seen::RootAlerted),
                    named(&r.without, nezha::Seen::OnlyCallers),
                    named(&r.with, nezha::Seen::OnlyCallers),
                    r.without.incidents,
                    r.with.incidents,
                );
            }
        }
    }

    if let Some(dir) = data_dir(args, "telecom-24v") {
        use sift_eval::telecom;
        let read =
            |f: &str| std::fs::read_to_string(dir.join(f)).with_context(|| format!("reading {f}"));
        let alarms = telecom::parse_alarms(&read("Alarm.csv")?)?;
        let links = telecom::parse_edges("Topology_edges.csv", &read("Topology_edges.csv")?)?;
        let dag = telecom::parse_edges("DAG_edges.csv", &read("DAG_edges.csv")?)?;
        let r = learned::telecom_split(&alarms, &links, &dag, args.telecom_hold_s, &ccfg, &lcfg);
        println!();
        println!(
            "telecom-24v (alarms held {} s): learned on {} alarms ({} edges, {} drawn by the experts), \
             storm of the other {} (without -> with)",
            args.telecom_hold_s, r.learned_alarms, r.edges, r.edges_in_dag, r.scored_alarms
        );
        let (a, b) = (&r.without, &r.with);
        println!(
            "  incidents {} -> {}, alarms per incident {:.1} -> {:.1}, largest {} -> {} alarms, \
             DAG-linked share of grouped pairs {:.3} -> {:.3}, same-type pairs {} -> {}",
            a.incidents,
            b.incidents,
            a.alarms_per_incident,
            b.alarms_per_incident,
            a.largest_alarms,
            b.largest_alarms,
            a.linked_share(),
            b.linked_share(),
            a.same_type_pairs,
            b.same_type_pairs
        );
    }
    Ok(())
}

/// The default `[correlate]`, without learned holds when `EVAL_NO_HOLDS` is set and
/// without the orphan rule when `EVAL_NO_ORPHANS` is.
fn eval_config() -> CorrelateConfig {
    CorrelateConfig {
        learn_holds: std::env::var_os("EVAL_NO_HOLDS").is_none(),
        orphan_links: std::env::var_os("EVAL_NO_ORPHANS").is_none(),
        ..CorrelateConfig::default()
    }
}
