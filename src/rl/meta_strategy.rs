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

pub use crate::config::rl::StateThresholds;
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

impl Regime {
    /// Every regime, in order.
    pub const ALL: [Regime; 4] = [Regime::Trending, Regime::Ranging, Regime::Choppy, Regime::Volatile];
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

impl VolLevel {
    /// Every level, in order.
    pub const ALL: [VolLevel; 4] = [VolLevel::Low, VolLevel::Medium, VolLevel::High, VolLevel::Extreme];
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

impl Liquidity {
    /// Every level, in order.
    pub const ALL: [Liquidity; 3] = [Liquidity::Low, Liquidity::Medium, Liquidity::High];
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
        n => sorted[rank(q, n)],
    }
}

/// Index of the nearest-rank `q`-quantile among `n` sorted values.
fn rank(q: f64, n: usize) -> usize {
    ((q * (n - 1) as f64).round() as usize).min(n - 1)
}

/// Volatility level of NATR `x` against the history's quantiles (the `vol_quantiles` cuts).
fn vol_level(x: f64, cuts: &[f64]) -> VolLevel {
    match x {
        x if x > cuts[2] => VolLevel::Extreme,
        x if x > cuts[1] => VolLevel::High,
        x if x >= cuts[0] => VolLevel::Medium,
        _ => VolLevel::Low,
    }
}

/// Liquidity level of rolling volume `x` against the history's quantiles (the
/// `liquidity_quantiles` cuts).
fn liquidity_level(x: f64, cuts: &[f64]) -> Liquidity {
    match x {
        x if x > cuts[1] => Liquidity::High,
        x if x >= cuts[0] => Liquidity::Medium,
        _ => Liquidity::Low,
    }
}

/// The regime of ADX `adx` at volatility `volatility`.
fn regime_of(adx: f64, volatility: VolLevel, th: &StateThresholds) -> Regime {
    if adx >= th.trend_adx {
        Regime::Trending
    } else if volatility >= VolLevel::High {
        Regime::Volatile
    } else if adx < th.range_adx {
        Regime::Ranging
    } else {
        Regime::Choppy
    }
}

/// The performance level of a 7-day PnL %.
pub fn performance_of(recent_pnl_pct: f64, th: &StateThresholds) -> Performance {
    if recent_pnl_pct >= th.good_pnl_pct {
        Performance::Good
    } else if recent_pnl_pct <= th.poor_pnl_pct {
        Performance::Poor
    } else {
        Performance::Neutral
    }
}

/// Bars of history a state needs before bar `t` can be read.
fn history_needed(th: &StateThresholds) -> usize {
    2 * th.period + th.liquidity_bars
}

fn check_bar(bars: &Bars, t: usize, th: &StateThresholds) -> Result<()> {
    let (n, need) = (bars.len(), history_needed(th));
    if t >= n || t < need {
        return Err(Error::InvalidParam {
            field: "rl.meta_state.bar".into(),
            reason: format!(
                "bar {t} of {}: needs {need} bars of history and a bar inside the series ({n} bars)",
                bars.symbol()
            ),
        });
    }
    Ok(())
}

fn check_pnl(recent_pnl_pct: f64) -> Result<()> {
    if !recent_pnl_pct.is_finite() {
        return Err(Error::InvalidParam {
            field: "rl.meta_state.recent_pnl_pct".into(),
            reason: format!("{recent_pnl_pct}"),
        });
    }
    Ok(())
}

/// The meta-strategy state at bar `t` of `bars` (bars after `t` are never read), for a
/// strategy whose last 7 days made `recent_pnl_pct`. This recomputes the indicators over
/// the history on every call: [`MarketView`] computes them once for many bars.
pub fn meta_state(bars: &Bars, t: usize, recent_pnl_pct: f64, th: &StateThresholds) -> Result<MetaState> {
    check_bar(bars, t, th)?;
    check_pnl(recent_pnl_pct)?;
    let (h, l, c, v) = (&bars.high()[..=t], &bars.low()[..=t], &bars.close()[..=t], &bars.volume()[..=t]);
    let natr = natr(h, l, c, th.period);
    let adx = adx_di(h, l, c, th.period)[0][t];
    let sorted = sorted_finite(&natr);
    let volatility = vol_level(natr[t], &th.vol_quantiles.map(|q| quantile(&sorted, q)));
    let rolling = sma(v, th.liquidity_bars.max(1));
    let sorted = sorted_finite(&rolling);
    let liquidity = liquidity_level(rolling[t], &th.liquidity_quantiles.map(|q| quantile(&sorted, q)));
    let regime = regime_of(adx, volatility, th);
    Ok(MetaState { regime, volatility, liquidity, performance: performance_of(recent_pnl_pct, th) })
}

/// One symbol's market levels at every bar, computed in one pass: the same values
/// [`meta_state`] gives bar by bar (the indicators are causal, and each bar's quantiles are
/// those of the history up to it, read from a rank tree), for hosts and replays that ask for
/// many bars.
#[derive(Clone, Debug)]
pub struct MarketView {
    bars: Bars,
    th: StateThresholds,
    regime: Vec<Regime>,
    volatility: Vec<VolLevel>,
    liquidity: Vec<Liquidity>,
}

impl MarketView {
    /// The levels of every bar of `bars` under `th`.
    pub fn new(bars: &Bars, th: &StateThresholds) -> MarketView {
        let (h, l, c) = (bars.high(), bars.low(), bars.close());
        let natr = natr(h, l, c, th.period);
        let adx = &adx_di(h, l, c, th.period)[0];
        let rolling = sma(bars.volume(), th.liquidity_bars.max(1));
        let vq = expanding_quantiles(&natr, &th.vol_quantiles);
        let lq = expanding_quantiles(&rolling, &th.liquidity_quantiles);
        let mut regime = Vec::with_capacity(bars.len());
        let mut volatility = Vec::with_capacity(bars.len());
        let mut liquidity = Vec::with_capacity(bars.len());
        for t in 0..bars.len() {
            let vol = vol_level(natr[t], &vq[t]);
            volatility.push(vol);
            liquidity.push(liquidity_level(rolling[t], &lq[t]));
            regime.push(regime_of(adx[t], vol, th));
        }
        MarketView { bars: bars.clone(), th: th.clone(), regime, volatility, liquidity }
    }

    /// The candles.
    pub fn bars(&self) -> &Bars {
        &self.bars
    }

    /// The last bar that had closed at `ms` (epoch milliseconds), if any. Timestamps are
    /// open times: a bar closes when the next one opens (the last bar after the interval
    /// before it), so a state read at `ms` never sees a bar still forming.
    pub fn bar_at(&self, ms: i64) -> Option<usize> {
        let ts = self.bars.timestamps();
        let n = ts.len();
        let opened = ts.partition_point(|&t| t <= ms);
        if opened == n && n >= 2 && ts[n - 1] + (ts[n - 1] - ts[n - 2]) <= ms {
            return Some(n - 1);
        }
        opened.checked_sub(2)
    }

    /// Whether bar `bar` (as [`MarketView::bar_at`] gave it for `ms`) is the series' last
    /// and `ms` lies a whole bar or more past its close: the candles ended before `ms`, and
    /// their last bar says nothing of the market then.
    pub fn is_stale(&self, bar: usize, ms: i64) -> bool {
        let ts = self.bars.timestamps();
        let n = ts.len();
        if bar + 1 < n || n < 2 {
            return false;
        }
        let step = ts[n - 1] - ts[n - 2];
        ms >= ts[n - 1] + 2 * step
    }

    /// Regime, volatility and liquidity at bar `t` (refused, like [`meta_state`], without
    /// enough history).
    pub fn market(&self, t: usize) -> Result<(Regime, VolLevel, Liquidity)> {
        check_bar(&self.bars, t, &self.th)?;
        Ok((self.regime[t], self.volatility[t], self.liquidity[t]))
    }

    /// The meta-strategy state at bar `t` for a 7-day PnL of `recent_pnl_pct`.
    pub fn state(&self, t: usize, recent_pnl_pct: f64) -> Result<MetaState> {
        let (regime, volatility, liquidity) = self.market(t)?;
        check_pnl(recent_pnl_pct)?;
        Ok(MetaState { regime, volatility, liquidity, performance: performance_of(recent_pnl_pct, &self.th) })
    }
}

/// For every index `t`, the nearest-rank `qs` quantiles of the finite values of `v[..=t]`
/// (+∞ before the first finite value), from a Fenwick tree over the values' ranks: one
/// O(n log n) pass instead of a sort per bar.
fn expanding_quantiles(v: &[f64], qs: &[f64]) -> Vec<Vec<f64>> {
    let sorted = sorted_finite(v);
    let m = sorted.len();
    let mut tree = vec![0usize; m + 1];
    let mut seen = 0usize;
    // Equal values share the rank of their first copy: any copy gives the same quantile.
    let mut out = Vec::with_capacity(v.len());
    for &x in v {
        if x.is_finite() {
            let r = sorted.partition_point(|&s| s < x);
            let mut i = r + 1;
            while i <= m {
                tree[i] += 1;
                i += i & i.wrapping_neg();
            }
            seen += 1;
        }
        out.push(
            qs.iter().map(|&q| if seen == 0 { f64::INFINITY } else { sorted[kth(&tree, rank(q, seen))] }).collect(),
        );
    }
    out
}

/// The 0-based position in rank order of the `k`-th (0-based) inserted value.
fn kth(tree: &[usize], k: usize) -> usize {
    let m = tree.len() - 1;
    let mut pos = 0;
    let mut rest = k + 1;
    let mut step = m.next_power_of_two();
    while step > 0 {
        if pos + step <= m && tree[pos + step] < rest {
            pos += step;
            rest -= tree[pos];
        }
        step >>= 1;
    }
    pos
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

    #[test]
    fn the_market_view_reads_every_bar_as_meta_state_does() {
        let bars = candles(
            700,
            |i| if (i / 150) % 2 == 0 { 0.004 } else { -0.001 },
            |i| if (300..420).contains(&i) { 0.03 } else { 0.006 },
            |i| 1.0 + ((i * 7919) % 101) as f64 + if i > 500 { 300.0 } else { 0.0 },
        );
        let th = StateThresholds::default();
        let view = MarketView::new(&bars, &th);
        let mut seen = std::collections::BTreeSet::new();
        for t in 0..bars.len() {
            for pnl in [-3.0, 0.0, 3.0] {
                match (meta_state(&bars, t, pnl, &th), view.state(t, pnl)) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a, b, "bar {t}");
                        seen.insert((a.regime, a.volatility, a.liquidity));
                    }
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                    (a, b) => panic!("bar {t}: {a:?} vs {b:?}"),
                }
            }
        }
        // The series visits several regimes and levels, so the comparison is not vacuous.
        assert!(seen.len() >= 6, "{seen:?}");
        // Bar 10 has closed when bar 11 opens, not before.
        let ts = bars.timestamps();
        assert_eq!(view.bar_at(ts[11]), Some(10));
        assert_eq!(view.bar_at(ts[11] - 1), Some(9));
        assert_eq!(view.bar_at(ts[1] - 1), None);
        let last = ts[ts.len() - 1] + (ts[1] - ts[0]);
        assert_eq!((view.bar_at(last - 1), view.bar_at(last)), (Some(ts.len() - 2), Some(ts.len() - 1)));
        let step = ts[1] - ts[0];
        assert!(!view.is_stale(ts.len() - 1, last + step - 1) && view.is_stale(ts.len() - 1, last + step));
        assert!(!view.is_stale(10, ts[11]));
    }
}
