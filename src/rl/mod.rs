//! Tabular reinforcement learning kept beside the supervised models: a Q-learning agent over
//! discrete states and actions ([`qtable`]), and the vocabularies of the two agents built on
//! it: the meta-strategy agent ([`meta_strategy`]) and the position-sizing agent ([`sizing`],
//! with the limits no learned value can pass). [`versions`] keeps tables as versions in the
//! version store: the live table is the ACTIVE one, and older snapshots can be rolled back to.

pub mod meta_strategy;
pub mod qtable;
pub mod simulate;
pub mod sizing;
pub mod tradelog;
pub mod versions;

pub use meta_strategy::{MarketView, MetaState, StateThresholds, Strategy, meta_reward, meta_state};
pub use qtable::{Action, QAgent, QConfig, QSnapshot, Transition};
pub use sizing::{SizedPosition, SizingAction, SizingContext, SizingLimits, SizingState, clamp, sizing_reward};
