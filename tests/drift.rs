//! KS p-values, Benjamini–Hochberg / –Yekutieli and PSI against scipy / numpy (fixture:
//! tests/fixtures/ks_scipy.json, made by tests/fixtures/ks_scipy.py with scipy 1.17.1 and
//! numpy 2.4.6).

use retrain::lifecycle::drift::{FeatureReference, benjamini_hochberg, benjamini_yekutieli};
use retrain::lifecycle::ks::ks_2samp;
use serde_json::Value;

const PHI: f64 = 0.6180339887498949;
const SQRT2: f64 = 0.41421356237309515;

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ks_scipy.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The fixture script's `sample`: a low-discrepancy sequence, optionally rounded (ties).
fn sample(n: usize, mult: f64, scale: f64, shift: f64, digits: Option<i32>) -> Vec<f64> {
    (1..=n)
        .map(|i| {
            let x = (i as f64 * mult).rem_euclid(1.0) * scale + shift;
            match digits {
                Some(d) => {
                    let f = 10f64.powi(d);
                    (x * f).round_ties_even() / f
                }
                None => x,
            }
        })
        .collect()
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    let tol = rel * want.abs().max(1e-300) + 1e-15;
    assert!((got - want).abs() <= tol, "{what}: got {got:e}, scipy {want:e} (diff {:e})", (got - want).abs());
}

#[test]
fn ks_2samp_matches_scipy_exact_and_asymptotic() {
    let f = fixture();
    let (mut exact, mut asymp) = (0, 0);
    for c in f["ks_2samp"].as_array().unwrap() {
        let n1 = c["n1"].as_u64().unwrap() as usize;
        let n2 = c["n2"].as_u64().unwrap() as usize;
        let digits = c["digits"].as_i64().map(|d| d as i32);
        let a = sample(n1, PHI, 1.0, 0.0, digits);
        let b = sample(n2, SQRT2, c["scale"].as_f64().unwrap(), c["shift"].as_f64().unwrap(), digits);
        let r = ks_2samp(&a, &b).unwrap();
        let what = format!("ks_2samp n1={n1} n2={n2}");
        close(r.statistic, c["statistic"].as_f64().unwrap(), 1e-12, &what);
        close(r.p_value, c["p_value"].as_f64().unwrap(), 1e-9, &what);
        // scipy computes exactly up to 10,000 rows per sample, asymptotically above.
        assert_eq!(r.exact, n1.max(n2) <= 10_000, "{what}: the same exact/asymptotic switch as scipy");
        if r.exact { exact += 1 } else { asymp += 1 }
    }
    assert!(exact >= 8 && asymp >= 6, "{exact} exact, {asymp} asymptotic cases");
}

#[test]
fn benjamini_hochberg_matches_scipy() {
    let f = fixture();
    let p: Vec<f64> = f["bh"]["p"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let want: Vec<f64> = f["bh"]["adjusted"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (i, (g, w)) in benjamini_hochberg(&p).iter().zip(&want).enumerate() {
        close(*g, *w, 1e-12, &format!("bh[{i}]"));
    }
    let want: Vec<f64> = f["bh"]["by"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (i, (g, w)) in benjamini_yekutieli(&p).iter().zip(&want).enumerate() {
        close(*g, *w, 1e-12, &format!("by[{i}]"));
    }
}

#[test]
fn psi_matches_numpy_over_reference_quantile_bins() {
    let f = fixture();
    let cases = f["psi"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for c in cases {
        let n1 = c["n1"].as_u64().unwrap() as usize;
        let n2 = c["n2"].as_u64().unwrap() as usize;
        let digits = c["digits"].as_i64().map(|d| d as i32);
        let a = sample(n1, PHI, 1.0, 0.0, digits);
        let b = sample(n2, SQRT2, c["scale"].as_f64().unwrap(), c["shift"].as_f64().unwrap(), digits);
        let r = FeatureReference::from_values("x", &a, 10).unwrap();
        close(r.psi(&b), c["psi"].as_f64().unwrap(), 1e-12, &format!("psi n1={n1} n2={n2}"));
    }
}
