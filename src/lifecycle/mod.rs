//! The retraining lifecycle, in-process: model health from logged predictions,
//! feature drift against reference statistics stored with each version, triggers (cron
//! schedules included) and their priorities, the plan, isolated parallel jobs, the deployment
//! decision, shadow and canary tests, retirement and automatic rollback, and the audit trail
//! — behind one front door, [`Retrainer`].

pub mod agents;
pub mod alarm;
pub mod cache;
pub mod cancel;
pub mod decision;
pub mod drift;
pub mod events;
pub mod health;
pub mod job;
pub mod ks;
pub mod orchestrator;
pub mod plan;
mod quantile_index;
pub mod replay;
pub mod replay_report;
pub mod retire;
pub mod rl_replay;
pub mod shadow;
pub mod supervisor;
pub mod trigger;

pub use agents::{AgentKind, MetaOutcome, RlAgents, SizingOutcome};
pub use alarm::Alarm;
pub use cache::JobCache;
pub use cancel::CancelToken;
pub use decision::{Decision, DecisionReport, decide};
pub use drift::{
    DriftReport, DriftSeverity, FeatureDrift, FeatureReference, ReferenceStats, check_drift, check_drift_with,
};
pub use events::{CallbackSink, ChannelSink, Event, EventKind, EventSink, JsonlSink, NullSink};
pub use health::{HealthReport, HealthStatus, PredictionLog, PredictionRecord, Trend, assess};
pub use job::{JobReport, JobStatus, ModelSpec};
pub use ks::ExactPValues;
pub use ks::{KsResult, ks_2samp};
pub use orchestrator::{LoadedModel, Retrainer, policy_kinds};
pub use plan::{Plan, PlannedJob};
pub use replay::{ReplayOptions, ReplayPolicy, ReplayResult, replay};
pub use retire::{LiveAction, LiveVerdict, check_live};
pub use shadow::{Call, Recommendation, ShadowEvaluation, ShadowTest};
pub use supervisor::{ModelCheck, Observations, ShadowPair};
pub use trigger::{Priority, Trigger, TriggerKind};
