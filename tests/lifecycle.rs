//! The lifecycle end to end: `retrain run` twice on the shipped data, promotion and rollback
//! through the CLI with the store checked each time; job isolation (panic, error, time limit,
//! cancellation) in the library.

use std::process::Command;

use retrain::data::read_bars;
use retrain::lifecycle::{Decision, JobStatus, ModelSpec, Retrainer, Trigger};
use retrain::model::ModelKind;
use retrain::store::{Status, VersionStore};

fn retrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_retrain"))
}

fn run_ok(args: &[&str]) -> String {
    let out = retrain().args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "retrain {args:?} failed: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    text
}

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/btcusd_coinbase_1h.csv");

#[test]
fn run_twice_then_promote_and_roll_back() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("models");
    let store = store_dir.to_str().unwrap();
    // A short window's metrics are noise, so the evidence gates would decide by chance: this
    // policy lifts the gates and floors so the store transitions are exercised
    // deterministically (the rule itself: decision.rs tests).
    let policy = dir.path().join("policy.toml");
    let lax = "gate_overfitting = false\ngate_significance = false\ngate_baseline = false\nsafe_min_win_rate = 0.0\nsafe_min_avg_r = -1.0\nsafe_min_calibration = 0.0\n";
    std::fs::write(&policy, lax).unwrap();
    let policy = policy.to_str().unwrap();
    let args = [
        "run",
        "--data",
        DATA,
        "--store",
        store,
        "--policy",
        policy,
        "--models",
        "lightgbm",
        "--window-days",
        "120",
        "--json",
    ];
    let id = "btcusd_coinbase_1h_lightgbm";

    let first: serde_json::Value = serde_json::from_str(&run_ok(&args)).unwrap();
    let job = &first["jobs"][0];
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["decision"]["decision"], "DEPLOY", "a safe first candidate deploys: {job}");
    let v1 = job["tag"].as_str().unwrap().to_string();
    let s = VersionStore::open_existing(&store_dir).unwrap();
    assert_eq!(s.aliases(id).unwrap().active.as_deref(), Some(v1.as_str()));
    assert!(s.verify().unwrap().is_ok());

    // Same data again: the candidate is compared with v1's own CPCV paths; identical recipe
    // and data give the same paths, so no improvement → REVIEW → SHADOW.
    let second: serde_json::Value = serde_json::from_str(&run_ok(&args)).unwrap();
    let job = &second["jobs"][0];
    assert_eq!(job["incumbent"], v1.as_str(), "the second run compares against the first's active version");
    assert_eq!(job["decision"]["improvement"].as_f64(), Some(0.0), "{job}");
    assert_eq!(job["decision"]["decision"], "REVIEW", "{job}");
    let v2 = job["tag"].as_str().unwrap().to_string();
    let a = s.aliases(id).unwrap();
    assert_eq!((a.active.as_deref(), a.shadow.as_deref()), (Some(v1.as_str()), Some(v2.as_str())));

    // An operator promotes the shadow, then rolls back to v1.
    run_ok(&["store", "promote", "--store", store, id, &v2]);
    assert_eq!(s.aliases(id).unwrap().active.as_deref(), Some(v2.as_str()));
    assert_eq!(s.get(id, &v1).unwrap().status, Status::Retired);
    run_ok(&["rollback", "--store", store, id, &v1]);
    let a = s.aliases(id).unwrap();
    assert_eq!(a.active.as_deref(), Some(v1.as_str()));
    assert_eq!(s.get(id, &v2).unwrap().status, Status::Retired);
    assert!(s.verify().unwrap().is_ok());

    // The audit log holds both jobs and both decisions; status shows them.
    let status: serde_json::Value = serde_json::from_str(&run_ok(&["status", "--store", store, "--json"])).unwrap();
    assert_eq!(status[0]["active"], v1.as_str());
    assert_eq!(status[0]["last_jobs"].as_array().unwrap().len(), 2);
    let history = s.history(id).unwrap();
    let count = |k: retrain::store::AuditKind| history.iter().filter(|r| r.event == k).count();
    assert_eq!(count(retrain::store::AuditKind::Job), 2);
    assert_eq!(count(retrain::store::AuditKind::Decision), 2);
    assert_eq!(count(retrain::store::AuditKind::Trigger), 2);
}

#[test]
fn a_failing_or_panicking_job_never_stops_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let bars = read_bars(DATA).unwrap().remove(0);
    let bars = bars.slice(bars.len() - 3000, bars.len()).unwrap();
    let r = Retrainer::open(dir.path(), retrain::config::Policy::default())
        .unwrap()
        .with_model("ok", ModelSpec::new(ModelKind::LIGHTGBM))
        .unwrap()
        .with_model("panics", ModelSpec::new(ModelKind::LIGHTGBM))
        .unwrap()
        .with_model("errors", ModelSpec::new(ModelKind::XGBOOST))
        .unwrap()
        .with_model("slow", ModelSpec::new(ModelKind::XGBOOST))
        .unwrap()
        .with_time_limit("slow", std::time::Duration::from_millis(1))
        .unwrap();
    let triggers: Vec<(String, Trigger)> = ["panics", "errors", "slow", "ok"]
        .iter()
        .map(|m| (m.to_string(), Trigger::manual("test").with_all_bars()))
        .collect();
    let plan = r.plan(&triggers);
    let reports = r.execute(&plan, &|m| match m {
        "panics" => panic!("data feed exploded"),
        "errors" => Err(retrain::Error::param("data", "feed unavailable")),
        _ => Ok(bars.clone()),
    });
    let by = |m: &str| reports.iter().find(|j| j.model_id == m).unwrap();
    assert_eq!(by("ok").status, JobStatus::Completed);
    assert!(by("ok").tag.is_some());
    assert_eq!(by("panics").status, JobStatus::Failed);
    assert!(by("panics").error.as_deref().unwrap().contains("panicked: data feed exploded"));
    assert_eq!(by("errors").status, JobStatus::Failed);
    assert!(by("errors").error.as_deref().unwrap().contains("feed unavailable"));
    // Past its time limit a job stops at its next check, stores nothing, and is CANCELLED.
    assert_eq!(by("slow").status, JobStatus::Cancelled, "{:?}", by("slow"));
    assert!(by("slow").error.as_deref().unwrap().contains("time limit"), "{:?}", by("slow").error);
    assert!(r.store().list("slow", None).map(|l| l.is_empty()).unwrap_or(true));
    assert!(r.store().verify().unwrap().is_ok());
    // Failed jobs are audited too.
    let h = r.store().history("panics").unwrap();
    assert!(h.iter().any(|rec| rec.event == retrain::store::AuditKind::Job && rec.reason.contains("FAILED")));

    // A cancelled retrainer stops its jobs before they store anything.
    r.cancel_token().cancel();
    let rep = r.retrain("ok", &bars, Trigger::manual("after cancel").with_all_bars()).unwrap();
    assert_eq!(rep.status, JobStatus::Cancelled, "{rep:?}");
    assert_eq!(r.store().list("ok", None).unwrap().len(), 1);
}

#[test]
fn a_job_over_the_memory_budget_fails_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let bars = read_bars(DATA).unwrap().remove(0);
    let need = retrain::lifecycle::job::estimate_memory_mb(bars.len(), 61, ModelKind::LIGHTGBM, 2);
    assert!((64..2048).contains(&need), "{need} MiB for 20k bars × 61 features");
    let policy = retrain::config::Policy { memory_budget_mb: Some(need - 1), ..Default::default() };
    let r = Retrainer::open(dir.path(), policy).unwrap().with_model("m", ModelSpec::new(ModelKind::LIGHTGBM)).unwrap();
    let rep = r.retrain("m", &bars, Trigger::manual("too big").with_all_bars()).unwrap();
    assert_eq!(rep.status, JobStatus::Failed);
    assert!(rep.error.as_deref().unwrap().contains("memory_budget_mb"), "{:?}", rep.error);
    assert!(r.store().list("m", None).map(|l| l.is_empty()).unwrap_or(true), "nothing stored");
}

#[test]
fn run_takes_its_model_list_from_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "models = [\"xgboost\"]\n").unwrap();
    let store = dir.path().join("models");
    let out = run_ok(&[
        "run",
        "--data",
        DATA,
        "--store",
        store.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--window-days",
        "60",
        "--json",
    ]);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    let jobs = s["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{s}");
    assert_eq!(jobs[0]["model_id"], "btcusd_coinbase_1h_xgboost");
}

#[test]
fn a_policy_naming_an_unknown_kind_is_refused_when_the_retrainer_opens() {
    let dir = tempfile::tempdir().unwrap();
    let policy = retrain::config::Policy { models: vec!["lightgbm".into(), "tabnet".into()], ..Default::default() };
    match Retrainer::open(dir.path(), policy) {
        Err(retrain::Error::InvalidParam { field, reason }) => {
            assert_eq!(field, "models");
            assert!(reason.contains("tabnet") && reason.contains("nhits"), "{reason}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("an unknown kind opened"),
    }
    let ok = retrain::config::Policy { models: vec!["patchtst".into()], ..Default::default() };
    assert_eq!(retrain::lifecycle::policy_kinds(&ok).unwrap(), [ModelKind::PATCHTST]);
}

#[test]
fn a_job_scores_its_baselines_on_the_same_paths_and_the_gate_reads_them() {
    let all = read_bars(DATA).unwrap().remove(0);
    let bars = all.slice(all.len() - 2000, all.len()).unwrap();
    // A margin no IC can clear, then one every IC clears: the baseline verdict alone flips
    // the decision (the other gates and floors are lifted).
    for (min_delta, beaten) in [(1.0, false), (-1.0, true)] {
        let dir = tempfile::tempdir().unwrap();
        let policy = retrain::config::Policy {
            gate_overfitting: false,
            safe_min_win_rate: 0.0,
            safe_min_avg_r: -1.0,
            safe_min_calibration: 0.0,
            baselines: vec!["logreg".into(), "ridge".into(), "tree".into()],
            baseline_min_delta: min_delta,
            ..Default::default()
        };
        let r = Retrainer::open(dir.path(), policy).unwrap().with_model("m", ModelSpec::new(ModelKind::TREE)).unwrap();
        let rep = r.retrain("m", &bars, Trigger::manual("baseline gate").with_all_bars()).unwrap();
        assert_eq!(rep.status, JobStatus::Completed, "{:?}", rep.error);
        let d = rep.decision.as_ref().unwrap();
        // ridge does not model a direction label; tree is the candidate's own kind.
        assert_eq!(d.input.baselines.len(), 1, "{d}");
        let b = &d.input.baselines[0];
        assert_eq!((b.baseline.as_str(), b.metric.as_str(), b.per_path.len()), ("logreg", "ic_spearman", 5));
        assert_eq!(b.beaten, beaten);
        assert!(rep.baselines["logreg"].contains_key("auc") && !rep.baselines.contains_key("ridge"));
        assert!(rep.notes.iter().any(|n| n.contains("tree is the candidate's own kind")), "{:?}", rep.notes);
        if beaten {
            assert_eq!(d.decision, retrain::lifecycle::decision::Decision::Deploy, "{d}");
            // The deployed baseline serves from the store (artifact checksummed, reloaded).
            let signal = r.active("m").unwrap().predict_latest(&bars).unwrap();
            assert!(signal.direction.abs() == 1 && signal.probability.is_some_and(|p| (0.5..=1.0).contains(&p)));
        } else {
            assert_eq!(d.decision, retrain::lifecycle::decision::Decision::KeepOld, "{d}");
            assert!(d.concerns.iter().any(|c| c.contains("does not beat baseline logreg on ic_spearman")), "{d}");
        }
        // The stored decision report carries the comparison.
        let tag = rep.tag.as_deref().unwrap();
        let decisions = dir.path().join("models").join("m").join("decisions");
        let file = std::fs::read_dir(&decisions)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(&format!("{tag}.json")))
            .unwrap_or_else(|| panic!("no decision report of {tag} in {}", decisions.display()));
        let stored = std::fs::read_to_string(file).unwrap();
        assert!(stored.contains("\"per_path\"") && stored.contains("\"logreg\""), "{stored}");
    }
}

#[test]
fn a_policy_naming_an_unknown_baseline_or_metric_is_refused() {
    use retrain::config::Policy;
    let field = |p: Policy| match retrain::lifecycle::policy_kinds(&p) {
        Err(retrain::Error::InvalidParam { field, .. }) => field,
        other => panic!("expected an error, got {other:?}"),
    };
    assert_eq!(field(Policy { baselines: vec!["tabnet".into()], ..Default::default() }), "baselines");
    assert_eq!(field(Policy { baseline_metric: "max_drawdown".into(), ..Default::default() }), "baseline_metric");
    assert_eq!(field(Policy { baseline_metric: "aucc".into(), ..Default::default() }), "baseline_metric");
    let ok = Policy { baselines: vec!["forest".into()], baseline_metric: "log_loss".into(), ..Default::default() };
    assert!(retrain::lifecycle::policy_kinds(&ok).is_ok());
    assert!(retrain::lifecycle::policy_kinds(&Policy { baselines: vec![], ..Default::default() }).is_ok());
}

#[test]
fn jobs_record_train_metrics_honour_the_manual_window_and_apply_retention() {
    let all = read_bars(DATA).unwrap().remove(0);
    let bars = all.slice(all.len() - 2000, all.len()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = retrain::config::Policy {
        gate_overfitting: false,
        gate_significance: false,
        gate_baseline: false,
        safe_min_win_rate: 0.0,
        safe_min_avg_r: -1.0,
        safe_min_calibration: 0.0,
        stability_seeds: 0,
        window_manual_days: 60,
        max_versions: 2,
        max_non_deployed: 0,
        ..Default::default()
    };
    let r = Retrainer::open(dir.path(), policy).unwrap().with_model("m", ModelSpec::new(ModelKind::TREE)).unwrap();
    let mut tags = Vec::new();
    let mut last = None;
    for i in 0..4 {
        let rep = r.retrain("m", &bars, Trigger::manual(format!("job {i}"))).unwrap();
        assert_eq!(rep.status, JobStatus::Completed, "{:?}", rep.error);
        // 60 days of hourly bars, not the 83 days given.
        assert!(rep.rows <= 60 * 24 && rep.rows > 50 * 24, "rows {}", rep.rows);
        // The same rows retrain to the same model, so nothing after the first deploys.
        let d = rep.decision.as_ref().unwrap();
        if i > 0 {
            assert_eq!((d.improvement, d.decision), (Some(0.0), Decision::Review), "job {i}: {d}");
        }
        tags.push(rep.tag.clone().unwrap());
        last = Some(rep);
    }
    let info = r.store().get("m", &tags[3]).unwrap();
    for k in ["auc", "win_rate", "ic_spearman"] {
        let v = info.meta.train_metrics.get(k).copied();
        assert!(v.is_some_and(f64::is_finite), "train_metrics.{k}: {:?}", info.meta.train_metrics);
    }
    // In-sample fit of a deep tree beats its own out-of-sample AUC.
    assert!(info.meta.train_metrics["auc"] > info.meta.validation_metrics["auc"], "{:?}", info.meta);
    // Retention ran after each job: the deployed first version and the last two stay.
    let kept: Vec<String> = r.store().list("m", None).unwrap().into_iter().map(|v| v.tag).collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.contains(&tags[0]) && kept.contains(&tags[2]) && kept.contains(&tags[3]), "{kept:?}");
    let notes = last.unwrap().notes;
    assert!(notes.iter().any(|n| n.contains("retention moved 1 old version") && n.contains(&tags[1])), "{notes:?}");
    assert!(r.store().verify().unwrap().is_ok());
    // An operator's whole-history job ignores the window.
    let rep = r.retrain("m", &bars, Trigger::manual("all").with_all_bars()).unwrap();
    assert!(rep.rows > 70 * 24, "rows {}", rep.rows);
}
