//! Write the deterministic GBDT benchmark data (`benches/support/synthetic.rs`)
//! as Parquet (`f0..fN` float32 + `label`), the files `retrain gbdt` and
//! `benches/peers/gbdt.py` both read.
//!
//! ```text
//! cargo run --release --example gbdt_data -- ROWS FEATURES SEED OUT.parquet
//! ```

use polars::prelude::*;
use retrain::rng::Rng;

#[path = "../support/synthetic.rs"]
mod synthetic;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        eprintln!("usage: gbdt_data ROWS FEATURES SEED OUT.parquet");
        std::process::exit(2);
    }
    let (n, f, seed): (usize, usize, u64) = (args[0].parse()?, args[1].parse()?, args[2].parse()?);
    let (x, y) = synthetic::gbdt_benchmark(n, f, seed)?;
    let mut columns: Vec<Column> = (0..f).map(|j| Column::new(format!("f{j}").into(), x.column(j).to_vec())).collect();
    columns.push(Column::new("label".into(), y));
    let mut df = DataFrame::new_infer_height(columns)?;
    retrain::data::write_frame(&mut df, &args[3])?;
    eprintln!("wrote {n} rows x {f} features to {}", args[3]);
    Ok(())
}
