//! The networks as trading models: fit on a Dataset's window columns, calibrated outputs
//! that validation scores like the GBDT's, windows never spanning gaps, artifacts that
//! round-trip through the version store.

use ndarray::Array2;
use retrain::data::{BarColumns, Bars};
use retrain::features::{Dataset, Feature, FeatureSpec, LabelSpec, Task};
use retrain::model::{Fit, Model, ModelKind};
use retrain::nn::{NetConfig, NhitsConfig, NnParams, PatchTstConfig, TrainedNet};
use retrain::rng::Rng;
use retrain::validation::report::score;
use retrain::validation::{Chronological, Cpcv, CvOptions, Embargo, Splitter, cross_validate};

/// `n` hourly candles from `step`, which gives each bar's log return and volume.
fn hourly_bars(symbol: &str, n: usize, seed: u64, mut step: impl FnMut(&mut Rng) -> (f64, f64)) -> Bars {
    let mut rng = Rng::new(seed);
    let mut c = BarColumns::default();
    let mut price = 100.0f64;
    for i in 0..n {
        let (r, volume) = step(&mut rng);
        let open = price;
        price *= r.exp();
        c.ts.push(1_600_000_000_000 + i as i64 * 3_600_000);
        c.open.push(open);
        c.high.push(open.max(price) * 1.001);
        c.low.push(open.min(price) * 0.999);
        c.close.push(price);
        c.volume.push(volume);
    }
    Bars::new(symbol, c).unwrap()
}

/// Hourly candles whose one-bar log returns follow an AR(1) with coefficient `phi`, so the
/// next bars' direction is predictable from the window.
fn ar1_bars(n: usize, phi: f64, seed: u64) -> Bars {
    let mut r = 0.0f64;
    hourly_bars("AR", n, seed, |rng| {
        r = phi * r + 0.004 * rng.normal();
        (r, 1000.0 + rng.next_f64() * 100.0)
    })
}

fn small(kind: ModelKind) -> NnParams {
    let mut p: NnParams = serde_json::from_value(kind.recipe(Task::Binary).into_params()).unwrap();
    p.lookback = 32;
    p.net = match p.net {
        NetConfig::Nhits(c) => NetConfig::Nhits(NhitsConfig { hidden: 32, mlp_layers: 2, ..c }),
        NetConfig::Patchtst(c) => {
            NetConfig::Patchtst(PatchTstConfig { d_model: 16, n_heads: 4, d_ff: 32, n_layers: 1, dropout: 0.1, ..c })
        }
    };
    p.train.epochs = 6;
    p.train.patience = 3;
    p.train.batch_size = 64;
    p
}

fn dataset(p: &NnParams, bars: &Bars, label: &LabelSpec) -> Dataset {
    let spec = p.with_window(&FeatureSpec { features: vec![Feature::Rsi { period: 14 }] });
    Dataset::from_bars(std::slice::from_ref(bars), &spec, label).unwrap()
}

#[test]
fn both_kinds_learn_a_predictable_direction_and_score_like_any_model() {
    let bars = ar1_bars(3000, 0.6, 1);
    let label = LabelSpec::Direction { horizon: 3, threshold: 0.0, classes: 2 };
    for kind in [ModelKind::NHITS, ModelKind::PATCHTST] {
        let p = small(kind);
        let ds = dataset(&p, &bars, &label);
        let plan = Chronological::default().plan(&ds.t0, &ds.t1).unwrap();
        let s = &plan.splits[0];
        let (train, valid, test) =
            (ds.select(&s.train).unwrap(), ds.select(&s.validation).unwrap(), ds.select(&s.test).unwrap());
        let net = p.fit(&train, Some(&valid)).unwrap();
        assert!(net.meta().calibrated_on_validation);
        assert_eq!(net.meta().task, Task::Binary);
        assert_eq!(net.n_outputs(), 1);
        let out = net.predict(test.x.view()).unwrap();
        assert!(out.iter().all(|p| (0.0..=1.0).contains(p)));
        let y = test.y.to_vec();
        let scores = score(Task::Binary, &y, out.view(), test.ret.as_deref(), test.risk.as_deref(), None);
        let auc = scores.auc.unwrap();
        // AR(1) with phi 0.6: the best possible forecast of the 3-bar return has correlation
        // 0.54 with it, i.e. AUC 0.5 + asin(0.54)/π ≈ 0.68; chance is 0.5.
        assert!(auc > 0.62, "{kind:?}: test AUC {auc}");
        // Signals agree with the outputs and the score's sign.
        let sig = net.signals(test.x.view()).unwrap();
        for (s, p) in sig.iter().zip(out.column(0)) {
            assert_eq!(s.direction, if *p > 0.5 { 1 } else { -1 });
            assert!(s.probability.unwrap() >= 0.5 && s.expected_return.is_some());
        }
    }
}

#[test]
fn regression_and_three_class_labels_get_their_outputs() {
    let bars = ar1_bars(1500, 0.6, 2);
    let mut p = small(ModelKind::NHITS);
    p.train.epochs = 2;
    for (label, k) in [
        (LabelSpec::FutureReturn { horizon: 4 }, 1),
        (LabelSpec::Direction { horizon: 4, threshold: 0.002, classes: 3 }, 3),
    ] {
        let ds = dataset(&p, &bars, &label);
        let n = ds.n_rows();
        let (train, valid) = (
            ds.select(&(0..n * 4 / 5).collect::<Vec<_>>()).unwrap(),
            ds.select(&(n * 4 / 5..n).collect::<Vec<_>>()).unwrap(),
        );
        let net = p.fit(&train, Some(&valid)).unwrap();
        let out = net.predict(valid.x.view()).unwrap();
        assert_eq!(out.ncols(), k, "{label:?}");
        if k == 3 {
            for row in out.rows() {
                assert!((row.sum() - 1.0).abs() < 1e-9);
            }
        } else {
            // The regression output is the calibrated return forecast: same sign as the score.
            let corr = retrain::validation::metrics::pearson(&out.column(0).to_vec(), &valid.y.to_vec()).unwrap();
            assert!(corr > 0.2, "return forecast correlation {corr}");
        }
    }
}

#[test]
fn windows_never_span_a_gap_and_targets_stay_in_the_training_rows() {
    let bars = ar1_bars(600, 0.3, 3);
    let label = LabelSpec::FutureReturn { horizon: 5 };
    let mut p = small(ModelKind::NHITS);
    p.train.epochs = 1;
    let ds = dataset(&p, &bars, &label);
    let n = ds.n_rows();
    // Two blocks with 40 rows removed between them (as a purged test block would be).
    let (a, b) = (250, n - 290);
    let rows: Vec<usize> = (0..a).chain(a + 40..n).collect();
    let train = ds.select(&rows).unwrap();
    let net = p.fit(&train, None).unwrap();
    assert_eq!(net.meta().train_windows, (a - 5) + (b - 5));
    assert!(!net.meta().calibrated_on_validation);
    // The whole set pairs every row but the last 5.
    assert_eq!(p.fit(&ds, None).unwrap().meta().train_windows, n - 5);
}

#[test]
fn artifacts_round_trip_through_the_store_with_identical_outputs() {
    let bars = ar1_bars(800, 0.5, 4);
    let label = LabelSpec::Direction { horizon: 3, threshold: 0.0, classes: 2 };
    let mut p = small(ModelKind::PATCHTST);
    p.train.epochs = 2;
    let ds = dataset(&p, &bars, &label);
    let n = ds.n_rows();
    let train = ds.select(&(0..n - 100).collect::<Vec<_>>()).unwrap();
    let valid = ds.select(&(n - 100..n).collect::<Vec<_>>()).unwrap();
    let net = p.fit(&train, Some(&valid)).unwrap();
    let before = net.predict(ds.x.view()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = retrain::store::VersionStore::open(dir.path()).unwrap();
    let arts: Vec<retrain::store::Artifact> =
        net.to_artifacts().unwrap().into_iter().map(|(n, b)| retrain::store::Artifact::bytes(n, b)).collect();
    let meta = retrain::store::VersionMeta::new("patchtst");
    let tag = store.register("ar-patchtst", meta, &arts, &retrain::store::Change::new("test", "nn artifacts")).unwrap();
    let m = store.load_artifact("ar-patchtst", &tag, retrain::nn::forecaster::META_ARTIFACT).unwrap();
    let w = store.load_artifact("ar-patchtst", &tag, retrain::nn::forecaster::WEIGHTS_ARTIFACT).unwrap();
    let back = TrainedNet::from_artifacts(&m, &w, &candle_core::Device::Cpu).unwrap();
    assert_eq!(back.predict(ds.x.view()).unwrap(), before);

    // Same seed, same model; another seed, another one.
    assert_eq!(p.fit(&train, Some(&valid)).unwrap().predict(ds.x.view()).unwrap(), before);
    assert_ne!(p.with_seed(7).fit(&train, Some(&valid)).unwrap().predict(ds.x.view()).unwrap(), before);

    // Corrupt weights are a typed error naming the artifact.
    let err = TrainedNet::from_artifacts(&m, &w[..w.len() / 2], &candle_core::Device::Cpu).err().unwrap();
    assert!(err.to_string().contains("weights.safetensors"), "{err}");
}

#[test]
fn missing_windows_and_bad_settings_are_named() {
    let bars = ar1_bars(300, 0.3, 5);
    let label = LabelSpec::FutureReturn { horizon: 3 };
    let p = small(ModelKind::NHITS);
    let plain = Dataset::from_bars(
        std::slice::from_ref(&bars),
        &FeatureSpec { features: vec![Feature::Rsi { period: 14 }] },
        &label,
    )
    .unwrap();
    let err = p.fit(&plain, None).err().unwrap().to_string();
    assert!(err.contains("logret_1_lag31") && err.contains("window"), "{err}");
    let ds = dataset(&p, &bars, &label);
    let short = NnParams { lookback: 3, ..p.clone() };
    let ds_short = dataset(&short, &bars, &label);
    assert!(short.fit(&ds_short, None).err().unwrap().to_string().contains("lookback"));
    let net = NnParams { train: retrain::nn::TrainConfig { epochs: 1, ..p.train.clone() }, ..p.clone() }
        .fit(&ds, None)
        .unwrap();
    let narrow = Array2::<f32>::zeros((2, 3));
    assert!(net.predict(narrow.view()).is_err());
}

#[test]
fn cpcv_treats_a_network_like_any_model() {
    let bars = ar1_bars(1200, 0.6, 6);
    let label = LabelSpec::Direction { horizon: 3, threshold: 0.0, classes: 2 };
    let mut p = small(ModelKind::NHITS);
    p.train.epochs = 2;
    let ds = dataset(&p, &bars, &label);
    let cpcv = Cpcv::new(6, 2).embargo(Embargo::Bars(p.lookback));
    let opts = CvOptions { parallel_splits: false, ..CvOptions::default() };
    let report = cross_validate(&p, &ds, &cpcv, &opts).unwrap();
    assert_eq!(report.splits.len(), 15);
    let auc = report.summary.iter().find(|m| m.metric == "auc").unwrap().mean;
    assert!(auc > 0.6, "mean path AUC {auc}");
}

/// Hourly candles whose next return follows the current bar's volume surprise while the
/// returns themselves are white noise: predictable only from an exogenous input.
fn volume_led_bars(n: usize, seed: u64) -> Bars {
    let mut signal = 0.0f64;
    hourly_bars("VOL", n, seed, |rng| {
        let r = 0.004 * (0.8 * signal + 0.6 * rng.normal());
        signal = rng.normal();
        (r, 1000.0 * (0.5 * signal).exp())
    })
}

#[test]
fn nhits_reads_exogenous_features_and_patchtst_refuses_them() {
    let bars = volume_led_bars(3000, 8);
    let label = LabelSpec::Direction { horizon: 1, threshold: 0.0, classes: 2 };
    let auc = |p: &NnParams| {
        let ds = dataset(p, &bars, &label);
        let plan = Chronological::default().plan(&ds.t0, &ds.t1).unwrap();
        let s = &plan.splits[0];
        let (train, valid, test) =
            (ds.select(&s.train).unwrap(), ds.select(&s.validation).unwrap(), ds.select(&s.test).unwrap());
        let net = p.fit(&train, Some(&valid)).unwrap();
        let out = net.predict(test.x.view()).unwrap();
        let scores = score(Task::Binary, &test.y.to_vec(), out.view(), None, None, None);
        (net, scores.auc.unwrap())
    };
    let plain = small(ModelKind::NHITS);
    let with_exog = NnParams { exog: vec![Feature::VolumeZ { period: 20 }], ..plain.clone() };
    let (net, led) = auc(&with_exog);
    let (_, blind) = auc(&plain);
    // The volume surprise carries most of the next return (correlation 0.8; this run's test
    // AUC is about 0.85); the returns' own history carries nothing (AUC about 0.5).
    assert!(led > 0.68 && blind < 0.6, "with the exogenous input {led}, without {blind}");
    assert_eq!(net.meta().mean.len(), 2, "one forecast channel and one exogenous input");
    assert!(net.meta().columns.iter().any(|c| c.starts_with("volume_z_20_lag")));
    // The stored network reads the same columns back.
    let (meta, weights) = {
        let a = net.to_artifacts().unwrap();
        (a[0].1.clone(), a[1].1.clone())
    };
    let back = TrainedNet::from_artifacts(&meta, &weights, &candle_core::Device::Cpu).unwrap();
    let ds = dataset(&with_exog, &bars, &label);
    assert_eq!(back.scores(ds.x.view()).unwrap(), net.scores(ds.x.view()).unwrap());
    let patch = NnParams { exog: vec![Feature::VolumeZ { period: 20 }], ..small(ModelKind::PATCHTST) };
    let err = patch.fit(&dataset(&patch, &bars, &label), None).err().unwrap().to_string();
    assert!(err.contains("exog") && err.contains("N-HiTS"), "{err}");
}

/// A network deployed in the store serves through the `Retrainer` like any kind: the loaded
/// version reads its stored spec plus its window, and its call on the last bar is the
/// network's own signal for that row, return forecast included.
#[test]
fn a_stored_network_serves_through_the_retrainer_with_its_forecast() {
    use retrain::store::{Artifact, Change, Status, VersionMeta, VersionStore};
    let bars = ar1_bars(1500, 0.6, 11);
    let label = LabelSpec::Direction { horizon: 3, threshold: 0.0, classes: 2 };
    let mut p = small(ModelKind::NHITS);
    p.train.epochs = 2;
    let user_spec = FeatureSpec { features: vec![Feature::Rsi { period: 14 }] };
    let ds = dataset(&p, &bars, &label);
    let n = ds.n_rows();
    let train = ds.select(&(0..n - 200).collect::<Vec<_>>()).unwrap();
    let valid = ds.select(&(n - 197..n).collect::<Vec<_>>()).unwrap();
    let net = p.fit(&train, Some(&valid)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = VersionStore::open(dir.path()).unwrap();
    let mut meta = VersionMeta::new("nhits");
    meta.status = Status::Active;
    meta.feature_spec = Some(serde_json::to_value(&user_spec).unwrap());
    meta.label_spec = Some(serde_json::to_value(&label).unwrap());
    meta.hyperparameters = Some(serde_json::to_value(&p).unwrap());
    let arts: Vec<Artifact> = net.artifacts().unwrap().into_iter().map(|(n, b)| Artifact::bytes(n, b)).collect();
    store.register("ar", meta, &arts, &Change::new("test", "a deployed network")).unwrap();
    drop(store);

    let r = retrain::Retrainer::open(dir.path(), retrain::Policy::default()).unwrap();
    let loaded = r.active("ar").unwrap();
    assert_eq!(loaded.kind, ModelKind::NHITS);
    assert_eq!(loaded.features, p.with_window(&user_spec));
    assert_eq!(r.version_features("ar", &loaded.info).unwrap(), loaded.features);
    let served = loaded.predict_latest(&bars).unwrap();

    let frame = retrain::features::compute(&bars, &loaded.features).unwrap();
    let seg = &frame.segments[0];
    let last: Vec<f32> = seg.columns.iter().map(|c| c[seg.len() - 1] as f32).collect();
    let x = Array2::from_shape_vec((1, last.len()), last).unwrap();
    let own = net.signals(x.view()).unwrap()[0];
    assert_eq!(served, own);
    assert!(served.expected_return.is_some() && served.probability.unwrap() >= 0.5);
}
