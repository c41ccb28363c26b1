//! Native histogram gradient boosting: one engine, two growth policies (model kinds
//! `xgboost` = depth-wise and `lightgbm` = leaf-wise).
//!
//! Pipeline of a fit: [`binning`] (edges from training rows — exact, or a quantile sketch for
//! large sets — and u8/u16 bins) →
//! per round [`objective`] gradients, quantized for the split search → grow one tree
//! per output (histogram construction with subtraction, split search with learned NaN
//! direction) → scores. [`booster`] owns the loop (bagging, feature sampling, early stopping,
//! warm start) and the fitted [`Gbdt`]; [`flat`] compiles it for low-latency single rows;
//! [`shap`] explains predictions; [`io`] saves and loads; [`interop`] feeds linfa datasets in.
//!
//! ```
//! use ndarray::Array2;
//! use retrain::gbdt::{GbdtParams, TrainData};
//!
//! let x = Array2::from_shape_fn((400, 2), |(r, c)| ((r * (c + 3)) % 17) as f32);
//! let y: Vec<f64> = (0..400).map(|r| ((x[[r, 0]] > 8.0) != (x[[r, 1]] > 8.0)) as u8 as f64).collect();
//! let model = GbdtParams::lightgbm().rounds(20).min_data_in_leaf(5).fit_data(&TrainData::new(x.view(), &y)?, None)?;
//! let p = model.predict(x.view())?; // P(y = 1), one column
//! assert!((0..400).all(|r| (p[[r, 0]] > 0.5) == (y[r] == 1.0)));
//! # Ok::<(), retrain::Error>(())
//! ```

pub mod binning;
pub mod booster;
pub mod flat;
mod grow;
mod histogram;
pub mod interop;
pub mod io;
pub mod objective;
pub mod params;
mod quantize;
pub mod shap;
mod sketch;
mod split;
pub mod tree;

pub use booster::{FitOptions, Gbdt, RoundEval, TrainData};
pub use flat::CompiledGbdt;
pub use objective::Objective;
pub use params::{GbdtParams, Growth, ObjectiveKind};
