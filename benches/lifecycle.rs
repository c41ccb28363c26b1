//! Supervisor benchmarks: trigger evaluation for 100 models × 60 features.
//!
//! ```text
//! cargo bench --bench lifecycle
//! DRIFT_DUMP=target/drift-bench/data.bin cargo bench --bench lifecycle   # + data for the peer
//! benches/peers/run_drift.sh                                              # ratio vs scipy
//! ```
//! Data: 100 models, each with 60 features; the reference is 2,160 training values per
//! feature (90 days of hourly bars, the periodic window) summarised as stored with a version
//! (1,001 quantiles + PSI bins + the null calibration for 480-row windows), the recent window
//! 480 values (20 days of hourly bars). A
//! quarter of the features are shifted by 0.1 σ, every tenth model's half by 0.5 σ. Each
//! model also has a 480-prediction health log.
//!
//! * `triggers_from_reports_100x60`: the trigger table for 100 models given their
//!   health and drift reports (what runs every time the host asks).
//! * `health_100`: health assessment of 100 models' logs.
//! * `drift_100x60`: KS (scipy's exact p-values: max(n1, n2) ≤ 10,000), PSI, the effective
//!   p-values and Benjamini–Yekutieli for all 6,000 features, models in parallel on a
//!   2-thread pool.
//! * `drift_100x60_unshared`: the same, each model's check with its own p-value table.
//! * `ks_exact_p_2160x480_null`: one exact p-value at a typical no-drift statistic.
//! * `supervisor_cycle_100x60`: health + drift + triggers together, the full check, cold
//!   (an empty p-value table: the first cycle on a new store).
//! * `supervisor_cycle_100x60_steady`: the same with the table the previous hourly cycle
//!   left (every recent window one bar earlier): the steady state of a running supervisor.
//! * `supervisor_cycle_100x60_restart`: the same with that table read back from the bytes
//!   the `Retrainer` saves in the store's cache: the first cycle after a restart.
//!
//! Before criterion's groups the full cycle is timed 7 times and its median printed as
//! `supervisor_cycle_ms` (cold; the number `run_drift.sh` divides by scipy's) and
//! `supervisor_cycle_steady_ms`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use retrain::config::Policy;
use retrain::lifecycle::drift::{DriftReport, ReferenceStats, check_drift, check_drift_with};
use retrain::lifecycle::health::{HealthReport, PredictionRecord, assess};
use retrain::lifecycle::ks::ExactPValues;
use retrain::lifecycle::trigger::{TriggerInputs, evaluate};
use retrain::rng::Rng;

const MODELS: usize = 100;
const FEATURES: usize = 60;
const REFERENCE_ROWS: usize = 2160;
const RECENT_ROWS: usize = 480;

struct Model {
    reference: ReferenceStats,
    raw_reference: Vec<Vec<f64>>,
    recent: Vec<Vec<f64>>,
    previous: Vec<Vec<f64>>,
    log: Vec<PredictionRecord>,
}

fn models() -> Vec<Model> {
    let names: Vec<String> = (0..FEATURES).map(|j| format!("f{j}")).collect();
    let t0: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    (0..MODELS)
        .map(|m| {
            let mut rng = Rng::stream(7, m as u64);
            let raw_reference: Vec<Vec<f64>> =
                (0..FEATURES).map(|_| (0..REFERENCE_ROWS).map(|_| rng.normal()).collect()).collect();
            let shift = |j: usize| {
                if m.is_multiple_of(10) && j.is_multiple_of(2) {
                    0.5
                } else if j.is_multiple_of(4) {
                    0.1
                } else {
                    0.0
                }
            };
            let recent: Vec<Vec<f64>> =
                (0..FEATURES).map(|j| (0..RECENT_ROWS).map(|_| rng.normal() + shift(j)).collect()).collect();
            // The previous hourly cycle's window: one bar earlier (a bar before the current
            // window, then all but its last bar).
            let mut prev_rng = Rng::stream(8, m as u64);
            let previous: Vec<Vec<f64>> = recent
                .iter()
                .enumerate()
                .map(|(j, r)| {
                    std::iter::once(prev_rng.normal() + shift(j)).chain(r[..RECENT_ROWS - 1].iter().copied()).collect()
                })
                .collect();
            let mut reference = ReferenceStats::from_columns(&names, &raw_reference, 10).unwrap();
            // As a job stores it: calibrated for 480-row windows of its own training rows.
            reference.calibrate(&raw_reference, RECENT_ROWS).unwrap();
            let log = (0..RECENT_ROWS)
                .map(|h| {
                    let outcome = 0.01 * rng.normal();
                    let right = rng.next_f64() < 0.53;
                    let sign: i8 = if outcome >= 0.0 { 1 } else { -1 };
                    PredictionRecord {
                        ts: t0 + SignedDuration::from_hours(h as i64),
                        model: format!("m{m}"),
                        direction: if right { sign } else { -sign },
                        probability: Some(0.55),
                        score: None,
                        outcome: Some(outcome),
                        risk: None,
                        latency_ms: Some(2.0),
                    }
                })
                .collect();
            Model { reference, raw_reference, recent, previous, log }
        })
        .collect()
}

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap()
}

fn health_all(ms: &[Model], p: &Policy) -> Vec<HealthReport> {
    use rayon::prelude::*;
    ms.par_iter()
        .enumerate()
        .map(|(i, m)| {
            let refs: Vec<&PredictionRecord> = m.log.iter().collect();
            assess(&format!("m{i}"), &refs, p)
        })
        .collect()
}

/// Every model's drift with one exact p-value table for the cycle, created empty here: a cold
/// cycle, the first after the process starts.
fn drift_all(ms: &[Model], p: &Policy) -> Vec<DriftReport> {
    drift_all_with(ms, p, &ExactPValues::new())
}

/// Every model's drift sharing `table`.
fn drift_all_with(ms: &[Model], p: &Policy, table: &ExactPValues) -> Vec<DriftReport> {
    use rayon::prelude::*;
    ms.par_iter().map(|m| check_drift_with(&m.reference, &m.recent, p, table).unwrap()).collect()
}

/// The table as the previous cycle left it (the `Retrainer` keeps its table between cycles).
fn previous_cycle_table(ms: &[Model], p: &Policy) -> ExactPValues {
    use rayon::prelude::*;
    let table = ExactPValues::new();
    ms.par_iter().for_each(|m| {
        check_drift_with(&m.reference, &m.previous, p, &table).unwrap();
    });
    table
}

/// Every model's drift on its own (each `check_drift` call its own table).
fn drift_all_unshared(ms: &[Model], p: &Policy) -> Vec<DriftReport> {
    use rayon::prelude::*;
    ms.par_iter().map(|m| check_drift(&m.reference, &m.recent, p).unwrap()).collect()
}

fn triggers_all(health: &[HealthReport], drift: &[DriftReport], now: Timestamp, p: &Policy) -> usize {
    health
        .iter()
        .zip(drift)
        .map(|(h, d)| {
            let inputs = TriggerInputs {
                health: Some(h),
                drift: Some(d),
                last_deployed: Some(now - SignedDuration::from_hours(24 * 3)),
                classifier: true,
                ..Default::default()
            };
            evaluate(&inputs, now, p).len()
        })
        .sum()
}

fn cycle(ms: &[Model], p: &Policy, now: Timestamp) -> usize {
    cycle_with(ms, p, now, &ExactPValues::new())
}

fn cycle_with(ms: &[Model], p: &Policy, now: Timestamp, table: &ExactPValues) -> usize {
    let h = health_all(ms, p);
    let d = drift_all_with(ms, p, table);
    triggers_all(&h, &d, now, p)
}

/// Write the raw reference and recent values (f64 LE: models, features, n_ref, n_recent, then
/// per model per feature the reference then the recent values) for `benches/peers/drift.py`.
fn dump(ms: &[Model], path: &str) {
    let mut out = Vec::new();
    for v in [MODELS, FEATURES, REFERENCE_ROWS, RECENT_ROWS] {
        out.extend_from_slice(&(v as f64).to_le_bytes());
    }
    for m in ms {
        for (r, c) in m.raw_reference.iter().zip(&m.recent) {
            for v in r.iter().chain(c) {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    if let Some(dir) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, out).unwrap();
    eprintln!("wrote {path}");
}

fn bench(c: &mut Criterion) {
    let p = Policy::default();
    let ms = models();
    let now: Timestamp = "2026-11-21T00:00:00Z".parse().unwrap();
    if let Ok(path) = std::env::var("DRIFT_DUMP") {
        dump(&ms, &path);
    }
    let pool = pool();
    let table = ExactPValues::new();
    let (h, d) = pool.install(|| (health_all(&ms, &p), drift_all_with(&ms, &p, &table)));
    let fired = triggers_all(&h, &d, now, &p);
    eprintln!("distinct exact KS p-values in a cycle: {} of {}", table.len(), MODELS * FEATURES);
    // What the previous hourly cycle leaves, as the `Retrainer` saves it in the store's cache.
    let saved = pool.install(|| previous_cycle_table(&ms, &p)).to_bytes();
    let restored = || ExactPValues::from_bytes(&saved, std::path::Path::new("ks-exact-p.bin")).unwrap();
    let fresh = {
        let t = restored();
        let before = t.len();
        pool.install(|| drift_all_with(&ms, &p, &t));
        t.len() - before
    };
    eprintln!("exact KS p-values the steady-state cycle computes (not left by the previous one): {fresh}");
    eprintln!("saved table: {} bytes", saved.len());
    let drifted: usize = d.iter().map(|r| r.drifted).sum();
    eprintln!("{MODELS} models × {FEATURES} features: {drifted} features drifted, {fired} triggers");
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            black_box(pool.install(|| cycle(&ms, &p, now)));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("supervisor_cycle_ms {:.2}", times[3]);
    let mut steady: Vec<f64> = (0..7)
        .map(|_| {
            let table = pool.install(|| previous_cycle_table(&ms, &p));
            let t = Instant::now();
            black_box(pool.install(|| cycle_with(&ms, &p, now, &table)));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    steady.sort_by(f64::total_cmp);
    println!("supervisor_cycle_steady_ms {:.2}", steady[3]);

    let mut g = c.benchmark_group("lifecycle");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("triggers_from_reports_100x60", |b| b.iter(|| black_box(triggers_all(&h, &d, now, &p))));
    g.bench_function("health_100", |b| b.iter(|| black_box(pool.install(|| health_all(&ms, &p)))));
    g.bench_function("ks_exact_p_2160x480_null", |b| {
        b.iter(|| black_box(retrain::lifecycle::ks::ks_p_value(black_box(0.045), REFERENCE_ROWS, RECENT_ROWS)))
    });
    g.bench_function("drift_100x60", |b| b.iter(|| black_box(pool.install(|| drift_all(&ms, &p)))));
    g.bench_function("drift_100x60_unshared", |b| b.iter(|| black_box(pool.install(|| drift_all_unshared(&ms, &p)))));
    g.bench_function("supervisor_cycle_100x60", |b| b.iter(|| black_box(pool.install(|| cycle(&ms, &p, now)))));
    g.bench_function("supervisor_cycle_100x60_steady", |b| {
        b.iter_batched(
            || pool.install(|| previous_cycle_table(&ms, &p)),
            |table| black_box(pool.install(|| cycle_with(&ms, &p, now, &table))),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("supervisor_cycle_100x60_restart", |b| {
        b.iter_batched(
            restored,
            |table| black_box(pool.install(|| cycle_with(&ms, &p, now, &table))),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
