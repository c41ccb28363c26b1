//! # retrain
//!
//! Keep trading models fresh in-process. `retrain` turns OHLCV candles into causal features
//! and labels, and (as the crate grows) trains, validates, decides and versions models —
//! all as library calls a trading engine can embed, with a thin CLI on top.
//!
//! Data flows one way: [`data::Bars`] (validated candles) → [`features`] (a
//! [`features::FeatureFrame`] from a serde [`features::FeatureSpec`]) → labels with their
//! end time `t1` → [`data::Dataset`] (column-major `f32` matrix, target, `t0`/`t1`, symbol)
//! → a model ([`gbdt`]) → [`validation`] (purged splits and CPCV, out-of-sample metrics,
//! comparison and overfitting statistics) → [`store`] (the crash-safe version store:
//! statuses, aliases, rollback, retention, audit log) → [`lifecycle`] (health, drift,
//! triggers, plans, isolated jobs, the deployment decision, events, and the
//! [`lifecycle::Retrainer`] front door). Time comes from an injected [`clock::Clock`];
//! every lifecycle threshold lives in one [`config::Policy`].
//!
//! ## Quick start
//! ```
//! use retrain::data::{read_bars, Dataset};
//! use retrain::features::{FeatureSpec, LabelSpec};
//!
//! let bars = read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/btcusd_coinbase_1h.csv"))?;
//! let spec = FeatureSpec::default(); // the full SPEC §2 set (61 columns)
//! let label: LabelSpec = "direction:12".parse()?;
//! let ds = Dataset::from_bars(&bars, &spec, &label)?;
//! assert_eq!(ds.n_features(), spec.columns().len());
//! assert_eq!(ds.dropped.rows_in, 20_111);
//! assert_eq!(ds.dropped.warmup, spec.max_lookback());
//! assert_eq!(ds.dropped.missing_label, 12);
//! println!("{} rows x {} features", ds.n_rows(), ds.n_features());
//! # Ok::<(), retrain::Error>(())
//! ```
//!
//! Parallel work uses the caller's rayon pool: wrap calls in `pool.install(|| …)` to cap
//! threads. Results do not depend on the thread count.

// Indicator kernels index several aligned series at offsets (`x[t - period]`), mirroring the
// reference algorithms line by line; iterator rewrites would obscure that correspondence.
#![allow(clippy::needless_range_loop)]

pub mod clock;
pub mod config;
pub mod data;
pub mod error;
pub mod features;
pub mod gbdt;
pub mod lifecycle;
pub mod model;
pub mod nn;
pub mod rng;
mod sortkey;
pub mod store;
pub mod validation;

pub use error::{Error, Result};

/// The README's Rust examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
