//! The reinforcement-learning agents end to end: a trade log simulated from the shipped candles
//! replayed into a store (snapshots, status, reproducibility), a synthetic log where one style
//! is best per state (learned, and the causal check sees it) beside one where no style is (the
//! check stays quiet), regime resets in a replay, bad logs, and the `retrain rl` commands.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use retrain::Policy;
use retrain::lifecycle::agents::{AgentKind, stored_status};
use retrain::lifecycle::events::{ChannelSink, NullSink};
use retrain::lifecycle::rl_replay::{RlReplayReport, replay_trades};
use retrain::rl::meta_strategy::{Liquidity, Regime, VolLevel};
use retrain::rl::simulate::{SimConfig, simulate};
use retrain::rl::sizing::{SizingAction, StopLoss, TakeProfit};
use retrain::rl::tradelog::{self, Trade};
use retrain::rl::{Action, MarketView, Strategy};
use retrain::store::VersionStore;

const BTC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/btcusd_coinbase_1h.csv");

fn btc(n: usize) -> retrain::data::Bars {
    retrain::data::read_bars(BTC).unwrap().remove(0).slice(0, n).unwrap()
}

fn replay(trades: &[Trade], views: &BTreeMap<String, MarketView>, dir: &Path, policy: &Policy) -> RlReplayReport {
    replay_trades(trades, "log", views, dir, policy, Arc::new(NullSink), &|_, _| {}).unwrap()
}

#[test]
fn a_simulated_log_replays_into_snapshots_and_reproduces() {
    let bars = btc(6000);
    let policy = Policy::default();
    let view = MarketView::new(&bars, &policy.rl.states);
    let trades = simulate(&view, &SimConfig::default()).unwrap();
    let n = trades.len();
    assert!(n > 900, "{n}");
    // Through the file format and back, as the CLI does.
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("trades.csv");
    tradelog::write_csv(&log, &trades).unwrap();
    let trades = tradelog::read(&log).unwrap();
    let views: BTreeMap<String, MarketView> = [(bars.symbol().to_string(), view)].into();

    let (sink, rx) = ChannelSink::new();
    let store_dir = d.path().join("store");
    let r = replay_trades(&trades, "log", &views, &store_dir, &policy, Arc::new(sink), &|_, _| {}).unwrap();
    assert_eq!((r.trades, r.derived_levels), (n, n));
    let events: Vec<_> = rx.try_iter().collect();
    assert_eq!(events.iter().filter(|e| e.name() == "rl.meta.updated").count(), n);
    assert_eq!(events.iter().filter(|e| e.name() == "rl.sizing.updated").count(), n);
    for a in &r.agents {
        assert_eq!(a.updates, n);
        // One snapshot per 500 updates, and the flush of the rest.
        assert_eq!(a.snapshots.len(), n.div_ceil(500), "{:?}", a.agent);
        assert_eq!(a.check.matched + a.check.others, n - n / 2);
        assert_eq!(a.curve.last().unwrap().trades, n);
        assert!(a.mean_reward.is_finite());
    }
    // The store holds what the report says, and a reader of the store sees the same tables.
    let store = VersionStore::open(&store_dir).unwrap();
    let stored = stored_status(&store, &policy).unwrap();
    assert_eq!(stored, r.status);
    for (s, a) in stored.iter().zip(&r.agents) {
        assert_eq!(s.live.as_ref(), a.snapshots.last());
        assert_eq!(s.versions.len(), a.snapshots.len());
        assert!(!s.greedy.is_empty());
    }
    // Same log, same policy, fresh store: the same report.
    let again = replay(&trades, &views, &d.path().join("store2"), &policy);
    assert_eq!(again.agents, r.agents);
    assert_eq!(again.status, r.status);
}

/// A trade in `regime` taken by `strategy` earning `pnl`, closed an hour after it opened.
fn trade(i: usize, regime: Regime, strategy: Strategy, pnl: f64) -> Trade {
    let entry: jiff::Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
    Trade {
        row: i + 1,
        entry_time: entry + jiff::SignedDuration::from_hours(2 * i as i64),
        symbol: "X".into(),
        regime,
        strategy,
        confidence: 0.8,
        exposure: 0.1,
        sizing: SizingAction { size: 3, leverage: 0, take_profit: TakeProfit::Balanced, stop_loss: StopLoss::Medium },
        pnl_pct: pnl,
        hours: 1.0,
        max_drawdown_pct: -0.5,
        hit_tp: pnl > 0.0,
        hit_sl: pnl < 0.0,
        volatility: Some(VolLevel::Medium),
        liquidity: Some(Liquidity::High),
    }
}

/// A log whose styles are drawn uniformly at random; `pnl(regime, style, noise)` pays.
fn random_log(n: usize, seed: u64, pnl: impl Fn(Regime, Strategy, f64) -> f64) -> Vec<Trade> {
    let mut rng = retrain::rng::Rng::new(seed);
    let styles = Strategy::all();
    (0..n)
        .map(|i| {
            // Regimes alternate every 10 trades (20 hours): never held for 3 days.
            let regime = if (i / 10) % 2 == 0 { Regime::Trending } else { Regime::Ranging };
            let s = styles[rng.below(styles.len())];
            trade(i, regime, s, pnl(regime, s, rng.normal()))
        })
        .collect()
}

#[test]
fn the_best_style_per_state_is_learned_and_the_causal_check_tells_it_from_noise() {
    let d = tempfile::tempdir().unwrap();
    let policy = Policy::default();
    let best = |r: Regime| if r == Regime::Trending { Strategy::TrendFollow } else { Strategy::MeanReversion };
    let log = random_log(2000, 1, |r, s, z| if s == best(r) { 2.0 + z } else { -1.0 + z });
    let r = replay(&log, &BTreeMap::new(), &d.path().join("a"), &policy);
    assert_eq!(r.derived_levels, 0, "the log gives the levels");
    let meta = &r.status[0];
    for regime in [Regime::Trending, Regime::Ranging] {
        let g = meta.greedy.iter().find(|g| g.state.starts_with(&format!("{regime:?}").to_uppercase())).unwrap();
        assert_eq!(g.action, best(regime).key(), "{g:?}");
    }
    let c = &r.agents[0].check;
    assert!(c.matched > 150 && c.matched_mean > c.others_mean + 2.0 && c.p_value < 1e-6, "{c:?}");
    assert!(c.matched_pnl > c.others_pnl + 2.0 && c.pnl_p_value < 1e-6, "{c:?}");

    // No style is better: the check finds nothing. (Every trade wins, so the reward's
    // win-rate term is the same for every style: with losers, a style's recent win rate
    // persists from trade to trade and a table rightly learns to follow it.)
    let null = random_log(2000, 2, |_, _, z| 5.0 + z);
    let r = replay(&null, &BTreeMap::new(), &d.path().join("b"), &policy);
    let c = &r.agents[0].check;
    assert!(c.p_value > 0.01, "{c:?}");
    assert!((c.matched_mean - c.others_mean).abs() < 0.3, "{c:?}");
    assert!(c.pnl_p_value > 0.01, "{c:?}");
}

#[test]
fn a_regime_that_holds_resets_the_tables_in_a_replay() {
    let d = tempfile::tempdir().unwrap();
    // 50 TRENDING trades (100 hours), then 60 RANGING (120 hours: past the 3 days).
    let log: Vec<Trade> = (0..110)
        .map(|i| trade(i, if i < 50 { Regime::Trending } else { Regime::Ranging }, Strategy::Breakout, 1.0))
        .collect();
    let r = replay(&log, &BTreeMap::new(), &d.path().join("s"), &Policy::default());
    for a in &r.agents {
        assert_eq!(a.resets.len(), 1, "{:?}", a.agent);
        assert_eq!((a.resets[0].from.as_str(), a.resets[0].to.as_str()), ("TRENDING", "RANGING"));
        // The 37th RANGING trade closes 72 hours after the first one did.
        assert_eq!(a.resets[0].updates, 50 + 36);
    }
    let st = &r.status[0];
    assert_eq!(st.updates, 110 - 86);
    assert!(st.versions.iter().any(|v| v.tag == r.agents[0].resets[0].archived && v.updates == 86));
    let mut off = Policy::default();
    off.rl.reset_on_regime_change = false;
    let r = replay(&log, &BTreeMap::new(), &d.path().join("t"), &off);
    assert!(r.agents.iter().all(|a| a.resets.is_empty()));
    assert_eq!(r.status[0].updates, 110);
}

#[test]
fn a_log_without_levels_needs_candles_and_the_error_names_the_row_and_column() {
    let d = tempfile::tempdir().unwrap();
    let mut log = random_log(20, 3, |_, _, z| z);
    log[7].volatility = None;
    let e = replay_trades(
        &log,
        "trades.csv",
        &BTreeMap::new(),
        d.path(),
        &Policy::default(),
        Arc::new(NullSink),
        &|_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("trades.csv: row 8, column `volatility`: missing"), "{e}");
    assert!(e.contains("--data"), "{e}");
    // Candles that start after the trade cannot give its level either.
    let bars = btc(500).with_symbol("X");
    let views: BTreeMap<String, MarketView> =
        [("X".to_string(), MarketView::new(&bars, &Policy::default().rl.states))].into();
    let e = replay_trades(&log, "trades.csv", &views, d.path(), &Policy::default(), Arc::new(NullSink), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("trades.csv: row 8, column `entry_time`"), "{e}");
    // Nothing was stored by the refused replays.
    let store = VersionStore::open(d.path()).unwrap();
    assert!(stored_status(&store, &Policy::default()).unwrap().iter().all(|s| s.versions.is_empty()));
}

fn retrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_retrain"))
}

#[test]
fn the_rl_commands_simulate_replay_show_and_roll_back() {
    let d = tempfile::tempdir().unwrap();
    let candles = d.path().join("btc.csv");
    let bars = btc(3000);
    let mut df = retrain::data::bars_to_dataframe(&[bars]).unwrap();
    retrain::data::write_frame(&mut df, &candles).unwrap();
    let log = d.path().join("trades.csv");
    let o = retrain()
        .args(["rl", "simulate", "--json", "--every-bars", "3", "--data"])
        .arg(&candles)
        .arg("--out")
        .arg(&log)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = s["trades"].as_u64().unwrap() as usize;
    assert!(n > 900, "{s}");

    let store = d.path().join("models");
    let out = d.path().join("out");
    let o = retrain()
        .args(["rl", "replay", "--json", "--trades"])
        .arg(&log)
        .arg("--data")
        .arg(&candles)
        .arg("--store")
        .arg(&store)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["trades"].as_u64(), Some(n as u64));
    assert!(out.join("rl_reward_curve.png").is_file() && out.join("rl_replay.json").is_file());
    let first = r["agents"][0]["snapshots"][0].as_str().unwrap().to_string();

    let o = retrain().args(["rl", "show", "--json", "--store"]).arg(&store).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown, r["status"]);
    let o = retrain().args(["rl", "show", "--store"]).arg(&store).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("meta-strategy — live") && text.contains("sizing — live"), "{text}");

    let o = retrain().args(["rl", "rollback", "meta", &first, "--store"]).arg(&store).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = VersionStore::open(&store).unwrap();
    assert_eq!(v.active(AgentKind::Meta.model_id()).unwrap().unwrap().meta.version_tag, first);

    // A bad log is refused naming the file, row and column; nothing is stored.
    let bad = d.path().join("bad.csv");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[3] = lines[3]
        .replacen(",TRENDING,", ",SIDEWAYS,", 1)
        .replacen(",RANGING,", ",SIDEWAYS,", 1)
        .replacen(",CHOPPY,", ",SIDEWAYS,", 1)
        .replacen(",VOLATILE,", ",SIDEWAYS,", 1);
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let other = d.path().join("other");
    let o = retrain().args(["rl", "replay", "--trades"]).arg(&bad).arg("--store").arg(&other).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.csv: row 3, column `regime`: `SIDEWAYS`"), "{err}");
    assert!(!other.exists(), "a refused log creates no store");
}
