//! The supervisor end to end on the shipped data with an injected clock: a shadow test that
//! rejects an identical candidate (real models, real calls), one that promotes a better
//! candidate, automatic rollback of a deployment that does worse live than its predecessor,
//! retirement after 30+ days of negative IC with the fallback activated, and trigger
//! evaluation (drift from the stored reference, health, a cron schedule that fires once).

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use retrain::clock::{Clock, ManualClock};
use retrain::config::{CronSchedule, Policy};
use retrain::data::{BarColumns, Bars, read_bars};
use retrain::lifecycle::events::{ChannelSink, EventKind};
use retrain::lifecycle::{
    Call, Decision, JobStatus, LiveAction, ModelCheck, ModelSpec, Observations, PredictionLog, PredictionRecord,
    Recommendation, Retrainer, Trigger, TriggerKind,
};
use retrain::model::ModelKind;
use retrain::store::Status;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/btcusd_coinbase_1h.csv");

/// Hourly untagged records of `m` from `from`, right with probability `p`.
fn live(log: &mut PredictionLog, from: Timestamp, hours: i64, p: f64, seed: u64) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    for h in 0..hours {
        let outcome = next() - 0.5;
        let sign: i8 = if outcome >= 0.0 { 1 } else { -1 };
        let direction = if next() < p { sign } else { -sign };
        log.push(PredictionRecord {
            ts: from + SignedDuration::from_hours(h),
            model: "m".into(),
            direction,
            probability: Some(0.6),
            score: None,
            outcome: Some(outcome),
            risk: Some(0.5),
            latency_ms: Some(3.0),
        })
        .unwrap();
    }
}

#[test]
fn shadow_rollback_retirement_and_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let all = read_bars(DATA).unwrap().remove(0);
    let bars = all.slice(all.len() - 3000, all.len()).unwrap();
    let t1: Timestamp = "2026-01-05T00:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(t1));
    let policy = Policy {
        // A short window's evidence is noise (see tests/lifecycle.rs): the gates are lifted so
        // the transitions are exercised; the rules themselves are unit-tested.
        min_samples: 100,
        shadow_max_samples: 200,
        schedules: vec![CronSchedule::new("daily", "@daily")],
        ..lax()
    };
    let (sink, events) = ChannelSink::new();
    let r = Retrainer::open(dir.path().join("store"), policy)
        .unwrap()
        .with_clock(clock.clone())
        .with_events(sink)
        .with_model("m", ModelSpec::new(ModelKind::XGBOOST))
        .unwrap();
    let names = || events.try_iter().map(|e| e.name().to_string()).collect::<Vec<_>>();
    let retrain = |why: &str| {
        let rep = r.retrain("m", &bars, Trigger::manual(why).with_all_bars()).unwrap();
        assert_eq!(rep.status, JobStatus::Completed, "{rep:?}");
        rep
    };

    let v1 = retrain("first").tag.unwrap();
    assert_eq!(r.store().aliases("m").unwrap().active.as_deref(), Some(v1.as_str()));
    // Drift reads the version's feature spec without loading its weights: the same columns
    // the loaded model computes.
    let info = r.store().active("m").unwrap().unwrap();
    assert_eq!(r.version_features("m", &info).unwrap(), r.active("m").unwrap().features);

    // --- Shadow test with real calls: the same recipe on the same data is the same model,
    // so the candidate is no better → REJECT → retired.
    clock.advance(SignedDuration::from_hours(24 * 10));
    let rep = retrain("second");
    assert_eq!(rep.decision.as_ref().unwrap().decision, Decision::Review, "{rep:?}");
    let v2 = rep.tag.unwrap();
    let pair = r.shadow_pair("m").unwrap();
    assert_eq!(pair.test.shadow_tag, v2);
    assert!(!pair.test.routes_to_candidate("any"), "a REVIEW candidate only watches");
    let n = bars.len();
    for i in 0..100 {
        let end = n - 150 + i;
        let key = format!("bar{end}");
        let upto = bars.slice(0, end).unwrap();
        let signal = pair.predict(&key, &upto).unwrap();
        assert!((-1..=1).contains(&signal.direction));
        let (c0, c1) = (bars.close()[end - 1], bars.close()[end]);
        pair.record_outcome(&key, c1 / c0 - 1.0, None).unwrap();
    }
    let (samples, pending) = pair.test.samples();
    assert_eq!((samples.len(), pending), (100, 0));
    assert!(samples.iter().all(|s| s.active == s.shadow), "identical models call identically");
    drop(pair);
    let ev = r.evaluate_shadow("m").unwrap();
    assert_eq!(ev.recommendation, Recommendation::Reject, "{ev:?}");
    assert_eq!(r.store().get("m", &v2).unwrap().status, Status::Retired);
    assert!(names().contains(&"shadow.rejected".to_string()));

    // --- A better candidate is promoted (calls recorded through the test handle).
    clock.advance(SignedDuration::from_hours(1));
    let v3 = retrain("third").tag.unwrap();
    let test = r.shadow_test("m").unwrap();
    for i in 0..150 {
        let outcome = if i % 2 == 0 { 0.01 } else { -0.01 };
        let right = if outcome > 0.0 { 1 } else { -1 };
        let active = if i % 3 == 0 { -right } else { right };
        let shadow = if i % 10 == 0 { -right } else { right };
        let key = format!("k{i}");
        test.record(&key, clock.now(), Call::new(active, None), Call::new(shadow, None)).unwrap();
        test.record_outcome(&key, clock.now(), outcome, None).unwrap();
    }
    let ev = r.evaluate_shadow("m").unwrap();
    assert_eq!(ev.recommendation, Recommendation::Promote, "{ev:?}");
    let a = r.store().aliases("m").unwrap();
    assert_eq!(a.active.as_deref(), Some(v3.as_str()));
    assert_eq!(r.store().get("m", &v1).unwrap().status, Status::Retired);
    let seen = names();
    assert!(seen.contains(&"shadow.promotion.recommended".to_string()) && seen.contains(&"model.promoted".to_string()));

    // --- Automatic rollback: v3 does clearly worse live than v1 did.
    let t3 = clock.now();
    let mut log = PredictionLog::new();
    live(&mut log, t1, (t3 - SignedDuration::from_hours(1)).duration_since(t1).as_hours(), 0.65, 1);
    live(&mut log, t3, 24 * 3, 0.45, 2);
    clock.advance(SignedDuration::from_hours(24 * 3));
    let verdicts = r.supervise(&log).unwrap();
    assert!(matches!(&verdicts[0].action, LiveAction::Rollback { to, .. } if *to == v1), "{verdicts:?}");
    assert_eq!(r.store().aliases("m").unwrap().active.as_deref(), Some(v1.as_str()));
    assert_eq!(r.store().get("m", &v3).unwrap().status, Status::Retired);
    let h = r.store().history("m").unwrap();
    assert!(h.iter().any(|x| x.reason.starts_with("automatic rollback")), "audited");

    // --- Retirement: v1 is wrong for 36 days straight → RETIRED, the fallback (v3) serves.
    let t4 = clock.now();
    live(&mut log, t4, 24 * 36, 0.2, 3);
    clock.advance(SignedDuration::from_hours(24 * 36));
    let verdicts = r.supervise(&log).unwrap();
    assert!(matches!(verdicts[0].action, LiveAction::Retire { .. }), "{verdicts:?}");
    assert_eq!(r.store().get("m", &v1).unwrap().status, Status::Retired);
    assert_eq!(r.store().aliases("m").unwrap().active.as_deref(), Some(v3.as_str()));
    assert!(events.try_iter().any(|e| matches!(e.kind, EventKind::Retired { fallback: Some(_), .. })));

    // --- Triggers a day later: the last 20 days' log-moves ×20 (every price raised to the
    // 20th power about the close before them) put the volatility features beyond anything
    // the reference saw. (125 days of BTC hold few independent 20-day windows and much
    // volatility clustering, so a ×3 move is not significant against them; the sensitivity
    // floors are tested on synthetic series in tests/drift_series.rs.) The daily schedule is
    // due (a midnight passed since v3 came back); health is assessed.
    clock.advance(SignedDuration::from_hours(24));
    let from = bars.len() - 20 * 24;
    let pivot = bars.close()[from - 1];
    let cube = |x: &[f64]| -> Vec<f64> {
        x.iter().enumerate().map(|(i, &v)| if i >= from { pivot * (v / pivot).powi(20) } else { v }).collect()
    };
    let cols = BarColumns {
        ts: bars.timestamps().to_vec(),
        open: cube(bars.open()),
        high: cube(bars.high()),
        low: cube(bars.low()),
        close: cube(bars.close()),
        volume: bars.volume().to_vec(),
    };
    let shifted = Bars::new(bars.symbol(), cols).unwrap();
    let bars_for = |_: &str| Ok(shifted.clone());
    let obs = Observations { predictions: Some(&log), bars: Some(&bars_for), ..Default::default() };
    let checks = r.evaluate_triggers(&obs).unwrap();
    assert_eq!(checks.len(), 1);
    let c = &checks[0];
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let drift = c.drift.as_ref().unwrap();
    assert!(drift.drifted > 0, "{drift:?}");
    assert!(drift.drifted_features().contains(&"natr_14"), "{:?}", drift.drifted_features());
    let kinds: Vec<TriggerKind> = c.triggers.iter().map(|t| t.kind).collect();
    assert!(kinds.contains(&TriggerKind::Drift) && kinds.contains(&TriggerKind::Schedule), "{kinds:?}");
    assert!(c.health.is_some());
    assert!(names().contains(&"drift.detected".to_string()));
    // The plan runs (deferred: no new rows since v3's data), and its trigger record marks the
    // schedule as fired: it is not due again until the next midnight.
    let plan = r.plan(&ModelCheck::pairs(&checks));
    let reports = r.execute(&plan, &|_| Ok(shifted.clone()));
    assert_eq!(reports[0].status, JobStatus::Deferred, "{:?}", reports[0]);
    let again = r.evaluate_triggers(&Observations::default()).unwrap();
    assert!(!again[0].triggers.iter().any(|t| t.kind == TriggerKind::Schedule), "{:?}", again[0].triggers);
    clock.advance(SignedDuration::from_hours(24));
    let later = r.evaluate_triggers(&Observations::default()).unwrap();
    assert!(later[0].triggers.iter().any(|t| t.kind == TriggerKind::Schedule), "{:?}", later[0].triggers);
    assert!(r.store().verify().unwrap().is_ok());

    // References are read once per version and kept: the cached check equals a fresh
    // process's, also after a rollback makes another tag active.
    let fresh = || Retrainer::open(dir.path().join("store"), Policy::default()).unwrap();
    let cached = r.check_drift("m", &shifted).unwrap();
    assert_eq!(cached, fresh().check_drift("m", &shifted).unwrap());
    r.rollback("m", &v1).unwrap();
    let after = r.check_drift("m", &shifted).unwrap();
    assert_eq!(after, fresh().check_drift("m", &shifted).unwrap());
    r.rollback("m", &v3).unwrap();

    // The exact KS p-values of those checks were saved in the store's cache: a new process
    // starts with them; a corrupt cache is ignored (the values are recomputed).
    let cache = r.store().cache_dir().join(retrain::lifecycle::orchestrator::KS_TABLE_FILE);
    let n = r.exact_p_values().len();
    assert!(n > 0 && cache.exists());
    let reopened = Retrainer::open(dir.path().join("store"), Policy::default()).unwrap();
    assert_eq!(reopened.exact_p_values().len(), n);
    std::fs::write(&cache, b"not a table").unwrap();
    let reopened = Retrainer::open(dir.path().join("store"), Policy::default()).unwrap();
    assert!(reopened.exact_p_values().is_empty());
}

#[path = "../benches/support/planted.rs"]
mod planted;
use retrain::rng::Rng;

/// Gates and floors lifted, no seed study: these tests exercise the supervisor, not the
/// decision (its rules have their own tests).
fn lax() -> Policy {
    Policy {
        gate_overfitting: false,
        gate_significance: false,
        gate_baseline: false,
        safe_min_win_rate: 0.0,
        safe_min_avg_r: -1.0,
        safe_min_calibration: 0.0,
        stability_seeds: 0,
        ..Policy::default()
    }
}

#[test]
fn critical_drift_raises_a_stop_trading_alarm_and_retrains_every_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let policy = lax();
    let (sink, events) = ChannelSink::new();
    let r = Retrainer::open(&store, policy)
        .unwrap()
        .with_events(sink)
        .with_model("a", ModelSpec::new(ModelKind::TREE))
        .unwrap()
        .with_model("b", ModelSpec::new(ModelKind::TREE))
        .unwrap();
    // Both trained on a stationary walk; then `a`'s market turns: ×5 volatility and a drift
    // over its last 20 days, while `b`'s stays as it was.
    let n = 5000;
    let calm = planted::candles(n, 0.0, 21);
    for m in ["a", "b"] {
        let rep = r.retrain(m, &calm.slice(0, n - 480).unwrap(), Trigger::manual("first").with_all_bars()).unwrap();
        assert_eq!(rep.status, JobStatus::Completed, "{rep:?}");
    }
    let turned = planted::shifted(n, 0.0, 21, Some(planted::Shift { at: n - 480, vol: 5.0, mean: 1.0 }));
    let bars_for = |m: &str| Ok(if m == "a" { turned.clone() } else { calm.clone() });
    let obs = Observations { bars: Some(&bars_for), ..Default::default() };
    let checks = r.evaluate_triggers(&obs).unwrap();
    let by = |m: &str| checks.iter().find(|c| c.model_id == m).unwrap().clone();
    let (a, b) = (by("a"), by("b"));
    assert_eq!(a.drift.as_ref().unwrap().severity, retrain::lifecycle::DriftSeverity::Critical, "{:?}", a.drift);
    assert_eq!(b.drift.as_ref().unwrap().severity, retrain::lifecycle::DriftSeverity::None, "{:?}", b.drift);
    // CRITICAL: a typed alarm on `a` (not on `b`), and an URGENT drift retrain of both models.
    let alarm = a.alarm.clone().expect("a stop-trading alarm on a");
    assert!(alarm.reason.contains("CRITICAL drift"), "{alarm:?}");
    assert!(b.alarm.is_none());
    let urgent = |c: &ModelCheck| {
        c.triggers.iter().any(|t| t.kind == TriggerKind::Drift && t.priority == retrain::lifecycle::Priority::Urgent)
    };
    assert!(urgent(&a) && urgent(&b), "{:?} / {:?}", a.triggers, b.triggers);
    assert!(b.triggers.iter().any(|t| t.reason.contains("drift of a: retrain all models")), "{:?}", b.triggers);
    let plan = r.plan(&ModelCheck::pairs(&checks));
    assert_eq!(plan.jobs.len(), 2, "{plan:?}");
    // The alarm is state, not a message: it holds across cycles (raised once), is the same
    // from a fresh process, and lists in the store's alarms.
    let again = r.evaluate_triggers(&obs).unwrap();
    assert!(again.iter().find(|c| c.model_id == "a").unwrap().alarm.is_some());
    let raised = events.try_iter().filter(|e| matches!(e.kind, EventKind::StopTradingRaised { .. })).count();
    assert_eq!(raised, 1);
    let fresh = Retrainer::open(&store, Policy::default()).unwrap();
    assert_eq!(fresh.stop_trading("a").unwrap().map(|x| x.raised_at), Some(alarm.raised_at));
    assert!(fresh.stop_trading("b").unwrap().is_none());
    assert_eq!(fresh.alarms().unwrap().len(), 1);
    // The CLI lists it and clears it explicitly, with who and why; clearing twice is an error.
    let cli = |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_retrain")).args(args).output().unwrap();
    let s = store.to_str().unwrap();
    let out = cli(&["alarm", "--store", s, "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["model_id"], "a", "{listed}");
    let out = cli(&["status", "--store", s, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |m: &str| status.as_array().unwrap().iter().find(|r| r["model_id"] == m).unwrap().clone();
    assert_eq!(row("a")["alarm"]["model_id"], "a", "{status}");
    assert!(row("b")["alarm"].is_null(), "{status}");
    let out = cli(&["status", "--store", s]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("STOP TRADING"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = cli(&["alarm", "clear", "a", "--store", s, "--actor", "ops", "--reason", "feed checked"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(r.stop_trading("a").unwrap().is_none());
    let out = cli(&["alarm", "clear", "a", "--store", s, "--reason", "again"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("raised stop-trading alarm"));
    let h = r.store().history("a").unwrap();
    let alarms: Vec<_> = h.iter().filter(|x| x.event == retrain::store::AuditKind::Alarm).collect();
    assert_eq!(alarms.len(), 2);
    assert_eq!((alarms[1].actor.as_str(), alarms[1].reason.as_str()), ("ops", "feed checked"));
    assert!(r.clear_alarm("b", &retrain::store::Change::new("ops", "none")).is_err());
}

#[test]
fn prediction_drift_compares_the_logged_scores_with_the_validation_scores() {
    let dir = tempfile::tempdir().unwrap();
    let n = 5000;
    let bars = planted::candles(n, 0.5, 31);
    let at = |i: usize| Timestamp::from_millisecond(bars.timestamps()[i]).unwrap();
    let clock = Arc::new(ManualClock::new(at(n - 481)));
    let policy = lax();
    let r = Retrainer::open(dir.path(), policy)
        .unwrap()
        .with_clock(clock.clone())
        .with_model("m", ModelSpec::new(ModelKind::LOGREG))
        .unwrap();
    let rep = r.retrain("m", &bars.slice(0, n - 480).unwrap(), Trigger::manual("first").with_all_bars()).unwrap();
    assert_eq!(rep.status, JobStatus::Completed, "{rep:?}");
    let reference =
        retrain::lifecycle::supervisor::load_reference(r.store(), "m", rep.tag.as_deref().unwrap()).unwrap();
    let stored = reference.prediction.as_ref().expect("the version stores its validation scores");
    assert!(stored.n() > 3000 && stored.calibration().is_some());
    clock.set(at(n - 1) + SignedDuration::from_hours(1));

    // What the host logged over the last 20 days: the deployed model's own calls on the same
    // process (no drift), or a model stuck on "up, 0.9" (drift).
    let model = r.active("m").unwrap();
    let ds = retrain::features::Dataset::from_bars(std::slice::from_ref(&bars), &model.features, &model.label).unwrap();
    let out = model.predict(&ds).unwrap();
    let task = retrain::features::Task::of(&ds);
    let log_of = |stuck: bool| {
        let mut log = PredictionLog::new();
        for (i, row) in out.rows().into_iter().enumerate() {
            let ts = Timestamp::from_millisecond(ds.t0[i]).unwrap();
            if ts < at(n - 480) {
                continue;
            }
            let s = retrain::model::Signal::from_outputs(task, &row.to_vec(), None);
            let (direction, probability) = if stuck { (1, Some(0.9)) } else { (s.direction, s.probability) };
            log.push(PredictionRecord {
                ts,
                model: "m".into(),
                direction,
                probability,
                score: None,
                outcome: None,
                risk: None,
                latency_ms: None,
            })
            .unwrap();
        }
        log
    };
    for (stuck, drifted) in [(false, false), (true, true)] {
        let log = log_of(stuck);
        let obs = Observations { predictions: Some(&log), ..Default::default() };
        let checks = r.evaluate_triggers(&obs).unwrap();
        let p = checks[0].prediction_drift.as_ref().expect("enough logged scores for a check");
        assert!(p.n_recent > 400, "{p:?}");
        assert_eq!(p.drifted, drifted, "stuck {stuck}: {p:?}");
        let fired = checks[0].triggers.iter().any(|t| t.reason.starts_with("prediction drift"));
        assert_eq!(fired, drifted, "{:?}", checks[0].triggers);
    }
    // Too few logged scores: no verdict rather than a noisy one.
    let mut short = PredictionLog::new();
    for h in 0..10 {
        short
            .push(PredictionRecord {
                ts: at(n - 1) - SignedDuration::from_hours(h),
                model: "m".into(),
                direction: 1,
                probability: Some(0.9),
                score: None,
                outcome: None,
                risk: None,
                latency_ms: None,
            })
            .unwrap();
    }
    let obs = Observations { predictions: Some(&short), ..Default::default() };
    assert!(r.evaluate_triggers(&obs).unwrap()[0].prediction_drift.is_none());
}
