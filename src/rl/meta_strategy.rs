//! The meta-strategy agent's vocabulary: which trading style suits the market now.
//!
//! A state is (regime, volatility level, liquidity level, recent performance), keyed as
//! `TRENDING_HIGH_MEDIUM_GOOD`; the actions are five styles. A closed trade's reward is
//! `pnl% + (24 / max(hours, 0.1))·0.1 − 2·|max drawdown%| + (win rate − 0.5)·10`: profit,
//! a bonus for making it quickly, a penalty twice the drawdown suffered, and credit for a
//! style that wins more often than not.
//!
//! [`meta_state`] derives a state from a symbol's candles up to a bar (causally) and the
//! strategy's recent PnL, with every threshold in [`StateThresholds`]:
//! - volatility: NATR (ATR as a percentage of the close) at the bar against the quantiles of NATR over the symbol's
//!   own history up to that bar (LOW below the lower quantile, MEDIUM, HIGH above the upper,
//!   EXTREME above the extreme one);
//! - liquidity: the mean volume of the last `liquidity_bars` bars against the quantiles of the
//!   same rolling mean over the history;
//! - regime: TRENDING when ADX reaches `trend_adx`; otherwise VOLATILE at HIGH or EXTREME
//!   volatility; otherwise RANGING below `range_adx` and CHOPPY between the two;
//! - performance: the last 7 days' PnL % at or above `good_pnl_pct` is GOOD, at or below
//!   `poor_pnl_pct` POOR, NEUTRAL between.

use crate::data::Bars;
use crate::features::trend::{adx_di, sma};
use crate::features::volatility::natr;
use crate::rl::qtable::Action;
use crate::{Error, Result};

/// Market regime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Regime {
    /// A sustained directional move.
    Trending,
    /// Oscillation inside a band.
    Ranging,
    /// Direction changes without a band.
    Choppy,
    /// Large moves both ways.
    Volatile,
}

/// Volatility against the symbol's own history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VolLevel {
    /// Below the lower quantile.
    Low,
    /// Between the lower and upper quantiles.
    Medium,
    /// Above the upper quantile.
    High,
    /// Above the extreme quantile.
    Extreme,
}

/// Liquidity (volume) against the symbol's own history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Liquidity {
    /// Below the lower quantile.
    Low,
    /// Between the quantiles.
    Medium,
    /// Above the upper quantile.
    High,
}

/// The strategy's recent results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Performance {
    /// Profitable beyond the threshold.
    Good,
    /// Neither.
    Neutral,
    /// Losing beyond the threshold.
    Poor,
}

/// Upper-case name of a unit variant (`Trending` → `TRENDING`).
pub(crate) fn upper(v: &impl std::fmt::Debug) -> String {
    format!("{v:?}").to_uppercase()
}

/// The meta-strategy agent's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetaState {
    /// Market regime.
    pub regime: Regime,
    /// Volatility level.
    pub volatility: VolLevel,
    /// Liquidity level.
    pub liquidity: Liquidity,
    /// Recent performance.
    pub performance: Performance,
}

impl MetaState {
    /// The stable table key, e.g. `TRENDING_HIGH_MEDIUM_GOOD`.
    pub fn key(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            upper(&self.regime),
            upper(&self.volatility),
            upper(&self.liquidity),
            upper(&self.performance)
        )
    }
}

/// A trading style the meta-strategy agent can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strategy {
    /// Follow the trend.
    TrendFollow,
    /// Fade moves back to the mean.
    MeanReversion,
    /// Trade the break of a range.
    Breakout,
    /// Trade inside a range.
    RangeBound,
    /// Small size, tight risk.
    Defensive,
}

impl Action for Strategy {
    fn all() -> Vec<Self> {
        vec![
            Strategy::TrendFollow,
            Strategy::MeanReversion,
            Strategy::Breakout,
            Strategy::RangeBound,
            Strategy::Defensive,
        ]
    }

    fn key(&self) -> String {
        match self {
            Strategy::TrendFollow => "trend_follow",
            Strategy::MeanReversion => "mean_reversion",
            Strategy::Breakout => "breakout",
            Strategy::RangeBound => "range_bound",
            Strategy::Defensive => "defensive",
        }
        .to_string()
    }
}

/// Reward of a closed trade (percentages as numbers: 3 for +3 %; `win_rate` in [0, 1]).
pub fn meta_reward(pnl_pct: f64, hours: f64, max_drawdown_pct: f64, win_rate: f64) -> f64 {
    pnl_pct + 24.0 / hours.max(0.1) * 0.1 - 2.0 * max_drawdown_pct.abs() + (win_rate - 0.5) * 10.0
}

/// The thresholds [`meta_state`] uses.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateThresholds {
    /// ADX and ATR period (bars).
    pub period: usize,
    /// ADX at or above this is a trend.
    pub trend_adx: f64,
    /// ADX below this (without high volatility) is a range.
    pub range_adx: f64,
    /// NATR quantiles for MEDIUM, HIGH and EXTREME volatility.
    pub vol_quantiles: [f64; 3],
    /// Bars summed for liquidity.
    pub liquidity_bars: usize,
    /// Rolling-volume quantiles for MEDIUM and HIGH liquidity.
    pub liquidity_quantiles: [f64; 2],
    /// Seven-day PnL % at or above this is GOOD.
    pub good_pnl_pct: f64,
    /// Seven-day PnL % at or below this is POOR.
    pub poor_pnl_pct: f64,
}

impl Default for StateThresholds {
    /// ADX/ATR 14; trend at ADX 25, range below 20; volatility quantiles 0.25 / 0.75 / 0.95;
    /// 24-bar volume with quantiles 0.25 / 0.75; GOOD at +2 %, POOR at −2 % over 7 days.
    fn default() -> Self {
        StateThresholds {
            period: 14,
            trend_adx: 25.0,
            range_adx: 20.0,
            vol_quantiles: [0.25, 0.75, 0.95],
            liquidity_bars: 24,
            liquidity_quantiles: [0.25, 0.75],
            good_pnl_pct: 2.0,
            poor_pnl_pct: -2.0,
        }
    }
}

/// The finite values of `v`, sorted once for [`quantile`].
fn sorted_finite(v: &[f64]) -> Vec<f64> {
    let mut f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    f.sort_by(f64::total_cmp);
    f
}

/// The `q`-quantile (nearest rank) of sorted values; +∞ when there are none.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::INFINITY,
        n => sorted[((q * (n - 1) as f64).round() as usize).min(n - 1)],
    }
}

/// The meta-strategy state at bar `t` of `bars` (bars after `t` are never read), for a
/// strategy whose last 7 days made `recent_pnl_pct`.
pub fn meta_state(bars: &Bars, t: usize, recent_pnl_pct: f64, th: &StateThresholds) -> Result<MetaState> {
    let n = bars.len();
    let need = 2 * th.period + th.liquidity_bars;
    if t >= n || t < need {
        return Err(Error::InvalidParam {
            field: "rl.meta_state.bar".into(),
            reason: format!(
                "bar {t} of {}: needs {need} bars of history and a bar inside the series ({n} bars)",
                bars.symbol()
            ),
        });
    }
    if !recent_pnl_pct.is_finite() {
        return Err(Error::InvalidParam {
            field: "rl.meta_state.recent_pnl_pct".into(),
            reason: format!("{recent_pnl_pct}"),
        });
    }
    let (h, l, c, v) = (&bars.high()[..=t], &bars.low()[..=t], &bars.close()[..=t], &bars.volume()[..=t]);
    let natr = natr(h, l, c, th.period);
    let adx = adx_di(h, l, c, th.period)[0][t];
    let sorted = sorted_finite(&natr);
    let vq = |q: f64| quantile(&sorted, q);
    let volatility = match natr[t] {
        x if x > vq(th.vol_quantiles[2]) => VolLevel::Extreme,
        x if x > vq(th.vol_quantiles[1]) => VolLevel::High,
        x if x >= vq(th.vol_quantiles[0]) => VolLevel::Medium,
        _ => VolLevel::Low,
    };
    let rolling = sma(v, th.liquidity_bars.max(1));
    let sorted = sorted_finite(&rolling);
    let lq = |q: f64| quantile(&sorted, q);
    let liquidity = match rolling[t] {
        x if x > lq(th.liquidity_quantiles[1]) => Liquidity::High,
        x if x >= lq(th.liquidity_quantiles[0]) => Liquidity::Medium,
        _ => Liquidity::Low,
    };
    let regime = if adx >= th.trend_adx {
        Regime::Trending
    } else if volatility >= VolLevel::High {
        Regime::Volatile
    } else if adx < th.range_adx {
        Regime::Ranging
    } else {
        Regime::Choppy
    };
    let performance = if recent_pnl_pct >= th.good_pnl_pct {
        Performance::Good
    } else if recent_pnl_pct <= th.poor_pnl_pct {
        Performance::Poor
    } else {
        Performance::Neutral
    };
    Ok(MetaState { regime, volatility, liquidity, performance })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::BarColumns;

    /// Hourly candles: `drift` per bar on the log price, noise of size `vol` from a fixed
    /// sequence, volume `vol_of(i)`.
    fn candles(
        n: usize,
        drift: impl Fn(usize) -> f64,
        vol: impl Fn(usize) -> f64,
        volume: impl Fn(usize) -> f64,
    ) -> Bars {
        let mut rng = crate::rng::Rng::new(3);
        let mut p = 100.0f64;
        let mut cols = BarColumns::default();
        for i in 0..n {
            let open = p;
            p *= (drift(i) + vol(i) * rng.normal()).exp();
            let (hi, lo) = (open.max(p) * (1.0 + vol(i) * 0.3), open.min(p) * (1.0 - vol(i) * 0.3));
            cols.ts.push(i as i64 * 3_600_000);
            cols.open.push(open);
            cols.high.push(hi);
            cols.low.push(lo);
            cols.close.push(p);
            cols.volume.push(volume(i));
        }
        Bars::new("T", cols).unwrap()
    }

    #[test]
    fn states_from_candles_follow_the_rules() {
        let th = StateThresholds::default();
        // A steady climb with small noise: trending, and volatility that has not moved.
        let up = candles(600, |_| 0.004, |_| 0.002, |_| 10.0);
        let s = meta_state(&up, 599, 3.0, &th).unwrap();
        assert_eq!((s.regime, s.performance), (Regime::Trending, Performance::Good));
        // No drift, calm: a range; then a ×5 volatility burst with no direction: volatile,
        // extreme against its own history. Volume tripled in the burst: high liquidity.
        let burst = |i: usize| if i >= 560 { 0.01 } else { 0.002 };
        let flat = candles(600, |_| 0.0, burst, |i| if i >= 560 { 30.0 } else { 10.0 });
        let calm = meta_state(&flat, 500, 0.0, &th).unwrap();
        assert!(matches!(calm.regime, Regime::Ranging | Regime::Choppy), "{calm:?}");
        assert_eq!(calm.performance, Performance::Neutral);
        let wild = meta_state(&flat, 599, -5.0, &th).unwrap();
        assert_eq!(
            (wild.volatility, wild.liquidity, wild.performance),
            (VolLevel::Extreme, Liquidity::High, Performance::Poor)
        );
        assert!(matches!(wild.regime, Regime::Volatile | Regime::Trending), "{wild:?}");
        // Causal: the state at bar 500 is the same whatever follows it.
        let cut = candles(501, |_| 0.0, burst, |i| if i >= 560 { 30.0 } else { 10.0 });
        assert_eq!(meta_state(&cut, 500, 0.0, &th).unwrap(), calm);
    }

    #[test]
    fn too_little_history_and_bad_pnl_are_refused() {
        let th = StateThresholds::default();
        let b = candles(100, |_| 0.0, |_| 0.01, |_| 1.0);
        for t in [10, 100] {
            let e = meta_state(&b, t, 0.0, &th).unwrap_err().to_string();
            assert!(e.contains(&format!("bar {t}")), "{e}");
        }
        assert!(meta_state(&b, 99, f64::NAN, &th).unwrap_err().to_string().contains("recent_pnl_pct"));
        assert!(meta_state(&b, 99, 0.0, &th).is_ok());
    }

    #[test]
    fn rewards_match_worked_examples() {
        // +3 % in 2 h, 1 % drawdown, 70 % wins: 3 + 1.2 − 2 + 2 = 4.2.
        assert!((meta_reward(3.0, 2.0, 1.0, 0.7) - 4.2).abs() < 1e-12);
        // −2 % over 48 h, −4 % drawdown (sign ignored), 40 % wins: −2 + 0.05 − 8 − 1 = −10.95.
        assert!((meta_reward(-2.0, 48.0, -4.0, 0.4) + 10.95).abs() < 1e-12);
        // A trade closed at once is credited as 0.1 h, not infinitely fast: 0 + 24 + 0 + 0.
        assert!((meta_reward(0.0, 0.0, 0.0, 0.5) - 24.0).abs() < 1e-12);
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        let s = MetaState {
            regime: Regime::Trending,
            volatility: VolLevel::High,
            liquidity: Liquidity::Medium,
            performance: Performance::Good,
        };
        assert_eq!(s.key(), "TRENDING_HIGH_MEDIUM_GOOD");
        let keys: Vec<String> = Strategy::all().iter().map(Action::key).collect();
        assert_eq!(keys, ["trend_follow", "mean_reversion", "breakout", "range_bound", "defensive"]);
    }
}
