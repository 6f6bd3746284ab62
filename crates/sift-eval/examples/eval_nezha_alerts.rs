//! The alerts the Nezha conversion makes, one line each (`cargo run --release --example
//! eval_nezha_alerts -- DAY_DIR [k]`): pod, rule, start, duration. For reading what the
//! rules of `sift_eval::nezha` fire on, beside the fault list.
use sift_eval::nezha;

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = a.first() else {
        anyhow::bail!("usage: eval_nezha_alerts DAY_DIR [k]");
    };
    let k: f64 = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let metric = std::path::Path::new(dir).join("metric");
    let mut files: Vec<_> = std::fs::read_dir(&metric)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with("_metric.csv"))
        .collect();
    files.sort();
    let mut eps = Vec::new();
    for f in files {
        let s = nezha::parse_metrics(&f.display().to_string(), &std::fs::read_to_string(&f)?)?;
        eps.extend(nezha::episodes(&s, k));
    }
    eps.sort_by_key(|e| e.start);
    for e in eps {
        let dur = e.end.map(|x| format!("{} min", (x - e.start) / 60));
        println!(
            "{} {:<24} {:<24} {}",
            e.start,
            e.service,
            e.alertname,
            dur.unwrap_or_else(|| "still firing".into())
        );
    }
    Ok(())
}
