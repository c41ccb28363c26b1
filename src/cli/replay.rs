//! `retrain replay`: the whole lifecycle over history, policies side by side (the four built-in
//! ones plus any `--policy` files), with a progress bar on the simulated date, a summary table,
//! and the report files (`report.html`, PNG charts, `timeline.jsonl`, `summary.json`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use retrain::data::{LoadOptions, load};
use retrain::lifecycle::replay::{ReplayOptions, ReplayPolicy, ReplayResult, replay};
use retrain::model::ModelKind;

/// Arguments of `retrain replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Candles (CSV/Parquet; repeat for more symbols).
    #[arg(long, num_args = 1.., default_value = "datasets/btcusd_coinbase_1h.csv")]
    data: Vec<PathBuf>,
    /// Model kinds, comma-separated (one model per symbol and kind).
    #[arg(long, value_delimiter = ',', value_parser = super::kind_parser(), default_value = "xgboost,lightgbm")]
    models: Vec<ModelKind>,
    /// Extra policies to compare (lifecycle policy files; daily cycles), beside the built-in
    /// never / blind_weekly / gated_weekly / triggered.
    #[arg(long, num_args = 1..)]
    policy: Vec<PathBuf>,
    /// The lifecycle policy the built-in policies start from (default the built-in defaults).
    #[arg(long)]
    base_policy: Option<PathBuf>,
    /// First bar used (`2024-01-31` or an RFC 3339 time).
    #[arg(long)]
    from: Option<String>,
    /// Last bar used.
    #[arg(long)]
    to: Option<String>,
    /// Cost of each unit of position change, in basis points.
    #[arg(long, default_value_t = 5.0)]
    cost_bps: f64,
    /// Days the initial model trains on before trading starts.
    #[arg(long, default_value_t = 90)]
    initial_days: usize,
    /// Directory for the stores and the report (its `stores/` is replaced).
    #[arg(long, default_value = "replay")]
    out: PathBuf,
    /// Print the summary as JSON (no progress bar).
    #[arg(long)]
    json: bool,
}

fn instant(s: &str, end_of_day: bool) -> Result<jiff::Timestamp> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let d: jiff::civil::Date = s.parse().with_context(|| format!("`{s}` is neither a date (2024-01-31) nor a time"))?;
    let t = d.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp();
    Ok(if end_of_day { t + jiff::SignedDuration::from_millis(86_400_000 - 1) } else { t })
}

/// Run `retrain replay`.
pub fn run(a: ReplayArgs, threads: Option<usize>) -> Result<()> {
    let mut data = Vec::new();
    for path in &a.data {
        let loaded = load(path, &LoadOptions::default()).with_context(|| format!("loading {}", path.display()))?;
        // The loader names a file without a symbol column after its stem; a symbol given
        // twice is refused by the replay, naming it.
        data.extend(loaded.bars);
    }
    let base = super::read_policy(a.base_policy.as_deref())?;
    let mut policies = ReplayPolicy::builtins(&retrain::config::Policy {
        models: a.models.iter().map(|k| k.name().to_string()).collect(),
        ..base
    });
    for p in &a.policy {
        policies.push(ReplayPolicy::from_file(p, &a.models).with_context(|| format!("reading {}", p.display()))?);
    }
    let opts = ReplayOptions {
        kinds: a.models.clone(),
        from: a.from.as_deref().map(|s| instant(s, false)).transpose()?,
        to: a.to.as_deref().map(|s| instant(s, true)).transpose()?,
        cost_bps: a.cost_bps,
        initial_days: a.initial_days,
        threads: threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        ..ReplayOptions::default()
    };
    let pb = if a.json { ProgressBar::hidden() } else { ProgressBar::new(1000) };
    pb.set_style(ProgressStyle::with_template("{bar:30} {percent:>3}% [{elapsed_precise} / ETA {eta}] {msg}")?);
    let mut on = |p: &retrain::lifecycle::replay::Progress| {
        pb.set_position((p.fraction * 1000.0).round() as u64);
        pb.set_message(format!("{} · {} retrains", p.now.strftime("%Y-%m-%d"), p.retrains));
    };
    let result = replay(&data, &policies, &opts, &a.out, &mut on)?;
    pb.finish_and_clear();
    let files = retrain::lifecycle::replay_report::write(&result, &a.out)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&Summary { result: &result, files })?);
    } else {
        print_summary(&result);
        println!("report: {}", a.out.join("report.html").display());
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct Summary<'a> {
    #[serde(flatten)]
    result: &'a ReplayResult,
    files: Vec<PathBuf>,
}

fn print_summary(r: &ReplayResult) {
    println!(
        "replay {} → {} ({} bars per model; {}; costs {} bp) in {:.0} s; training reused {} times, run {} times",
        r.start.strftime("%Y-%m-%d"),
        r.end.strftime("%Y-%m-%d"),
        r.bars,
        r.models.join(", "),
        r.cost_bps,
        r.seconds,
        r.cache_hits,
        r.cache_misses
    );
    println!(
        "{:<14} {:>8} {:>7} {:>7} {:>6} {:>6} {:>7} {:>8} {:>7} {:>8} {:>7} {:>9} {:>9} {:>7} {:>10} {:>7}",
        "policy",
        "return",
        "Sharpe",
        "maxDD",
        "win",
        "hit",
        "turn/d",
        "retrains",
        "deploys",
        "canaries",
        "rollbk",
        "retired",
        "promoted",
        "CPU s",
        "vs never",
        "p"
    );
    for p in &r.policies {
        let m = &p.metrics;
        let c = &p.counts;
        let (vs, pv) = match &p.vs_never {
            Some(v) => (format!("{:+.4}", v.annualised), format!("{:.3}", v.p_value)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<14} {:>+8.4} {:>7.2} {:>7.4} {:>6.3} {:>6.3} {:>7.2} {:>8} {:>7} {:>8} {:>7} {:>9} {:>9} {:>7.1} {:>10} {:>7}",
            p.name,
            m.total_return,
            m.sharpe,
            m.max_drawdown,
            m.win_rate,
            m.hit_rate,
            m.turnover,
            c.retrains,
            c.deploys,
            c.canaries,
            c.rollbacks,
            c.retirements,
            c.promotions,
            p.cpu_seconds,
            vs,
            pv
        );
    }
    println!("vs never: annualised mean daily PnL difference, Newey–West two-sided p-value");
}
