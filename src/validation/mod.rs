//! Honest evaluation of models: splitters that purge and embargo by label
//! interval ([`split`], [`cpcv`], [`walk_forward`]), [`cross_validate`](mod@cross_validate) with out-of-sample
//! predictions per split and per backtest path ([`report`]), the scoring [`metrics`], and
//! the statistics that compare models and flag overfitting ([`compare`], [`overfit`]).

pub mod compare;
pub mod cpcv;
pub mod cross_validate;
pub mod metrics;
pub mod overfit;
pub mod report;
pub mod split;
pub mod walk_forward;

pub use cpcv::Cpcv;
pub use cross_validate::{CvOptions, cross_validate, cross_validate_seeds};
pub use report::{CvReport, Scores};
pub use split::{BacktestPath, Chronological, Embargo, PurgedKFold, Split, SplitPlan, Splitter};
pub use walk_forward::{WalkForward, Window};
