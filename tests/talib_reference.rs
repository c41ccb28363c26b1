//! Reference check: our TA-Lib-compatible kernels against values TA-Lib 0.8.2 itself
//! computed on the shipped BTC/USD and EUR/USD data (fixtures and their generator in
//! `tests/fixtures/talib/`).
//!
//! Warm-up must match exactly (NaN in the same places) and every value within 1e-9
//! relative.

use polars::prelude::*;
use retrain::data::read_bars;
use retrain::features::talib;

const REL_TOL: f64 = 1e-9;

fn fixture(name: &str) -> DataFrame {
    let path = format!("{}/tests/fixtures/talib/{name}.parquet", env!("CARGO_MANIFEST_DIR"));
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

fn expected(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name).unwrap().f64().unwrap().iter().map(|x| x.unwrap_or(f64::NAN)).collect()
}

/// Largest relative error, or a description of the first mismatch.
fn check(name: &str, ours: &[f64], theirs: &[f64]) -> Result<f64, String> {
    if ours.len() != theirs.len() {
        return Err(format!("{name}: length {} vs {}", ours.len(), theirs.len()));
    }
    let mut worst: f64 = 0.0;
    for (i, (&a, &b)) in ours.iter().zip(theirs).enumerate() {
        if a.is_nan() != b.is_nan() {
            return Err(format!("{name}[{i}]: ours {a}, TA-Lib {b} (warm-up differs)"));
        }
        if a.is_nan() {
            continue;
        }
        let scale = a.abs().max(b.abs());
        let err = if scale == 0.0 { 0.0 } else { (a - b).abs() / scale };
        if err > REL_TOL {
            return Err(format!("{name}[{i}]: ours {a:e}, TA-Lib {b:e}, relative error {err:e}"));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

fn compare(name: &str) {
    let df = fixture(name);
    let bars = read_bars(format!("{}/datasets/{name}.csv", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let cases = talib::outputs(&bars[0]);
    assert_eq!(cases.len(), df.width(), "every fixture column is checked");
    let mut failures = Vec::new();
    for (col, ours) in &cases {
        match check(col, ours, &expected(&df, col)) {
            Ok(worst) => println!("{name} {col:<22} max relative error {worst:.2e}"),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} outputs differ from TA-Lib:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn kernels_match_talib_on_btc() {
    compare("btcusd_coinbase_1h");
}

#[test]
fn kernels_match_talib_on_eurusd() {
    compare("eurusd_ask_1h_2017");
}
