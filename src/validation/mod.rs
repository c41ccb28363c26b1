//! Honest evaluation of models. Today: the scoring metrics used to report fits
//! ([`metrics`]); splitters, CPCV and comparison statistics build on them.

pub mod metrics;
