//! `retrain features`: candles in, feature (and label) table out, with a summary.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use retrain::data::{self, LoadOptions};
use retrain::features::{self, Dataset, FeatureSpec, LabelSpec};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `retrain features`.
#[derive(Debug, clap::Args)]
pub struct FeaturesArgs {
    /// Input candles (CSV or Parquet); repeat for one file per symbol.
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Symbol name for a single file without a symbol column (default: file stem).
    #[arg(long)]
    symbol: Option<String>,
    /// Sort rows and drop duplicate timestamps instead of rejecting the file (reported).
    #[arg(long)]
    repair: bool,
    /// Feature spec (TOML or JSON); default: the full built-in set (`retrain spec` prints it).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Label to attach: future_return[:h], direction[:h[:threshold[:classes]]],
    /// triple_barrier[:h[:take_profit[:stop_loss[:vol_window]]]].
    #[arg(long)]
    label: Option<LabelSpec>,
    /// Output file (.csv or .parquet).
    #[arg(long)]
    out: PathBuf,
    /// Print the summary as JSON on stdout (no progress bar).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Summary {
    inputs: Vec<String>,
    symbols: Vec<String>,
    rows_in: usize,
    warmup_dropped: usize,
    label_dropped: usize,
    non_finite_dropped: usize,
    rows_out: usize,
    feature_columns: usize,
    max_lookback: usize,
    label: Option<String>,
    repaired: Vec<RepairLine>,
    out: String,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct RepairLine {
    symbol: String,
    rows_moved: usize,
    duplicates_dropped: usize,
}

pub fn run(args: FeaturesArgs) -> Result<()> {
    let started = Instant::now();
    data::io::Format::from_path(&args.out)?;
    let spec = match &args.spec {
        Some(p) => FeatureSpec::from_file(p)?,
        None => FeatureSpec::default(),
    };
    let pb = if args.json { ProgressBar::hidden() } else { ProgressBar::new(4) };
    pb.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")?);

    pb.set_message("loading candles");
    if args.symbol.is_some() && args.data.len() > 1 {
        anyhow::bail!("--symbol applies to a single --data file");
    }
    let opts = LoadOptions { symbol: args.symbol.clone(), repair: args.repair };
    let loaded = data::load_many(&args.data, &opts)?;
    let rows_in: usize = loaded.bars.iter().map(|b| b.len()).sum();
    pb.set_length(loaded.bars.len() as u64 + 2);
    pb.inc(1);

    pb.set_message(format!("features for {} symbol(s)", loaded.bars.len()));
    let frame = features::compute_many_observed(&loaded.bars, &spec, |_| pb.inc(1))?;

    pb.set_message("writing");
    let (mut df, summary_rows) = match &args.label {
        Some(label) => {
            let ds = Dataset::from_frame(&loaded.bars, &frame, label)?;
            (ds.to_dataframe()?, Some(ds.dropped))
        }
        None => (retrain::features::dataset::frame_to_dataframe(&frame)?, None),
    };
    data::write_frame(&mut df, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    pb.inc(1);
    pb.finish_and_clear();

    let warmup = frame.warmup_rows();
    let (label_dropped, non_finite, rows_out) = match summary_rows {
        Some(d) => (d.missing_label, d.non_finite, d.rows_out),
        None => (0, rows_in - warmup - df.height(), df.height()),
    };
    let summary = Summary {
        inputs: args.data.iter().map(|p| p.display().to_string()).collect(),
        symbols: loaded.bars.iter().map(|b| b.symbol().to_string()).collect(),
        rows_in,
        warmup_dropped: warmup,
        label_dropped,
        non_finite_dropped: non_finite,
        rows_out,
        feature_columns: frame.names.len(),
        max_lookback: spec.max_lookback(),
        label: args.label.as_ref().map(|l| l.to_string()),
        repaired: loaded
            .repairs
            .iter()
            .map(|(s, r)| RepairLine {
                symbol: s.clone(),
                rows_moved: r.rows_moved,
                duplicates_dropped: r.duplicates_dropped,
            })
            .collect(),
        out: args.out.display().to_string(),
        seconds: started.elapsed().as_secs_f64(),
    };
    super::emit(args.json, &summary, print_summary)
}

fn print_summary(s: &Summary) {
    println!("features written to {}", s.out);
    println!("  symbols          {}", s.symbols.join(", "));
    println!("  rows in          {}", s.rows_in);
    println!("  warm-up dropped  {} (longest lookback {} bars)", s.warmup_dropped, s.max_lookback);
    if let Some(l) = &s.label {
        println!("  label            {l}");
        println!("  no-label dropped {}", s.label_dropped);
    }
    if s.non_finite_dropped > 0 {
        println!("  non-finite rows  {}", s.non_finite_dropped);
    }
    for r in &s.repaired {
        println!("  repaired {}: {} rows moved, {} duplicates dropped", r.symbol, r.rows_moved, r.duplicates_dropped);
    }
    println!("  rows out         {}", s.rows_out);
    println!("  feature columns  {}", s.feature_columns);
    println!("  time             {:.2}s", s.seconds);
}
