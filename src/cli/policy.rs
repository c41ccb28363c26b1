//! `retrain policy`: print the default lifecycle policy, or check a policy file and print the
//! policy it amounts to (every key, defaults filled in).

use anyhow::Context;
use clap::Args;
use retrain::config::Policy;

/// Arguments of `retrain policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Print the default policy as TOML.
    #[arg(long, conflicts_with = "check")]
    pub print_default: bool,
    /// Validate a policy file (TOML, or JSON by its `.json` name) and print the full policy.
    #[arg(long, value_name = "FILE")]
    pub check: Option<std::path::PathBuf>,
    /// Print JSON instead of TOML.
    #[arg(long)]
    pub json: bool,
}

/// Run `retrain policy`.
pub fn run(a: PolicyArgs) -> anyhow::Result<()> {
    let policy = match &a.check {
        Some(path) => {
            let p = Policy::from_file(path).with_context(|| format!("checking {}", path.display()))?;
            retrain::lifecycle::policy_kinds(&p).with_context(|| format!("checking {}", path.display()))?;
            p
        }
        None if a.print_default => Policy::default(),
        None => anyhow::bail!("give --print-default or --check FILE"),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&policy)?);
    } else {
        print!("{}", policy.to_toml_string());
    }
    Ok(())
}
