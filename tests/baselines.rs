//! The baseline kinds (`logreg`, `tree`, `forest`, `ridge`): each learns a planted signal and
//! stays at chance on shuffled labels, is reproducible by seed whatever the thread count,
//! round-trips through its artifact, refuses what it cannot do with a typed error — and the
//! deployment gate refuses a candidate that loses to a baseline on the same CPCV paths.

use ndarray::{Array2, ShapeBuilder};
use retrain::Error;
use retrain::data::read_bars;
use retrain::features::{Dataset, FeatureSpec, LabelSpec, Task};
use retrain::lifecycle::decision::{Decision, DecisionInput, DecisionMetrics, decide};
use retrain::model::{Fit, Model, ModelKind, Recipe};
use retrain::rng::Rng;
use retrain::validation::compare::BaselineComparison;
use retrain::validation::metrics::{roc_auc, spearman};
use retrain::validation::{Cpcv, CvOptions, CvReport, Embargo, cross_validate};

const BASELINES: [ModelKind; 4] = [ModelKind::LOGREG, ModelKind::TREE, ModelKind::FOREST, ModelKind::RIDGE];

/// `n` hourly rows of 6 standard-normal features (row times from a real series, so the
/// dataset is a real one with its columns replaced) and labels from `label_of(x, noise)`.
fn table(n: usize, label: &str, seed: u64, label_of: impl Fn(&[f32], f64) -> f64) -> Dataset {
    let bars = read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/eurusd_ask_1h_2017.csv")).unwrap();
    let spec = LabelSpec::Direction { horizon: 1, threshold: 0.0, classes: 2 };
    let mut ds =
        Dataset::from_bars(&bars, &FeatureSpec::default(), &spec).unwrap().select(&(0..n).collect::<Vec<_>>()).unwrap();
    let mut rng = Rng::new(seed);
    let mut x = Array2::<f32>::zeros((n, 6).f());
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let row: Vec<f32> = (0..6).map(|_| rng.normal() as f32).collect();
        y.push(label_of(&row, rng.normal()));
        for (j, v) in row.into_iter().enumerate() {
            x[[i, j]] = v;
        }
    }
    ds.x = x;
    ds.feature_names = (0..6).map(|j| format!("f{j}")).collect();
    ds.y = y.into();
    ds.t0 = (0..n as i64).map(|i| i * 3_600_000).collect();
    ds.t1 = ds.t0.iter().map(|t| t + 3_600_000).collect();
    ds.label = Some(label.parse().unwrap());
    ds.ret = None;
    ds.risk = None;
    ds
}

/// A linear part plus a threshold: every baseline can find some of it.
fn score(x: &[f32]) -> f64 {
    x[0] as f64 - 0.7 * x[1] as f64 + if x[2] > 0.5 { 1.0 } else { 0.0 }
}

fn binary(n: usize, seed: u64) -> Dataset {
    table(n, "direction:1", seed, |x, e| f64::from(score(x) + 0.8 * e > 0.3))
}

fn three_class(n: usize, seed: u64) -> Dataset {
    table(n, "direction:1:0.001:3", seed, |x, e| {
        let s = score(x) + 0.6 * e;
        if s < -0.3 {
            0.0
        } else if s > 0.9 {
            2.0
        } else {
            1.0
        }
    })
}

fn regression(n: usize, seed: u64) -> Dataset {
    table(n, "future_return:1", seed, |x, e| 0.01 * score(x) + 0.01 * e)
}

/// The same dataset with its labels permuted (the signal destroyed, the marginals kept).
fn shuffled(mut ds: Dataset, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let y = ds.y.as_slice_mut().unwrap();
    for i in (1..y.len()).rev() {
        y.swap(i, rng.below(i + 1));
    }
    ds
}

fn split(ds: &Dataset) -> (Dataset, Dataset) {
    let cut = ds.n_rows() * 7 / 10;
    (ds.select(&(0..cut).collect::<Vec<_>>()).unwrap(), ds.select(&(cut..ds.n_rows()).collect::<Vec<_>>()).unwrap())
}

fn fit(kind: ModelKind, train: &Dataset) -> Box<dyn Model> {
    kind.recipe(Task::of(train)).fit(train, None).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

/// Out-of-sample quality: AUC of P(up) (binary), AUC of P(top class) (three classes), Spearman
/// IC (regression).
fn quality(kind: ModelKind, ds: &Dataset) -> f64 {
    let (train, test) = split(ds);
    let model = fit(kind, &train);
    let out = model.predict(test.x.view()).unwrap();
    let y = test.y.as_slice().unwrap();
    match Task::of(ds) {
        Task::Binary => roc_auc(y, out.column(0).as_slice().unwrap()).unwrap(),
        Task::Multiclass { .. } => {
            assert_eq!(out.ncols(), 3);
            for r in out.rows() {
                assert!((r.sum() - 1.0).abs() < 1e-9, "{kind}: probabilities sum to {}", r.sum());
            }
            let top: Vec<f64> = y.iter().map(|&v| f64::from(v == 2.0)).collect();
            roc_auc(&top, &out.column(2).to_vec()).unwrap()
        }
        Task::Regression => spearman(&out.column(0).to_vec(), y).unwrap(),
    }
}

#[test]
fn each_baseline_learns_a_planted_signal_and_stays_at_chance_without_one() {
    for kind in BASELINES {
        for (ds, floor) in [(binary(3000, 1), 0.75), (three_class(3000, 2), 0.75), (regression(3000, 3), 0.4)] {
            let task = Task::of(&ds);
            if !kind.kind().supports(task) {
                continue;
            }
            let q = quality(kind, &ds);
            assert!(q > floor, "{kind} {task:?}: {q:.3} on a planted signal (needs > {floor})");
            let chance = if task == Task::Regression { 0.0 } else { 0.5 };
            let q = quality(kind, &shuffled(ds, 9));
            assert!((q - chance).abs() < 0.06, "{kind} {task:?}: {q:.3} on shuffled labels (chance {chance})");
        }
    }
}

#[test]
fn every_task_a_baseline_does_not_model_is_a_typed_error() {
    let cases = [
        (ModelKind::LOGREG, regression(300, 1)),
        (ModelKind::TREE, regression(300, 1)),
        (ModelKind::RIDGE, binary(300, 1)),
    ];
    for (kind, ds) in cases {
        assert!(!kind.kind().supports(Task::of(&ds)));
        match kind.recipe(Task::of(&ds)).fit(&ds, None) {
            Err(Error::Learner { kind: k, reason }) => {
                assert!(k == kind.name() && reason.contains("does not model"), "{reason}")
            }
            other => panic!("{kind}: expected a Learner error, got {:?}", other.map(|_| ())),
        }
    }
    // A training window with a single class cannot fit a classifier.
    let mut one = binary(300, 2);
    one.y.fill(1.0);
    let err = ModelKind::LOGREG.recipe(Task::Binary).fit(&one, None).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("logreg") && err.contains("one class"), "{err}");
}

#[test]
fn a_fit_over_the_row_limit_is_refused_and_names_the_limit() {
    let ds = binary(600, 1);
    for kind in [ModelKind::LOGREG, ModelKind::TREE, ModelKind::FOREST] {
        let mut params = kind.recipe(Task::Binary).into_params();
        params["max_rows"] = serde_json::json!(500);
        let recipe = Recipe::new(kind, params).unwrap();
        match recipe.fit(&ds, None) {
            Err(e @ Error::TooLarge { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("600") && msg.contains("500") && msg.contains("max_rows"), "{msg}");
            }
            other => panic!("{kind}: expected TooLarge, got {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn hyperparameters_are_checked_by_name() {
    let mut p = ModelKind::FOREST.recipe(Task::Binary).into_params();
    p["n_tree"] = serde_json::json!(10);
    let err = Recipe::new(ModelKind::FOREST, p).unwrap_err().to_string();
    assert!(err.contains("forest") && err.contains("n_tree"), "{err}");
    let mut p = ModelKind::LOGREG.recipe(Task::Binary).into_params();
    p["alpha"] = serde_json::json!(-1.0);
    assert!(Recipe::new(ModelKind::LOGREG, p).unwrap_err().to_string().contains("alpha"));
    let mut p = ModelKind::TREE.recipe(Task::Binary).into_params();
    p["criterion"] = serde_json::json!("entropy");
    assert!(Recipe::new(ModelKind::TREE, p).is_ok());
}

fn predictions_in_pool(threads: usize, kind: ModelKind, seed: u64, ds: &Dataset) -> Array2<f64> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let (train, test) = split(ds);
        let recipe = kind.recipe(Task::of(ds)).with_seed(seed);
        recipe.fit(&train, None).unwrap().predict(test.x.view()).unwrap()
    })
}

#[test]
fn a_seed_gives_the_same_model_on_one_thread_and_on_two() {
    for kind in BASELINES {
        let ds = if kind == ModelKind::RIDGE { regression(1500, 4) } else { binary(1500, 4) };
        let one = predictions_in_pool(1, kind, 7, &ds);
        let two = predictions_in_pool(2, kind, 7, &ds);
        assert_eq!(one, two, "{kind}: 1 vs 2 threads");
    }
    // The forest's seed draws its bootstraps: another seed, another forest.
    let ds = binary(1500, 4);
    assert_ne!(predictions_in_pool(2, ModelKind::FOREST, 7, &ds), predictions_in_pool(2, ModelKind::FOREST, 8, &ds));
}

#[test]
fn a_stored_baseline_predicts_exactly_as_it_did_and_a_corrupt_one_is_refused() {
    for kind in BASELINES {
        for ds in [binary(800, 5), three_class(800, 6), regression(800, 7)] {
            if !kind.kind().supports(Task::of(&ds)) {
                continue;
            }
            let model = fit(kind, &ds);
            let files = model.artifacts().unwrap();
            let read = |name: &str| -> retrain::Result<Vec<u8>> {
                Ok(files.iter().find(|(n, _)| n == name).expect("artifact").1.clone())
            };
            let back = kind.kind().load(&read, "m/v1").unwrap();
            assert_eq!(back.task(), model.task());
            assert_eq!(back.predict(ds.x.view()).unwrap(), model.predict(ds.x.view()).unwrap(), "{kind}");
            assert_eq!(back.signals(ds.x.view()).unwrap(), model.signals(ds.x.view()).unwrap());
            // The wrong width is a shape error, not a panic.
            let narrow = ds.x.slice(ndarray::s![.., ..5]);
            assert!(matches!(back.predict(narrow), Err(Error::Shape { .. })), "{kind}");
        }
    }
    let model = fit(ModelKind::LOGREG, &binary(300, 1));
    let mut bytes = model.artifacts().unwrap().remove(0).1;
    bytes.truncate(bytes.len() / 2);
    let err = ModelKind::LOGREG.kind().load(&|_| Ok(bytes.clone()), "m/v2").map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::CorruptModel { .. }) && err.to_string().contains("m/v2"), "{err}");
    // A forest's file is not a logreg.
    let forest = fit(ModelKind::FOREST, &binary(300, 1)).artifacts().unwrap().remove(0).1;
    let err = ModelKind::LOGREG.kind().load(&|_| Ok(forest.clone()), "m/v3").map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::CorruptModel { .. }), "{err}");
}

#[test]
fn a_forest_polls_between_trees_and_stops_when_told() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ds = binary(400, 1);
    let mut p = ModelKind::FOREST.recipe(Task::Binary).into_params();
    p["n_trees"] = serde_json::json!(12);
    let recipe = Recipe::new(ModelKind::FOREST, p).unwrap();
    let polls = AtomicUsize::new(0);
    recipe.fit_observed(&ds, None, &|| polls.fetch_add(1, Ordering::SeqCst) < 5).unwrap();
    assert_eq!(polls.load(Ordering::SeqCst), 12, "one poll per tree");
}

fn cv(kind: ModelKind, recipe: Option<Recipe>, ds: &Dataset) -> CvReport {
    let recipe = recipe.unwrap_or_else(|| kind.recipe(Task::of(ds)));
    let cpcv = Cpcv::new(6, 2).embargo(Embargo::Bars(2));
    cross_validate(&recipe, ds, &cpcv, &CvOptions::default()).unwrap()
}

fn gate(candidate: &CvReport, baseline: &CvReport) -> retrain::lifecycle::decision::DecisionReport {
    let per_path = |r: &CvReport| r.per_path("ic_spearman");
    let check =
        BaselineComparison::of("logreg", "ic_spearman", &per_path(candidate), &per_path(baseline), 0.0, None).unwrap();
    let input = DecisionInput {
        // Metrics that pass every other gate, so that the baseline is what decides.
        candidate: Some(DecisionMetrics { win_rate: 0.6, avg_r: 0.2, calibration: 0.9 }),
        incumbent: None,
        flags: None,
        ic_difference: None,
        baselines: vec![check],
    };
    let policy = retrain::config::Policy { gate_overfitting: false, ..Default::default() };
    decide(input, &policy)
}

#[test]
fn the_gate_refuses_a_candidate_that_loses_to_logreg_and_passes_one_that_wins() {
    // A linear signal: logistic regression is the right model; a two-leaf, three-round GBDT
    // captures a sliver of it.
    let linear = table(2400, "direction:1", 11, |x, e| f64::from(x[0] as f64 - 0.8 * x[1] as f64 + 0.5 * e > 0.0));
    let weak = Recipe::new(
        ModelKind::LIGHTGBM,
        serde_json::to_value(retrain::gbdt::GbdtParams::lightgbm().rounds(3).num_leaves(2)).unwrap(),
    )
    .unwrap();
    let base = cv(ModelKind::LOGREG, None, &linear);
    let loser = gate(&cv(ModelKind::LIGHTGBM, Some(weak), &linear), &base);
    assert_eq!(loser.decision, Decision::KeepOld, "{loser}");
    assert!(loser.concerns.iter().any(|c| c.contains("does not beat baseline logreg")), "{loser}");
    // An interaction (XOR of two signs): invisible to a linear model, plain for boosted trees.
    let xor = table(2400, "direction:1", 12, |x, e| f64::from((x[0] * x[1]) as f64 + 0.3 * e > 0.0));
    let winner = gate(&cv(ModelKind::LIGHTGBM, None, &xor), &cv(ModelKind::LOGREG, None, &xor));
    assert_eq!(winner.decision, Decision::Deploy, "{winner}");
    assert!(winner.input.baselines[0].beaten && winner.input.baselines[0].per_path.len() == 5);
}
