//! # retrain
//!
//! Keep trading models fresh in-process. A trading engine embeds [`Retrainer`]: it turns OHLCV
//! candles into causal features and labels, trains gradient-boosted trees and time-series
//! networks, validates them with combinatorial purged cross-validation, decides whether a new
//! version may replace the deployed one, and keeps every version in a crash-safe store with
//! rollback and an audit log.
//!
//! ## The front door
//! ```no_run
//! use retrain::{Policy, Retrainer, ModelKind, ModelSpec, Trigger, read_bars};
//!
//! let bars = read_bars("datasets/btcusd_coinbase_1h.csv")?.remove(0);
//! let retrainer = Retrainer::open("models", Policy::default())?
//!     .with_threads(2)?
//!     .with_model("btc_1h", ModelSpec::new(ModelKind::LIGHTGBM))?;
//! let report = retrainer.retrain("btc_1h", &bars, Trigger::manual("new data"))?;
//! println!("{}", report.status);
//! if let Ok(model) = retrainer.active("btc_1h") {
//!     println!("{:?}", model.predict_latest(&bars)?);
//! }
//! # Ok::<(), retrain::Error>(())
//! ```
//!
//! ## The pieces
//! Data flows one way, and so do the module imports: [`data`] (validated [`Bars`], file and
//! `DataFrame` I/O) → [`features`] (a [`FeatureSpec`] and a [`LabelSpec`] make a [`Dataset`])
//! → [`gbdt`] and [`nn`] (the learners) → [`model`] (one [`ModelKind`] per learner behind one
//! trait) → [`validation`] ([`Cpcv`], [`cross_validate()`], metrics, overfitting statistics) →
//! [`store`] (the [`VersionStore`]) → [`rl`] (tabular Q-learning) → [`lifecycle`] (health,
//! drift, triggers, jobs, the decision, supervision, the [`Retrainer`]). Below them all sit [`error`], [`config`]
//! (the [`Policy`]), [`clock`], [`rng`] and [`fsutil`].
//!
//! ```
//! use retrain::{Dataset, FeatureSpec, LabelSpec, read_bars};
//!
//! let bars = read_bars(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/btcusd_coinbase_1h.csv"))?;
//! let spec = FeatureSpec::default(); // the full built-in set (61 columns)
//! let label: LabelSpec = "direction:12".parse()?;
//! let ds = Dataset::from_bars(&bars, &spec, &label)?;
//! assert_eq!(ds.n_features(), spec.columns().len());
//! assert_eq!(ds.dropped.rows_in, 20_111);
//! assert_eq!(ds.dropped.warmup, spec.max_lookback());
//! assert_eq!(ds.dropped.missing_label, 12);
//! # Ok::<(), retrain::Error>(())
//! ```
//!
//! ## Threads
//! A [`Retrainer`] runs its jobs in its own bounded pool (`policy.threads`, or
//! [`Retrainer::with_threads`]), never the host's global one. Every other entry point runs in
//! the caller's rayon pool: wrap calls in `pool.install(|| …)` to cap it. ([`GbdtParams`]
//! builds a private pool only when its `threads` is set explicitly.) The networks' element-wise
//! candle kernels run in candle's own pool, sized by the `CANDLE_NUM_THREADS` environment
//! variable (the `retrain` binary sets it from `--threads`; an embedding host sets it itself).
//! Results do not depend on the thread count.

#![warn(missing_docs)]
// Indicator kernels index several aligned series at offsets (`x[t - period]`), mirroring the
// reference algorithms line by line; iterator rewrites would obscure that correspondence.
#![allow(clippy::needless_range_loop)]

pub mod clock;
pub mod config;
pub mod data;
pub mod error;
pub mod features;
pub mod fsutil;
pub mod gbdt;
pub mod lifecycle;
pub mod model;
pub mod nn;
pub mod rl;
pub mod rng;
mod simd;
mod sortkey;
pub mod store;
pub mod validation;

pub use config::Policy;
pub use data::{Bars, read_bars};
pub use error::{Error, Result};
pub use features::{Dataset, FeatureSpec, LabelSpec, Task};
pub use gbdt::GbdtParams;
pub use lifecycle::{ModelSpec, Retrainer, Trigger};
pub use model::{ModelKind, Signal};
pub use store::VersionStore;
pub use validation::{Cpcv, cross_validate};

/// The README's Rust examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The policy page's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/policy.md")]
pub struct PolicyDocDoctests;

/// The design notes' examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/internals.md")]
pub struct InternalsDocDoctests;

/// The reinforcement-learning page's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/rl.md")]
pub struct RlDocDoctests;
