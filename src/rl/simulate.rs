//! A trade log from candles: a simple book of rule-based trades, so the agents can be
//! replayed and demonstrated on real history without a live engine's log.
//!
//! Every `every_bars` bars a trade opens at the close. Its style is drawn at random (seeded),
//! and so is its sizing action: the log records a uniformly exploring behaviour, which is what
//! off-policy Q-learning needs to compare every action. Each style reads only bars up to the
//! entry:
//! - trend_follow: the side of the close against its 48-bar mean;
//! - mean_reversion: against the last 24 bars' move;
//! - breakout: the side of a break of the previous 48 bars' high or low, else the last 12
//!   bars' move;
//! - range_bound: back towards the 24-bar mean;
//! - defensive: the 24-bar mean against the 72-bar mean, with exits half as far.
//!
//! The take-profit sits 1, 2 or 3 ATRs away (conservative, balanced, aggressive), the stop
//! 0.75, 1.5 or 2.5 ATRs (tight, medium, wide); a bar that reaches both counts as the stop
//! (the cautious reading of an OHLC bar). A trade still open after `max_hold_bars` closes at
//! the close. Results are in % of the margin: the price move times size multiplier times
//! leverage, with no costs. Confidence is the distance of the close from its 48-bar mean in
//! ATRs (two ATRs or more is 1); exposure is the open trades' share of five.

use crate::data::Bars;
use crate::features::trend::sma;
use crate::features::volatility::atr;
use crate::rl::meta_strategy::{MarketView, Strategy};
use crate::rl::qtable::Action;
use crate::rl::sizing::{SizingAction, StopLoss, TakeProfit};
use crate::rl::tradelog::Trade;
use crate::rng::Rng;
use crate::{Error, Result};

/// How the book trades.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Bars between entries (default 6).
    pub every_bars: usize,
    /// Longest a trade stays open, in bars (default 48).
    pub max_hold_bars: usize,
    /// Seed of the style and sizing draws (default 7).
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { every_bars: 6, max_hold_bars: 48, seed: 7 }
    }
}

/// The book's trades over `bars`, regimes read through `view` (built on the same bars).
/// Volatility and liquidity are left out of the log, so a replay derives them from the
/// candles as it would for a log that lacks them.
pub fn simulate(view: &MarketView, cfg: &SimConfig) -> Result<Vec<Trade>> {
    if cfg.every_bars == 0 || cfg.max_hold_bars == 0 {
        return Err(Error::param("simulate.every_bars", "every_bars and max_hold_bars must be at least 1"));
    }
    let bars: &Bars = view.bars();
    let (h, l, c, ts) = (bars.high(), bars.low(), bars.close(), bars.timestamps());
    let n = bars.len();
    let atr = atr(h, l, c, 14);
    let (m24, m48, m72) = (sma(c, 24), sma(c, 48), sma(c, 72));
    let strategies = Strategy::all();
    let sizings = SizingAction::all();
    let sign = |x: f64| if x >= 0.0 { 1.0 } else { -1.0 };
    let mut trades: Vec<Trade> = Vec::new();
    let mut exits: Vec<usize> = Vec::new();
    let mut t = 72;
    while t + 2 < n {
        let Ok((regime, _, _)) = view.market(t) else {
            t += 1;
            continue;
        };
        if !(atr[t].is_finite() && atr[t] > 0.0 && m72[t].is_finite()) {
            t += 1;
            continue;
        }
        let mut rng = Rng::stream(cfg.seed, trades.len() as u64);
        let strategy = strategies[rng.below(strategies.len())];
        let sizing = sizings[rng.below(sizings.len())];
        let prior_high = h[t - 48..t].iter().copied().fold(f64::MIN, f64::max);
        let prior_low = l[t - 48..t].iter().copied().fold(f64::MAX, f64::min);
        let side = match strategy {
            Strategy::TrendFollow => sign(c[t] - m48[t]),
            Strategy::MeanReversion => -sign(c[t] - c[t - 24]),
            Strategy::Breakout if c[t] > prior_high => 1.0,
            Strategy::Breakout if c[t] < prior_low => -1.0,
            Strategy::Breakout => sign(c[t] - c[t - 12]),
            Strategy::RangeBound => -sign(c[t] - m24[t]),
            Strategy::Defensive => sign(m24[t] - m72[t]),
        };
        let scale = if strategy == Strategy::Defensive { 0.5 } else { 1.0 };
        let tp = atr[t]
            * scale
            * match sizing.take_profit {
                TakeProfit::Conservative => 1.0,
                TakeProfit::Balanced => 2.0,
                TakeProfit::Aggressive => 3.0,
            };
        let sl = atr[t]
            * scale
            * match sizing.stop_loss {
                StopLoss::Tight => 0.75,
                StopLoss::Medium => 1.5,
                StopLoss::Wide => 2.5,
            };
        let entry = c[t];
        let (mut exit, mut exit_bar, mut worst, mut hit_tp, mut hit_sl) = (c[t], t, 0.0f64, false, false);
        // The trade's close must have a closing time: the bar after it opens.
        for k in t + 1..=(t + cfg.max_hold_bars).min(n - 2) {
            let adverse = if side > 0.0 { entry - l[k] } else { h[k] - entry };
            let favourable = if side > 0.0 { h[k] - entry } else { entry - l[k] };
            exit_bar = k;
            if adverse >= sl {
                (exit, hit_sl) = (entry - side * sl, true);
                worst = worst.max(sl);
                break;
            }
            worst = worst.max(adverse);
            if favourable >= tp {
                (exit, hit_tp) = (entry + side * tp, true);
                break;
            }
            exit = c[k];
        }
        let levered = 100.0 * sizing.size_multiplier() * sizing.leverage() as f64 / entry;
        let open = exits.iter().filter(|&&e| e > t).count();
        let entry_time = jiff::Timestamp::from_millisecond(ts[t + 1])
            .map_err(|e| Error::param("simulate.timestamp", e.to_string()))?;
        trades.push(Trade {
            row: trades.len() + 1,
            entry_time,
            symbol: bars.symbol().to_string(),
            regime,
            strategy,
            confidence: ((c[t] - m48[t]).abs() / (2.0 * atr[t])).min(1.0),
            exposure: (open as f64 / 5.0).min(1.0),
            sizing,
            pnl_pct: side * (exit - entry) * levered,
            hours: (ts[exit_bar + 1] - ts[t + 1]) as f64 / 3_600_000.0,
            max_drawdown_pct: -worst.max(0.0) * levered,
            hit_tp,
            hit_sl,
            volatility: None,
            liquidity: None,
        });
        exits.push(exit_bar);
        t += cfg.every_bars;
    }
    if trades.is_empty() {
        return Err(Error::param(
            "simulate.bars",
            format!("{}: {n} bars are too few for a trade (the states need their history)", bars.symbol()),
        ));
    }
    Ok(trades)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rl::StateThresholds;

    fn bars() -> Bars {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/btcusd_coinbase_1h.csv");
        let all = crate::data::read_bars(path).unwrap().remove(0);
        all.slice(0, 2000).unwrap()
    }

    #[test]
    fn trades_follow_their_exits_and_reproduce_by_seed() {
        let b = bars();
        let view = MarketView::new(&b, &StateThresholds::default());
        let cfg = SimConfig::default();
        let trades = simulate(&view, &cfg).unwrap();
        assert!(trades.len() > 250, "{}", trades.len());
        assert_eq!(trades, simulate(&view, &cfg).unwrap());
        assert_ne!(trades, simulate(&view, &SimConfig { seed: 8, ..cfg.clone() }).unwrap());
        for t in &trades {
            assert!(!(t.hit_tp && t.hit_sl));
            assert!(t.hours > 0.0 && t.hours <= 48.0, "{t:?}");
            assert!(t.max_drawdown_pct <= 0.0 && t.pnl_pct >= t.max_drawdown_pct - 1e-9, "{t:?}");
            assert!((0.0..=1.0).contains(&t.confidence) && (0.0..=1.0).contains(&t.exposure));
            // A stop-out loses exactly its stop: more than a take-profit ever does.
            if t.hit_sl {
                assert!(t.pnl_pct < 0.0 && (t.pnl_pct - t.max_drawdown_pct).abs() < 1e-9, "{t:?}");
            }
            if t.hit_tp {
                assert!(t.pnl_pct > 0.0, "{t:?}");
            }
        }
        // Every style and both kinds of exit occur.
        for s in Strategy::all() {
            assert!(trades.iter().any(|t| t.strategy == s), "{s:?}");
        }
        assert!(trades.iter().any(|t| t.hit_tp) && trades.iter().any(|t| t.hit_sl));
        assert!(trades.iter().any(|t| t.exposure > 0.0));
    }

    #[test]
    fn too_few_bars_are_refused() {
        let b = bars().slice(0, 60).unwrap();
        let view = MarketView::new(&b, &StateThresholds::default());
        let e = simulate(&view, &SimConfig::default()).unwrap_err().to_string();
        assert!(e.contains("too few"), "{e}");
    }
}
