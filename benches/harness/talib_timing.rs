//! Time the TA-Lib-covered indicators (`retrain::features::talib::outputs`) on one file,
//! single-threaded, best of N runs; prints JSON. Used by `benches/peers/features.py`.
//!
//! `cargo run --release --example talib_timing -- FILE.csv [RUNS]`

use retrain::data::read_bars;
use retrain::features::talib;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = args.next().ok_or("usage: talib_timing FILE [RUNS]")?;
    let runs: usize = args.next().map_or(Ok(5), |s| s.parse())?;
    let bars = read_bars(&file)?.remove(0);
    let mut best = f64::INFINITY;
    let mut outputs = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let out = std::hint::black_box(talib::outputs(&bars));
        best = best.min(t.elapsed().as_secs_f64());
        outputs = out.len();
    }
    println!("{{\"bars\": {}, \"outputs\": {outputs}, \"runs\": {runs}, \"best_seconds\": {best}}}", bars.len());
    Ok(())
}
