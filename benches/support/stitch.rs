//! Long synthetic-but-real-shaped series for benchmarks and scale tests (bench support code,
//! included by path from `benches/features.rs` and the `stitch` harness).
//!
//! [`stitch`] chains the bar-to-bar relative moves of real series (open, high, low and
//! close relative to the previous close, and the real volume) one after another, cycling
//! through the sources until `n` bars exist. Every bar's shape and every return is a real
//! one; only the price level and the clock (a regular grid) are synthetic.

use retrain::data::{BarColumns, Bars, read_bars};
use retrain::{Error, Result};
use std::path::Path;

/// Files under `../shared/datasets/` (beside the crate) added to the benchmark sources when
/// present: SPY, XAUUSD and EURUSD hourly bars from QuantConnect Lean (Apache-2.0).
const SHARED: [&str; 3] =
    ["spy_1h_1998-2021_lean.csv", "xauusd_oanda_mid_1h_2006-2019_lean.csv", "eurusd_oanda_mid_1h_2007-2018_lean.csv"];

/// The real series the benchmarks stitch, in a fixed order: the crate's shipped
/// `datasets/` files, then the larger `../shared/datasets/` series that exist.
pub fn benchmark_sources(crate_root: &Path) -> Result<Vec<Bars>> {
    let mut files =
        vec![crate_root.join("datasets/btcusd_coinbase_1h.csv"), crate_root.join("datasets/eurusd_ask_1h_2017.csv")];
    files.extend(SHARED.iter().map(|f| crate_root.join("../shared/datasets").join(f)).filter(|p| p.exists()));
    let mut out = Vec::new();
    for f in files {
        out.extend(read_bars(f)?);
    }
    Ok(out)
}

/// Build `n` bars named `symbol` from the relative moves of `sources`, starting at price
/// 100 and time `start_ms`, one bar every `step_ms`.
pub fn stitch(sources: &[Bars], n: usize, symbol: &str, start_ms: i64, step_ms: i64) -> Result<Bars> {
    if sources.iter().all(|b| b.len() < 2) {
        return Err(Error::param("sources", "need at least one series with 2 or more bars"));
    }
    if n == 0 || step_ms <= 0 {
        return Err(Error::param("n/step_ms", "must be positive"));
    }
    let mut c = BarColumns {
        ts: Vec::with_capacity(n),
        open: Vec::with_capacity(n),
        high: Vec::with_capacity(n),
        low: Vec::with_capacity(n),
        close: Vec::with_capacity(n),
        volume: Vec::with_capacity(n),
    };
    let mut price = 100.0;
    'fill: loop {
        for src in sources {
            let (o, h, l, cl, v) = (src.open(), src.high(), src.low(), src.close(), src.volume());
            for i in 1..src.len() {
                if c.ts.len() == n {
                    break 'fill;
                }
                let prev = cl[i - 1];
                c.ts.push(start_ms + c.ts.len() as i64 * step_ms);
                c.open.push(price * (o[i] / prev));
                c.high.push(price * (h[i] / prev));
                c.low.push(price * (l[i] / prev));
                let close = price * (cl[i] / prev);
                c.close.push(close);
                c.volume.push(v[i]);
                price = close;
            }
        }
    }
    // Scaling can round a high a hair below max(open, close); clamp to keep the bar valid.
    for i in 0..n {
        let (o, cl) = (c.open[i], c.close[i]);
        c.high[i] = c.high[i].max(o.max(cl));
        c.low[i] = c.low[i].min(o.min(cl));
    }
    Bars::new(symbol, c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stitched_returns_are_the_sources_returns() {
        use super::{BarColumns, Bars, stitch};
        let src = Bars::new(
            "s",
            BarColumns {
                ts: vec![0, 1, 2],
                open: vec![10.0, 10.0, 11.0],
                high: vec![10.0, 12.0, 11.5],
                low: vec![10.0, 9.0, 10.5],
                close: vec![10.0, 11.0, 11.0],
                volume: vec![1.0, 2.0, 3.0],
            },
        )
        .unwrap();
        let b = stitch(&[src], 5, "x", 1_000, 10).unwrap();
        assert_eq!(b.len(), 5);
        assert_eq!(b.timestamps(), &[1_000, 1_010, 1_020, 1_030, 1_040]);
        assert!((b.close()[0] - 110.0).abs() < 1e-12);
        assert!((b.close()[2] / b.close()[1] - 1.1).abs() < 1e-12, "cycles back to the first move");
        assert_eq!(b.volume(), &[2.0, 3.0, 2.0, 3.0, 2.0]);
    }
}
