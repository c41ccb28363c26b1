//! Typed lifecycle events and the [`EventSink`] extension point a host
//! subscribes with: a callback, a channel, or a JSONL file. Event names are the original
//! design's (`model.training.started`, `drift.detected`, …); [`Event::name`] returns them and
//! the JSON form carries them in its `event` field.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event")]
#[non_exhaustive]
pub enum EventKind {
    /// Bars for a job were loaded / windowed.
    #[serde(rename = "data.fetch.completed")]
    DataFetchCompleted {
        /// Bars in the job's window.
        bars: usize,
    },
    /// A plan started executing.
    #[serde(rename = "clm.retraining.started")]
    RetrainingStarted {
        /// Jobs in the plan.
        jobs: usize,
    },
    /// A plan finished.
    #[serde(rename = "clm.retraining.completed")]
    RetrainingCompleted {
        /// Jobs that completed.
        completed: usize,
        /// Jobs that failed (error, panic, time limit, cancellation).
        failed: usize,
        /// Seconds.
        seconds: f64,
    },
    /// A job started training.
    #[serde(rename = "model.training.started")]
    TrainingStarted {
        /// Model kind.
        kind: String,
        /// The trigger's reason.
        reason: String,
    },
    /// A job finished training (validation included).
    #[serde(rename = "model.training.completed")]
    TrainingCompleted {
        /// Whether it succeeded.
        ok: bool,
        /// Seconds.
        seconds: f64,
        /// The error, when it failed.
        error: Option<String>,
    },
    /// A candidate was stored.
    #[serde(rename = "model.registered")]
    Registered {
        /// Its version tag.
        tag: String,
        /// The decision taken on it.
        decision: String,
    },
    /// A version became active.
    #[serde(rename = "model.promoted")]
    Promoted {
        /// The new active tag.
        tag: String,
        /// Why.
        reason: String,
    },
    /// A version was retired (and the fallback, if any, activated).
    #[serde(rename = "model.retired")]
    Retired {
        /// The retired tag.
        tag: String,
        /// The version active afterwards.
        fallback: Option<String>,
        /// Why.
        reason: String,
    },
    /// A shadow test recommends promotion.
    #[serde(rename = "shadow.promotion.recommended")]
    ShadowPromotionRecommended {
        /// The shadow tag.
        tag: String,
        /// Relative improvement on the key metric.
        improvement: f64,
    },
    /// Feature drift was detected.
    #[serde(rename = "drift.detected")]
    DriftDetected {
        /// DriftSeverity (LOW … CRITICAL).
        severity: String,
        /// The drifted features.
        features: Vec<String>,
        /// Largest KS statistic.
        max_ks: f64,
    },
    /// A stop-trading alarm was raised (critical drift): the host should stop acting on the
    /// model's signals until an operator clears it.
    #[serde(rename = "alarm.stop_trading.raised")]
    StopTradingRaised {
        /// Why.
        reason: String,
    },
    /// A stop-trading alarm was cleared.
    #[serde(rename = "alarm.stop_trading.cleared")]
    StopTradingCleared {
        /// Who cleared it and why.
        reason: String,
    },
    /// A shadow test has had no new record for `shadow_stuck_hours`.
    #[serde(rename = "shadow.test.stuck")]
    ShadowStuck {
        /// The shadow tag.
        tag: String,
        /// Hours since its last record.
        hours: f64,
    },
    /// A shadow test ended in REJECT and its candidate was retired.
    #[serde(rename = "shadow.rejected")]
    ShadowRejected {
        /// The shadow tag.
        tag: String,
        /// Why.
        reason: String,
    },
    /// The meta-strategy agent learned from a closed trade.
    #[serde(rename = "rl.meta.updated")]
    RlMetaUpdated(RlUpdate),
    /// The meta-strategy agent's table was archived and started afresh.
    #[serde(rename = "rl.meta.reset")]
    RlMetaReset(RlReset),
    /// The sizing agent learned from a closed trade.
    #[serde(rename = "rl.sizing.updated")]
    RlSizingUpdated(RlUpdate),
    /// The sizing agent's table was archived and started afresh.
    #[serde(rename = "rl.sizing.reset")]
    RlSizingReset(RlReset),
    /// Health is DEGRADED or CRITICAL.
    #[serde(rename = "model.performance.degraded")]
    PerformanceDegraded {
        /// DEGRADED or CRITICAL.
        status: String,
        /// The alerts raised.
        alerts: Vec<String>,
    },
}

/// What an `rl.*.updated` event carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlUpdate {
    /// The state's key.
    pub state: String,
    /// The action taken, by name.
    pub action: String,
    /// Its reward.
    pub reward: f64,
    /// The updated Q value.
    pub q: f64,
    /// Updates since the table was created.
    pub updates: u64,
    /// ε after the update.
    pub epsilon: f64,
    /// The snapshot version this update completed, if one was stored.
    pub snapshot: Option<String>,
    /// States pruned at that snapshot.
    pub pruned: usize,
}

/// What an `rl.*.reset` event carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlReset {
    /// The version the old table was archived as.
    pub archived: String,
    /// The regime the old table was learned in.
    pub from: String,
    /// The regime that replaced it.
    pub to: String,
    /// Updates the archived table had.
    pub updates: u64,
}

/// One event: when, about which model, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When (the lifecycle's clock).
    pub ts: Timestamp,
    /// The model concerned (`None` for plan-wide events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The event itself (its `event` field is the event name).
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// The event name, e.g. `model.training.started`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            EventKind::DataFetchCompleted { .. } => "data.fetch.completed",
            EventKind::RetrainingStarted { .. } => "clm.retraining.started",
            EventKind::RetrainingCompleted { .. } => "clm.retraining.completed",
            EventKind::TrainingStarted { .. } => "model.training.started",
            EventKind::TrainingCompleted { .. } => "model.training.completed",
            EventKind::Registered { .. } => "model.registered",
            EventKind::Promoted { .. } => "model.promoted",
            EventKind::Retired { .. } => "model.retired",
            EventKind::ShadowPromotionRecommended { .. } => "shadow.promotion.recommended",
            EventKind::ShadowStuck { .. } => "shadow.test.stuck",
            EventKind::ShadowRejected { .. } => "shadow.rejected",
            EventKind::DriftDetected { .. } => "drift.detected",
            EventKind::StopTradingRaised { .. } => "alarm.stop_trading.raised",
            EventKind::StopTradingCleared { .. } => "alarm.stop_trading.cleared",
            EventKind::PerformanceDegraded { .. } => "model.performance.degraded",
            EventKind::RlMetaUpdated(_) => "rl.meta.updated",
            EventKind::RlMetaReset(_) => "rl.meta.reset",
            EventKind::RlSizingUpdated(_) => "rl.sizing.updated",
            EventKind::RlSizingReset(_) => "rl.sizing.reset",
        }
    }
}

/// Where events go (an extension point; must be cheap and must not panic — it runs on the
/// lifecycle's threads).
pub trait EventSink: Send + Sync {
    /// Deliver one event.
    fn emit(&self, event: &Event);
}

/// Drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl EventSink for NullSink {
    fn emit(&self, _: &Event) {}
}

/// Calls a closure with each event.
pub struct CallbackSink<F: Fn(&Event) + Send + Sync>(pub F);

impl<F: Fn(&Event) + Send + Sync> EventSink for CallbackSink<F> {
    fn emit(&self, event: &Event) {
        (self.0)(event)
    }
}

/// Sends each event down a channel (a closed receiver is ignored).
pub struct ChannelSink(Mutex<std::sync::mpsc::Sender<Event>>);

impl ChannelSink {
    /// A sink and the receiver the host reads from.
    pub fn new() -> (ChannelSink, std::sync::mpsc::Receiver<Event>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (ChannelSink(Mutex::new(tx)), rx)
    }
}

impl EventSink for ChannelSink {
    fn emit(&self, event: &Event) {
        let tx = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = tx.send(event.clone());
    }
}

/// Appends each event as one JSON line to a file (write errors are logged, not raised: an
/// event log must never fail a retrain).
pub struct JsonlSink {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl JsonlSink {
    /// Open (create or append to) `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| Error::Io { path: path.clone(), source })?;
        Ok(JsonlSink { path, file: Mutex::new(file) })
    }
}

impl EventSink for JsonlSink {
    fn emit(&self, event: &Event) {
        let mut line = serde_json::to_vec(event).expect("events serialise");
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.write_all(&line) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not write an event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind) -> Event {
        Event { ts: "2026-11-24T00:00:00Z".parse().unwrap(), model: Some("m".into()), kind }
    }

    #[test]
    fn json_carries_the_spec_name() {
        let e = ev(EventKind::TrainingStarted { kind: "lightgbm".into(), reason: "manual".into() });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "model.training.started");
        assert_eq!(v["event"], e.name());
        assert_eq!(v["model"], "m");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn rl_events_carry_their_names_and_round_trip() {
        let u = RlUpdate {
            state: "TRENDING_HIGH_MEDIUM_GOOD".into(),
            action: "breakout".into(),
            reward: 4.2,
            q: 0.42,
            updates: 500,
            epsilon: 0.05,
            snapshot: Some("v20240101_000000".into()),
            pruned: 3,
        };
        let r = RlReset { archived: "v1".into(), from: "TRENDING".into(), to: "RANGING".into(), updates: 9 };
        for (kind, name) in [
            (EventKind::RlMetaUpdated(u.clone()), "rl.meta.updated"),
            (EventKind::RlSizingUpdated(u), "rl.sizing.updated"),
            (EventKind::RlMetaReset(r.clone()), "rl.meta.reset"),
            (EventKind::RlSizingReset(r), "rl.sizing.reset"),
        ] {
            let e = ev(kind);
            let v = serde_json::to_value(&e).unwrap();
            assert_eq!((v["event"].as_str(), e.name()), (Some(name), name));
            assert_eq!(serde_json::from_value::<Event>(v).unwrap(), e);
        }
    }

    #[test]
    fn every_sink_delivers() {
        let (sink, rx) = ChannelSink::new();
        sink.emit(&ev(EventKind::RetrainingStarted { jobs: 2 }));
        assert_eq!(rx.try_recv().unwrap().name(), "clm.retraining.started");
        let seen = Mutex::new(Vec::new());
        let cb = CallbackSink(|e: &Event| seen.lock().unwrap().push(e.name()));
        cb.emit(&ev(EventKind::Promoted { tag: "v1".into(), reason: "r".into() }));
        assert_eq!(*seen.lock().unwrap(), ["model.promoted"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let j = JsonlSink::open(&path).unwrap();
        j.emit(&ev(EventKind::DataFetchCompleted { bars: 10 }));
        j.emit(&ev(EventKind::DataFetchCompleted { bars: 11 }));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("\"event\":\"data.fetch.completed\""));
    }
}
