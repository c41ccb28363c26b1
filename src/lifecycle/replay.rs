//! Offline replay: the whole lifecycle walked over historical candles with a simulated clock,
//! once per policy, side by side on the same bars and costs.
//!
//! Every policy gets its own store and [`Retrainer`] on a shared [`ManualClock`]. An initial
//! model per (symbol, kind) is trained on the first `initial_days` and deployed for every
//! policy. Then, day by day: each bar's call of the ACTIVE version (and of a SHADOW candidate,
//! recorded in its shadow test; a canary routes some calls to it) is logged as a
//! [`PredictionRecord`] and held as a position for the next bar; outcomes are written only once
//! the label's last bar has closed; at each of the policy's cycles the clock moves to UTC
//! midnight and the host's calls run on the bars seen so far: [`Retrainer::evaluate_triggers`]
//! (health, rolling IC, drift, schedules), [`Retrainer::plan`] and [`Retrainer::execute`]
//! (jobs train on bars before now and decide), then [`Retrainer::supervise`] (retirement,
//! automatic rollback) and [`Retrainer::evaluate_shadow`]. Nothing here decides: the
//! replay only walks time, keeps positions and counts.
//!
//! Features are computed once per symbol (causal, so a row equals what
//! [`crate::lifecycle::LoadedModel::predict_latest`] computes on the bars up to it), and
//! identical jobs of different policies share their training through a [`JobCache`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use serde::Serialize;

use crate::clock::ManualClock;
use crate::config::Policy;
use crate::data::Bars;
use crate::error::{Error, Result};
use crate::features::{FeatureSpec, LabelSpec};
use crate::lifecycle::cache::JobCache;
use crate::lifecycle::health::{PredictionLog, PredictionRecord};
use crate::lifecycle::job::{JobStatus, ModelSpec};
use crate::lifecycle::orchestrator::{LoadedModel, Retrainer};
use crate::lifecycle::shadow::{Call, ShadowTest};
use crate::lifecycle::supervisor::{ModelCheck, Observations};
use crate::lifecycle::trigger::{Priority, Trigger, TriggerKind};
use crate::model::{ModelKind, Signal};
use crate::store::{AuditRecord, Change};

const DAY_MS: i64 = 86_400_000;

/// One policy of a replay: the lifecycle policy and how often its host runs a cycle.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayPolicy {
    /// Its name in reports (also its store's directory name).
    pub name: String,
    /// The lifecycle policy its [`Retrainer`] runs.
    pub policy: Policy,
    /// Days between supervisor cycles (`None`: none; the initial model trades throughout).
    pub cycle_days: Option<u32>,
    /// Whether a cycle also acts on the live log: retirement, automatic rollback and shadow
    /// verdicts.
    pub live_actions: bool,
}

impl ReplayPolicy {
    /// The four built-in policies over `base`: `never` (the initial model forever),
    /// `blind_weekly` (retrain every 7 days and always deploy), `gated_weekly` (retrain every
    /// 7 days, deploy what the gate passes) and `triggered` (daily cycles, every trigger, the
    /// policy as given). The weekly ones need only a day of new rows (24) so that a week of
    /// hourly bars always qualifies.
    pub fn builtins(base: &Policy) -> Vec<ReplayPolicy> {
        let weekly =
            Policy { triggers: vec!["time".into()], schedule_interval_days: 7, min_new_samples: 24, ..base.clone() };
        vec![
            ReplayPolicy { name: "never".into(), policy: base.clone(), cycle_days: None, live_actions: false },
            ReplayPolicy {
                name: "blind_weekly".into(),
                policy: Policy { always_deploy: true, ..weekly.clone() },
                cycle_days: Some(7),
                live_actions: false,
            },
            ReplayPolicy { name: "gated_weekly".into(), policy: weekly, cycle_days: Some(7), live_actions: true },
            ReplayPolicy { name: "triggered".into(), policy: base.clone(), cycle_days: Some(1), live_actions: true },
        ]
    }

    /// A user policy file (TOML, or JSON by name), named after the file, with daily cycles
    /// and live actions; its `models` are replaced by the replay's kinds.
    pub fn from_file(path: &Path, kinds: &[ModelKind]) -> Result<ReplayPolicy> {
        let mut policy = Policy::from_file(path)?;
        policy.models = kinds.iter().map(|k| k.name().to_string()).collect();
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("policy").to_string();
        Ok(ReplayPolicy { name, policy, cycle_days: Some(1), live_actions: true })
    }
}

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Model kinds: one model per symbol and kind, id `<symbol>_<kind>`.
    pub kinds: Vec<ModelKind>,
    /// Features of the models.
    pub features: FeatureSpec,
    /// Their label (its horizon sets when an outcome is known; default the 12-bar up/down
    /// label the lifecycle's models default to).
    pub label: LabelSpec,
    /// First bar used (default: the first).
    pub from: Option<Timestamp>,
    /// Last bar used (default: the last).
    pub to: Option<Timestamp>,
    /// Cost of each unit of position change, in basis points (default 5).
    pub cost_bps: f64,
    /// Days of history the initial model trains on before trading starts (default 90).
    pub initial_days: usize,
    /// Worker threads of each retrainer's pool.
    pub threads: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            kinds: vec!["xgboost".parse().expect("kind"), "lightgbm".parse().expect("kind")],
            features: FeatureSpec::default(),
            label: LabelSpec::Direction { horizon: 12, threshold: 0.0, classes: 2 },
            from: None,
            to: None,
            cost_bps: 5.0,
            initial_days: 90,
            threads: 2,
        }
    }
}

/// Where a replay stands (for progress bars).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The simulated date.
    pub now: Timestamp,
    /// Share of the replayed period done.
    pub fraction: f64,
    /// Completed retraining jobs so far, all policies together.
    pub retrains: usize,
}

/// Trading results of a policy's deployed signals after costs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TradeMetrics {
    /// Sum of daily PnL (returns, additive).
    pub total_return: f64,
    /// Annualised Sharpe ratio of daily PnL.
    pub sharpe: f64,
    /// Largest fall of cumulative PnL from a peak.
    pub max_drawdown: f64,
    /// Share of trades (runs of one non-flat position) with a positive PnL.
    pub win_rate: f64,
    /// Share of non-flat calls whose direction matched the label-horizon return.
    pub hit_rate: f64,
    /// Position units traded per day.
    pub turnover: f64,
    /// Trades.
    pub trades: usize,
    /// Share of bars with a position.
    pub exposure: f64,
}

/// What a policy's lifecycle did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Supervisor cycles run.
    pub cycles: usize,
    /// Jobs planned.
    pub jobs: usize,
    /// Jobs that trained a candidate (COMPLETED).
    pub retrains: usize,
    /// Jobs deferred (too few new rows).
    pub deferred: usize,
    /// Jobs that failed or were cancelled.
    pub failed: usize,
    /// Candidates that went ACTIVE at once (DEPLOY).
    pub deploys: usize,
    /// Candidates sent to a canary or shadow test (CANARY, REVIEW).
    pub canaries: usize,
    /// Shadow candidates promoted by their test.
    pub promotions: usize,
    /// Rollbacks to a predecessor.
    pub rollbacks: usize,
    /// Versions retired by the live log or a shadow test.
    pub retirements: usize,
    /// Jobs whose training was reused from an identical job.
    pub reused: usize,
}

/// The paired comparison of a policy's daily PnL with never-retrain's.
#[derive(Debug, Clone, Serialize)]
pub struct VersusNever {
    /// Mean daily PnL difference (policy − never).
    pub mean_daily: f64,
    /// That difference over a year of trading days.
    pub annualised: f64,
    /// Newey–West t statistic.
    pub t: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Days compared.
    pub days: usize,
}

/// One day of a policy's equity curve.
#[derive(Debug, Clone, Serialize)]
pub struct DayPoint {
    /// The UTC date.
    pub date: String,
    /// That day's PnL (mean over models).
    pub pnl: f64,
    /// Cumulative PnL.
    pub equity: f64,
}

/// A version a policy deployed, with its CPCV paths.
#[derive(Debug, Clone, Serialize)]
pub struct DeployedVersion {
    /// The model.
    pub model: String,
    /// The version.
    pub tag: String,
    /// When it went active.
    pub at: Timestamp,
    /// Its CPCV test paths' Spearman IC.
    pub path_ic: Vec<f64>,
}

/// A drift check of a cycle.
#[derive(Debug, Clone, Serialize)]
pub struct DriftPoint {
    /// When.
    pub ts: Timestamp,
    /// The model.
    pub model: String,
    /// Severity.
    pub severity: String,
    /// Largest KS statistic.
    pub max_ks: f64,
    /// Share of features drifted.
    pub drifted_share: f64,
}

/// The rolling IC of a model's active calls on a day.
#[derive(Debug, Clone, Serialize)]
pub struct IcPoint {
    /// The UTC date.
    pub date: String,
    /// The model.
    pub model: String,
    /// Spearman IC of score against outcome over the trailing window.
    pub ic: f64,
}

/// One policy's replay.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyOutcome {
    /// The policy's name.
    pub name: String,
    /// Days between cycles.
    pub cycle_days: Option<u32>,
    /// Trading results (equal weight over models).
    pub metrics: TradeMetrics,
    /// Trading results per model.
    pub per_model: BTreeMap<String, TradeMetrics>,
    /// Lifecycle counts.
    pub counts: Counts,
    /// CPU seconds its jobs used (process time while its plans ran; reused training costs ~0).
    pub cpu_seconds: f64,
    /// Wall seconds of its jobs.
    pub train_seconds: f64,
    /// Against never retraining (absent for `never` itself, or without one).
    pub vs_never: Option<VersusNever>,
    /// Daily equity.
    pub daily: Vec<DayPoint>,
    /// Rolling IC of the active calls (30-day trailing window), per model and day.
    pub rolling_ic: Vec<IcPoint>,
    /// Deployments (the initial model included) with their CPCV paths.
    pub deployed: Vec<DeployedVersion>,
    /// Drift checks of its cycles.
    pub drift: Vec<DriftPoint>,
    /// Position per model and bar (−1, 0, 1), from the first traded bar.
    #[serde(skip)]
    pub positions: BTreeMap<String, Vec<i8>>,
}

/// One line of the replay's timeline: an audit record of a policy's store.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// The policy.
    pub policy: String,
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// A whole replay.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayResult {
    /// First traded instant (after the initial window).
    pub start: Timestamp,
    /// Last bar.
    pub end: Timestamp,
    /// Bars traded per model.
    pub bars: usize,
    /// Model ids.
    pub models: Vec<String>,
    /// Cost per unit of position change, in basis points.
    pub cost_bps: f64,
    /// Policies, in the order given.
    pub policies: Vec<PolicyOutcome>,
    /// Wall seconds of the whole replay.
    pub seconds: f64,
    /// Jobs whose training came from the shared cache.
    pub cache_hits: usize,
    /// Jobs that trained.
    pub cache_misses: usize,
    /// Every audit record of every policy, in time order.
    #[serde(skip)]
    pub timeline: Vec<TimelineEntry>,
}

/// One symbol's candles with the model ids trained on them.
struct Symbol {
    bars: Bars,
    /// Feature rows (f32) per feature spec (JSON), computed once over all bars.
    rows: BTreeMap<String, Arc<FeatureRows>>,
}

/// Feature rows of one spec over a symbol's bars (row-major, `n_features` per bar).
struct FeatureRows {
    n_features: usize,
    values: Vec<f32>,
}

/// A model of a policy, as the replay holds it between cycles.
struct Held {
    symbol: usize,
    active: Option<(String, Arc<LoadedModel>, Arc<FeatureRows>)>,
    shadow: Option<(String, Arc<LoadedModel>, Arc<FeatureRows>, ShadowTest)>,
    positions: Vec<i8>,
}

/// A prediction waiting for its label to end.
struct Pending {
    log_index: usize,
    end_ms: i64,
    outcome: f64,
    shadow_key: Option<(String, String)>,
}

struct Run {
    spec: ReplayPolicy,
    retrainer: Retrainer,
    log: PredictionLog,
    models: BTreeMap<String, Held>,
    pending: std::collections::VecDeque<Pending>,
    counts: Counts,
    cpu_seconds: f64,
    train_seconds: f64,
    drift: Vec<DriftPoint>,
    /// Bars from a call to its outcome (the label's horizon).
    horizon: usize,
}

/// Process CPU seconds so far (user + system; `None` where unsupported).
fn cpu_seconds() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        let mut u = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: getrusage fills the struct it is given and reports failure by its return.
        let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) } == 0;
        if !ok {
            return None;
        }
        // SAFETY: initialised by the successful call above.
        let u = unsafe { u.assume_init() };
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
        Some(t(u.ru_utime) + t(u.ru_stime))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

fn ts(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| Error::param("bars", e.to_string()))
}

/// Replay `data` (one [`Bars`] per symbol) under every policy into `dir` (each policy's store
/// is `dir/stores/<name>`, replaced if present). `progress` hears about every simulated day.
pub fn replay(
    data: &[Bars],
    policies: &[ReplayPolicy],
    opts: &ReplayOptions,
    dir: &Path,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ReplayResult> {
    let started = Instant::now();
    check_inputs(data, policies, opts)?;
    // The period.
    let mut symbols = Vec::new();
    for b in data {
        let t = b.timestamps();
        let lo = opts.from.map_or(0, |f| t.partition_point(|&x| x < f.as_millisecond()));
        let hi = opts.to.map_or(t.len(), |e| t.partition_point(|&x| x <= e.as_millisecond()));
        if hi <= lo {
            return Err(Error::Empty { source_name: format!("{} between --from and --to", b.symbol()) });
        }
        symbols.push(Symbol { bars: b.slice(lo, hi)?, rows: BTreeMap::new() });
    }
    let first = symbols.iter().map(|s| s.bars.timestamps()[0]).min().expect("checked: some data");
    let last = symbols.iter().map(|s| *s.bars.timestamps().last().expect("non-empty")).max().expect("some data");
    // Trading starts at the first UTC midnight after the initial window.
    let start_ms = (first + opts.initial_days as i64 * DAY_MS).div_euclid(DAY_MS) * DAY_MS + DAY_MS;
    if start_ms >= last {
        return Err(Error::param(
            "initial_days",
            format!(
                "the data ends {} days after it starts: nothing is left to replay after {} days of initial training",
                (last - first) / DAY_MS,
                opts.initial_days
            ),
        ));
    }
    let clock = Arc::new(ManualClock::new(ts(start_ms)?));
    let cache = Arc::new(JobCache::new(8 * opts.kinds.len() * symbols.len()));
    let stores = dir.join("stores");
    let mut runs = Vec::new();
    for p in policies {
        let root = stores.join(&p.name);
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(|source| Error::Io { path: root.clone(), source })?;
        }
        let mut r = Retrainer::open(&root, Policy { threads: opts.threads, ..p.policy.clone() })?
            .with_clock(clock.clone())
            .with_job_cache(cache.clone());
        let mut models = BTreeMap::new();
        for (si, s) in symbols.iter().enumerate() {
            for &kind in &opts.kinds {
                let id = model_id(s.bars.symbol(), kind);
                let spec = ModelSpec { kind, features: opts.features.clone(), label: opts.label.clone() };
                r = r.with_model(&id, spec)?;
                models.insert(id, Held { symbol: si, active: None, shadow: None, positions: Vec::new() });
            }
        }
        runs.push(Run {
            spec: p.clone(),
            retrainer: r,
            log: PredictionLog::new(),
            models,
            pending: Default::default(),
            counts: Counts::default(),
            cpu_seconds: 0.0,
            train_seconds: 0.0,
            drift: Vec::new(),
            horizon: opts.label.horizon().max(1),
        });
    }

    // The common starting point: every policy trains (one fit, shared) and deploys it.
    for run in &mut runs {
        let pairs: Vec<(String, Trigger)> = run
            .models
            .keys()
            .map(|id| {
                let mut t = Trigger::new(
                    TriggerKind::Manual,
                    Priority::High,
                    format!("replay start: initial model on {} days", opts.initial_days),
                );
                t.window_days = Some(opts.initial_days);
                t.force = true;
                (id.clone(), t)
            })
            .collect();
        for r in run_plan(run, &symbols, &pairs, start_ms)? {
            if r.status != JobStatus::Completed {
                return Err(Error::param(
                    "replay",
                    format!(
                        "the initial job of {} ended {}: {}",
                        r.model_id,
                        r.status,
                        r.error.as_deref().unwrap_or("no reason given")
                    ),
                ));
            }
        }
        for (id, _) in &pairs {
            let store = run.retrainer.store();
            if store.active(id)?.is_none() {
                let newest = store
                    .list(id, None)?
                    .into_iter()
                    .max_by_key(|v| v.seq)
                    .ok_or_else(|| Error::param("replay", format!("the initial job of {id} registered nothing")))?;
                store.rollback(
                    id,
                    &newest.tag,
                    &Change::new("replay", "the initial model trades for every policy (their common starting point)"),
                )?;
            }
        }
        run.counts = Counts::default();
        refresh(run, &mut symbols)?;
    }

    // Day by day.
    let total_days = ((last - start_ms) / DAY_MS + 1).max(1);
    let mut day_start = start_ms;
    let cost = opts.cost_bps * 1e-4;
    let horizon = opts.label.horizon().max(1);
    loop {
        let day_end = day_start + DAY_MS;
        for run in &mut runs {
            trade_day(run, &symbols, day_start, day_end, horizon)?;
        }
        if day_end > last {
            break;
        }
        let k = (day_end - start_ms) / DAY_MS;
        for run in &mut runs {
            resolve(run, day_end)?;
            if let Some(c) = run.spec.cycle_days
                && k % i64::from(c.max(1)) == 0
            {
                clock.set(ts(day_end)?);
                cycle(run, &symbols, day_end)?;
                refresh(run, &mut symbols)?;
            }
        }
        let retrains = runs.iter().map(|r| r.counts.retrains).sum();
        progress(&Progress { now: ts(day_end)?, fraction: k as f64 / total_days as f64, retrains });
        day_start = day_end;
    }
    for run in &mut runs {
        resolve(run, i64::MAX)?;
    }

    // Results.
    let never_daily = runs.iter().find(|r| r.spec.cycle_days.is_none()).map(|r| daily_pnl(r, &symbols, cost));
    let mut outcomes = Vec::new();
    let mut timeline = Vec::new();
    for run in &runs {
        outcomes.push(outcome(run, &symbols, cost, start_ms, never_daily.as_ref())?);
        for id in run.models.keys() {
            for record in run.retrainer.store().history(id)? {
                timeline.push(TimelineEntry { policy: run.spec.name.clone(), record });
            }
        }
    }
    timeline.sort_by_key(|e| e.record.ts);
    let bars = symbols.iter().map(|s| s.bars.timestamps().iter().filter(|&&t| t >= start_ms).count()).max();
    Ok(ReplayResult {
        start: ts(start_ms)?,
        end: ts(last)?,
        bars: bars.unwrap_or(0),
        models: runs.first().map(|r| r.models.keys().cloned().collect()).unwrap_or_default(),
        cost_bps: opts.cost_bps,
        policies: outcomes,
        seconds: started.elapsed().as_secs_f64(),
        cache_hits: cache.hits(),
        cache_misses: cache.misses(),
        timeline,
    })
}

/// The id of the model of `kind` on `symbol`.
pub fn model_id(symbol: &str, kind: ModelKind) -> String {
    let clean: String =
        symbol.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    format!("{clean}_{}", kind.name())
}

fn check_inputs(data: &[Bars], policies: &[ReplayPolicy], opts: &ReplayOptions) -> Result<()> {
    if data.is_empty() {
        return Err(Error::param("data", "give at least one candle file"));
    }
    if policies.is_empty() {
        return Err(Error::param("policies", "give at least one policy"));
    }
    if opts.kinds.is_empty() {
        return Err(Error::param("models", "give at least one model kind"));
    }
    for (i, p) in policies.iter().enumerate() {
        crate::store::check_model_id(&p.name).map_err(|_| {
            Error::param("policies", format!("policy name `{}` must be letters, digits, `_` or `-`", p.name))
        })?;
        if policies[..i].iter().any(|q| q.name == p.name) {
            return Err(Error::param("policies", format!("two policies are named `{}`", p.name)));
        }
        if p.cycle_days == Some(0) {
            return Err(Error::param("cycle_days", format!("policy `{}`: cycles need at least 1 day", p.name)));
        }
        p.policy.validate()?;
    }
    if !(opts.cost_bps.is_finite() && opts.cost_bps >= 0.0) {
        return Err(Error::param("cost_bps", format!("must be ≥ 0, got {}", opts.cost_bps)));
    }
    if opts.initial_days == 0 {
        return Err(Error::param("initial_days", "must be at least 1"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for b in data {
        if b.is_empty() {
            return Err(Error::Empty { source_name: b.symbol().to_string() });
        }
        if !seen.insert(b.symbol().to_string()) {
            return Err(Error::param("data", format!("symbol `{}` is given twice", b.symbol())));
        }
    }
    Ok(())
}

/// The bars of `symbol` before `now_ms`.
fn bars_before(s: &Symbol, now_ms: i64) -> Result<Bars> {
    let n = s.bars.timestamps().partition_point(|&t| t < now_ms);
    s.bars.slice(0, n)
}

/// The host's candle source at `now_ms`: each replayed model's symbol, bars before now.
fn bars_source<'a>(run: &Run, symbols: &'a [Symbol], now_ms: i64) -> impl Fn(&str) -> Result<Bars> + Sync + 'a {
    let of: BTreeMap<String, usize> = run.models.iter().map(|(id, h)| (id.clone(), h.symbol)).collect();
    move |id: &str| {
        let s = of.get(id).ok_or_else(|| Error::NotFound { model_id: id.into(), what: "replayed model".into() })?;
        bars_before(&symbols[*s], now_ms)
    }
}

/// Plan and execute `pairs` at `now_ms` on the bars seen so far, and count the outcome.
fn run_plan(
    run: &mut Run,
    symbols: &[Symbol],
    pairs: &[(String, Trigger)],
    now_ms: i64,
) -> Result<Vec<crate::lifecycle::job::JobReport>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let plan = run.retrainer.plan(pairs);
    let bars_for = bars_source(run, symbols, now_ms);
    let cpu = cpu_seconds();
    let reports = run.retrainer.execute(&plan, &bars_for);
    if let (Some(a), Some(b)) = (cpu, cpu_seconds()) {
        run.cpu_seconds += b - a;
    }
    let c = &mut run.counts;
    c.jobs += reports.len();
    for r in &reports {
        run.train_seconds += r.seconds;
        match r.status {
            JobStatus::Completed => c.retrains += 1,
            JobStatus::Deferred => c.deferred += 1,
            _ => c.failed += 1,
        }
        if r.notes.iter().any(|n| n.starts_with("reused the training")) {
            c.reused += 1;
        }
        match r.decision.as_ref().map(|d| d.decision) {
            Some(crate::lifecycle::decision::Decision::Deploy) => c.deploys += 1,
            Some(crate::lifecycle::decision::Decision::Canary | crate::lifecycle::decision::Decision::Review) => {
                c.canaries += 1
            }
            _ => {}
        }
        if let Some(e) = r.error.as_ref().filter(|_| matches!(r.status, JobStatus::Failed)) {
            tracing::warn!(model = %r.model_id, error = %e, "replayed job failed");
        }
    }
    Ok(reports)
}

/// One supervisor cycle at `now_ms`: exactly the calls a host makes.
fn cycle(run: &mut Run, symbols: &[Symbol], now_ms: i64) -> Result<()> {
    run.counts.cycles += 1;
    let bars_for = bars_source(run, symbols, now_ms);
    let checks = run.retrainer.evaluate_triggers(&Observations {
        predictions: Some(&run.log),
        bars: Some(&bars_for),
        regimes: BTreeMap::new(),
    })?;
    for c in &checks {
        if let Some(d) = &c.drift {
            run.drift.push(DriftPoint {
                ts: ts(now_ms)?,
                model: c.model_id.clone(),
                severity: d.severity.to_string(),
                max_ks: d.max_ks,
                drifted_share: d.drifted as f64 / d.features.len().max(1) as f64,
            });
        }
    }
    let pairs = ModelCheck::pairs(&checks);
    run_plan(run, symbols, &pairs, now_ms)?;
    if run.spec.live_actions {
        for v in run.retrainer.supervise(&run.log)? {
            match v.action {
                crate::lifecycle::retire::LiveAction::Keep => {}
                crate::lifecycle::retire::LiveAction::Retire { .. } => run.counts.retirements += 1,
                crate::lifecycle::retire::LiveAction::Rollback { .. } => run.counts.rollbacks += 1,
            }
        }
        let ids: Vec<String> = run.models.keys().cloned().collect();
        for id in ids {
            if run.retrainer.store().aliases(&id)?.shadow.is_some() {
                let ev = run.retrainer.evaluate_shadow(&id)?;
                match ev.recommendation {
                    crate::lifecycle::shadow::Recommendation::Promote => run.counts.promotions += 1,
                    crate::lifecycle::shadow::Recommendation::Reject => run.counts.retirements += 1,
                    crate::lifecycle::shadow::Recommendation::ContinueTesting => {}
                }
            }
        }
    }
    Ok(())
}

/// Load the ACTIVE and SHADOW versions whose tags changed (features computed once per spec).
fn refresh(run: &mut Run, symbols: &mut [Symbol]) -> Result<()> {
    let ids: Vec<String> = run.models.keys().cloned().collect();
    for id in ids {
        let aliases = run.retrainer.store().aliases(&id)?;
        let held = run.models.get_mut(&id).expect("listed");
        if held.active.as_ref().map(|a| &a.0) != aliases.active.as_ref() {
            held.active = match &aliases.active {
                Some(tag) => {
                    let m = run.retrainer.version(&id, tag)?;
                    let rows = feature_rows(&mut symbols[held.symbol], &m)?;
                    Some((tag.clone(), Arc::new(m), rows))
                }
                None => None,
            };
        }
        if held.shadow.as_ref().map(|s| &s.0) != aliases.shadow.as_ref() {
            held.shadow = match &aliases.shadow {
                Some(tag) => {
                    let m = run.retrainer.version(&id, tag)?;
                    let rows = feature_rows(&mut symbols[held.symbol], &m)?;
                    let test = run.retrainer.shadow_test(&id)?;
                    Some((tag.clone(), Arc::new(m), rows, test))
                }
                None => None,
            };
        }
    }
    Ok(())
}

/// `m`'s feature rows over the whole symbol, computed on first use of its spec.
fn feature_rows(s: &mut Symbol, m: &LoadedModel) -> Result<Arc<FeatureRows>> {
    let key = serde_json::to_string(&m.features).expect("feature specs serialise");
    if let Some(r) = s.rows.get(&key) {
        return Ok(r.clone());
    }
    let frame = crate::features::compute(&s.bars, &m.features)?;
    let seg = frame.segments.first().ok_or_else(|| Error::Empty { source_name: s.bars.symbol().to_string() })?;
    let n = seg.len();
    let k = seg.columns.len();
    let mut values = vec![f32::NAN; n * k];
    for (j, col) in seg.columns.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            values[i * k + j] = *v as f32;
        }
    }
    let rows = Arc::new(FeatureRows { n_features: k, values });
    s.rows.insert(key, rows.clone());
    Ok(rows)
}

/// The bars of `[from, to)`: each model's calls, logged, held as positions, and queued for
/// their outcomes.
fn trade_day(run: &mut Run, symbols: &[Symbol], from: i64, to: i64, horizon: usize) -> Result<()> {
    for (id, held) in run.models.iter_mut() {
        let s = &symbols[held.symbol];
        let t = s.bars.timestamps();
        let (lo, hi) = (t.partition_point(|&x| x < from), t.partition_point(|&x| x < to));
        if lo == hi {
            continue;
        }
        let first_traded = held.positions.is_empty();
        if first_traded {
            held.positions.reserve(t.len() - lo);
        }
        let calls = |rows: &FeatureRows, m: &LoadedModel| -> Result<Vec<Option<Signal>>> {
            let k = rows.n_features;
            let ok: Vec<usize> =
                (lo..hi).filter(|&i| rows.values[i * k..(i + 1) * k].iter().all(|v| v.is_finite())).collect();
            let mut x = Vec::with_capacity(ok.len() * k);
            for &i in &ok {
                x.extend_from_slice(&rows.values[i * k..(i + 1) * k]);
            }
            let x = ndarray::Array2::from_shape_vec((ok.len(), k), x).expect("rows × features");
            let mut out = vec![None; hi - lo];
            for (i, s) in ok.into_iter().zip(m.signals(x.view())?) {
                out[i - lo] = Some(s);
            }
            Ok(out)
        };
        let active = match &held.active {
            Some((_, m, rows)) => Some(calls(rows, m)?),
            None => None,
        };
        let shadow = match &held.shadow {
            Some((_, m, rows, _)) => Some(calls(rows, m)?),
            None => None,
        };
        let close = s.bars.close();
        // The log's model name for the whole day, not per bar.
        let logged_as = held.active.as_ref().map(|(tag, _, _)| format!("{id}@{tag}"));
        for i in lo..hi {
            let a = active.as_ref().and_then(|c| c[i - lo].as_ref());
            let mut acted = a.map_or(0, |s| s.direction);
            let mut shadow_key = None;
            if let (Some((_, _, _, test)), Some(c)) = (&held.shadow, &shadow)
                && let (Some(a), Some(c)) = (a, c[i - lo].as_ref())
            {
                let key = format!("{id}-{}", t[i]);
                test.record(&key, ts(t[i])?, Call::from(a), Call::from(c))?;
                if test.routes_to_candidate(&key) {
                    acted = c.direction;
                }
                shadow_key = Some((key, id.clone()));
            }
            held.positions.push(acted);
            if let (Some(model), Some(a)) = (&logged_as, a) {
                let log_index = run.log.len();
                run.log.push(PredictionRecord {
                    ts: ts(t[i])?,
                    model: model.clone(),
                    direction: a.direction,
                    probability: a.probability,
                    score: crate::lifecycle::drift::prediction_score(a.direction, a.probability, a.expected_return),
                    outcome: None,
                    risk: None,
                    latency_ms: None,
                })?;
                if i + horizon < t.len() {
                    run.pending.push_back(Pending {
                        log_index,
                        end_ms: t[i + horizon],
                        outcome: close[i + horizon] / close[i] - 1.0,
                        shadow_key,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Write every outcome whose label ended before `now_ms` (the log and shadow tests see it
/// only from then on).
fn resolve(run: &mut Run, now_ms: i64) -> Result<()> {
    // Labels end in bar order per model but models interleave: scan, keep the rest in order.
    let mut keep = std::collections::VecDeque::with_capacity(run.pending.len());
    while let Some(p) = run.pending.pop_front() {
        if p.end_ms >= now_ms {
            keep.push_back(p);
            continue;
        }
        run.log.resolve(p.log_index, p.outcome, None)?;
        if let Some((key, id)) = &p.shadow_key
            && let Some((_, _, _, test)) = run.models.get(id).and_then(|h| h.shadow.as_ref())
        {
            // A test replaced since the call was recorded no longer holds the key: skip.
            let _ = test.record_outcome(key, ts(p.end_ms)?, p.outcome, None);
        }
    }
    run.pending = keep;
    Ok(())
}

/// Per model, PnL per traded bar after costs (position held over the next bar).
fn model_pnl(positions: &[i8], close: &[f64], offset: usize, cost: f64) -> Vec<f64> {
    let mut prev = 0i8;
    positions
        .iter()
        .enumerate()
        .map(|(j, &p)| {
            let i = offset + j;
            let ret = if i + 1 < close.len() { close[i + 1] / close[i] - 1.0 } else { 0.0 };
            let c = cost * f64::from((p - prev).unsigned_abs());
            prev = p;
            f64::from(p) * ret - c
        })
        .collect()
}

/// Daily PnL (UTC dates) of a run: each model's sum per day, averaged over models.
fn daily_pnl(run: &Run, symbols: &[Symbol], cost: f64) -> BTreeMap<i64, f64> {
    let per_model: Vec<_> = run.models.values().map(|h| model_days(h, symbols, cost)).collect();
    mean_days(per_model.iter().map(|m| &m.1))
}

/// A held model's PnL per traded bar after costs (from its first traded bar), and its sum
/// per UTC day.
fn model_days(held: &Held, symbols: &[Symbol], cost: f64) -> (Vec<f64>, BTreeMap<i64, f64>) {
    let s = &symbols[held.symbol];
    let t = s.bars.timestamps();
    let offset = t.len() - held.positions.len();
    let pnl = model_pnl(&held.positions, s.bars.close(), offset, cost);
    let mut days: BTreeMap<i64, f64> = BTreeMap::new();
    for (j, v) in pnl.iter().enumerate() {
        *days.entry(t[offset + j].div_euclid(DAY_MS)).or_default() += v;
    }
    (pnl, days)
}

/// The day-by-day mean of several models' daily PnL (a model without bars that day adds 0).
fn mean_days<'a>(models: impl ExactSizeIterator<Item = &'a BTreeMap<i64, f64>>) -> BTreeMap<i64, f64> {
    let n = models.len().max(1) as f64;
    let mut days: BTreeMap<i64, f64> = BTreeMap::new();
    for m in models {
        for (d, v) in m {
            *days.entry(*d).or_default() += v / n;
        }
    }
    days
}

fn date(day: i64) -> String {
    Timestamp::from_millisecond(day * DAY_MS).map(|t| t.strftime("%Y-%m-%d").to_string()).unwrap_or_default()
}

fn trade_metrics(pnl: &[f64], positions: &[i8], outcomes: &[Option<f64>], daily: &[f64], days: f64) -> TradeMetrics {
    let mut trades = Vec::new();
    let mut cur: Option<(i8, f64)> = None;
    for (&p, &v) in positions.iter().zip(pnl) {
        match cur {
            Some((q, ref mut acc)) if q == p && p != 0 => *acc += v,
            _ => {
                if let Some((q, acc)) = cur.take()
                    && q != 0
                {
                    trades.push(acc);
                }
                cur = Some((p, v));
            }
        }
    }
    if let Some((q, acc)) = cur
        && q != 0
    {
        trades.push(acc);
    }
    let (mut hits, mut calls) = (0usize, 0usize);
    for (&p, o) in positions.iter().zip(outcomes) {
        if let (true, Some(o)) = (p != 0, o) {
            calls += 1;
            hits += usize::from(f64::from(p) * o > 0.0);
        }
    }
    let mean = daily.iter().sum::<f64>() / daily.len().max(1) as f64;
    let var = daily.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (daily.len().max(2) - 1) as f64;
    let years = (days / 365.25).max(1e-9);
    let per_year = daily.len() as f64 / years;
    let (mut peak, mut eq, mut mdd) = (0.0f64, 0.0f64, 0.0f64);
    for v in daily {
        eq += v;
        peak = peak.max(eq);
        mdd = mdd.max(peak - eq);
    }
    let mut prev = 0i8;
    let traded: u64 = positions
        .iter()
        .map(|&p| {
            let d = u64::from((p - prev).unsigned_abs());
            prev = p;
            d
        })
        .sum();
    TradeMetrics {
        total_return: daily.iter().sum(),
        sharpe: if var > 0.0 { mean / var.sqrt() * per_year.sqrt() } else { 0.0 },
        max_drawdown: mdd,
        win_rate: if trades.is_empty() {
            0.0
        } else {
            trades.iter().filter(|&&v| v > 0.0).count() as f64 / trades.len() as f64
        },
        hit_rate: if calls == 0 { 0.0 } else { hits as f64 / calls as f64 },
        turnover: traded as f64 / days.max(1.0),
        trades: trades.len(),
        exposure: positions.iter().filter(|&&p| p != 0).count() as f64 / positions.len().max(1) as f64,
    }
}

fn outcome(
    run: &Run,
    symbols: &[Symbol],
    cost: f64,
    start_ms: i64,
    never: Option<&BTreeMap<i64, f64>>,
) -> Result<PolicyOutcome> {
    // Each model's PnL once: its own metrics, and the equal-weight portfolio's days.
    let pnls: Vec<(Vec<f64>, BTreeMap<i64, f64>)> = run.models.values().map(|h| model_days(h, symbols, cost)).collect();
    let days_map = mean_days(pnls.iter().map(|m| &m.1));
    let daily: Vec<f64> = days_map.values().copied().collect();
    let span_days = days_map.keys().next().zip(days_map.keys().last()).map_or(1.0, |(a, b)| (b - a + 1) as f64);
    // Per model.
    let mut per_model = BTreeMap::new();
    let mut all_pnl = Vec::new();
    let mut all_pos = Vec::new();
    let mut all_out = Vec::new();
    for ((id, held), (pnl, dm)) in run.models.iter().zip(pnls) {
        let s = &symbols[held.symbol];
        let t = s.bars.timestamps();
        let offset = t.len() - held.positions.len();
        let hz = run.horizon;
        let horizon_outcomes: Vec<Option<f64>> = (0..held.positions.len())
            .map(|j| {
                let i = offset + j;
                (i + hz < t.len()).then(|| s.bars.close()[i + hz] / s.bars.close()[i] - 1.0)
            })
            .collect();
        let d: Vec<f64> = dm.values().copied().collect();
        per_model.insert(id.clone(), trade_metrics(&pnl, &held.positions, &horizon_outcomes, &d, span_days));
        all_pnl.extend(pnl);
        all_pos.extend(held.positions.iter().copied());
        all_out.extend(horizon_outcomes);
    }
    let mut metrics = trade_metrics(&all_pnl, &all_pos, &all_out, &daily, span_days);
    // Pooled counts over models; the day-level figures are the equal-weight portfolio's.
    metrics.turnover /= run.models.len().max(1) as f64;
    let vs_never = match never {
        Some(n) if run.spec.cycle_days.is_some() => {
            let diff: Vec<f64> = days_map.iter().filter_map(|(d, v)| n.get(d).map(|w| v - w)).collect::<Vec<f64>>();
            // Identical daily PnL (a policy that never changed its model) differs by nothing.
            if !diff.is_empty() && diff.iter().all(|&d| d == 0.0) {
                Some(VersusNever { mean_daily: 0.0, annualised: 0.0, t: 0.0, p_value: 1.0, days: diff.len() })
            } else {
                crate::validation::compare::newey_west_mean_test(&diff, None).ok().map(|t| VersusNever {
                    mean_daily: t.mean,
                    annualised: t.mean * diff.len() as f64 / (span_days / 365.25).max(1e-9),
                    t: t.statistic,
                    p_value: t.p_value,
                    days: t.n,
                })
            }
        }
        _ => None,
    };
    let mut eq = 0.0;
    let daily_points = days_map
        .iter()
        .map(|(d, v)| {
            eq += v;
            DayPoint { date: date(*d), pnl: *v, equity: eq }
        })
        .collect();
    let mut deployed = Vec::new();
    for id in run.models.keys() {
        let store = run.retrainer.store();
        for d in store.deployments(id)? {
            let path_ic = store
                .get(id, &d.tag)
                .ok()
                .and_then(|v| v.meta.cv_summary)
                .and_then(|c| c.get("paths").cloned())
                .and_then(|p| p.as_array().cloned())
                .map(|a| a.iter().filter_map(|p| p.get("ic_spearman").and_then(|v| v.as_f64())).collect())
                .unwrap_or_default();
            deployed.push(DeployedVersion { model: id.clone(), tag: d.tag, at: d.at, path_ic });
        }
    }
    Ok(PolicyOutcome {
        name: run.spec.name.clone(),
        cycle_days: run.spec.cycle_days,
        metrics,
        per_model,
        counts: run.counts.clone(),
        cpu_seconds: run.cpu_seconds,
        train_seconds: run.train_seconds,
        vs_never,
        daily: daily_points,
        rolling_ic: rolling_ic(&run.log, start_ms, 30)?,
        deployed,
        drift: run.drift.clone(),
        positions: run.models.iter().map(|(id, h)| (id.clone(), h.positions.clone())).collect(),
    })
}

/// Spearman IC of score against outcome over a trailing `window_days`, per model and day.
fn rolling_ic(log: &PredictionLog, start_ms: i64, window_days: i64) -> Result<Vec<IcPoint>> {
    let mut out = Vec::new();
    for model in log.models() {
        let recs: Vec<(i64, f64, f64)> =
            log.of(&model).into_iter().filter_map(|r| Some((r.ts.as_millisecond(), r.score?, r.outcome?))).collect();
        let Some(last) = recs.last().map(|r| r.0) else { continue };
        let mut day = start_ms.div_euclid(DAY_MS) + window_days;
        while day * DAY_MS <= last + DAY_MS {
            let (lo, hi) = ((day - window_days) * DAY_MS, day * DAY_MS);
            let a = recs.partition_point(|r| r.0 < lo);
            let b = recs.partition_point(|r| r.0 < hi);
            if b - a >= 20 {
                let (x, y): (Vec<f64>, Vec<f64>) = recs[a..b].iter().map(|r| (r.1, r.2)).unzip();
                if let Ok(ic) = crate::validation::metrics::spearman(&x, &y)
                    && ic.is_finite()
                {
                    out.push(IcPoint { date: date(day - 1), model: model.clone(), ic });
                }
            }
            day += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pnl_holds_each_position_over_the_next_bar_and_pays_per_unit_changed() {
        let close = [100.0, 101.0, 99.99, 99.99, 100.99];
        // Long, long, short, flat from bar 0; cost 10 bp per unit.
        let pnl = model_pnl(&[1, 1, -1, 0], &close, 0, 0.001);
        let want = [0.01 - 0.001, 99.99 / 101.0 - 1.0, -(99.99 / 99.99 - 1.0) - 0.002, -0.001];
        for (a, b) in pnl.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{pnl:?}");
        }
        // An offset starts the positions later in the series; the last bar has no next return.
        let pnl = model_pnl(&[1, 1], &close, 3, 0.0);
        assert!((pnl[0] - (100.99 / 99.99 - 1.0)).abs() < 1e-12 && pnl[1] == 0.0);
    }

    #[test]
    fn trade_metrics_by_hand() {
        // Two trades: long for 2 bars (+0.02, −0.005 → win), short for 1 (−0.01 → loss).
        let pnl = [0.02, -0.005, -0.01, 0.0];
        let pos = [1, 1, -1, 0];
        let outcomes = [Some(0.01), Some(-0.02), Some(-0.03), None];
        let daily = [0.015, -0.01];
        let m = trade_metrics(&pnl, &pos, &outcomes, &daily, 2.0);
        assert_eq!(m.trades, 2);
        assert_eq!(m.win_rate, 0.5);
        // Hits: long on +0.01 yes, long on −0.02 no, short on −0.03 yes.
        assert!((m.hit_rate - 2.0 / 3.0).abs() < 1e-12);
        // Units traded: 0→1, 1→−1, −1→0 = 4 over 2 days.
        assert_eq!(m.turnover, 2.0);
        assert!((m.total_return - 0.005).abs() < 1e-12);
        assert!((m.max_drawdown - 0.01).abs() < 1e-12);
        assert_eq!(m.exposure, 0.75);
        let sd = ((0.0125f64.powi(2) * 2.0) / 1.0).sqrt();
        let per_year: f64 = 2.0 / (2.0 / 365.25);
        assert!((m.sharpe - 0.0025 / sd * per_year.sqrt()).abs() < 1e-9, "{}", m.sharpe);
    }

    #[test]
    fn builtin_policies_are_what_their_names_say() {
        let b = ReplayPolicy::builtins(&Policy::default());
        let names: Vec<&str> = b.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["never", "blind_weekly", "gated_weekly", "triggered"]);
        assert_eq!(b[0].cycle_days, None);
        assert!(b[1].policy.always_deploy && b[1].policy.triggers == ["time"] && b[1].cycle_days == Some(7));
        assert!(!b[2].policy.always_deploy && b[2].policy.triggers == ["time"] && b[2].live_actions);
        assert_eq!(b[3].policy, Policy::default());
        for p in &b {
            p.policy.validate().unwrap();
        }
    }
}
