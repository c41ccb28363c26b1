//! Tabular reinforcement learning kept beside the supervised models: a Q-learning agent over
//! discrete states and actions ([`qtable`]), the core the meta-strategy and position-sizing
//! agents are built on.

pub mod qtable;

pub use qtable::{Action, QAgent, QConfig, QSnapshot, Transition};
