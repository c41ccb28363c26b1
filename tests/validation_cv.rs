//! cross_validate: leakage guarantees, path assembly and determinism.

use std::sync::Mutex;

use ndarray::{Array2, ArrayView2, ShapeBuilder};
use retrain::data::read_bars;
use retrain::features::{Dataset, FeatureSpec, LabelSpec, Task};
use retrain::gbdt::GbdtParams;
use retrain::model::{Fit, Predict};
use retrain::rng::Rng;
use retrain::validation::{Cpcv, CvOptions, Embargo, PurgedKFold, Splitter, cross_validate};
use retrain::{Error, Result};

/// A synthetic dataset: `n` hourly rows, horizon-`h` labels, features from `make`.
fn synthetic(n: usize, h: i64, y: Vec<f64>, cols: Vec<Vec<f32>>) -> Dataset {
    let bars = read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/eurusd_ask_1h_2017.csv")).unwrap();
    let spec: FeatureSpec = FeatureSpec::default();
    let label: LabelSpec = "direction:1".parse().unwrap();
    let mut ds = Dataset::from_bars(&bars, &spec, &label).unwrap().select(&(0..n).collect::<Vec<_>>()).unwrap();
    let mut x = Array2::<f32>::zeros((n, cols.len()).f());
    for (j, c) in cols.iter().enumerate() {
        x.column_mut(j).assign(&ndarray::ArrayView1::from(c));
    }
    ds.x = x;
    ds.feature_names = (0..cols.len()).map(|j| format!("f{j}")).collect();
    ds.y = y.into();
    ds.t0 = (0..n as i64).map(|i| i * 3_600_000).collect();
    ds.t1 = ds.t0.iter().map(|t| t + h * 3_600_000).collect();
    ds.ret = None;
    ds.risk = None;
    ds
}

fn small_gbdt() -> GbdtParams {
    GbdtParams::lightgbm().rounds(30).num_leaves(8).min_data_in_leaf(5)
}

#[test]
fn a_feature_equal_to_the_label_scores_perfectly_out_of_sample() {
    let n = 1200;
    let mut rng = Rng::new(7);
    let y: Vec<f64> = (0..n).map(|_| f64::from(u8::from(rng.next_f64() < 0.5))).collect();
    let noise: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let leak: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    let ds = synthetic(n, 3, y, vec![noise, leak]);
    let r =
        cross_validate(&small_gbdt(), &ds, &Cpcv::default().embargo(Embargo::Bars(2)), &CvOptions::default()).unwrap();
    assert_eq!(r.task, Task::Binary);
    assert!(r.metric("auc").unwrap().mean > 0.999, "{r}");
}

#[test]
fn shuffled_labels_fit_in_sample_and_are_at_chance_out_of_sample() {
    let n = 3000;
    let mut rng = Rng::new(11);
    let cols: Vec<Vec<f32>> = (0..5).map(|_| (0..n).map(|_| rng.normal() as f32).collect()).collect();
    let y: Vec<f64> = (0..n).map(|_| f64::from(u8::from(rng.next_f64() < 0.5))).collect();
    let ds = synthetic(n, 3, y, cols);
    let p = GbdtParams::lightgbm().rounds(60).num_leaves(31).min_data_in_leaf(2);
    let opts = CvOptions { in_sample: Some(true), ..CvOptions::default() };
    let r = cross_validate(&p, &ds, &Cpcv::default(), &opts).unwrap();
    let in_sample: Vec<f64> = r.splits.iter().map(|s| s.train.as_ref().unwrap().auc.unwrap()).collect();
    assert!(in_sample.iter().all(|&a| a > 0.8), "in-sample AUC {in_sample:?}");
    let oos = r.metric("auc").unwrap().mean;
    assert!((oos - 0.5).abs() < 0.03, "out-of-sample AUC {oos}");
    assert!(r.flags.weak_ic);
}

/// Records every row time it is fitted on (and validated on) and predicts a constant.
struct Spy {
    seen: Mutex<Vec<(Vec<i64>, Vec<i64>)>>,
    early_stop: bool,
}
struct Constant;
impl Predict for Constant {
    fn n_outputs(&self) -> usize {
        1
    }
    fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        Ok(Array2::from_elem((x.nrows(), 1), 0.5))
    }
}
impl Fit for Spy {
    type Model = Constant;
    fn fit(&self, train: &Dataset, valid: Option<&Dataset>) -> Result<Constant> {
        if self.early_stop && valid.is_none() {
            return Err(Error::param("valid", "expected an early-stopping slice"));
        }
        self.seen.lock().unwrap().push((train.t0.clone(), valid.map(|v| v.t0.clone()).unwrap_or_default()));
        Ok(Constant)
    }
    fn uses_validation(&self) -> bool {
        self.early_stop
    }
    fn with_seed(&self, _: u64) -> Self {
        Spy { seen: Mutex::new(Vec::new()), early_stop: self.early_stop }
    }
}

#[test]
fn fits_and_early_stopping_never_see_test_or_overlapping_rows() {
    let n = 900;
    let ds = synthetic(n, 4, (0..n).map(|i| (i % 2) as f64).collect(), vec![vec![0.0; n]]);
    let splitter = Cpcv::new(6, 2).embargo(Embargo::Bars(3));
    let plan = splitter.plan(&ds.t0, &ds.t1).unwrap();
    for early_stop in [false, true] {
        let spy = Spy { seen: Mutex::new(Vec::new()), early_stop };
        cross_validate(&spy, &ds, &splitter, &CvOptions::default()).unwrap();
        let seen = spy.seen.into_inner().unwrap();
        assert_eq!(seen.len(), plan.splits.len());
        let h = 4 * 3_600_000;
        for (train, valid) in &seen {
            // Which split was this? The one whose training rows contain all of them.
            let split = plan
                .splits
                .iter()
                .find(|s| train.iter().chain(valid).all(|t| s.train.contains(&((t / 3_600_000) as usize))))
                .expect("fit rows are a subset of one split's training rows");
            let test_t: Vec<i64> = split.test.iter().map(|&r| ds.t0[r]).collect();
            for t in train.iter().chain(valid) {
                assert!(!test_t.contains(t));
            }
            if early_stop {
                assert!(!valid.is_empty());
                // The slice is the latest training rows, and fit rows' labels end before it starts.
                let start = valid[0];
                assert!(train.iter().all(|t| t + h < start));
                assert_eq!(valid.len(), (split.train.len() as f64 * 0.1).round() as usize);
            }
        }
    }
}

#[test]
fn paths_reassemble_every_row_once_and_results_ignore_thread_count() {
    let n = 1500;
    let mut rng = Rng::new(3);
    let cols: Vec<Vec<f32>> = (0..4).map(|_| (0..n).map(|_| rng.normal() as f32).collect()).collect();
    let y: Vec<f64> = (0..n).map(|i| f64::from(u8::from(cols[0][i] + 0.5 * cols[1][i] > 0.0))).collect();
    let ds = synthetic(n, 2, y, cols);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| cross_validate(&small_gbdt(), &ds, &Cpcv::new(5, 2), &CvOptions::default()).unwrap())
    };
    let (a, b) = (run(1), run(3));
    assert_eq!(a.paths, b.paths);
    assert_eq!(a.oos, b.oos);
    assert_eq!(a.paths.len(), 4);
    for p in &a.paths {
        assert_eq!(p.scores.rows, n);
    }
    assert!(a.metric("auc").unwrap().mean > 0.9);
    // The report serialises and prints.
    let json = serde_json::to_string(&a).unwrap();
    assert!(json.contains("\"paths\""));
    assert!(a.to_string().contains("mean"));
    // k-fold gives one path covering every row.
    let k = cross_validate(&small_gbdt(), &ds, &PurgedKFold::default(), &CvOptions::default()).unwrap();
    assert_eq!(k.paths.len(), 1);
    assert_eq!(k.paths[0].scores.rows, n);
}

#[test]
fn real_candles_get_trading_metrics() {
    let bars = read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/eurusd_ask_1h_2017.csv")).unwrap();
    let ds = Dataset::from_bars(&bars, &FeatureSpec::default(), &"direction:6".parse().unwrap()).unwrap();
    assert!(ds.ret.is_some() && ds.risk.is_some());
    let r =
        cross_validate(&small_gbdt(), &ds, &Cpcv::default().embargo(Embargo::Bars(24)), &CvOptions::default()).unwrap();
    for m in ["auc", "win_rate", "avg_r", "sharpe", "max_drawdown", "calibration", "ic_spearman"] {
        assert!(r.metric(m).is_some(), "{m} missing");
    }
    let clock = r.clock.unwrap();
    assert!((clock.bars_per_year - 8766.0).abs() < 1.0 && clock.horizon == 6.0);
    // No early stopping: no selection slice, no Sharpe gap; the paths' PnL gives the PSR.
    assert!(r.flags.sharpe_gap.is_none());
    assert!(r.flags.deflated_sharpe.is_some_and(|p| (0.0..=1.0).contains(&p)));
}

#[test]
fn seed_stability_reruns_the_cv_per_seed() {
    let n = 800;
    let mut rng = Rng::new(5);
    let cols: Vec<Vec<f32>> = (0..3).map(|_| (0..n).map(|_| rng.normal() as f32).collect()).collect();
    let y: Vec<f64> = (0..n).map(|i| f64::from(u8::from(cols[0][i] + rng.normal() as f32 > 0.0))).collect();
    let ds = synthetic(n, 2, y, cols);
    let p = small_gbdt().bagging(0.5, 1).feature_fraction(0.7, 1.0);
    let (r, scores) =
        retrain::validation::cross_validate_seeds(&p, &ds, &Cpcv::new(4, 2), &CvOptions::default(), 3).unwrap();
    assert_eq!(scores.len(), 3);
    assert!(scores.iter().any(|&s| s != scores[0]), "bagging with different seeds should differ: {scores:?}");
    let var = r.flags.seed_variance.unwrap();
    assert!(var > 0.0 && var < 1e-2);
    assert!(retrain::validation::cross_validate_seeds(&p, &ds, &Cpcv::new(4, 2), &CvOptions::default(), 1).is_err());
}

#[test]
fn default_embargo_covers_five_days_or_the_feature_lookback() {
    let hourly: Vec<i64> = (0..500).map(|i| i * 3_600_000).collect();
    assert_eq!(retrain::validation::cross_validate::default_embargo_bars(&hourly, 5.0, 30), 120);
    assert_eq!(retrain::validation::cross_validate::default_embargo_bars(&hourly, 5.0, 200), 200);
}

#[test]
fn seeds_on_candles_give_pbo_and_deflated_sharpe() {
    let bars = read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/eurusd_ask_1h_2017.csv")).unwrap();
    let ds = Dataset::from_bars(&bars, &FeatureSpec::default(), &"direction:6".parse().unwrap()).unwrap();
    let p = GbdtParams::lightgbm().rounds(10).num_leaves(8).bagging(0.5, 1);
    let (r, scores) = retrain::validation::cross_validate_seeds(
        &p,
        &ds,
        &Cpcv::new(4, 2).embargo(Embargo::Bars(24)),
        &CvOptions { keep_predictions: false, ..CvOptions::default() },
        3,
    )
    .unwrap();
    let st = r.seeds.as_ref().unwrap();
    assert_eq!(st.scores, scores);
    assert_eq!(st.sharpes.as_ref().unwrap().len(), 3);
    assert!((0.0..=1.0).contains(&st.pbo.unwrap()));
    assert!((0.0..=1.0).contains(&st.dsr.unwrap()));
    assert!(r.oos.is_empty(), "predictions were not asked for");
    assert!(r.to_string().contains("PBO over seeds"));
}

#[test]
fn the_sharpe_gap_compares_the_selection_slices_with_the_test_paths() {
    let bars = read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/eurusd_ask_1h_2017.csv")).unwrap();
    let ds = Dataset::from_bars(&bars, &FeatureSpec::default(), &"direction:6".parse().unwrap()).unwrap();
    let cpcv = Cpcv::new(6, 2).embargo(Embargo::Bars(24));
    // Early stopping: each split scores its selection slice, and the gap has a p-value.
    let es = GbdtParams::lightgbm().rounds(20).num_leaves(8).early_stopping_rounds(3);
    let r = cross_validate(&es, &ds, &cpcv, &CvOptions::default()).unwrap();
    assert!(r.splits.iter().all(|s| s.selection.as_ref().is_some_and(|sc| sc.sharpe.is_some())));
    assert!(r.splits.iter().all(|s| s.train.is_none()), "training rows are not scored by default");
    let (gap, p) = (r.flags.sharpe_gap.unwrap(), r.flags.sharpe_gap_p.unwrap());
    assert!(gap.is_finite() && (0.0..=1.0).contains(&p), "{gap} {p}");
    // The flag needs both a large gap and a significant one.
    assert_eq!(r.flags.sharpe_gap_flag, gap > 0.5 && p < 0.01);
    let psr = r.flags.deflated_sharpe.unwrap();
    assert!((0.0..=1.0).contains(&psr) && r.flags.trials == 1);
    assert_eq!(r.flags.weak_sharpe, psr < 0.99);
    // Without early stopping nothing was selected on held-out rows: no gap, no flag.
    let plain = GbdtParams::lightgbm().rounds(20).num_leaves(8);
    let r = cross_validate(&plain, &ds, &cpcv, &CvOptions::default()).unwrap();
    assert!(r.flags.sharpe_gap.is_none() && !r.flags.sharpe_gap_flag);
    assert!(r.splits.iter().all(|s| s.selection.is_none()));
}

#[test]
fn a_seed_study_of_a_model_that_draws_nothing_stops_after_two_seeds() {
    let bars = read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/eurusd_ask_1h_2017.csv")).unwrap();
    let ds = Dataset::from_bars(&bars, &FeatureSpec::default(), &"direction:6".parse().unwrap()).unwrap();
    let p = GbdtParams::lightgbm().rounds(10).num_leaves(8);
    let opts = CvOptions { keep_predictions: false, ..CvOptions::default() };
    let (r, scores) =
        retrain::validation::cross_validate_seeds(&p, &ds, &Cpcv::new(4, 2).embargo(Embargo::Bars(24)), &opts, 10)
            .unwrap();
    assert_eq!(scores.len(), 2, "seed 1 repeated seed 0: the study stopped");
    assert_eq!(r.flags.seed_variance, Some(0.0));
    assert!(!r.flags.unstable && r.notes.iter().any(|n| n.contains("stopped")), "{:?}", r.notes);
}

/// The same hyperparameters, with the seed question left open: the study must measure.
struct Unknown(GbdtParams);

impl retrain::model::Fit for Unknown {
    type Model = <GbdtParams as retrain::model::Fit>::Model;
    fn fit(&self, train: &Dataset, valid: Option<&Dataset>) -> retrain::Result<Self::Model> {
        self.0.fit(train, valid)
    }
    fn uses_validation(&self) -> bool {
        self.0.uses_validation()
    }
    fn with_seed(&self, seed: u64) -> Self {
        Unknown(self.0.with_seed(seed))
    }
}

#[test]
fn a_model_known_to_draw_nothing_skips_the_refit_and_reports_what_measuring_finds() {
    let bars = read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/eurusd_ask_1h_2017.csv")).unwrap();
    let ds = Dataset::from_bars(&bars, &FeatureSpec::default(), &"direction:6".parse().unwrap()).unwrap();
    let cpcv = Cpcv::new(4, 2).embargo(Embargo::Bars(24));
    let p = GbdtParams::lightgbm().rounds(10).num_leaves(8);
    assert_eq!(retrain::model::Fit::draws_from_seed(&p), Some(false));
    assert_eq!(retrain::model::Fit::draws_from_seed(&p.clone().bagging(0.5, 1)), Some(true));
    assert_eq!(retrain::model::Fit::draws_from_seed(&p.clone().feature_fraction(1.0, 0.5)), Some(true));
    let opts = CvOptions::default();
    let (known, s1) = retrain::validation::cross_validate_seeds(&p, &ds, &cpcv, &opts, 10).unwrap();
    let (measured, s2) = retrain::validation::cross_validate_seeds(&Unknown(p), &ds, &cpcv, &opts, 10).unwrap();
    assert_eq!(s1, s2);
    assert_eq!(known.flags, measured.flags);
    assert_eq!(known.oos, measured.oos);
    assert_eq!(known.notes.len(), measured.notes.len());
    assert!(known.notes.iter().any(|n| n.contains("draw nothing from their seed") && n.contains("stopped")));
    assert!(measured.notes.iter().any(|n| n.contains("seeds 0 and 1 gave the same predictions")));
    assert_eq!(known.seeds.as_ref().map(|s| s.variance), measured.seeds.as_ref().map(|s| s.variance));
}

#[test]
fn chronological_split_early_stops_on_its_validation_part() {
    let n = 1000;
    let ds = synthetic(n, 2, (0..n).map(|i| (i % 2) as f64).collect(), vec![vec![0.0; n]]);
    let spy = Spy { seen: Mutex::new(Vec::new()), early_stop: true };
    let plan = retrain::validation::Chronological::default().plan(&ds.t0, &ds.t1).unwrap();
    cross_validate(&spy, &ds, &retrain::validation::Chronological::default(), &CvOptions::default()).unwrap();
    let seen = spy.seen.into_inner().unwrap();
    let (train, valid) = &seen[0];
    let hour = 3_600_000;
    assert_eq!(train.len(), plan.splits[0].train.len());
    assert_eq!(valid, &plan.splits[0].validation.iter().map(|&r| r as i64 * hour).collect::<Vec<_>>());
}
