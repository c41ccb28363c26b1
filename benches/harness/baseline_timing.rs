//! Fit and score each baseline kind on the Parquet files `benches/peers/baselines.py` reads
//! (numeric feature columns + a 0/1 `label`), printing one JSON line per kind: fit seconds
//! (standardisation included), predict seconds, test AUC and Spearman IC of the score, and
//! the log-loss of a classifier. `ridge` treats the 0/1 label as a value (a linear
//! probability model), as scikit-learn's `Ridge` does in the peer script.
//!
//! ```text
//! cargo run --release --example baseline_timing -- TRAIN.parquet TEST.parquet [THREADS] [KINDS]
//! ```
//!
//! `KINDS` is comma-separated (default `logreg,tree,forest,ridge`). Row limits are lifted: the point
//! is to measure what a kind costs, including where its default `max_rows` would refuse.

use std::time::Instant;

use retrain::data::read_table;
use retrain::features::{Dataset, LabelSpec, Task};
use retrain::model::{Fit, ModelKind, Predict, Recipe};
use retrain::validation::metrics::{log_loss, roc_auc, spearman};

fn load(path: &str) -> Result<Dataset, Box<dyn std::error::Error>> {
    Ok(Dataset::from_table(read_table(path, "label", None)?, Some(1))?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: baseline_timing TRAIN.parquet TEST.parquet [THREADS] [KINDS]");
        std::process::exit(2);
    }
    let threads: usize = args.get(2).map_or(Ok(2), |t| t.parse())?;
    let kinds = args.get(3).map_or("logreg,tree,forest,ridge", String::as_str);
    let (classes, test) = (load(&args[0])?, load(&args[1])?);
    let mut values = classes.clone();
    values.label = Some(LabelSpec::FutureReturn { horizon: 1 });
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    for name in kinds.split(',') {
        let kind: ModelKind = name.parse()?;
        let train = if kind.kind().supports(Task::of(&classes)) { &classes } else { &values };
        let mut params = kind.recipe(Task::of(train)).into_params();
        params["max_rows"] = serde_json::json!(usize::MAX);
        let recipe = Recipe::new(kind, params)?;
        let (model, fit_s) = pool.install(|| {
            let t = Instant::now();
            recipe.fit(train, None).map(|m| (m, t.elapsed().as_secs_f64()))
        })?;
        let t = Instant::now();
        let out = pool.install(|| model.predict(test.x.view()))?;
        let predict_s = t.elapsed().as_secs_f64();
        let y = test.y.as_slice().ok_or("labels not contiguous")?;
        let p = out.column(0).to_vec();
        let classifier = Task::of(train) != Task::Regression;
        let line = serde_json::json!({
            "lib": format!("retrain {name}"),
            "kind": name,
            "rows": train.n_rows(),
            "features": train.n_features(),
            "fit_seconds": fit_s,
            "predict_seconds": predict_s,
            "auc": roc_auc(y, &p)?,
            "ic": spearman(&p, y)?,
            "log_loss": if classifier {
                Some(log_loss(y, &p.iter().map(|v| v.clamp(1e-15, 1.0 - 1e-15)).collect::<Vec<_>>())?)
            } else {
                None
            },
        });
        println!("{line}");
    }
    Ok(())
}
