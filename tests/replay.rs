//! The offline replay: its calls are the host's calls (`predict_latest` on the bars so far),
//! it is strictly causal (a replay of truncated history gives the same timeline and positions
//! up to the cut), the policies behave as named, and the report files are written. Candles
//! come from the generator committed in `benches/support/planted.rs`.

use std::collections::BTreeMap;

use retrain::Policy;
use retrain::data::{BarColumns, Bars};
use retrain::lifecycle::Retrainer;
use retrain::lifecycle::replay::{ReplayOptions, ReplayPolicy, ReplayResult, replay};
use retrain::rng::Rng;

#[path = "../benches/support/planted.rs"]
#[allow(dead_code)]
mod planted;

/// Cheap jobs: one kind, no seed study, no baselines (the gate still judges the evidence).
fn base() -> Policy {
    Policy { models: vec!["lightgbm".into()], stability_seeds: 1, baselines: vec![], ..Policy::default() }
}

fn opts() -> ReplayOptions {
    ReplayOptions { kinds: vec!["lightgbm".parse().unwrap()], initial_days: 90, threads: 2, ..ReplayOptions::default() }
}

/// `n_days` of hourly candles with a planted signal.
fn bars(n_days: usize) -> Bars {
    planted::candles(24 * n_days, 1.0, 11).with_symbol("planted")
}

fn run(bars: &Bars, dir: &std::path::Path) -> ReplayResult {
    replay(std::slice::from_ref(bars), &ReplayPolicy::builtins(&base()), &opts(), dir, &mut |_| {}).unwrap()
}

/// The timeline without what wall time decides (job durations and the hash chain over them).
fn projection(r: &ReplayResult, until_ms: i64) -> Vec<String> {
    r.timeline
        .iter()
        .filter(|e| e.record.ts.as_millisecond() <= until_ms)
        .map(|e| {
            let r = &e.record;
            format!(
                "{} {} {:?} {:?} {:?} {:?} {:?} {} {}",
                e.policy, r.ts, r.event, r.model, r.version, r.from, r.to, r.actor, r.reason
            )
        })
        .collect()
}

#[test]
fn replayed_calls_are_what_predict_latest_gives_on_the_bars_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let b = bars(105);
    let r = run(&b, dir.path());
    let never = r.policies.iter().find(|p| p.name == "never").unwrap();
    let (id, positions) = never.positions.iter().next().unwrap();
    let retrainer = Retrainer::open(dir.path().join("stores").join("never"), base()).unwrap();
    let model = retrainer.active(id).unwrap();
    let offset = b.len() - positions.len();
    assert_eq!(b.timestamps()[offset], r.start.as_millisecond(), "trading starts at the replay's start");
    let mut rng = Rng::new(3);
    for _ in 0..12 {
        let j = (rng.next_f64() * positions.len() as f64) as usize;
        let host = model.predict_latest(&b.slice(0, offset + j + 1).unwrap()).unwrap();
        assert_eq!(positions[j], host.direction, "bar {}", offset + j);
    }
}

#[test]
fn a_replay_of_truncated_history_is_the_same_up_to_the_cut() {
    let b = bars(118);
    let full_dir = tempfile::tempdir().unwrap();
    let full = run(&b, full_dir.path());
    let start = full.start.as_millisecond();
    let mut rng = Rng::new(17);
    for _ in 0..2 {
        let first = b.timestamps().partition_point(|&t| t < start);
        let cut = first + 24 + (rng.next_f64() * (b.len() - first - 48) as f64) as usize;
        let dir = tempfile::tempdir().unwrap();
        let part = run(&b.slice(0, cut).unwrap(), dir.path());
        let until = b.timestamps()[cut - 1];
        assert_eq!(projection(&part, until), projection(&full, until), "cut at bar {cut}");
        for (p, q) in part.policies.iter().zip(&full.policies) {
            for (id, pos) in &p.positions {
                assert_eq!(pos[..], q.positions[id][..pos.len()], "{} {id}: positions before the cut", p.name);
            }
        }
    }
    // The policies did what their names say.
    let by: BTreeMap<&str, &retrain::lifecycle::replay::PolicyOutcome> =
        full.policies.iter().map(|p| (p.name.as_str(), p)).collect();
    assert_eq!(by["never"].counts.cycles, 0);
    assert_eq!(by["never"].counts.jobs, 0);
    let blind = &by["blind_weekly"].counts;
    assert!(blind.retrains >= 3 && blind.deploys == blind.retrains, "{blind:?}");
    assert_eq!(by["gated_weekly"].counts.retrains, blind.retrains, "the same weekly windows");
    assert!(by["gated_weekly"].counts.reused >= blind.retrains - 1, "training shared with blind_weekly");
    let days = (b.timestamps().last().unwrap() - start) / 86_400_000;
    assert_eq!(by["triggered"].counts.cycles as i64, days, "one cycle per day boundary");
    assert!(full.cache_hits > 0);
    // Never-retrain against itself is no comparison; the others carry a finite p-value.
    assert!(by["never"].vs_never.is_none());
    assert!(by["blind_weekly"].vs_never.as_ref().is_some_and(|v| (0.0..=1.0).contains(&v.p_value)));
}

/// Open the page in headless Chromium (Debian's `chromium`, which `.ci/run` installs when it
/// can): it must render its charts and log no console error. Skipped, saying so, without it.
fn renders_in_chromium(page: &std::path::Path) {
    let Some(browser) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
    else {
        eprintln!("SKIPPED the Chromium check of report.html: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    assert_eq!(dom.matches("<svg").count(), 4, "the rendered page holds the four charts");
    assert!(dom.contains("Lifecycle replay"));
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE") || l.contains("Uncaught")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
}

#[test]
fn the_report_is_written_and_bad_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&bars(100), dir.path());
    let files = retrain::lifecycle::replay_report::write(&r, dir.path()).unwrap();
    for name in
        ["summary.json", "timeline.jsonl", "report.html", "equity.png", "rolling_ic.png", "drift.png", "cpcv_paths.png"]
    {
        let p = dir.path().join(name);
        assert!(files.contains(&p) && p.metadata().unwrap().len() > 0, "{name}");
    }
    let png = std::fs::read(dir.path().join("equity.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "four inline charts");
    assert!(!html.contains("<script") && !html.contains("src=\"http"), "self-contained");
    let lines = std::fs::read_to_string(dir.path().join("timeline.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), r.timeline.len());
    renders_in_chromium(&dir.path().join("report.html"));

    let b = bars(100);
    let refuse = |policies: &[ReplayPolicy], o: &ReplayOptions, data: &[Bars]| {
        replay(data, policies, o, dir.path(), &mut |_| {}).unwrap_err().to_string()
    };
    let mut twice = ReplayPolicy::builtins(&base());
    twice.push(twice[0].clone());
    assert!(refuse(&twice, &opts(), std::slice::from_ref(&b)).contains("two policies are named `never`"));
    let long = ReplayOptions { initial_days: 120, ..opts() };
    assert!(refuse(&ReplayPolicy::builtins(&base()), &long, std::slice::from_ref(&b)).contains("initial_days"));
    let cost = ReplayOptions { cost_bps: f64::NAN, ..opts() };
    assert!(refuse(&ReplayPolicy::builtins(&base()), &cost, std::slice::from_ref(&b)).contains("cost_bps"));
    assert!(refuse(&ReplayPolicy::builtins(&base()), &opts(), &[]).contains("candle file"));
}

/// Scale: the XAUUSD 1h series beside the repository (76,500 bars, 2006–2019), both GBDT
/// kinds, the four built-in policies: about 34 minutes on 2 cores. Release build:
/// `cargo test --release --test replay -- --ignored xauusd --nocapture`.
#[test]
#[ignore = "scale test: a replay of 13 years of hourly gold"]
fn xauusd_replay_at_scale() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets/xauusd_oanda_mid_1h_2006-2019_lean.csv");
    if !std::path::Path::new(path).exists() {
        eprintln!("SKIPPED: {path} is not there (the shared datasets sit beside the repository)");
        return;
    }
    let b = retrain::read_bars(path).unwrap().remove(0).with_symbol("xauusd");
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let o = ReplayOptions::default();
    let r = replay(&[b], &ReplayPolicy::builtins(&Policy::default()), &o, dir.path(), &mut |_| {}).unwrap();
    eprintln!("xauusd replay: {:.0} s, {} bars per model", started.elapsed().as_secs_f64(), r.bars);
    for p in &r.policies {
        eprintln!(
            "{:<14} return {:+.4} Sharpe {:.2} retrains {} deploys {} vs never {:?}",
            p.name,
            p.metrics.total_return,
            p.metrics.sharpe,
            p.counts.retrains,
            p.counts.deploys,
            p.vs_never.as_ref().map(|v| (v.annualised, v.p_value))
        );
    }
    assert!(r.bars > 70_000);
    assert_eq!(r.policies.len(), 4);
}

#[test]
fn a_shadow_candidate_is_recorded_beside_the_active_version_and_changes_no_position() {
    // Every safe candidate no worse than the deployed version goes to SHADOW (the gates and
    // floors are off; the improvement decides): REVIEW is a shadow test without routing, so
    // the traded positions stay the active version's while both calls are recorded.
    let shadow = Policy {
        triggers: vec!["time".into()],
        min_new_samples: 24,
        gate_overfitting: false,
        gate_significance: false,
        gate_baseline: false,
        safe_min_win_rate: 0.0,
        safe_min_avg_r: -1.0,
        safe_min_calibration: 0.0,
        min_improvement: 1e9,
        canary_threshold: 1e-9,
        min_samples: 100,
        ..base()
    };
    let policies = vec![
        ReplayPolicy { name: "never".into(), policy: base(), cycle_days: None, live_actions: false },
        ReplayPolicy { name: "shadow".into(), policy: shadow, cycle_days: Some(7), live_actions: true },
    ];
    let b = bars(125);
    let dir = tempfile::tempdir().unwrap();
    let r = replay(std::slice::from_ref(&b), &policies, &opts(), dir.path(), &mut |_| {}).unwrap();
    let c = &r.policies[1].counts;
    assert!(c.retrains >= 4 && c.canaries >= 1 && c.deploys == 0, "{c:?}");
    let shadows = r
        .timeline
        .iter()
        .filter(|e| e.policy == "shadow" && e.record.to == Some(retrain::store::Status::Shadow))
        .count();
    assert!(shadows >= 1, "a candidate went to SHADOW");
    let (id, never) = r.policies[0].positions.iter().next().unwrap();
    assert_eq!(&r.policies[1].positions[id], never, "a shadow test trades nothing");
    // Both calls of every bar since the candidate went to SHADOW are in its test's log.
    let store = retrain::VersionStore::open(dir.path().join("stores").join("shadow")).unwrap();
    let test = retrain::lifecycle::ShadowTest::open(&store, id, &base()).unwrap();
    let (samples, _) = test.samples();
    assert!(samples.len() >= 100, "{} paired calls with outcomes", samples.len());
}
