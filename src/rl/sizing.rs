//! The position-sizing agent's vocabulary, and the limits no learned value can pass.
//!
//! A state is (regime, signal confidence, portfolio exposure, recent win rate, volatility);
//! an action is a size multiplier {0.3, 0.5, 0.7, 1.0, 1.5} × leverage {1, 2, 3, 5, 7, 10} ×
//! take-profit {conservative, balanced, aggressive} × stop-loss {tight, medium, wide}: 270
//! actions. A closed trade's reward is `pnl% − 0.05·hours − 3·|max drawdown%| + 1 if the
//! take-profit was hit − 0.5 if the stop-loss was`. Whatever the table picks, [`clamp`] then
//! applies the policy's limits — leverage, risk per trade as a share of the balance, open
//! positions, the balance itself — so the agent can only ever size within them.

pub use crate::config::rl::SizingLimits;
use crate::rl::meta_strategy::{Regime, VolLevel, upper};
use crate::rl::qtable::Action;
use crate::{Error, Result};

/// Size multipliers, in action order.
pub const SIZES: [f64; 5] = [0.3, 0.5, 0.7, 1.0, 1.5];
/// Leverage choices, in action order.
pub const LEVERAGES: [u32; 6] = [1, 2, 3, 5, 7, 10];

/// Three ordered buckets (signal confidence, exposure, win rate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// Below the lower threshold.
    Low,
    /// Between the thresholds.
    Medium,
    /// At or above the upper threshold.
    High,
}

impl Bucket {
    /// The bucket of `v` for thresholds `lo < hi`.
    pub fn of(v: f64, lo: f64, hi: f64) -> Bucket {
        if v < lo {
            Bucket::Low
        } else if v < hi {
            Bucket::Medium
        } else {
            Bucket::High
        }
    }
}

/// The sizing agent's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SizingState {
    /// Market regime.
    pub regime: Regime,
    /// Signal confidence.
    pub confidence: Bucket,
    /// Portfolio exposure.
    pub exposure: Bucket,
    /// Recent win rate.
    pub win_rate: Bucket,
    /// Volatility level.
    pub volatility: VolLevel,
}

impl SizingState {
    /// The stable table key, e.g. `TRENDING_CONF_HIGH_EXP_LOW_WIN_MEDIUM_VOL_HIGH`.
    pub fn key(&self) -> String {
        format!(
            "{}_CONF_{}_EXP_{}_WIN_{}_VOL_{}",
            upper(&self.regime),
            upper(&self.confidence),
            upper(&self.exposure),
            upper(&self.win_rate),
            upper(&self.volatility)
        )
    }
}

/// How far the take-profit sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TakeProfit {
    /// Close.
    Conservative,
    /// Middle.
    Balanced,
    /// Far.
    Aggressive,
}

impl TakeProfit {
    /// Every choice, in action order.
    pub const ALL: [TakeProfit; 3] = [TakeProfit::Conservative, TakeProfit::Balanced, TakeProfit::Aggressive];
}

/// How far the stop-loss sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StopLoss {
    /// Close.
    Tight,
    /// Middle.
    Medium,
    /// Far.
    Wide,
}

impl StopLoss {
    /// Every choice, in action order.
    pub const ALL: [StopLoss; 3] = [StopLoss::Tight, StopLoss::Medium, StopLoss::Wide];
}

/// One sizing action: indices into [`SIZES`] and [`LEVERAGES`], and the exit choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SizingAction {
    /// Index into [`SIZES`].
    pub size: u8,
    /// Index into [`LEVERAGES`].
    pub leverage: u8,
    /// Take-profit distance.
    pub take_profit: TakeProfit,
    /// Stop-loss distance.
    pub stop_loss: StopLoss,
}

impl SizingAction {
    /// The size multiplier.
    pub fn size_multiplier(&self) -> f64 {
        SIZES[self.size as usize]
    }

    /// The leverage asked for.
    pub fn leverage(&self) -> u32 {
        LEVERAGES[self.leverage as usize]
    }
}

impl Action for SizingAction {
    fn all() -> Vec<Self> {
        let mut out = Vec::with_capacity(270);
        for size in 0..SIZES.len() as u8 {
            for leverage in 0..LEVERAGES.len() as u8 {
                for take_profit in TakeProfit::ALL {
                    for stop_loss in StopLoss::ALL {
                        out.push(SizingAction { size, leverage, take_profit, stop_loss });
                    }
                }
            }
        }
        out
    }

    fn key(&self) -> String {
        let l = |v: &dyn std::fmt::Debug| format!("{v:?}").to_lowercase();
        format!(
            "size{}_lev{}_tp_{}_sl_{}",
            self.size_multiplier(),
            self.leverage(),
            l(&self.take_profit),
            l(&self.stop_loss)
        )
    }
}

/// Reward of a closed trade (percentages as numbers: 3 for +3 %).
pub fn sizing_reward(
    pnl_pct: f64,
    hours: f64,
    max_drawdown_pct: f64,
    hit_take_profit: bool,
    hit_stop_loss: bool,
) -> f64 {
    pnl_pct - 0.05 * hours - 3.0 * max_drawdown_pct.abs() + if hit_take_profit { 1.0 } else { 0.0 }
        - if hit_stop_loss { 0.5 } else { 0.0 }
}

/// What the host knows when a trade opens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizingContext {
    /// Account balance.
    pub balance: f64,
    /// Share of the balance a size multiplier of 1 commits as margin.
    pub base_fraction: f64,
    /// The chosen stop's distance from entry, as a fraction of the entry price (> 0).
    pub stop_distance: f64,
    /// Positions already open.
    pub open_positions: usize,
}

/// A position after the limits.
#[derive(Clone, Debug, PartialEq)]
pub struct SizedPosition {
    /// Margin committed.
    pub margin: f64,
    /// Leverage applied (≤ the limit).
    pub leverage: u32,
    /// Position value: margin × leverage.
    pub notional: f64,
    /// Loss at the stop: notional × stop distance (≤ max risk × balance).
    pub risk: f64,
    /// Which limits cut the action down (empty when none did).
    pub limited_by: Vec<&'static str>,
}

/// Size `action` within `limits`: leverage capped, margin at most the balance, the loss at the
/// stop at most `max_risk_per_trade × balance`, nothing at all when the open positions are
/// already at their limit. Bad inputs (a non-positive balance or stop distance, NaN) are errors.
pub fn clamp(action: &SizingAction, ctx: &SizingContext, limits: &SizingLimits) -> Result<SizedPosition> {
    let bad = |field: &str, v: f64| {
        Err(Error::InvalidParam {
            field: format!("sizing.{field}"),
            reason: format!("must be finite and > 0, got {v}"),
        })
    };
    for (field, v) in [
        ("balance", ctx.balance),
        ("base_fraction", ctx.base_fraction),
        ("stop_distance", ctx.stop_distance),
        ("max_risk_per_trade", limits.max_risk_per_trade),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return bad(field, v);
        }
    }
    if limits.max_leverage == 0 {
        return bad("max_leverage", 0.0);
    }
    let mut limited_by = Vec::new();
    if ctx.open_positions >= limits.max_open_positions {
        limited_by.push("max_open_positions");
        return Ok(SizedPosition { margin: 0.0, leverage: 0, notional: 0.0, risk: 0.0, limited_by });
    }
    let leverage = if action.leverage() > limits.max_leverage {
        limited_by.push("max_leverage");
        limits.max_leverage
    } else {
        action.leverage()
    };
    let mut margin = ctx.base_fraction * action.size_multiplier() * ctx.balance;
    if margin > ctx.balance {
        limited_by.push("balance");
        margin = ctx.balance;
    }
    let max_risk = limits.max_risk_per_trade * ctx.balance;
    if margin * leverage as f64 * ctx.stop_distance > max_risk {
        limited_by.push("max_risk_per_trade");
        margin = max_risk / ctx.stop_distance / leverage as f64;
    }
    let notional = margin * leverage as f64;
    Ok(SizedPosition { margin, leverage, notional, risk: notional * ctx.stop_distance, limited_by })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rewards_match_worked_examples() {
        // +3 % over 4 h, 1 % drawdown, take-profit hit: 3 − 0.2 − 3 + 1 = 0.8.
        assert!((sizing_reward(3.0, 4.0, 1.0, true, false) - 0.8).abs() < 1e-12);
        // −1.5 % over 10 h, −2 % drawdown, stopped out: −1.5 − 0.5 − 6 − 0.5 = −8.5.
        assert!((sizing_reward(-1.5, 10.0, -2.0, false, true) + 8.5).abs() < 1e-12);
    }

    #[test]
    fn there_are_270_distinct_actions_with_stable_keys() {
        let all = SizingAction::all();
        assert_eq!(all.len(), 270);
        let keys: std::collections::BTreeSet<String> = all.iter().map(Action::key).collect();
        assert_eq!(keys.len(), 270);
        assert_eq!(all[0].key(), "size0.3_lev1_tp_conservative_sl_tight");
        assert_eq!(all[269].key(), "size1.5_lev10_tp_aggressive_sl_wide");
        let s = SizingState {
            regime: Regime::Trending,
            confidence: Bucket::of(0.8, 0.55, 0.7),
            exposure: Bucket::of(0.1, 0.3, 0.6),
            win_rate: Bucket::of(0.55, 0.45, 0.6),
            volatility: VolLevel::High,
        };
        assert_eq!(s.key(), "TRENDING_CONF_HIGH_EXP_LOW_WIN_MEDIUM_VOL_HIGH");
    }

    #[test]
    fn limits_cut_by_hand() {
        let limits = SizingLimits { max_risk_per_trade: 0.02, max_leverage: 3, max_open_positions: 2 };
        let ctx = SizingContext { balance: 10_000.0, base_fraction: 0.1, stop_distance: 0.02, open_positions: 0 };
        // size 1.0 × leverage 10 asked: leverage 3; margin 1,000, notional 3,000, risk 60 ≤ 200.
        let a = SizingAction { size: 3, leverage: 5, take_profit: TakeProfit::Balanced, stop_loss: StopLoss::Tight };
        let s = clamp(&a, &ctx, &limits).unwrap();
        assert_eq!((s.leverage, s.margin, s.notional), (3, 1000.0, 3000.0));
        assert!((s.risk - 60.0).abs() < 1e-9);
        assert_eq!(s.limited_by, ["max_leverage"]);
        // A 10 % stop: 3,000 × 0.1 = 300 > 200, so the notional shrinks to 2,000.
        let s = clamp(&a, &SizingContext { stop_distance: 0.1, ..ctx }, &limits).unwrap();
        assert!((s.notional - 2000.0).abs() < 1e-9 && (s.risk - 200.0).abs() < 1e-9);
        assert_eq!(s.limited_by, ["max_leverage", "max_risk_per_trade"]);
        // Within every limit: untouched.
        let small = SizingAction { size: 0, leverage: 0, ..a };
        assert!(clamp(&small, &ctx, &limits).unwrap().limited_by.is_empty());
        // Positions full: nothing.
        let s = clamp(&a, &SizingContext { open_positions: 2, ..ctx }, &limits).unwrap();
        assert_eq!((s.notional, s.limited_by.clone()), (0.0, vec!["max_open_positions"]));
        // Bad input is named.
        let e = clamp(&a, &SizingContext { stop_distance: f64::NAN, ..ctx }, &limits).unwrap_err().to_string();
        assert!(e.contains("stop_distance"), "{e}");
    }

    proptest! {
        /// No action, whatever its learned value, sizes past a limit.
        #[test]
        fn no_action_exceeds_the_limits(
            idx in 0usize..270,
            balance in 1.0f64..1e7,
            base_fraction in 0.001f64..2.0,
            stop_distance in 1e-4f64..0.5,
            open_positions in 0usize..8,
            max_risk in 0.001f64..0.1,
            max_leverage in 1u32..12,
            max_open in 1usize..6,
        ) {
            let a = SizingAction::all()[idx];
            let limits = SizingLimits { max_risk_per_trade: max_risk, max_leverage, max_open_positions: max_open };
            let ctx = SizingContext { balance, base_fraction, stop_distance, open_positions };
            let s = clamp(&a, &ctx, &limits).unwrap();
            prop_assert!(s.leverage <= max_leverage);
            prop_assert!(s.margin <= balance * (1.0 + 1e-12));
            prop_assert!(s.risk <= max_risk * balance * (1.0 + 1e-9));
            prop_assert!(s.notional <= a.size_multiplier() * base_fraction * balance * a.leverage() as f64 * (1.0 + 1e-12));
            if open_positions >= max_open {
                prop_assert_eq!(s.notional, 0.0);
            }
        }
    }
}
