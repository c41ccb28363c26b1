//! Write a long benchmark series stitched from real data (see `benches/support/stitch.rs`).
//!
//! `cargo run --release --example stitch -- OUT.csv [N_BARS]` — sources: the crate's
//! `datasets/` plus `../shared/datasets/` (SPY, XAUUSD, EURUSD hourly) when present.

#[path = "../support/stitch.rs"]
mod support;

use retrain::data::{bars_to_dataframe, write_frame};
use std::path::Path;
use support::{benchmark_sources, stitch};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or("usage: stitch OUT.csv [N_BARS]")?;
    let n: usize = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let sources = benchmark_sources(Path::new(env!("CARGO_MANIFEST_DIR")))?;
    let bars = stitch(&sources, n, "STITCHED", 1_262_304_000_000, 3_600_000)?;
    write_frame(&mut bars_to_dataframe(&[bars])?, &out)?;
    eprintln!("{out}: {n} bars from {} real series", sources.len());
    Ok(())
}
