//! Settings of the two reinforcement-learning agents, the `[rl]` table of the policy: how they
//! learn (`[rl.learning]`), how states are derived from candles (`[rl.states]`) and from the
//! host's numbers (the bucket thresholds), the hard limits on a position (`[rl.limits]`), and
//! their upkeep: a snapshot every `snapshot_every` updates, pruning of long-unvisited states,
//! and a reset when the market regime changes for good.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The `[rl]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlPolicy {
    /// Store the live table as a new ACTIVE version after this many updates (default 500).
    pub snapshot_every: u64,
    /// Drop states not updated in this many updates (default 10,000; 0 never prunes).
    pub prune_after_updates: u64,
    /// Archive the table and start afresh (ε back to `learning.epsilon_start`) when the
    /// market regime has changed and held for `regime_sustain_days` (default true).
    pub reset_on_regime_change: bool,
    /// Closed trades the recent win rate is taken over (default 20).
    pub win_rate_trades: usize,
    /// Signal confidence below the first value is LOW, from the second HIGH (default 0.55, 0.70).
    pub confidence_buckets: [f64; 2],
    /// Portfolio exposure (share of capital in positions) buckets (default 0.3, 0.6).
    pub exposure_buckets: [f64; 2],
    /// Recent win rate buckets (default 0.45, 0.55).
    pub win_rate_buckets: [f64; 2],
    /// ε-greedy Q-learning settings.
    pub learning: QConfig,
    /// Meta-strategy state thresholds.
    pub states: StateThresholds,
    /// Limits every sized position is clamped to.
    pub limits: SizingLimits,
}

impl Default for RlPolicy {
    fn default() -> Self {
        RlPolicy {
            snapshot_every: 500,
            prune_after_updates: 10_000,
            reset_on_regime_change: true,
            win_rate_trades: 20,
            confidence_buckets: [0.55, 0.70],
            exposure_buckets: [0.3, 0.6],
            win_rate_buckets: [0.45, 0.55],
            learning: QConfig::default(),
            states: StateThresholds::default(),
            limits: SizingLimits::default(),
        }
    }
}

impl RlPolicy {
    /// Check every value; the error names the key (`rl.states.trend_adx`, …).
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| Err(Error::param(format!("rl.{field}"), reason));
        if self.snapshot_every == 0 {
            return bad("snapshot_every", "must be at least 1".into());
        }
        if self.win_rate_trades == 0 {
            return bad("win_rate_trades", "must be at least 1".into());
        }
        for (field, [lo, hi]) in [
            ("confidence_buckets", self.confidence_buckets),
            ("exposure_buckets", self.exposure_buckets),
            ("win_rate_buckets", self.win_rate_buckets),
        ] {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return bad(field, format!("needs two increasing finite thresholds, got [{lo}, {hi}]"));
            }
        }
        self.learning.validate()?;
        let s = &self.states;
        if s.period == 0 || s.liquidity_bars == 0 {
            return bad("states.period", "the ADX/ATR period and liquidity_bars must be at least 1".into());
        }
        if !(s.range_adx.is_finite() && s.trend_adx.is_finite() && s.range_adx <= s.trend_adx) {
            return bad("states.range_adx", format!("must not exceed trend_adx ({} > {})", s.range_adx, s.trend_adx));
        }
        let increasing = |q: &[f64]| q.iter().all(|v| (0.0..=1.0).contains(v)) && q.windows(2).all(|w| w[0] < w[1]);
        if !increasing(&s.vol_quantiles) {
            return bad("states.vol_quantiles", format!("must increase inside [0, 1], got {:?}", s.vol_quantiles));
        }
        if !increasing(&s.liquidity_quantiles) {
            return bad(
                "states.liquidity_quantiles",
                format!("must increase inside [0, 1], got {:?}", s.liquidity_quantiles),
            );
        }
        if !(s.poor_pnl_pct.is_finite() && s.good_pnl_pct.is_finite() && s.poor_pnl_pct < s.good_pnl_pct) {
            return bad("states.good_pnl_pct", "must be finite and above poor_pnl_pct".into());
        }
        let l = &self.limits;
        if !(l.max_risk_per_trade > 0.0 && l.max_risk_per_trade <= 1.0) {
            return bad("limits.max_risk_per_trade", format!("must be in (0, 1], got {}", l.max_risk_per_trade));
        }
        if l.max_leverage == 0 || l.max_open_positions == 0 {
            return bad("limits.max_leverage", "max_leverage and max_open_positions must be at least 1".into());
        }
        Ok(())
    }
}

/// Learning settings of both agents (`[rl.learning]`). ε starts at `epsilon_start` and is multiplied by `epsilon_decay` after
/// every update, never going below `epsilon_floor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QConfig {
    /// α, the step towards each new target (0 < α ≤ 1).
    pub learning_rate: f64,
    /// γ, the weight of the next state's best value (0 ≤ γ < 1).
    pub discount: f64,
    /// ε of a fresh table (also the value a regime reset restarts from).
    pub epsilon_start: f64,
    /// Lowest ε reached by decay.
    pub epsilon_floor: f64,
    /// Factor applied to ε after each update (0 < decay ≤ 1).
    pub epsilon_decay: f64,
    /// Seed of the exploration draws.
    pub seed: u64,
}

impl Default for QConfig {
    /// α 0.1, γ 0.9, ε from 0.5 decaying by 0.995 per update to 0.05 (about 460 updates).
    fn default() -> Self {
        QConfig {
            learning_rate: 0.1,
            discount: 0.9,
            epsilon_start: 0.5,
            epsilon_floor: 0.05,
            epsilon_decay: 0.995,
            seed: 0,
        }
    }
}

impl QConfig {
    /// Check every value's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: &str| {
            Err(Error::InvalidParam { field: format!("rl.learning.{field}"), reason: reason.to_string() })
        };
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad("learning_rate", "must be in (0, 1]");
        }
        if !(0.0..1.0).contains(&self.discount) {
            return bad("discount", "must be in [0, 1)");
        }
        if !(0.0..=1.0).contains(&self.epsilon_floor) || !(0.0..=1.0).contains(&self.epsilon_start) {
            return bad("epsilon_start", "ε and its floor must be in [0, 1]");
        }
        if self.epsilon_floor > self.epsilon_start {
            return bad("epsilon_floor", "must not exceed epsilon_start");
        }
        if !(self.epsilon_decay > 0.0 && self.epsilon_decay <= 1.0) {
            return bad("epsilon_decay", "must be in (0, 1]");
        }
        Ok(())
    }
}

/// The thresholds the meta-strategy state is derived with (`[rl.states]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// The policy's hard limits on a position (`[rl.limits]`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SizingLimits {
    /// Most of the balance one trade may lose at its stop (0.02 = 2 %).
    pub max_risk_per_trade: f64,
    /// Highest leverage.
    pub max_leverage: u32,
    /// Most positions open at once.
    pub max_open_positions: usize,
}

impl Default for SizingLimits {
    /// 2 % of the balance at risk per trade, leverage up to 5, 5 positions open at once.
    fn default() -> Self {
        SizingLimits { max_risk_per_trade: 0.02, max_leverage: 5, max_open_positions: 5 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_each_bad_value_names_its_key() {
        RlPolicy::default().validate().unwrap();
        type Spoil = Box<dyn Fn(&mut RlPolicy)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("rl.snapshot_every", Box::new(|p| p.snapshot_every = 0)),
            ("rl.exposure_buckets", Box::new(|p| p.exposure_buckets = [0.6, 0.3])),
            ("rl.learning.discount", Box::new(|p| p.learning.discount = 1.0)),
            ("rl.states.range_adx", Box::new(|p| p.states.range_adx = 30.0)),
            ("rl.states.vol_quantiles", Box::new(|p| p.states.vol_quantiles = [0.5, 0.4, 0.9])),
            ("rl.states.good_pnl_pct", Box::new(|p| p.states.good_pnl_pct = f64::NAN)),
            ("rl.limits.max_risk_per_trade", Box::new(|p| p.limits.max_risk_per_trade = 0.0)),
            ("rl.limits.max_leverage", Box::new(|p| p.limits.max_open_positions = 0)),
        ];
        for (key, spoil) in cases {
            let mut p = RlPolicy::default();
            spoil(&mut p);
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
