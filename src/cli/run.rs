//! `retrain run` (the main job: for each model kind a full retraining job — features → CPCV →
//! fit → candidate → decision against the active version → store — with progress and a final
//! table) and `retrain status` (active versions, their live health from a prediction log, and
//! the last jobs).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use retrain::data::{LoadOptions, load};
use retrain::lifecycle::events::{CallbackSink, Event, EventKind};
use retrain::lifecycle::{JobReport, ModelSpec, Retrainer, Trigger, policy_kinds};
use retrain::model::ModelKind;
use serde::Serialize;

/// Arguments of `retrain run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Candles (CSV/Parquet).
    #[arg(long, default_value = "datasets/btcusd_coinbase_1h.csv")]
    data: PathBuf,
    /// Lifecycle policy (TOML, or JSON by name); default the built-in defaults.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Version store directory.
    #[arg(long, default_value = "models")]
    store: PathBuf,
    /// Model kinds, comma-separated (default: the policy's `models`, xgboost,lightgbm).
    #[arg(long, value_delimiter = ',', value_parser = super::kind_parser())]
    models: Option<Vec<ModelKind>>,
    /// Model id prefix (ids are `<prefix>_<kind>`); default the data file's stem.
    #[arg(long)]
    prefix: Option<String>,
    /// Train on the last N days only (default: every bar).
    #[arg(long)]
    window_days: Option<usize>,
    /// Why (recorded in the audit log).
    #[arg(long, default_value = "retrain run")]
    reason: String,
    /// Print the reports as JSON (no progress).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct RunSummary {
    data: String,
    store: String,
    seconds: f64,
    jobs: Vec<JobReport>,
}

/// Run `retrain run`.
pub fn run(a: RunArgs, threads: Option<usize>) -> Result<()> {
    let started = Instant::now();
    let mut policy = super::read_policy(a.policy.as_deref())?;
    if let Some(t) = threads {
        policy.threads = t;
    }
    let loaded = load(&a.data, &LoadOptions::default()).with_context(|| format!("loading {}", a.data.display()))?;
    anyhow::ensure!(
        loaded.bars.len() == 1,
        "{}: `run` trains on one symbol, found {}",
        a.data.display(),
        loaded.bars.len()
    );
    let bars = loaded.bars.into_iter().next().expect("one symbol");
    let prefix = a.prefix.clone().unwrap_or_else(|| {
        a.data.file_stem().map(|s| s.to_string_lossy().replace(['.', ' '], "_")).unwrap_or_else(|| "model".into())
    });
    let pb = if a.json { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    pb.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")?);
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    let pb2 = pb.clone();
    let sink = CallbackSink(move |e: &Event| {
        let m = e.model.as_deref().unwrap_or("");
        match &e.kind {
            EventKind::TrainingStarted { kind, .. } => pb2.set_message(format!(
                "{m}: training {kind} (CPCV per seed of the stability study, baselines, final fit)"
            )),
            EventKind::Registered { tag, decision } => pb2.println(format!("  {m}: stored {tag} → {decision}")),
            EventKind::TrainingCompleted { ok: false, error, .. } => {
                pb2.println(format!("  {m}: FAILED: {}", error.as_deref().unwrap_or("?")))
            }
            _ => {}
        }
    });
    let mut r = Retrainer::open(&a.store, policy)?.with_events(sink);
    let mut triggers = Vec::new();
    let kinds = match a.models.clone() {
        Some(k) => k,
        None => policy_kinds(r.policy())?,
    };
    for kind in &kinds {
        let id = format!("{prefix}_{}", kind.name());
        r = r.with_model(&id, ModelSpec::new(*kind))?;
        // The main job is an operator's first model on the whole file unless narrowed.
        let t = match a.window_days {
            Some(d) => Trigger::manual(&a.reason).with_window_days(d),
            None => Trigger::manual(&a.reason).with_all_bars(),
        };
        triggers.push((id, t));
    }
    let plan = r.plan(&triggers);
    let jobs = r.execute(&plan, &|_| Ok(bars.clone()));
    pb.finish_and_clear();
    let summary = RunSummary {
        data: a.data.display().to_string(),
        store: a.store.display().to_string(),
        seconds: started.elapsed().as_secs_f64(),
        jobs,
    };
    let failed = summary.jobs.iter().filter(|j| j.error.is_some() && j.tag.is_none()).count();
    super::emit(a.json, &summary, print_run)?;
    if failed == summary.jobs.len() && failed > 0 {
        anyhow::bail!("every job failed");
    }
    Ok(())
}

fn fmt(v: Option<&f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

fn print_run(s: &RunSummary) {
    println!("retrain run on {} into {} ({:.1} s)", s.data, s.store, s.seconds);
    println!(
        "{:<34} {:<9} {:<10} {:<9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}  {:<18} {:<18}",
        "model", "status", "decision", "improve", "auc", "ic", "win", "avg_r", "calib", "secs", "version", "was active"
    );
    for j in &s.jobs {
        let d = j.decision.as_ref();
        println!(
            "{:<34} {:<9} {:<10} {:<9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7.1}  {:<18} {:<18}",
            j.model_id,
            j.status.to_string(),
            d.map_or("-".into(), |d| d.decision.to_string()),
            d.and_then(|d| d.improvement).map_or("-".into(), |i| format!("{:+.2}%", 100.0 * i)),
            fmt(j.metrics.get("auc")),
            fmt(j.metrics.get("ic_spearman")),
            fmt(j.metrics.get("win_rate")),
            fmt(j.metrics.get("avg_r")),
            fmt(j.metrics.get("calibration")),
            j.seconds,
            j.tag.as_deref().unwrap_or("-"),
            j.incumbent.as_deref().unwrap_or("-"),
        );
        // Each baseline on the same paths, with the candidate's margin on the gate's metric.
        for (name, m) in &j.baselines {
            let check = d.and_then(|d| d.input.baselines.iter().find(|b| &b.baseline == name));
            println!(
                "{:<34} {:<9} {:<10} {:<9} {:>8} {:>8} {:>8} {:>8} {:>8}",
                format!("  baseline {name}"),
                "",
                check.map_or("-", |c| if c.beaten { "beaten" } else { "NOT beaten" }),
                check.and_then(|c| c.test).map_or("-".into(), |t| format!("{:+.4}", t.mean)),
                fmt(m.get("auc")),
                fmt(m.get("ic_spearman")),
                fmt(m.get("win_rate")),
                fmt(m.get("avg_r")),
                fmt(m.get("calibration")),
            );
        }
    }
    for j in &s.jobs {
        if let Some(d) = &j.decision {
            println!("{}: {}", j.model_id, d);
            print_evidence(d);
        }
        if let Some(e) = &j.error {
            println!("{}: {}", j.model_id, e);
        }
        for n in &j.notes {
            println!("{}: note: {n}", j.model_id);
        }
    }
}

/// The decision's evidence as a table: value, rule (with units), verdict, the numbers behind it.
fn print_evidence(d: &retrain::lifecycle::decision::DecisionReport) {
    println!("  {:<30} {:>9}  {:<52} {:<7} detail", "evidence", "value", "rule", "verdict");
    for e in &d.evidence {
        let verdict = if e.gated { e.verdict.to_string() } else { format!("{} (gate off)", e.verdict) };
        println!("  {:<30} {:>9}  {:<52} {:<7} {}", e.check, fmt(e.value.as_ref()), e.rule, verdict, e.detail);
    }
}

/// Arguments of `retrain status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Version store directory.
    #[arg(long, default_value = "models")]
    store: PathBuf,
    /// Prediction log (JSONL or Parquet): adds each active version's live health.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Lifecycle policy (health thresholds).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct StatusRow {
    #[serde(flatten)]
    status: retrain::lifecycle::orchestrator::ModelStatus,
    health: Option<retrain::lifecycle::HealthReport>,
}

/// Run `retrain status`.
pub fn status(a: StatusArgs) -> Result<()> {
    let store = retrain::store::VersionStore::open_existing(&a.store)?;
    let policy = super::read_policy(a.policy.as_deref())?;
    let log = match &a.log {
        Some(p) => Some(
            retrain::lifecycle::PredictionLog::read(p)
                .with_context(|| format!("reading the prediction log {}", p.display()))?,
        ),
        None => None,
    };
    let mut rows = Vec::new();
    for status in retrain::lifecycle::orchestrator::status(&store)? {
        let health = match (&log, &status.active) {
            (Some(log), Some(tag)) => Some(retrain::lifecycle::retire::version_health(
                &status.model_id,
                tag,
                &store.deployments(&status.model_id)?,
                log,
                &policy,
            )),
            _ => None,
        };
        rows.push(StatusRow { status, health });
    }
    super::emit(a.json, &rows, |rows| {
        for row in rows {
            let m = &row.status;
            println!(
                "{}: active {} ({}), shadow {}, deployed {}",
                m.model_id,
                m.active.as_deref().unwrap_or("-"),
                m.kind.as_deref().unwrap_or("-"),
                m.shadow.as_deref().unwrap_or("-"),
                m.deployed_at.map_or("-".into(), |t| t.to_string())
            );
            let keys = ["auc", "win_rate", "avg_r", "calibration", "ic_spearman"];
            let metrics: Vec<String> =
                keys.iter().filter_map(|k| m.metrics.get(*k).map(|v| format!("{k} {v:.4}"))).collect();
            if !metrics.is_empty() {
                println!("  CPCV: {}", metrics.join(", "));
            }
            if let Some(a) = &m.alarm {
                println!("  STOP TRADING: alarm raised {} by {}: {}", a.raised_at, a.actor, a.reason);
            }
            if let Some(h) = &row.health {
                let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v));
                println!(
                    "  live: {} — {} predictions, {} resolved, win {}, IC {} ({} trailing days < 0){}",
                    h.status,
                    h.predictions,
                    h.resolved,
                    pct(h.win_rate),
                    h.rolling_ic.last().map_or("-".into(), |(_, ic)| format!("{ic:+.3}")),
                    h.negative_ic_days(),
                    if h.alerts.is_empty() { String::new() } else { format!("; alerts: {}", h.alerts.join("; ")) }
                );
            }
            for j in &m.last_jobs {
                println!(
                    "  job {} {} {:.1}s {}",
                    j["ts"].as_str().unwrap_or("?"),
                    j["status"].as_str().unwrap_or("?"),
                    j["seconds"].as_f64().unwrap_or(0.0),
                    j["decision"].as_str().unwrap_or(j["error"].as_str().unwrap_or(""))
                );
            }
        }
    })
}
