//! The deployment gate's controls at scale: for each seed, retrain both GBDT kinds with the
//! default policy on synthetic candles with a planted signal and on an i.i.d. random walk
//! (`benches/support/planted.rs`), and count how often each deploys. `tests/gate_controls.rs`
//! runs a few seeds of the same; this measures the rates.
//!
//! ```text
//! cargo run --release --example gate_controls -- [SEEDS=20] [BARS=6000] [STRENGTH=0.5] [SIGNIFICANCE=0.05] [DATA=both|planted|random_walk]
//! ```
//!
//! Prints one JSON line per job and a summary line per (data, kind).

use std::collections::BTreeMap;

use retrain::data::{BarColumns, Bars};
use retrain::lifecycle::decision::Decision;
use retrain::lifecycle::{ModelSpec, Retrainer, Trigger};
use retrain::rng::Rng;
use retrain::{ModelKind, Policy};

#[path = "../support/planted.rs"]
mod planted;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seeds: u64 = args.first().map_or(Ok(20), |s| s.parse())?;
    let n: usize = args.get(1).map_or(Ok(6000), |s| s.parse())?;
    let strength: f64 = args.get(2).map_or(Ok(0.5), |s| s.parse())?;
    let significance: f64 = args.get(3).map_or(Ok(0.05), |s| s.parse())?;
    let only = args.get(4).map_or("both", String::as_str);
    let mut deploys: BTreeMap<(String, &str), (usize, usize)> = BTreeMap::new();
    for seed in 0..seeds {
        for (data, s) in [("planted", strength), ("random_walk", 0.0)] {
            if only != "both" && only != data {
                continue;
            }
            let bars = planted::candles(n, s, 1000 + seed);
            let dir = tempfile::tempdir()?;
            let mut r = Retrainer::open(dir.path(), Policy { significance, ..Policy::default() })?.with_threads(2)?;
            for kind in [ModelKind::LIGHTGBM, ModelKind::XGBOOST] {
                r = r.with_model(kind.name(), ModelSpec::new(kind))?;
            }
            for kind in [ModelKind::LIGHTGBM, ModelKind::XGBOOST] {
                let rep = r.retrain(kind.name(), &bars, Trigger::manual("control").with_all_bars())?;
                let d = rep.decision.as_ref().ok_or("no decision")?;
                let failed: Vec<&str> = d
                    .evidence
                    .iter()
                    .filter(|e| e.gated && e.verdict == retrain::lifecycle::decision::Verdict::Fail)
                    .map(|e| e.check.as_str())
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"data": data, "seed": seed, "kind": kind.name(), "decision": d.decision,
                        "ic": rep.metrics.get("ic_spearman"), "failed": failed})
                );
                let e = deploys.entry((data.to_string(), kind.name())).or_default();
                e.0 += usize::from(d.decision == Decision::Deploy);
                e.1 += 1;
            }
        }
    }
    for ((data, kind), (d, total)) in deploys {
        println!("{data} {kind}: deployed {d} of {total}");
    }
    Ok(())
}
