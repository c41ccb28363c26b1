//! Property: every feature at bar t depends on bars <= t only. Truncating the future at a
//! random t and recomputing must leave every value at bars <= t bit-identical.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use retrain::data::{BarColumns, Bars, read_bars};
use retrain::features::{FeatureSpec, compute};

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn assert_prefix_stable(full: &Bars, cut: usize, spec: &FeatureSpec) {
    let whole = compute(full, spec).unwrap();
    let part = compute(&full.slice(0, cut).unwrap(), spec).unwrap();
    let (w, p) = (&whole.segments[0], &part.segments[0]);
    for (name, (cw, cp)) in whole.names.iter().zip(w.columns.iter().zip(&p.columns)) {
        for t in 0..cut {
            assert!(
                same(cw[t], cp[t]),
                "{name}[{t}] changed when bars after {cut} were removed: {} vs {}",
                cw[t],
                cp[t]
            );
        }
    }
    // Warm-up is a property of the past too.
    assert_eq!(whole.segments[0].warmup.min(cut), part.segments[0].warmup.min(cut));
}

/// A random-walk candle series with some zero-volume and flat bars mixed in.
fn random_bars() -> impl Strategy<Value = Bars> {
    (150usize..400, any::<u64>()).prop_map(|(n, seed)| {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut c = BarColumns::default();
        let mut price = 100.0;
        for i in 0..n {
            let open = price;
            price *= 1.0 + (next() - 0.5) * 0.04;
            let flat = next() < 0.05;
            let close = if flat { open } else { price };
            let hi = open.max(close) * (1.0 + if flat { 0.0 } else { next() * 0.01 });
            let lo = open.min(close) * (1.0 - if flat { 0.0 } else { next() * 0.01 });
            c.ts.push(1_500_000_000_000 + i as i64 * 3_600_000);
            c.open.push(open);
            c.high.push(hi);
            c.low.push(lo);
            c.close.push(close);
            c.volume.push(if next() < 0.1 { 0.0 } else { next() * 1000.0 });
        }
        Bars::new("R", c).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn features_are_causal_on_random_walks(bars in random_bars(), frac in 0.0f64..1.0) {
        let cut = 1 + ((bars.len() - 1) as f64 * frac) as usize;
        assert_prefix_stable(&bars, cut, &FeatureSpec::default());
    }

    #[test]
    fn sequence_windows_are_causal(bars in random_bars(), frac in 0.0f64..1.0) {
        use retrain::features::Feature;
        let cut = 1 + ((bars.len() - 1) as f64 * frac) as usize;
        let window = Feature::Window {
            of: vec![Feature::LogReturns { lags: vec![1] }, Feature::VolumeZ { period: 5 }, Feature::Candle],
            length: 16,
        };
        assert_prefix_stable(&bars, cut, &FeatureSpec { features: vec![window] });
    }
}

#[test]
fn features_are_causal_on_real_btc() {
    let bars = read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/btcusd_coinbase_1h.csv")).unwrap();
    let b = bars[0].slice(0, 3000).unwrap();
    let spec = FeatureSpec::default();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..16 {
        let cut = (1usize..3000).new_tree(&mut runner).unwrap().current();
        assert_prefix_stable(&b, cut, &spec);
    }
    // Edges: nothing but warm-up, and exactly the first complete row.
    assert_prefix_stable(&b, 1, &spec);
    assert_prefix_stable(&b, spec.max_lookback() + 1, &spec);
}
