//! Synthetic hourly candles for the deployment gate's controls: a random walk whose drift
//! depends on its own past returns with a stated strength, or none at all.
//!
//! Bar `t`'s log-return is `σ·ε_t + strength·σ·tanh(2·s_t)·tanh(2·l_t)` with `ε` standard
//! normal, `σ` = 0.5 % per hour, `s_t` the return of the previous 12 bars and `l_t` that of
//! the 36 bars before them, each in units of its standard deviation (`σ·√12`, `σ·√36`): the
//! walk drifts up when the recent and the earlier move agree and down when they disagree — an
//! interaction of two independent signs that no linear model of the features can represent
//! (nor volatility stand in for) and a depth-2 tree can, slow enough to carry over the
//! 12-bar label horizon.
//! `strength = 0` is an i.i.d. random walk. The 12-bar forward direction of a bar then
//! depends on the past returns through the drift of the coming bars. Highs and lows spread
//! around the body by a quarter σ times |normal|; volumes are log-normal. The same `(n,
//! strength, seed)` always gives the same candles.
//!
//! Included by path (`#[path = ".../planted.rs"] mod planted;`); the including module
//! provides `Bars`, `BarColumns` and `Rng` in scope.

use super::{BarColumns, Bars, Rng};

/// Per-hour volatility of the walk.
pub const SIGMA: f64 = 0.005;

/// `n` hourly candles from 2020-01-01 with drift strength `strength` (0: none).
pub fn candles(n: usize, strength: f64, seed: u64) -> Bars {
    shifted(n, strength, seed, None)
}

/// A change of regime from bar `at` on: the noise's σ multiplied by `vol`, and `mean`·σ
/// added to every log-return.
#[derive(Debug, Clone, Copy)]
pub struct Shift {
    /// First bar of the new regime.
    pub at: usize,
    /// Volatility multiplier.
    pub vol: f64,
    /// Drift per bar, in units of the base σ.
    pub mean: f64,
}

/// [`candles`] with an optional [`Shift`] (the bars before it are the same as `candles`').
pub fn shifted(n: usize, strength: f64, seed: u64, shift: Option<Shift>) -> Bars {
    let mut rng = Rng::new(seed);
    let mut r = Vec::with_capacity(n);
    for t in 0..n {
        let (vol, mean) = match shift {
            Some(s) if t >= s.at => (s.vol, s.mean),
            _ => (1.0, 0.0),
        };
        // The return of bars [t − to, t − from) in units of its standard deviation.
        let z = |from: usize, to: usize| {
            if t >= to { r[t - to..t - from].iter().sum::<f64>() / (SIGMA * ((to - from) as f64).sqrt()) } else { 0.0 }
        };
        let h = (2.0 * z(0, 12)).tanh() * (2.0 * z(12, 48)).tanh();
        r.push(vol * SIGMA * rng.normal() + strength * SIGMA * h + mean * SIGMA);
    }
    let (mut open, mut high, mut low, mut close, mut volume) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::new());
    let mut price = 100.0f64;
    for &ret in &r {
        let o = price;
        let c = price * ret.exp();
        let top = o.max(c) * (1.0 + 0.25 * SIGMA * rng.normal().abs());
        let bottom = o.min(c) * (1.0 - 0.25 * SIGMA * rng.normal().abs());
        open.push(o);
        close.push(c);
        high.push(top);
        low.push(bottom);
        volume.push((7.0 + 0.3 * rng.normal()).exp());
        price = c;
    }
    let start = 1_577_836_800_000i64; // 2020-01-01T00:00:00Z
    let ts = (0..n as i64).map(|i| start + i * 3_600_000).collect();
    Bars::new("SYN", BarColumns { ts, open, high, low, close, volume }).expect("generated candles are valid")
}
