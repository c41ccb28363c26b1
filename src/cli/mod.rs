//! Argument parsing and dispatch for the `retrain` binary; one file per command.

mod alarm;
mod cv;
mod features;
mod gbdt;
mod nn;
mod policy;
mod replay;
mod rl;
mod run;
mod store;
mod supervise;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Keep trading models fresh in-process: causal features and labels from OHLCV candles, the
/// native GBDT, purged cross-validation and a crash-safe model version store.
#[derive(Debug, Parser)]
#[command(name = "retrain", version, long_about = None)]
pub struct Cli {
    /// Worker threads for parallel work (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute causal features (and optionally labels) from OHLCV candles into CSV/Parquet.
    Features(features::FeaturesArgs),
    /// Train the native GBDT on a CSV/Parquet table and score a test set.
    Gbdt(Box<gbdt::GbdtArgs>),
    /// Train PatchTST or N-HiTS; `--ett FILE` runs the papers' forecasting protocol.
    Nn(Box<nn::NnArgs>),
    /// Print every split of a cross-validation plan (train ranges, test groups, paths).
    CvPlan(cv::CvPlanArgs),
    /// Cross-validate a model kind (CPCV by default) on candles or a table; per-path metrics.
    Cv(Box<cv::CvArgs>),
    /// Print the default feature spec as TOML (a starting point for --spec).
    Spec,
    /// List a model's versions with status and aliases.
    Versions(store::VersionsArgs),
    /// Make an earlier (RETIRED) version active again.
    Rollback(store::TagArgs),
    /// A model's audit history (registrations, status changes, decisions, deletions).
    History(store::HistoryArgs),
    /// Version store maintenance: put, promote, retire, show, list, verify, gc.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// The main job: retrain each model kind on candles (CPCV, decision against the active
    /// version, stored with its decision report) and print a table.
    Run(Box<run::RunArgs>),
    /// Active versions, their CPCV metrics and the last jobs of every model in a store.
    Status(run::StatusArgs),
    /// Print the default lifecycle policy (`--print-default`) or check a policy file.
    Policy(policy::PolicyArgs),
    /// Live health of every model in a prediction log (JSONL or Parquet).
    Health(supervise::HealthArgs),
    /// Feature drift (KS with scipy's p-values, PSI, Benjamini–Hochberg) of recent candles
    /// against a reference (candles, a reference.json, or a stored model's).
    Drift(Box<supervise::DriftArgs>),
    /// Every trigger of every stored model (health, IC decay, drift, schedules) and the plan.
    Triggers(supervise::TriggersArgs),
    /// A shadow/canary test's verdict (PROMOTE / REJECT / CONTINUE_TESTING); `--act` applies it.
    Shadow(supervise::ShadowArgs),
    /// Retire or roll back active versions that the live prediction log condemns.
    Supervise(supervise::SuperviseArgs),
    /// Replay the lifecycle over history: never / blind weekly / gated weekly / trigger-driven
    /// policies (plus `--policy` files) side by side, PnL after costs, report.html and charts.
    Replay(Box<replay::ReplayArgs>),
    /// Raised stop-trading alarms (CRITICAL drift raises one); `alarm clear MODEL` clears one.
    Alarm(alarm::AlarmArgs),
    /// The reinforcement-learning agents: `simulate` a trade log from candles, `replay` one
    /// into the tables, `show` them, `rollback` to a snapshot.
    #[command(subcommand)]
    Rl(rl::RlCommand),
}

/// Parses a model kind, listing every registered kind in `--help` and in errors.
pub fn kind_parser() -> impl clap::builder::TypedValueParser<Value = retrain::ModelKind> {
    use clap::builder::TypedValueParser;
    let names: Vec<&'static str> = retrain::ModelKind::all().map(|k| k.name()).collect();
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| name.parse::<retrain::ModelKind>().expect("a registered kind's name parses"))
}

/// The lifecycle policy from `path` (TOML, or JSON by name), else the defaults.
fn read_policy(path: Option<&std::path::Path>) -> anyhow::Result<retrain::config::Policy> {
    match path {
        Some(p) => retrain::config::Policy::from_file(p).with_context(|| format!("reading the policy {}", p.display())),
        None => Ok(retrain::config::Policy::default()),
    }
}

/// Print a command's summary: pretty JSON on stdout with `--json`, else the human form.
fn emit<T: serde::Serialize>(json: bool, summary: &T, human: fn(&T)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        human(summary);
    }
    Ok(())
}

/// Overlay a TOML table on a serialisable default and read it back: tables merge key by key
/// (so `[train] epochs = 5` keeps the other training fields), anything else replaces; unknown
/// keys fail where the target type denies them.
fn overlay<T: serde::Serialize + serde::de::DeserializeOwned>(
    base: &T,
    over: Option<&toml::Value>,
) -> anyhow::Result<T> {
    fn merge(into: &mut serde_json::Value, over: serde_json::Value) {
        match (into, over) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(&k) {
                        Some(slot) => merge(slot, v),
                        None => {
                            a.insert(k, v);
                        }
                    }
                }
            }
            (slot, v) => *slot = v,
        }
    }
    let mut value = serde_json::to_value(base)?;
    if let Some(over) = over {
        merge(&mut value, serde_json::to_value(over)?);
    }
    Ok(serde_json::from_value(value)?)
}

/// Read GBDT parameters from a TOML file (unknown keys are an error naming the file).
fn read_params(path: &std::path::Path) -> anyhow::Result<retrain::gbdt::GbdtParams> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    retrain::gbdt::GbdtParams::from_toml_str(&text).with_context(|| format!("in {}", path.display()))
}

/// Route tracing to stderr; warnings by default.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// Run a parsed command inside a rayon pool of the requested size.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = cli.threads {
        anyhow::ensure!(n >= 1, "--threads must be at least 1");
        builder = builder.num_threads(n);
    }
    let pool = builder.build().context("building the thread pool")?;
    pool.install(|| match cli.command {
        Command::Features(args) => features::run(args),
        Command::Gbdt(args) => gbdt::run(*args),
        Command::Nn(args) => nn::run(*args),
        Command::CvPlan(args) => cv::run_plan(args),
        Command::Cv(args) => cv::run(*args),
        Command::Versions(args) => store::versions(args),
        Command::Rollback(args) => store::rollback(args),
        Command::History(args) => store::history(args),
        Command::Store(cmd) => store::run(cmd),
        Command::Policy(args) => policy::run(args),
        Command::Run(args) => run::run(*args, cli.threads),
        Command::Status(args) => run::status(args),
        Command::Health(args) => supervise::health(args),
        Command::Drift(args) => supervise::drift(*args),
        Command::Triggers(args) => supervise::triggers(args),
        Command::Shadow(args) => supervise::shadow(args),
        Command::Supervise(args) => supervise::supervise(args),
        Command::Alarm(args) => alarm::run(args),
        Command::Rl(cmd) => rl::run(cmd),
        Command::Replay(args) => replay::run(*args, cli.threads),
        Command::Spec => {
            print!("{}", retrain::features::FeatureSpec::default().to_toml());
            Ok(())
        }
    })
}
