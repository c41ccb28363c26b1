//! `retrain alarm`: the raised stop-trading alarms of a store (CRITICAL drift raises one per
//! model), and `retrain alarm clear MODEL` — the only way one goes away.

use anyhow::Result;
use retrain::lifecycle::{Alarm, Retrainer};

use super::store::{StoreDir, Why};

/// `retrain alarm`.
#[derive(Debug, clap::Args)]
pub struct AlarmArgs {
    #[command(subcommand)]
    action: Option<AlarmAction>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StoreDir,
}

/// What to do with an alarm.
#[derive(Debug, clap::Subcommand)]
enum AlarmAction {
    /// Clear MODEL's raised alarm (recorded in the audit log with --actor and --reason).
    Clear {
        /// The model id.
        model_id: String,
        #[command(flatten)]
        why: Why,
        #[command(flatten)]
        dir: StoreDir,
    },
}

fn print_alarms(alarms: &Vec<Alarm>) {
    if alarms.is_empty() {
        println!("no stop-trading alarm raised");
    }
    for a in alarms {
        println!("STOP TRADING {}: raised {} by {}: {}", a.model_id, a.raised_at, a.actor, a.reason);
    }
}

/// Run `retrain alarm`.
pub fn run(a: AlarmArgs) -> Result<()> {
    match a.action {
        None => {
            let r = Retrainer::open(a.dir.path(), retrain::Policy::default())?;
            super::emit(a.json, &r.alarms()?, print_alarms)
        }
        Some(AlarmAction::Clear { model_id, why, dir }) => {
            let r = Retrainer::open(dir.path(), retrain::Policy::default())?;
            let cleared = r.clear_alarm(&model_id, &why.change("operator cleared the alarm"))?;
            super::emit(a.json, &cleared, |c| {
                println!("cleared the stop-trading alarm of {} (raised {})", c.model_id, c.raised_at)
            })
        }
    }
}
