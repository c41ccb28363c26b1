//! The supervisor's commands: `retrain health` (live health from a prediction log),
//! `retrain drift` (feature drift of candles against a reference), `retrain triggers`
//! (every trigger of every stored model, and the plan they make), `retrain shadow` (a
//! shadow/canary test's verdict, optionally acted on) and `retrain supervise` (retirement and
//! automatic rollback from the live log).

use std::path::PathBuf;

use anyhow::{Context, Result};
use retrain::config::Policy;
use retrain::data::{Bars, LoadOptions, load};
use retrain::features::FeatureSpec;
use retrain::lifecycle::drift::{
    DriftReport, ReferenceStats, check_drift, recent_columns, reference_from_bars, trading_days,
};
use retrain::lifecycle::{
    HealthReport, LiveAction, ModelCheck, Observations, PredictionLog, Retrainer, ShadowEvaluation, assess,
};
use serde::Serialize;

fn policy(path: &Option<PathBuf>) -> Result<Policy> {
    super::read_policy(path.as_deref())
}

fn one_symbol(path: &PathBuf) -> Result<Bars> {
    let loaded = load(path, &LoadOptions::default()).with_context(|| format!("loading {}", path.display()))?;
    anyhow::ensure!(loaded.bars.len() == 1, "{}: expected one symbol, found {}", path.display(), loaded.bars.len());
    Ok(loaded.bars.into_iter().next().expect("one symbol"))
}

fn log(path: &PathBuf) -> Result<PredictionLog> {
    PredictionLog::read(path).with_context(|| format!("reading the prediction log {}", path.display()))
}

/// Arguments of `retrain health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Prediction log: JSONL (one record a line) or Parquet, columns ts, model, direction,
    /// probability, score, outcome, risk, latency_ms.
    #[arg(long)]
    log: PathBuf,
    /// Only this model (default: every model in the log).
    #[arg(long)]
    model: Option<String>,
    /// Lifecycle policy (alert thresholds).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn print_health(reports: &Vec<HealthReport>) {
    for h in reports {
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v));
        println!(
            "{}: {} ({} predictions, {} resolved) win {} acc {} avg R {} calib err {} trend {}",
            h.model,
            h.status,
            h.predictions,
            h.resolved,
            pct(h.win_rate),
            pct(h.accuracy),
            h.avg_r.map_or("-".into(), |v| format!("{v:+.3}")),
            h.calibration_error.map_or("-".into(), |v| format!("{v:.3}")),
            format!("{:?}", h.trend).to_uppercase()
        );
        if let Some((day, ic)) = h.rolling_ic.last() {
            println!("  rolling IC {ic:+.3} on {day}; {} trailing days with IC < 0", h.negative_ic_days());
        }
        for a in &h.alerts {
            println!("  alert: {a}");
        }
        for n in &h.notes {
            println!("  note: {n}");
        }
    }
}

/// Run `retrain health`.
pub fn health(a: HealthArgs) -> Result<()> {
    let p = policy(&a.policy)?;
    let log = log(&a.log)?;
    let models = match &a.model {
        Some(m) => vec![m.clone()],
        None => log.models(),
    };
    let reports: Vec<HealthReport> = models.iter().map(|m| assess(m, &log.of(m), &p)).collect();
    super::emit(a.json, &reports, print_health)
}

/// Arguments of `retrain drift`.
#[derive(Debug, clap::Args)]
pub struct DriftArgs {
    /// The reference: candles (CSV/Parquet; features computed with --spec) or a stored
    /// version's `reference.json`.
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    reference: Option<PathBuf>,
    /// Instead of --reference: the active version of this model in --store (its reference and
    /// feature spec).
    #[arg(long)]
    model: Option<String>,
    /// Version store (with --model).
    #[arg(long, default_value = "models")]
    store: PathBuf,
    /// Recent candles (CSV/Parquet) to check.
    #[arg(long)]
    current: PathBuf,
    /// Feature spec (TOML/JSON) for candle files; default the built-in set.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Only the last N trading days of --current (default: every row).
    #[arg(long)]
    days: Option<usize>,
    /// Lifecycle policy (KS/PSI thresholds).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn print_drift(d: &DriftReport) {
    println!(
        "drift {}: {} of {} features drifted, {} alerts, max KS {:.3} ({} of {} features calibrated for autocorrelation)",
        d.severity,
        d.drifted,
        d.features.len(),
        d.alerts,
        d.max_ks,
        d.calibrated,
        d.features.len()
    );
    println!(
        "{:<28} {:>7} {:>10} {:>8} {:>10} {:>10} {:>8} {:>7}  flags",
        "feature", "KS", "p (raw)", "noise KS", "p (eff)", "p (BH)", "PSI", "n"
    );
    let mut rows: Vec<_> = d.features.iter().collect();
    rows.sort_by(|a, b| b.ks.statistic.total_cmp(&a.ks.statistic));
    for f in rows {
        let flag = match (f.drifted, f.alert) {
            (true, _) => "DRIFTED",
            (false, true) => "alert",
            _ => "",
        };
        println!(
            "{:<28} {:>7.4} {:>10.3e} {:>8} {:>10.3e} {:>10.3e} {:>8.4} {:>7}  {flag}",
            f.name,
            f.ks.statistic,
            f.ks.p_value,
            f.noise_ks.map_or("-".into(), |v| format!("{v:.4}")),
            f.p_effective,
            f.p_adjusted,
            f.psi,
            f.n_recent
        );
    }
}

/// Run `retrain drift`.
pub fn drift(a: DriftArgs) -> Result<()> {
    let p = policy(&a.policy)?;
    let current = one_symbol(&a.current)?;
    let (reference, spec): (ReferenceStats, FeatureSpec) = match (&a.model, &a.reference) {
        (Some(model), _) => {
            let r = Retrainer::open(&a.store, p.clone())?;
            let info = r
                .store()
                .active(model)?
                .with_context(|| format!("{model} has no active version in {}", a.store.display()))?;
            (
                retrain::lifecycle::supervisor::load_reference(r.store(), model, &info.tag)?,
                r.version_features(model, &info)?,
            )
        }
        (None, Some(path)) => {
            let spec = match &a.spec {
                Some(s) => FeatureSpec::from_file(s).with_context(|| format!("reading {}", s.display()))?,
                None => FeatureSpec::default(),
            };
            let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
            let reference = if is_json {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                let r: ReferenceStats = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a reference.json", path.display()))?;
                if let Some(problem) = r.problem() {
                    anyhow::bail!("{} is not a usable reference.json: {problem}", path.display());
                }
                r
            } else {
                // Calibrated for windows as long as the one checked (--days, else all of --current).
                let days = a.days.unwrap_or_else(|| trading_days(current.timestamps()));
                reference_from_bars(&one_symbol(path)?, &spec, p.psi_bins, Some(days))?
            };
            (reference, spec)
        }
        (None, None) => anyhow::bail!("give --reference FILE or --model ID"),
    };
    let recent = recent_columns(&current, &spec, a.days, &reference)?;
    let report = check_drift(&reference, &recent, &p)?;
    super::emit(a.json, &report, print_drift)
}

/// Arguments of `retrain triggers`.
#[derive(Debug, clap::Args)]
pub struct TriggersArgs {
    /// Prediction log (JSONL or Parquet) for health, performance and IC-decay triggers.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Recent candles (CSV/Parquet) for the drift check of every model.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Version store.
    #[arg(long, default_value = "models")]
    store: PathBuf,
    /// Lifecycle policy (thresholds, schedules).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct TriggersSummary {
    models: Vec<ModelCheck>,
    plan: retrain::lifecycle::Plan,
}

fn print_triggers(s: &TriggersSummary) {
    for c in &s.models {
        println!("{} (active {})", c.model_id, c.active);
        if let Some(h) = &c.health {
            println!(
                "  health {}: {}",
                h.status,
                if h.alerts.is_empty() { "no alerts".into() } else { h.alerts.join("; ") }
            );
        }
        if let Some(d) = &c.drift {
            println!(
                "  drift {}: {} of {} features drifted (max KS {:.3})",
                d.severity,
                d.drifted,
                d.features.len(),
                d.max_ks
            );
        }
        if let Some(p) = &c.prediction_drift {
            println!(
                "  prediction drift{}: KS {:.3} (noise {}), p {:.2e}, {} logged scores",
                if p.drifted { " DRIFTED" } else { "" },
                p.ks.statistic,
                p.noise_ks.map_or("-".into(), |v| format!("{v:.3}")),
                p.p_effective,
                p.n_recent
            );
        }
        if let Some(a) = &c.alarm {
            println!(
                "  STOP TRADING (alarm raised {}): {} — clear with `retrain alarm clear {}`",
                a.raised_at, a.reason, c.model_id
            );
        }
        for t in &c.triggers {
            println!("  trigger [{}] {}", t.priority, t.reason);
        }
        if c.triggers.is_empty() {
            println!("  no trigger");
        }
        for e in &c.errors {
            println!("  error: {e}");
        }
    }
    if s.plan.jobs.is_empty() {
        println!("plan: nothing to retrain");
    }
    for (i, j) in s.plan.jobs.iter().enumerate() {
        println!(
            "plan {}: {} [{}] window {} est. {}",
            i + 1,
            j.model_id,
            j.trigger.priority,
            j.window_days.map_or("all bars".into(), |d| format!("{d} days")),
            j.estimated_seconds.map_or("-".into(), |s| format!("{s:.0} s"))
        );
    }
}

/// Run `retrain triggers`.
pub fn triggers(a: TriggersArgs) -> Result<()> {
    let r = Retrainer::open(&a.store, policy(&a.policy)?)?;
    let log = a.log.as_ref().map(log).transpose()?;
    let bars = a.data.as_ref().map(one_symbol).transpose()?;
    let bars_for = |_: &str| Ok(bars.clone().expect("only called with --data"));
    let obs = Observations {
        predictions: log.as_ref(),
        bars: if bars.is_some() { Some(&bars_for) } else { None },
        ..Default::default()
    };
    let models = r.evaluate_triggers(&obs)?;
    let plan = r.plan(&ModelCheck::pairs(&models));
    super::emit(a.json, &TriggersSummary { models, plan }, print_triggers)
}

/// Arguments of `retrain shadow`.
#[derive(Debug, clap::Args)]
pub struct ShadowArgs {
    /// The model whose SHADOW version is under test.
    model: String,
    /// Version store.
    #[arg(long, default_value = "models")]
    store: PathBuf,
    /// Lifecycle policy (min_samples, promotion threshold, …).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Act on the verdict: PROMOTE makes the candidate active, REJECT retires it.
    #[arg(long)]
    act: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ShadowSummary {
    model: String,
    shadow: String,
    active: Option<String>,
    mode: retrain::lifecycle::shadow::Mode,
    acted: bool,
    evaluation: ShadowEvaluation,
}

fn print_shadow(s: &ShadowSummary) {
    let e = &s.evaluation;
    println!(
        "{}: shadow {} vs active {} ({:?}): {}{}",
        s.model,
        s.shadow,
        s.active.as_deref().unwrap_or("-"),
        s.mode,
        e.recommendation,
        if s.acted { " (applied)" } else { "" }
    );
    println!("  {} paired outcomes, {} pending", e.samples, e.pending);
    if let (Some(a), Some(c)) = (&e.active, &e.shadow) {
        println!("  active:    win {:.1}%  avg R {:+.4}  drawdown {:.3}", 100.0 * a.win_rate, a.avg_r, a.max_drawdown);
        println!("  candidate: win {:.1}%  avg R {:+.4}  drawdown {:.3}", 100.0 * c.win_rate, c.avg_r, c.max_drawdown);
    }
    for r in &e.reasons {
        println!("  {r}");
    }
}

/// Run `retrain shadow`.
pub fn shadow(a: ShadowArgs) -> Result<()> {
    let r = Retrainer::open(&a.store, policy(&a.policy)?)?;
    let test = r.shadow_test(&a.model)?;
    let evaluation =
        if a.act { r.evaluate_shadow(&a.model)? } else { test.evaluate(jiff::Timestamp::now(), r.policy()) };
    let summary = ShadowSummary {
        model: a.model.clone(),
        shadow: test.shadow_tag.clone(),
        active: test.active_tag.clone(),
        mode: test.mode,
        acted: a.act && evaluation.recommendation != retrain::lifecycle::Recommendation::ContinueTesting,
        evaluation,
    };
    super::emit(a.json, &summary, print_shadow)
}

/// Arguments of `retrain supervise`.
#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    /// Prediction log (JSONL or Parquet); records `model@tag` name their version, untagged
    /// ones belong to the version active at their time.
    #[arg(long)]
    log: PathBuf,
    /// Version store.
    #[arg(long, default_value = "models")]
    store: PathBuf,
    /// Lifecycle policy (retire_ic_days, rollback_threshold, …).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Run `retrain supervise`.
pub fn supervise(a: SuperviseArgs) -> Result<()> {
    let r = Retrainer::open(&a.store, policy(&a.policy)?)?;
    let verdicts = r.supervise(&log(&a.log)?)?;
    super::emit(a.json, &verdicts, |vs| {
        for v in vs {
            let what = match &v.action {
                LiveAction::Keep => "keep".to_string(),
                LiveAction::Retire { tag, negative_ic_days } => {
                    format!("RETIRED {tag} ({negative_ic_days} days of IC < 0); fallback activated")
                }
                LiveAction::Rollback { from, to, change } => {
                    format!("ROLLED BACK {from} → {to} (live score {:+.1}%)", 100.0 * change)
                }
            };
            println!("{}: {what}", v.model_id);
            for r in &v.reasons {
                println!("  {r}");
            }
        }
    })
}
