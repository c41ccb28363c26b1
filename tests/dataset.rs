//! Building datasets: drop accounting, pooled symbols in time order, label end times,
//! fold selection and weights.

use retrain::data::read_bars;
use retrain::features::{Dataset, FeatureSpec, LabelSpec};

fn btc() -> retrain::data::Bars {
    read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/btcusd_coinbase_1h.csv")).unwrap().remove(0)
}

#[test]
fn drops_are_counted_and_rows_are_complete() {
    let b = btc();
    let spec = FeatureSpec::default();
    let ds = Dataset::from_bars(std::slice::from_ref(&b), &spec, &LabelSpec::FutureReturn { horizon: 12 }).unwrap();
    let d = ds.dropped;
    assert_eq!(d.rows_in, b.len());
    assert_eq!(d.warmup, spec.max_lookback());
    assert_eq!(d.missing_label, 12);
    assert_eq!(d.rows_in, d.warmup + d.missing_label + d.non_finite + d.rows_out);
    assert_eq!(d.non_finite, 0, "features after warm-up are finite on real data");
    assert_eq!(ds.n_rows(), d.rows_out);
    assert!(ds.x.t().is_standard_layout(), "x is column-major");
    assert!(ds.x.iter().all(|v| v.is_finite()));
    for i in 0..ds.n_rows() {
        assert!(ds.t1[i] > ds.t0[i]);
    }
    // The target is the 12-bar return of the row's bar.
    let ts = b.timestamps();
    let k = ts.iter().position(|&t| t == ds.t0[500]).unwrap();
    assert!((ds.y[500] - (b.close()[k + 12] / b.close()[k] - 1.0)).abs() < 1e-15);
    assert_eq!(ds.t1[500], ts[k + 12]);
}

#[test]
fn pooled_symbols_are_interleaved_by_time() {
    let b = btc();
    let a = b.slice(0, 1000).unwrap().with_symbol("A");
    let c = b.slice(500, 1500).unwrap().with_symbol("C");
    let ds = Dataset::from_bars(&[a, c], &FeatureSpec::default(), &"direction:12:0.002:3".parse().unwrap()).unwrap();
    assert_eq!(ds.symbols, ["A", "C"]);
    assert!(ds.t0.windows(2).all(|w| w[0] <= w[1]), "rows ordered by t0");
    assert!((0..ds.n_rows()).any(|r| ds.symbol_of(r) == "A") && (0..ds.n_rows()).any(|r| ds.symbol_of(r) == "C"));
    assert!(ds.y.iter().all(|&y| y == 0.0 || y == 1.0 || y == 2.0));
    assert_eq!(ds.dropped.warmup, 2 * FeatureSpec::default().max_lookback());
}

#[test]
fn select_and_weights() {
    let b = btc().slice(0, 800).unwrap();
    let ds = Dataset::from_bars(&[b], &FeatureSpec::default(), &LabelSpec::default()).unwrap();
    let n = ds.n_rows();
    let ds = ds.with_weights(vec![1.0; n]).unwrap();
    let fold = ds.select(&[3, 1, 2]).unwrap();
    assert_eq!(fold.n_rows(), 3);
    assert_eq!(fold.x.row(0), ds.x.row(3));
    assert_eq!(fold.t1[1], ds.t1[1]);
    assert_eq!(fold.weights.as_ref().unwrap().len(), 3);
    assert!(ds.select(&[n]).is_err());
    assert!(ds.clone().with_weights(vec![1.0; n - 1]).is_err());
    let mut w = vec![1.0; n];
    w[7] = -1.0;
    assert!(ds.clone().with_weights(w).unwrap_err().to_string().contains("weights[7]"));
}

#[test]
fn triple_barrier_t1_never_exceeds_horizon() {
    let b = btc().slice(0, 2000).unwrap();
    let label = LabelSpec::TripleBarrier { horizon: 24, take_profit: 1.5, stop_loss: 1.0, vol_window: 20 };
    let ds = Dataset::from_bars(&[b], &FeatureSpec::default(), &label).unwrap();
    let hour = 3_600_000;
    for i in 0..ds.n_rows() {
        assert!(ds.t1[i] > ds.t0[i] && ds.t1[i] <= ds.t0[i] + 24 * hour, "row {i}");
    }
    let classes: std::collections::BTreeSet<u8> = ds.y.iter().map(|&y| y as u8).collect();
    assert_eq!(classes.len(), 3, "all three outcomes occur on real data");
}

#[test]
fn thread_count_does_not_change_results() {
    let b = btc().slice(0, 3000).unwrap();
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            Dataset::from_bars(
                &[b.clone(), b.clone().with_symbol("B2")],
                &FeatureSpec::default(),
                &LabelSpec::default(),
            )
            .unwrap()
        })
    };
    let (a, c) = (run(1), run(3));
    assert_eq!(a.x, c.x);
    assert_eq!(a.y, c.y);
}
