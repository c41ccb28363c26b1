//! Cross-validate a model kind on candles, as `retrain cv` does: features and a label from the
//! shipped BTC/USD hours, the kind's default hyperparameters for that label, combinatorial
//! purged cross-validation (6 groups, 2 test groups, a 5-day embargo), and the per-path
//! report with its overfitting flags.
//!
//! `cargo run --release --example cv_kind [-- KIND]` (default `lightgbm`; `xgboost`, `nhits`,
//! `patchtst` — the networks take minutes — and the classifying baselines `logreg`, `tree`,
//! `forest`).

use retrain::validation::CvOptions;
use retrain::validation::cross_validate::default_embargo_bars;
use retrain::validation::split::Embargo;
use retrain::{Cpcv, Dataset, FeatureSpec, LabelSpec, ModelKind, Task, cross_validate, read_bars};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kind: ModelKind = std::env::args().nth(1).as_deref().unwrap_or("lightgbm").parse()?;
    let bars = read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/btcusd_coinbase_1h.csv"))?;
    let label: LabelSpec = "direction:12".parse()?;
    let recipe = kind.recipe(Task::of_label(&label));
    // A network reads its lookback window from the rows: the kind widens the feature spec.
    let spec = recipe.features(&FeatureSpec::default())?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
    let report = pool.install(|| -> retrain::Result<_> {
        let ds = Dataset::from_bars(&bars, &spec, &label)?;
        let embargo = default_embargo_bars(&ds.t0, 5.0, spec.max_lookback());
        let cpcv = Cpcv::new(6, 2).embargo(Embargo::Bars(embargo));
        let opts = CvOptions { parallel_splits: kind.kind().fits_in_parallel(), ..CvOptions::default() };
        cross_validate(&recipe, &ds, &cpcv, &opts)
    })?;
    println!("{kind} on {} rows: {}", report.rows, kind.kind().about());
    print!("{report}");
    Ok(())
}
