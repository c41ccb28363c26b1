//! The retraining lifecycle of SPEC §5, in-process: model health from logged predictions,
//! feature drift against reference statistics stored with each version, triggers and their
//! priorities, the plan, isolated parallel jobs, the deployment decision, shadow and canary
//! tests, retirement and automatic rollback — behind one front door, the `Retrainer`.

pub mod cancel;
pub mod decision;
pub mod drift;
pub mod events;
pub mod health;
pub mod ks;
pub mod trigger;

pub use drift::{DriftReport, FeatureDrift, FeatureReference, ReferenceStats, Severity, check_drift};
pub use ks::{KsResult, ks_2samp};
