//! The meta-strategy agent's vocabulary: which trading style suits the market now.
//!
//! A state is (regime, volatility level, liquidity level, recent performance), keyed as
//! `TRENDING_HIGH_MEDIUM_GOOD`; the actions are five styles. A closed trade's reward is
//! `pnl% + (24 / max(hours, 0.1))·0.1 − 2·|max drawdown%| + (win rate − 0.5)·10`: profit,
//! a bonus for making it quickly, a penalty twice the drawdown suffered, and credit for a
//! style that wins more often than not.

use crate::rl::qtable::Action;

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
fn upper(v: &impl std::fmt::Debug) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
