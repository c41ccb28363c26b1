//! `retrain rl`: the reinforcement-learning agents. `simulate` writes a trade log from candles,
//! `replay` learns from a trade log into a store's tables (progress bar, summary, reward-curve
//! chart), `show` prints the live tables and their versions, `rollback` makes a stored
//! snapshot live again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use retrain::data::{LoadOptions, load};
use retrain::lifecycle::agents::{AgentKind, AgentStatus, stored_status};
use retrain::lifecycle::events::{JsonlSink, NullSink};
use retrain::lifecycle::rl_replay::{RlReplayReport, replay_trades, write_chart};
use retrain::rl::MarketView;
use retrain::rl::simulate::{SimConfig, simulate};
use retrain::store::{Change, VersionStore};

use super::store::StoreDir;

/// `retrain rl`.
#[derive(Debug, clap::Subcommand)]
pub enum RlCommand {
    /// Write a trade log from candles: a rule-based book whose styles and sizing are drawn at
    /// random (seeded), for replays and demonstrations.
    Simulate(SimulateArgs),
    /// Learn from a log of closed trades (CSV or JSONL) through both agents, into the store's
    /// tables: the learned greedy action per state, snapshot versions, the reward curve.
    Replay(ReplayArgs),
    /// The live tables of a store: greedy action per visited state and every stored version.
    Show(ShowArgs),
    /// Make a stored snapshot of an agent's table live again.
    Rollback(RollbackArgs),
}

/// `retrain rl simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Candles (CSV/Parquet).
    #[arg(long, default_value = "datasets/btcusd_coinbase_1h.csv")]
    data: PathBuf,
    /// Where the trade log goes (CSV).
    #[arg(long, default_value = "trades.csv")]
    out: PathBuf,
    /// Seed of the style and sizing draws.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Bars between entries.
    #[arg(long, default_value_t = 6)]
    every_bars: usize,
    /// Longest a trade stays open, in bars.
    #[arg(long, default_value_t = 48)]
    max_hold_bars: usize,
    /// Lifecycle policy whose `[rl.states]` thresholds read the regime (default the built-in).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// `retrain rl replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The trade log (CSV with a header, or JSONL by name); docs/rl.md has the columns.
    #[arg(long)]
    trades: PathBuf,
    /// Candles to derive volatility and liquidity from where the log lacks them (one file
    /// per symbol; the symbol is the file's `symbol` column or its name).
    #[arg(long, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Lifecycle policy with the `[rl]` settings (default the built-in).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Directory for the reward-curve chart (`rl_reward_curve.png`) and `rl_replay.json`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also append every `rl.*` event to this JSONL file.
    #[arg(long)]
    events: Option<PathBuf>,
    /// Visited states listed per agent (most visited first).
    #[arg(long, default_value_t = 12)]
    states: usize,
    /// Print the report as JSON (no progress bar).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StoreDir,
}

/// `retrain rl show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Visited states listed per agent (most visited first).
    #[arg(long, default_value_t = 12)]
    states: usize,
    /// Print JSON (every state).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StoreDir,
}

/// `retrain rl rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// `meta` or `sizing`.
    #[arg(value_parser = ["meta", "sizing"])]
    agent: String,
    /// The version tag to make live.
    tag: String,
    #[command(flatten)]
    dir: StoreDir,
}

/// Run `retrain rl …`.
pub fn run(cmd: RlCommand) -> Result<()> {
    match cmd {
        RlCommand::Simulate(a) => simulate_cmd(a),
        RlCommand::Replay(a) => replay_cmd(a),
        RlCommand::Show(a) => show_cmd(a),
        RlCommand::Rollback(a) => rollback_cmd(a),
    }
}

#[derive(serde::Serialize)]
struct Simulated {
    out: PathBuf,
    symbol: String,
    trades: usize,
    first_entry: String,
    last_entry: String,
    win_rate: f64,
}

fn simulate_cmd(a: SimulateArgs) -> Result<()> {
    let policy = super::read_policy(a.policy.as_deref())?;
    let loaded = load(&a.data, &LoadOptions::default()).with_context(|| format!("loading {}", a.data.display()))?;
    anyhow::ensure!(loaded.bars.len() == 1, "{}: one symbol per file, found {}", a.data.display(), loaded.bars.len());
    let bars = &loaded.bars[0];
    let view = MarketView::new(bars, &policy.rl.states);
    let cfg = SimConfig { every_bars: a.every_bars, max_hold_bars: a.max_hold_bars, seed: a.seed };
    let trades = simulate(&view, &cfg)?;
    retrain::rl::tradelog::write_csv(&a.out, &trades)?;
    let s = Simulated {
        out: a.out,
        symbol: bars.symbol().to_string(),
        trades: trades.len(),
        first_entry: trades[0].entry_time.to_string(),
        last_entry: trades[trades.len() - 1].entry_time.to_string(),
        win_rate: trades.iter().filter(|t| t.pnl_pct > 0.0).count() as f64 / trades.len() as f64,
    };
    super::emit(a.json, &s, |s| {
        println!(
            "wrote {} trades of {} ({} → {}, {:.1} % winners) to {}",
            s.trades,
            s.symbol,
            s.first_entry,
            s.last_entry,
            100.0 * s.win_rate,
            s.out.display()
        )
    })
}

fn replay_cmd(a: ReplayArgs) -> Result<()> {
    let policy = super::read_policy(a.policy.as_deref())?;
    let trades = retrain::rl::tradelog::read(&a.trades)?;
    let mut views = BTreeMap::new();
    for path in &a.data {
        let loaded = load(path, &LoadOptions::default()).with_context(|| format!("loading {}", path.display()))?;
        for bars in loaded.bars {
            views.insert(bars.symbol().to_string(), MarketView::new(&bars, &policy.rl.states));
        }
    }
    let events: Arc<dyn retrain::lifecycle::events::EventSink> = match &a.events {
        Some(p) => Arc::new(JsonlSink::open(p)?),
        None => Arc::new(NullSink),
    };
    let pb = if a.json { ProgressBar::hidden() } else { ProgressBar::new(trades.len() as u64) };
    pb.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} trades {elapsed}").expect("a valid template"));
    let source = a.trades.display().to_string();
    let mut report = replay_trades(&trades, &source, &views, a.dir.path(), &policy, events, &|done, _| {
        pb.set_position(done as u64)
    })?;
    pb.finish_and_clear();
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let png = out.join("rl_reward_curve.png");
        write_chart(&report, &png)?;
        report.chart = Some(png);
        let json = out.join("rl_replay.json");
        std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", json.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_replay(&report, a.states);
    }
    Ok(())
}

fn agent_name(a: AgentKind) -> &'static str {
    match a {
        AgentKind::Meta => "meta-strategy",
        AgentKind::Sizing => "sizing",
    }
}

/// A one-line sketch of a curve (eight levels between its min and max).
fn sparkline(v: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    v.iter().map(|&x| if hi > lo { BARS[(((x - lo) / (hi - lo)) * 7.0).round() as usize] } else { BARS[3] }).collect()
}

fn print_replay(r: &RlReplayReport, states: usize) {
    println!(
        "replayed {} trades of {} ({} → {}); volatility/liquidity from candles for {}",
        r.trades, r.source, r.first_entry, r.last_close, r.derived_levels
    );
    println!(
        "\n{:<14} {:>7} {:>11} {:>9} {:>6} {:>6}",
        "agent", "updates", "mean reward", "snapshots", "resets", "pruned"
    );
    for a in &r.agents {
        println!(
            "{:<14} {:>7} {:>11.3} {:>9} {:>6} {:>6}",
            agent_name(a.agent),
            a.updates,
            a.mean_reward,
            a.snapshots.len(),
            a.resets.len(),
            a.pruned
        );
    }
    println!(
        "\nthe greedy check, trades {} on: the trades whose logged action was the table's greedy choice just before it learned from them, against the rest",
        r.agents.first().map_or(0, |a| a.check.from_trade + 1)
    );
    println!(
        "{:<14} {:>7} {:>9} {:>9} {:>8}   {:>9} {:>9} {:>8}",
        "agent", "greedy", "reward", "others", "p", "PnL %", "others", "p"
    );
    for a in &r.agents {
        let c = &a.check;
        println!(
            "{:<14} {:>7} {:>9.3} {:>9.3} {:>8.4}   {:>9.3} {:>9.3} {:>8.4}",
            agent_name(a.agent),
            c.matched,
            c.matched_mean,
            c.others_mean,
            c.p_value,
            c.matched_pnl,
            c.others_pnl,
            c.pnl_p_value
        );
    }
    println!("\nreward curve (mean per block of trades, low → high):");
    for a in &r.agents {
        let v: Vec<f64> = a.curve.iter().map(|p| p.mean_reward).collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!("  {:<14} {} [{lo:.2}, {hi:.2}]", agent_name(a.agent), sparkline(&v));
    }
    for a in &r.agents {
        for reset in &a.resets {
            println!(
                "  {} reset: {} → {} after {} updates (archived {})",
                agent_name(a.agent),
                reset.from,
                reset.to,
                reset.updates,
                reset.archived
            );
        }
    }
    print_status(&r.status, states);
    if let Some(c) = &r.chart {
        println!("\nchart: {}", c.display());
    }
}

fn print_status(status: &[AgentStatus], states: usize) {
    for s in status {
        println!(
            "\n{} — live {} ({} updates, ε {:.3}, {} states visited)",
            agent_name(s.agent),
            s.live.as_deref().unwrap_or("none stored"),
            s.updates,
            s.epsilon,
            s.greedy.len()
        );
        for g in s.greedy.iter().take(states) {
            println!("  {:<48} {:<36} q {:>8.3}  visits {}", g.state, g.action, g.q, g.visits);
        }
        if s.greedy.len() > states {
            println!("  … {} more (--states N, or --json)", s.greedy.len() - states);
        }
        let n = s.versions.len();
        let shown = s.versions.iter().skip(n.saturating_sub(5));
        println!("  versions: {n} stored{}", if n > 5 { ", the last 5:" } else { "" });
        for v in shown {
            println!(
                "    {} {:<8} {:>6} updates {:>4} states  {}",
                v.tag,
                v.status.to_string(),
                v.updates,
                v.states,
                v.reason
            );
        }
    }
}

fn show_cmd(a: ShowArgs) -> Result<()> {
    let store = VersionStore::open(a.dir.path())?;
    let status = stored_status(&store, &retrain::Policy::default())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_status(&status, a.states);
    }
    Ok(())
}

fn rollback_cmd(a: RollbackArgs) -> Result<()> {
    let store = VersionStore::open(a.dir.path())?;
    let why = Change::new("cli", format!("rollback to {}", a.tag));
    let id = if a.agent == "meta" { AgentKind::Meta.model_id() } else { AgentKind::Sizing.model_id() };
    if a.agent == "meta" {
        retrain::rl::versions::rollback::<retrain::rl::Strategy>(&store, id, &a.tag, &why)?;
    } else {
        retrain::rl::versions::rollback::<retrain::rl::SizingAction>(&store, id, &a.tag, &why)?;
    }
    println!("{id}: {} is the live table", a.tag);
    Ok(())
}
