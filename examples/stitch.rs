//! Write a long benchmark series stitched from real data (see `retrain::data::stitch`).
//!
//! `cargo run --release --example stitch -- OUT.csv [N_BARS]` — sources: the crate's
//! `datasets/` plus `../shared/datasets/` (SPY, XAUUSD, EURUSD hourly) when present.

use retrain::data::{bars_to_dataframe, read_bars, stitch::stitch, write_frame};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or("usage: stitch OUT.csv [N_BARS]")?;
    let n: usize = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let bars = stitch(&sources()?, n, "STITCHED", 1_262_304_000_000, 3_600_000)?;
    write_frame(&mut bars_to_dataframe(&[bars])?, &out)?;
    eprintln!("{out}: {n} bars");
    Ok(())
}

/// The real series used for stitching, in a fixed order.
fn sources() -> retrain::Result<Vec<retrain::data::Bars>> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files =
        vec![format!("{root}/datasets/btcusd_coinbase_1h.csv"), format!("{root}/datasets/eurusd_ask_1h_2017.csv")];
    for f in [
        "spy_1h_1998-2021_lean.csv",
        "xauusd_oanda_mid_1h_2006-2019_lean.csv",
        "eurusd_oanda_mid_1h_2007-2018_lean.csv",
    ] {
        let p = format!("{root}/../shared/datasets/{f}");
        if Path::new(&p).exists() {
            files.push(p);
        }
    }
    let mut out = Vec::new();
    for f in files {
        out.extend(read_bars(f)?);
    }
    Ok(out)
}
