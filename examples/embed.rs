//! Embedding the lifecycle in a host engine: declare a model, retrain it in-process with a
//! capped pool and an event callback, then serve the active version's call on the last bar.
//!
//! `cargo run --release --example embed` (writes a throw-away store in a temp dir).

use retrain::config::Policy;
use retrain::data::read_bars;
use retrain::lifecycle::{CallbackSink, Event, ModelSpec, Retrainer, Trigger};
use retrain::model::ModelKind;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bars = read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/btcusd_coinbase_1h.csv"))?.remove(0);
    let dir = tempfile::tempdir()?;
    let retrainer = Retrainer::open(dir.path(), Policy::default())?
        .with_threads(2)?
        .with_events(CallbackSink(|e: &Event| println!("event {} {}", e.name(), e.model.as_deref().unwrap_or(""))))
        .with_model("btc_1h_gbdt", ModelSpec::new(ModelKind::Lightgbm))?;
    let report = retrainer.retrain("btc_1h_gbdt", &bars, Trigger::manual("first model"))?;
    println!("{}: {} in {:.1} s", report.model_id, report.status, report.seconds);
    if let Some(d) = &report.decision {
        println!("decision: {d}");
    }
    match retrainer.active("btc_1h_gbdt") {
        Ok(model) => println!("signal on the last bar: {:?}", model.predict_latest(&bars)?),
        Err(e) => println!("nothing deployed yet ({e})"),
    }
    Ok(())
}
