//! Offline learning from a log of closed trades: every trade goes through both agents of an
//! [`RlAgents`] handle exactly as a host's records would — the same updates, snapshots,
//! pruning, resets, events and audit records — with the store's clock set to each trade's
//! close, so version tags and audit times are the log's own.
//!
//! The updates are off-policy: each learns from the style and sizing the log actually took,
//! whatever the tables would have chosen. States are causal: read at the trade's entry, from
//! the log's columns and, where the log lacks volatility or liquidity, from the symbol's
//! candles (only bars closed by then); the recent-performance level is the book's PnL over
//! the trades closed in the 7 days before the entry, the sizing state's win rate the book's
//! over its last `rl.win_rate_trades` closed trades. The meta reward's win rate is the
//! style's over its last `rl.win_rate_trades` trades, this one included. Each trade is one
//! step that ends its episode, so the discount plays no part here.
//!
//! The report gives each agent's reward curve, its snapshots and resets, and a causal check
//! of what it learned: over the second half of the log, the mean reward of the trades whose
//! logged action was the table's greedy choice just before the trade was learned from,
//! against the other trades (Welch's t-test).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use plotters::prelude::*;
use serde::Serialize;

use crate::clock::ManualClock;
use crate::config::Policy;
use crate::error::{Error, Result};
use crate::lifecycle::agents::{AgentKind, AgentStatus, MetaOutcome, RlAgents, SizingOutcome};
use crate::lifecycle::events::{EventSink, RlReset};
use crate::rl::meta_strategy::{MarketView, MetaState, performance_of};
use crate::rl::sizing::{Bucket, SizingState};
use crate::rl::tradelog::Trade;
use crate::store::VersionStore;
use crate::validation::compare::t_p_value;
use crate::validation::metrics::mean_std;

/// The rewards up to the end of one block of trades (in the order they closed).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Trades learned from so far (the block's end).
    pub trades: usize,
    /// When the block's last trade closed.
    pub closed_at: Timestamp,
    /// Mean reward of the block.
    pub mean_reward: f64,
    /// Mean reward of every trade so far: what the logged behaviour earned.
    pub running_mean: f64,
    /// Mean reward so far of the trades whose action was the table's greedy choice when
    /// they were learned from: an estimate of what following the table would have earned
    /// (consistent when the log chose its actions uniformly at random); `None` before any.
    pub greedy_running_mean: Option<f64>,
    /// Those trades so far.
    pub greedy_trades: usize,
}

/// The causal check of what a table learned (see the module notes).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GreedyCheck {
    /// First trade (0-based, in close order) the check covers.
    pub from_trade: usize,
    /// Trades whose action was the greedy one.
    pub matched: usize,
    /// Their mean reward.
    pub matched_mean: f64,
    /// The other trades.
    pub others: usize,
    /// Their mean reward.
    pub others_mean: f64,
    /// Welch's two-sided p-value of the difference (NaN with fewer than two of either).
    pub p_value: f64,
    /// The matched trades' mean PnL % (the reward's main term, without its bonuses and
    /// penalties: what a trader asks).
    pub matched_pnl: f64,
    /// The other trades' mean PnL %.
    pub others_pnl: f64,
    /// Welch's p-value of the PnL difference.
    pub pnl_p_value: f64,
}

/// One agent's replay.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentReplay {
    /// Which agent.
    pub agent: AgentKind,
    /// Updates applied.
    pub updates: usize,
    /// Mean reward over the log.
    pub mean_reward: f64,
    /// Snapshot versions stored, in order (the final flush included).
    pub snapshots: Vec<String>,
    /// Resets on regime changes.
    pub resets: Vec<RlReset>,
    /// States pruned.
    pub pruned: usize,
    /// Mean reward per block of trades.
    pub curve: Vec<CurvePoint>,
    /// What the table had learned, checked causally.
    pub check: GreedyCheck,
}

/// What a trade-log replay did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RlReplayReport {
    /// The log.
    pub source: String,
    /// Trades replayed.
    pub trades: usize,
    /// First entry.
    pub first_entry: Timestamp,
    /// Last close.
    pub last_close: Timestamp,
    /// Trades whose volatility or liquidity level came from candles.
    pub derived_levels: usize,
    /// Both agents.
    pub agents: Vec<AgentReplay>,
    /// Both tables after the replay: greedy action per visited state, stored versions.
    pub status: Vec<AgentStatus>,
    /// The reward-curve chart, when one was drawn.
    pub chart: Option<PathBuf>,
}

/// Replay `trades` (sorted by entry, as [`crate::rl::tradelog::read`] returns them) into the
/// store at `store_dir` (its tables, if any, are where learning starts), deriving missing
/// levels from `views` (by symbol). `progress(done, total)` is called as trades are learned.
pub fn replay_trades(
    trades: &[Trade],
    source: &str,
    views: &BTreeMap<String, MarketView>,
    store_dir: &Path,
    policy: &Policy,
    events: Arc<dyn EventSink>,
    progress: &dyn Fn(usize, usize),
) -> Result<RlReplayReport> {
    let Some(first) = trades.first() else {
        return Err(Error::Empty { source_name: source.to_string() });
    };
    policy.validate()?;
    let rl = &policy.rl;
    let (meta_states, sizing_states, derived) = entry_states(trades, source, views, policy)?;

    let mut order: Vec<usize> = (0..trades.len()).collect();
    order.sort_by_key(|&i| (trades[i].exit_time(), i));
    let clock = Arc::new(ManualClock::new(trades[order[0]].exit_time()));
    let store = VersionStore::open(store_dir)?.with_clock(clock.clone());
    let agents = RlAgents::open(store, policy, events, clock.clone())?;

    let half = trades.len() / 2;
    let mut runs = [Run::default(), Run::default()];
    let mut style_wins: BTreeMap<crate::rl::Strategy, Vec<bool>> = BTreeMap::new();
    for (done, &i) in order.iter().enumerate() {
        let t = &trades[i];
        let closed_at = t.exit_time();
        clock.set(closed_at);
        let wins = style_wins.entry(t.strategy).or_default();
        wins.push(t.pnl_pct > 0.0);
        let recent = &wins[wins.len().saturating_sub(rl.win_rate_trades)..];
        let win_rate = recent.iter().filter(|&&w| w).count() as f64 / recent.len() as f64;
        let m = agents.record_strategy(&MetaOutcome {
            closed_at,
            state: meta_states[i],
            strategy: t.strategy,
            pnl_pct: t.pnl_pct,
            hours: t.hours,
            max_drawdown_pct: t.max_drawdown_pct,
            win_rate,
            next: None,
        })?;
        let s = agents.record_sizing(&SizingOutcome {
            closed_at,
            state: sizing_states[i],
            action: t.sizing,
            pnl_pct: t.pnl_pct,
            hours: t.hours,
            max_drawdown_pct: t.max_drawdown_pct,
            hit_tp: t.hit_tp,
            hit_sl: t.hit_sl,
            next: None,
        })?;
        for (run, r) in runs.iter_mut().zip([m, s]) {
            run.rewards.push(r.reward);
            run.greedy.push(r.was_greedy);
            run.times.push(closed_at);
            if done >= half {
                let (rewards, pnl) = if r.was_greedy {
                    (&mut run.matched, &mut run.matched_pnl)
                } else {
                    (&mut run.others, &mut run.others_pnl)
                };
                rewards.push(r.reward);
                pnl.push(t.pnl_pct);
            }
            run.snapshots.extend(r.snapshot);
            run.resets.extend(r.reset);
            run.pruned += r.pruned;
        }
        progress(done + 1, trades.len());
    }
    for (kind, tag) in agents.flush()? {
        runs[if kind == AgentKind::Meta { 0 } else { 1 }].snapshots.push(tag);
    }
    let agents_out = [AgentKind::Meta, AgentKind::Sizing]
        .into_iter()
        .zip(runs)
        .map(|(agent, run)| run.finish(agent, half))
        .collect();
    Ok(RlReplayReport {
        source: source.to_string(),
        trades: trades.len(),
        first_entry: first.entry_time,
        last_close: trades[*order.last().expect("not empty")].exit_time(),
        derived_levels: derived,
        agents: agents_out,
        status: agents.status()?,
        chart: None,
    })
}

/// Rewards and upkeep gathered for one agent.
#[derive(Default)]
struct Run {
    rewards: Vec<f64>,
    greedy: Vec<bool>,
    times: Vec<Timestamp>,
    matched: Vec<f64>,
    others: Vec<f64>,
    matched_pnl: Vec<f64>,
    others_pnl: Vec<f64>,
    snapshots: Vec<String>,
    resets: Vec<RlReset>,
    pruned: usize,
}

fn mean(x: &[f64]) -> f64 {
    if x.is_empty() { f64::NAN } else { x.iter().sum::<f64>() / x.len() as f64 }
}

/// Welch's two-sided p-value for a difference of means (NaN with fewer than two of either).
fn welch_p(a: &[f64], b: &[f64]) -> f64 {
    if a.len() < 2 || b.len() < 2 {
        return f64::NAN;
    }
    let ((ma, sa), (mb, sb)) = (mean_std(a), mean_std(b));
    let (va, vb) = (sa * sa / a.len() as f64, sb * sb / b.len() as f64);
    if va + vb == 0.0 {
        return if ma == mb { 1.0 } else { 0.0 };
    }
    let t = (ma - mb) / (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va * va / (a.len() - 1) as f64 + vb * vb / (b.len() - 1) as f64);
    t_p_value(t, df)
}

impl Run {
    fn finish(self, agent: AgentKind, half: usize) -> AgentReplay {
        let n = self.rewards.len();
        let block = n.div_ceil(50).max(1);
        let (mut sum, mut greedy_sum, mut greedy_n) = (0.0, 0.0, 0);
        let mut curve = Vec::new();
        for start in (0..n).step_by(block) {
            let end = (start + block).min(n);
            for i in start..end {
                sum += self.rewards[i];
                if self.greedy[i] {
                    greedy_sum += self.rewards[i];
                    greedy_n += 1;
                }
            }
            curve.push(CurvePoint {
                trades: end,
                closed_at: self.times[end - 1],
                mean_reward: mean(&self.rewards[start..end]),
                running_mean: sum / end as f64,
                greedy_running_mean: (greedy_n > 0).then(|| greedy_sum / greedy_n as f64),
                greedy_trades: greedy_n,
            });
        }
        AgentReplay {
            agent,
            updates: n,
            mean_reward: mean(&self.rewards),
            check: GreedyCheck {
                from_trade: half,
                matched: self.matched.len(),
                matched_mean: mean(&self.matched),
                others: self.others.len(),
                others_mean: mean(&self.others),
                p_value: welch_p(&self.matched, &self.others),
                matched_pnl: mean(&self.matched_pnl),
                others_pnl: mean(&self.others_pnl),
                pnl_p_value: welch_p(&self.matched_pnl, &self.others_pnl),
            },
            snapshots: self.snapshots,
            resets: self.resets,
            pruned: self.pruned,
            curve,
        }
    }
}

/// Each trade's meta and sizing state at its entry, and how many needed candles.
fn entry_states(
    trades: &[Trade],
    source: &str,
    views: &BTreeMap<String, MarketView>,
    policy: &Policy,
) -> Result<(Vec<MetaState>, Vec<SizingState>, usize)> {
    let rl = &policy.rl;
    let err = |t: &Trade, column: &str, reason: String| Error::InvalidRecord {
        source_name: source.to_string(),
        row: t.row,
        column: column.to_string(),
        reason,
    };
    // The book's closed trades by close time, with running PnL and wins, for causal lookups.
    let mut closed: Vec<(Timestamp, f64, bool)> =
        trades.iter().map(|t| (t.exit_time(), t.pnl_pct, t.pnl_pct > 0.0)).collect();
    closed.sort_by_key(|c| c.0);
    let mut pnl_sum = vec![0.0];
    let mut win_sum = vec![0usize];
    for c in &closed {
        pnl_sum.push(pnl_sum.last().unwrap() + c.1);
        win_sum.push(win_sum.last().unwrap() + c.2 as usize);
    }
    let week = SignedDuration::from_hours(24 * 7);
    let (mut metas, mut sizings, mut derived) = (Vec::new(), Vec::new(), 0);
    for t in trades {
        let upto = closed.partition_point(|c| c.0 <= t.entry_time);
        let from = closed.partition_point(|c| c.0 <= t.entry_time - week);
        let recent_pnl = pnl_sum[upto] - pnl_sum[from];
        let w0 = upto.saturating_sub(rl.win_rate_trades);
        let win_rate = if upto == w0 { 0.5 } else { (win_sum[upto] - win_sum[w0]) as f64 / (upto - w0) as f64 };
        let (volatility, liquidity) = match (t.volatility, t.liquidity) {
            (Some(v), Some(l)) => (v, l),
            (v, l) => {
                let column = if v.is_none() { "volatility" } else { "liquidity" };
                let view = views.get(&t.symbol).ok_or_else(|| {
                    err(
                        t,
                        column,
                        format!(
                            "missing, and no candles of `{}` to derive it from (give the column, or the candles with --data)",
                            t.symbol
                        ),
                    )
                })?;
                let ms = t.entry_time.as_millisecond();
                let bar = view
                    .bar_at(ms)
                    .ok_or_else(|| err(t, "entry_time", format!("before the first closed candle of `{}`", t.symbol)))?;
                if view.is_stale(bar, ms) {
                    let last = crate::data::bars::fmt_ts(view.bars().timestamps()[bar]);
                    return Err(err(t, "entry_time", format!("after the last candle of `{}` ({last})", t.symbol)));
                }
                let (_, dv, dl) = view.market(bar).map_err(|e| err(t, "entry_time", e.to_string()))?;
                derived += 1;
                (v.unwrap_or(dv), l.unwrap_or(dl))
            }
        };
        metas.push(MetaState {
            regime: t.regime,
            volatility,
            liquidity,
            performance: performance_of(recent_pnl, &rl.states),
        });
        let b = |v: f64, cuts: [f64; 2]| Bucket::of(v, cuts[0], cuts[1]);
        sizings.push(SizingState {
            regime: t.regime,
            confidence: b(t.confidence, rl.confidence_buckets),
            exposure: b(t.exposure, rl.exposure_buckets),
            win_rate: b(win_rate, rl.win_rate_buckets),
            volatility,
        });
    }
    Ok((metas, sizings, derived))
}

/// Draw both agents' running mean rewards, logged and greedy, one panel each, to `path` (PNG).
pub fn write_chart(report: &RlReplayReport, path: &Path) -> Result<()> {
    let chart_err = |e: &dyn std::fmt::Display| Error::param("rl.chart", format!("drawing {}: {e}", path.display()));
    crate::lifecycle::replay_report::register_font();
    // Drawn beside the target and renamed over it, so a failed draw leaves no half image.
    let tmp = path.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (1000, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_err(&e))?;
        let panels = root.split_evenly((report.agents.len().max(1), 1));
        for (a, area) in report.agents.iter().zip(&panels) {
            let logged: Vec<(f64, f64)> = a
                .curve
                .iter()
                .filter(|p| p.running_mean.is_finite())
                .map(|p| (p.trades as f64, p.running_mean))
                .collect();
            let greedy: Vec<(f64, f64)> = a
                .curve
                .iter()
                .filter_map(|p| p.greedy_running_mean.filter(|v| v.is_finite()).map(|v| (p.trades as f64, v)))
                .collect();
            let ys = logged.iter().chain(&greedy).map(|p| p.1);
            let (lo, hi) = ys.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let pad = ((hi - lo) * 0.08).max(1e-3);
            let title = match a.agent {
                AgentKind::Meta => "meta-strategy agent: running mean reward",
                AgentKind::Sizing => "sizing agent: running mean reward",
            };
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..report.trades.max(1) as f64, lo - pad..hi + pad)
                .map_err(|e| chart_err(&e))?;
            chart
                .configure_mesh()
                .x_desc("trades learned from")
                .y_desc("reward")
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(|e| chart_err(&e))?;
            for (name, pts, colour) in [
                ("the log's actions (all trades)", logged, RGBColor(120, 120, 120)),
                ("trades where the log took the table's greedy action", greedy, RGBColor(31, 119, 180)),
            ] {
                chart
                    .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                    .map_err(|e| chart_err(&e))?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(3)));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|e| chart_err(&e))?;
        }
        root.present().map_err(|e| chart_err(&e))?;
    }
    std::fs::rename(&tmp, path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}
