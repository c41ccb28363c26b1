//! The native GBDT end to end: learns known functions, handles NaN, stops early at the best
//! round, is bit-identical across thread counts, round-trips through both file formats, warm
//! starts, explains itself additively and rejects bad input with typed errors.

use ndarray::{Array2, ShapeBuilder};
use retrain::Error;
use retrain::gbdt::{FitOptions, Gbdt, GbdtParams, Growth, ObjectiveKind, RoundEval, TrainData};
use retrain::rng::Rng;

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

/// `n × f` standard-normal features (column-major, like `Dataset`).
fn features(n: usize, f: usize, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    let mut x = Array2::<f32>::zeros((n, f).f());
    for c in 0..f {
        for r in 0..n {
            x[[r, c]] = rng.normal() as f32;
        }
    }
    x
}

fn accuracy(model: &Gbdt, x: &Array2<f32>, y: &[f64]) -> f64 {
    let p = model.predict(x.view()).unwrap();
    (0..y.len()).filter(|&r| (p[[r, 0]] > 0.5) == (y[r] == 1.0)).count() as f64 / y.len() as f64
}

fn rmse(model: &Gbdt, x: &Array2<f32>, y: &[f64]) -> f64 {
    let p = model.predict(x.view()).unwrap();
    ((0..y.len()).map(|r| (p[[r, 0]] - y[r]).powi(2)).sum::<f64>() / y.len() as f64).sqrt()
}

#[test]
fn learns_xor_with_both_growth_policies() {
    let x = features(4000, 4, 1);
    let y: Vec<f64> = (0..4000).map(|r| ((x[[r, 0]] > 0.0) != (x[[r, 1]] > 0.0)) as u8 as f64).collect();
    let (xt, yt) = {
        let x = features(2000, 4, 2);
        let y: Vec<f64> = (0..2000).map(|r| ((x[[r, 0]] > 0.0) != (x[[r, 1]] > 0.0)) as u8 as f64).collect();
        (x, y)
    };
    for params in [GbdtParams::lightgbm(), GbdtParams::xgboost()] {
        let m = params.rounds(50).fit_data(&TrainData::new(x.view(), &y).unwrap(), None).unwrap();
        let acc = accuracy(&m, &xt, &yt);
        assert!(acc > 0.97, "{:?}: XOR test accuracy {acc}", m.params.growth);
    }
}

#[test]
fn learns_a_sum_of_thresholds_and_a_smooth_surface() {
    let x = features(5000, 5, 3);
    let step = |r: usize, x: &Array2<f32>| {
        (x[[r, 0]] > 0.5) as u8 as f64 * 2.0 + (x[[r, 1]] < -0.3) as u8 as f64 - (x[[r, 2]] > 1.0) as u8 as f64 * 3.0
    };
    let y: Vec<f64> = (0..5000).map(|r| step(r, &x)).collect();
    let m = GbdtParams::lightgbm()
        .objective(ObjectiveKind::Regression)
        .rounds(100)
        .fit_data(&TrainData::new(x.view(), &y).unwrap(), None)
        .unwrap();
    let xt = features(1000, 5, 4);
    let yt: Vec<f64> = (0..1000).map(|r| step(r, &xt)).collect();
    // Labels have sd ≈ 1.4; what is left is rows near a threshold that share its bin.
    assert!(rmse(&m, &xt, &yt) < 0.12, "threshold sum rmse {}", rmse(&m, &xt, &yt));

    let smooth = |r: usize, x: &Array2<f32>| (x[[r, 0]] as f64).sin() * 2.0 + (x[[r, 1]] as f64).powi(2) * 0.5;
    let y: Vec<f64> = (0..5000).map(|r| smooth(r, &x)).collect();
    let yt: Vec<f64> = (0..1000).map(|r| smooth(r, &xt)).collect();
    let m = GbdtParams::xgboost()
        .objective(ObjectiveKind::Regression)
        .rounds(200)
        .fit_data(&TrainData::new(x.view(), &y).unwrap(), None)
        .unwrap();
    let sd = (yt.iter().map(|v| v * v).sum::<f64>() / 1000.0).sqrt();
    assert!(rmse(&m, &xt, &yt) < 0.1 * sd, "smooth rmse {} vs sd {sd}", rmse(&m, &xt, &yt));
}

#[test]
fn nan_rows_are_routed_by_the_learned_default() {
    // Missing x0 behaves like a large x0: the tree must send NaN right at the x0 split.
    let mut x = features(3000, 2, 5);
    let mut y = vec![0.0; 3000];
    for r in 0..3000 {
        if r % 4 == 0 {
            x[[r, 0]] = f32::NAN;
            y[r] = 1.0;
        } else {
            y[r] = (x[[r, 0]] > 0.8) as u8 as f64;
        }
    }
    let m = GbdtParams::lightgbm().rounds(30).fit_data(&TrainData::new(x.view(), &y).unwrap(), None).unwrap();
    let root = &m.trees[0].nodes[0];
    assert_eq!(root.feature, 0);
    assert!(!root.default_left, "NaN should go with the high side");
    let probe = Array2::from_shape_vec((3, 2), vec![f32::NAN, 0.0, -1.0, 0.0, 2.0, 0.0]).unwrap();
    let p = m.predict(probe.view()).unwrap();
    assert!(p[[0, 0]] > 0.9 && p[[1, 0]] < 0.1 && p[[2, 0]] > 0.9, "{p:?}");
}

#[test]
fn training_loss_decreases_every_round() {
    let x = features(3000, 6, 6);
    let y: Vec<f64> = (0..3000).map(|r| ((x[[r, 0]] * x[[r, 1]] + x[[r, 2]]) > 0.2) as u8 as f64).collect();
    let mut losses = Vec::new();
    let mut cb = |e: &RoundEval| {
        losses.push(e.train_loss.unwrap());
        true
    };
    GbdtParams::lightgbm()
        .rounds(40)
        .fit_with(
            &TrainData::new(x.view(), &y).unwrap(),
            None,
            FitOptions { eval_train: true, on_round: Some(&mut cb), ..FitOptions::default() },
        )
        .unwrap();
    assert_eq!(losses.len(), 40);
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
}

#[test]
fn early_stopping_keeps_the_best_round() {
    // Pure noise labels: validation loss bottoms out quickly, then rises.
    let x = features(2000, 5, 7);
    let mut rng = Rng::new(8);
    let y: Vec<f64> = (0..2000).map(|r| ((x[[r, 0]] as f64 * 0.3 + rng.normal()) > 0.0) as u8 as f64).collect();
    let xv = features(1000, 5, 9);
    let yv: Vec<f64> = (0..1000).map(|r| ((xv[[r, 0]] as f64 * 0.3 + rng.normal()) > 0.0) as u8 as f64).collect();
    let train = TrainData::new(x.view(), &y).unwrap();
    let valid = TrainData::new(xv.view(), &yv).unwrap();
    let m = GbdtParams::lightgbm().rounds(300).early_stopping_rounds(10).fit_data(&train, Some(&valid)).unwrap();
    let best = m.best_round.unwrap();
    let losses: Vec<f64> = m.history.iter().map(|h| h.valid_loss.unwrap()).collect();
    let argmin = losses.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
    assert_eq!(best, argmin);
    assert_eq!(m.history.len(), best + 11, "stops 10 rounds after the best");
    assert_eq!(m.n_rounds(), best + 1, "trees beyond the best round are dropped");
    assert!(best < 290);
    // The kept model's validation loss is the best one.
    let p = m.predict(xv.view()).unwrap();
    let ll =
        -(0..1000).map(|r| if yv[r] == 1.0 { p[[r, 0]].ln() } else { (1.0 - p[[r, 0]]).ln() }).sum::<f64>() / 1000.0;
    assert!((ll - losses[best]).abs() < 1e-9, "{ll} vs {}", losses[best]);
}

#[test]
fn same_seed_same_model_for_1_2_and_4_threads() {
    // 70k rows: roots and large nodes take the column-wise histogram path, small ones the
    // row-wise one; depth-wise levels run all their nodes in one parallel pass.
    let x = features(70_000, 8, 10);
    let y: Vec<f64> = (0..70_000).map(|r| ((x[[r, 0]] * x[[r, 3]] - x[[r, 5]]).sin() > 0.0) as u8 as f64).collect();
    let data = TrainData::new(x.view(), &y).unwrap();
    let leafwise = GbdtParams::lightgbm().rounds(15).num_leaves(31).bagging(0.7, 1).feature_fraction(0.8, 0.8);
    let depthwise = GbdtParams::xgboost().rounds(8).max_depth(6).feature_fraction(1.0, 0.8);
    for base in [leafwise, depthwise] {
        let mut models = Vec::new();
        for threads in [1, 2, 4] {
            let m = base.clone().seed(42).threads(threads).fit_data(&data, None).unwrap();
            models.push(Gbdt { params: GbdtParams { threads: None, ..m.params.clone() }, ..m }.to_json());
        }
        assert_eq!(models[0], models[1]);
        assert_eq!(models[0], models[2]);
        // A different seed gives a different model (sampling is live).
        let m = base.clone().seed(43).fit_data(&data, None).unwrap();
        assert_ne!(
            Gbdt { params: GbdtParams { seed: 42, threads: None, ..m.params.clone() }, ..m }.to_json(),
            models[0]
        );
    }
}

#[test]
fn striped_histograms_give_the_same_model_for_1_and_3_threads() {
    // A bag of 24 % of 280k rows: a root of over 65,536 rows holding under a quarter of the
    // matrix, built row-wise by fixed row stripes.
    let x = features(280_000, 4, 12);
    let y: Vec<f64> = (0..280_000).map(|r| (x[[r, 1]] - x[[r, 2]] > 0.1) as u8 as f64).collect();
    let data = TrainData::new(x.view(), &y).unwrap();
    let models: Vec<String> = [1, 3]
        .into_iter()
        .map(|threads| {
            let p = GbdtParams::lightgbm().rounds(2).num_leaves(8).bagging(0.24, 1).seed(5).threads(threads);
            let m = p.fit_data(&data, None).unwrap();
            Gbdt { params: GbdtParams { threads: None, ..m.params.clone() }, ..m }.to_json()
        })
        .collect();
    assert_eq!(models[0], models[1]);
}

#[test]
fn save_load_round_trip_gives_identical_predictions() {
    let x = features(2000, 4, 11);
    let y: Vec<f64> = (0..2000).map(|r| (r % 3) as f64).collect::<Vec<_>>();
    let y: Vec<f64> = (0..2000)
        .map(|r| {
            if x[[r, 0]] > 0.5 {
                2.0
            } else if x[[r, 1]] > 0.0 {
                1.0
            } else {
                y[r] * 0.0
            }
        })
        .collect();
    let m = GbdtParams::xgboost()
        .objective(ObjectiveKind::Multiclass { num_class: 3 })
        .rounds(10)
        .fit_data(&TrainData::new(x.view(), &y).unwrap(), None)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let want = m.predict_raw(x.view()).unwrap();
    for name in ["m.json", "m.bin"] {
        let path = dir.path().join(name);
        m.save(&path).unwrap();
        let back = Gbdt::load(&path).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.predict_raw(x.view()).unwrap(), want);
    }
    assert!(
        std::fs::metadata(dir.path().join("m.bin")).unwrap().len()
            < std::fs::metadata(dir.path().join("m.json")).unwrap().len()
    );
    // Corruption is detected, not mis-loaded.
    let mut bytes = std::fs::read(dir.path().join("m.bin")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    assert!(matches!(Gbdt::from_bytes(&bytes, "x"), Err(Error::CorruptModel { .. })));
    assert!(matches!(Gbdt::from_bytes(&bytes[..bytes.len() - 7], "x"), Err(Error::CorruptModel { .. })));
    std::fs::write(dir.path().join("bad.json"), "{\"params\": 3}").unwrap();
    assert!(matches!(Gbdt::load(dir.path().join("bad.json")), Err(Error::CorruptModel { .. })));
}

#[test]
fn tree_shap_contributions_sum_to_the_raw_score() {
    let mut x = features(1500, 5, 12);
    for r in (0..1500).step_by(7) {
        x[[r, 2]] = f32::NAN;
    }
    let y: Vec<f64> = (0..1500).map(|r| ((x[[r, 0]] + x[[r, 1]] * x[[r, 0]]) > 0.0) as u8 as f64).collect();
    let m = GbdtParams::lightgbm().rounds(25).fit_data(&TrainData::new(x.view(), &y).unwrap(), None).unwrap();
    let raw = m.predict_raw(x.view()).unwrap();
    let phi = m.predict_contributions(x.view()).unwrap();
    assert_eq!(phi.ncols(), 6);
    for r in 0..1500 {
        let s: f64 = phi.row(r).sum();
        assert!((s - raw[[r, 0]]).abs() < 1e-9, "row {r}: {s} vs {}", raw[[r, 0]]);
    }
    // Features that never split contribute nothing; the signal features dominate.
    let mean_abs = |c: usize| (0..1500).map(|r| phi[[r, c]].abs()).sum::<f64>() / 1500.0;
    assert!(mean_abs(0) > mean_abs(3) && mean_abs(1) > mean_abs(4));
}

#[test]
fn warm_start_continues_from_the_existing_trees() {
    let x = features(3000, 4, 13);
    let y: Vec<f64> = (0..3000).map(|r| (x[[r, 0]] as f64).sin() + 0.3 * x[[r, 1]] as f64).collect();
    let data = TrainData::new(x.view(), &y).unwrap();
    let p = GbdtParams::lightgbm().objective(ObjectiveKind::Regression).rounds(20);
    let first = p.fit_data(&data, None).unwrap();
    let more = p.fit_continue(&first, &data, None).unwrap();
    assert_eq!(more.n_rounds(), 40);
    assert_eq!(&more.trees[..20], &first.trees[..]);
    assert!(rmse(&more, &x, &y) < rmse(&first, &x, &y));
    // Objective mismatch is refused.
    let bin = GbdtParams::lightgbm().rounds(1);
    let yb: Vec<f64> = y.iter().map(|v| (*v > 0.0) as u8 as f64).collect();
    let e = bin.fit_continue(&first, &TrainData::new(x.view(), &yb).unwrap(), None).unwrap_err();
    assert!(matches!(e, Error::InvalidParam { ref field, .. } if field == "init_model"), "{e}");
}

#[test]
fn other_objectives_and_weights() {
    let x = features(4000, 3, 14);
    let mut rng = Rng::new(15);
    let y: Vec<f64> = (0..4000).map(|r| x[[r, 0]] as f64 * 2.0 + rng.normal()).collect();
    let data = TrainData::new(x.view(), &y).unwrap();
    // Quantile 0.9: about 90% of labels fall below the prediction.
    let q = GbdtParams::lightgbm()
        .objective(ObjectiveKind::Quantile { alpha: 0.9 })
        .rounds(100)
        .fit_data(&data, None)
        .unwrap();
    let p = q.predict(x.view()).unwrap();
    let below = (0..4000).filter(|&r| y[r] <= p[[r, 0]]).count() as f64 / 4000.0;
    assert!((below - 0.9).abs() < 0.03, "coverage {below}");
    // Huber fits the mean trend.
    let h = GbdtParams::lightgbm()
        .objective(ObjectiveKind::Huber { delta: 1.0 })
        .rounds(100)
        .fit_data(&data, None)
        .unwrap();
    let truth: Vec<f64> = (0..4000).map(|r| x[[r, 0]] as f64 * 2.0).collect();
    assert!(rmse(&h, &x, &truth) < 0.35, "huber {}", rmse(&h, &x, &truth));
    // Zero weight on half the rows = training on the other half.
    let w: Vec<f64> = (0..4000).map(|r| (r % 2) as f64).collect();
    let half_x = x.select(ndarray::Axis(0), &(0..4000).filter(|r| r % 2 == 1).collect::<Vec<_>>());
    let half_y: Vec<f64> = (0..4000).filter(|r| r % 2 == 1).map(|r| y[r]).collect();
    let p =
        GbdtParams::lightgbm().objective(ObjectiveKind::Regression).rounds(5).min_data_in_leaf(1).min_sum_hessian(1.0);
    let mw = p.fit_data(&data.with_weights(&w).unwrap(), None).unwrap();
    let mh = p.fit_data(&TrainData::new(half_x.view(), &half_y).unwrap(), None).unwrap();
    assert!((mw.init_score[0] - mh.init_score[0]).abs() < 1e-12);
    assert_eq!(mw.trees[0].leaf_counts.len(), mh.trees[0].leaf_counts.len());
}

#[test]
fn depth_wise_trees_respect_the_depth_and_leaf_wise_the_leaf_count() {
    let x = features(5000, 6, 16);
    let y: Vec<f64> = (0..5000).map(|r| (x[[r, 0]] * x[[r, 1]] + x[[r, 2]]).tanh() as f64).collect();
    let data = TrainData::new(x.view(), &y).unwrap();
    let d = GbdtParams::xgboost()
        .objective(ObjectiveKind::Regression)
        .max_depth(4)
        .rounds(5)
        .fit_data(&data, None)
        .unwrap();
    assert!(d.trees.iter().all(|t| t.depth() <= 4 && t.n_leaves() <= 16));
    assert!(d.trees.iter().any(|t| t.n_leaves() == 16));
    let l = GbdtParams::lightgbm()
        .objective(ObjectiveKind::Regression)
        .num_leaves(10)
        .rounds(5)
        .fit_data(&data, None)
        .unwrap();
    assert!(l.trees.iter().all(|t| t.n_leaves() == 10));
    let ld = GbdtParams::lightgbm()
        .objective(ObjectiveKind::Regression)
        .growth(Growth::LeafWise { num_leaves: 63, max_depth: Some(3) })
        .rounds(3)
        .fit_data(&data, None)
        .unwrap();
    assert!(ld.trees.iter().all(|t| t.depth() <= 3));
}

#[test]
fn bad_input_gets_typed_errors() {
    let x = features(100, 3, 17);
    let y = vec![0.0; 99];
    assert!(matches!(TrainData::new(x.view(), &y), Err(Error::Shape { .. })));
    let y: Vec<f64> = (0..100).map(|r| (r % 2) as f64).collect();
    let data = TrainData::new(x.view(), &y).unwrap();
    assert!(matches!(data.with_weights(&[1.0; 3]), Err(Error::Shape { .. })));
    let mut w = vec![1.0; 100];
    w[5] = -1.0;
    assert!(matches!(data.with_weights(&w), Err(Error::InvalidParam { .. })));
    let e = GbdtParams::lightgbm().learning_rate(-0.1).fit_data(&data, None).unwrap_err();
    assert!(matches!(e, Error::InvalidParam { ref field, .. } if field == "learning_rate"));
    let y3: Vec<f64> = (0..100).map(|r| (r % 3) as f64).collect();
    let e = GbdtParams::lightgbm().fit_data(&TrainData::new(x.view(), &y3).unwrap(), None).unwrap_err();
    assert!(e.to_string().contains("row 2"), "{e}");
    let e = GbdtParams::lightgbm().early_stopping_rounds(5).fit_data(&data, None).unwrap_err();
    assert!(matches!(e, Error::InvalidParam { ref field, .. } if field == "early_stopping_rounds"));
    let xv = features(10, 2, 18);
    let yv = vec![0.0; 10];
    let e = GbdtParams::lightgbm().fit_data(&data, Some(&TrainData::new(xv.view(), &yv).unwrap())).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }));
    let m = GbdtParams::lightgbm().rounds(2).fit_data(&data, None).unwrap();
    assert!(matches!(m.predict(xv.view()), Err(Error::Shape { .. })));
    let empty = Array2::<f32>::zeros((0, 3));
    assert!(matches!(
        GbdtParams::lightgbm().fit_data(&TrainData::new(empty.view(), &[]).unwrap(), None),
        Err(Error::Empty { .. })
    ));
}

#[test]
fn single_row_prediction_matches_batch() {
    let x = features(500, 4, 19);
    let y: Vec<f64> = (0..500).map(|r| (x[[r, 0]] > 0.0) as u8 as f64).collect();
    let m = GbdtParams::lightgbm().rounds(10).fit_data(&TrainData::new(x.view(), &y).unwrap(), None).unwrap();
    let batch = m.predict(x.view()).unwrap();
    let mut out = [0.0];
    for r in 0..500 {
        let row: Vec<f32> = x.row(r).to_vec();
        m.predict_row(&row, &mut out);
        assert_eq!(out[0], batch[[r, 0]]);
    }
    let imp = m.feature_importance();
    assert!(imp[0].0 > 0 && imp[0].1 > imp[1].1);
}

#[test]
fn compiled_single_row_equals_the_model_bit_for_bit() {
    let (x, y) = synthetic::gbdt_benchmark(3_000, 20, 9).unwrap();
    let mut x = x;
    for r in (0..3_000).step_by(7) {
        x[[r, r % 20]] = f32::NAN; // exercise the learned NaN directions
    }
    for params in [GbdtParams::lightgbm().num_leaves(63).rounds(37), GbdtParams::xgboost().rounds(20)] {
        let model = params.fit_data(&TrainData::new(x.view(), &y).unwrap(), None).unwrap();
        let fast = model.compile();
        let (mut a, mut b) = ([0.0], [0.0]);
        for r in 0..500 {
            let row = x.row(r).to_vec();
            model.predict_row(&row, &mut a);
            fast.predict_row(&row, &mut b);
            assert_eq!(a[0].to_bits(), b[0].to_bits(), "row {r}");
        }
    }
    // Multiclass: outputs interleave by tree index.
    let y3: Vec<f64> = y.iter().enumerate().map(|(i, &v)| if i % 5 == 0 { 2.0 } else { v }).collect();
    let model = GbdtParams::lightgbm()
        .objective(retrain::gbdt::ObjectiveKind::Multiclass { num_class: 3 })
        .rounds(10)
        .fit_data(&TrainData::new(x.view(), &y3).unwrap(), None)
        .unwrap();
    let fast = model.compile();
    let (mut a, mut b) = ([0.0; 3], [0.0; 3]);
    for r in 0..200 {
        let row = x.row(r).to_vec();
        model.predict_row(&row, &mut a);
        fast.predict_row(&row, &mut b);
        assert_eq!(a, b, "row {r}");
    }
}
