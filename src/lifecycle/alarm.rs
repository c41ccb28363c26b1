//! The stop-trading alarm: what CRITICAL drift raises beside its retrain. A host asks
//! [`Retrainer::stop_trading`] before acting on a model's signals; the alarm holds until an
//! operator clears it ([`Retrainer::clear_alarm`], `retrain alarm clear`), however many
//! supervisor cycles and retrains pass meanwhile. Its durable record is the audit log
//! (`Alarm` records, `details.state` RAISED / CLEARED), so the state survives restarts and is
//! the same for every process sharing the store; raising and clearing also emit events.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lifecycle::events::EventKind;
use crate::lifecycle::orchestrator::Retrainer;
use crate::store::{AuditKind, AuditRecord, Change};

/// A raised stop-trading alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// The model whose signals should not be traded.
    pub model_id: String,
    /// When it was raised.
    pub raised_at: Timestamp,
    /// Who raised it.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// The evidence (for drift: severity, drifted features, largest KS statistic).
    pub details: Option<serde_json::Value>,
}

const RAISED: &str = "RAISED";
const CLEARED: &str = "CLEARED";

fn state(r: &AuditRecord) -> Option<&str> {
    (r.event == AuditKind::Alarm).then(|| r.details.as_ref()?.get("state")?.as_str()).flatten()
}

/// The alarm a model's audit history leaves raised, if any (the last RAISED with no CLEARED
/// after it).
pub fn raised_in(model_id: &str, history: &[AuditRecord]) -> Option<Alarm> {
    let last = history.iter().rev().find(|r| state(r).is_some())?;
    (state(last) == Some(RAISED)).then(|| Alarm {
        model_id: model_id.into(),
        raised_at: last.ts,
        actor: last.actor.clone(),
        reason: last.reason.clone(),
        details: last.details.as_ref().and_then(|d| d.get("evidence")).cloned(),
    })
}

impl Retrainer {
    /// The raised stop-trading alarm of `model_id`, if any (read from the audit log).
    pub fn stop_trading(&self, model_id: &str) -> Result<Option<Alarm>> {
        crate::store::check_model_id(model_id)?;
        let alarm = raised_in(model_id, &self.store.history(model_id)?);
        self.remember_alarm(model_id, alarm.is_some());
        Ok(alarm)
    }

    /// [`Retrainer::stop_trading`] for a supervisor cycle: the audit log is read the first
    /// time a model is checked and afterwards only while its alarm is raised (so an
    /// operator's clear shows on the next cycle) — not for every model every cycle. An alarm
    /// another process raises meanwhile shows in `stop_trading`, which always reads the log.
    pub(super) fn alarm_in_cycle(&self, model_id: &str) -> Result<Option<Alarm>> {
        let known = self.alarm_raised.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(model_id).copied();
        match known {
            Some(false) => Ok(None),
            _ => self.stop_trading(model_id),
        }
    }

    fn remember_alarm(&self, model_id: &str, raised: bool) {
        self.alarm_raised.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(model_id.into(), raised);
    }

    /// Every raised stop-trading alarm in the store, by model id.
    pub fn alarms(&self) -> Result<Vec<Alarm>> {
        let models = self.store.models()?;
        let histories = self.store.histories(&models.iter().map(String::as_str).collect::<Vec<_>>())?;
        Ok(histories.iter().filter_map(|(m, h)| raised_in(m, h)).collect())
    }

    /// Raise `model_id`'s alarm (audited, `alarm.stop_trading.raised`) unless it is raised
    /// already; returns whether this call raised it.
    pub fn raise_alarm(&self, model_id: &str, change: &Change, evidence: Option<serde_json::Value>) -> Result<bool> {
        if self.stop_trading(model_id)?.is_some() {
            return Ok(false);
        }
        let details = serde_json::json!({"state": RAISED, "evidence": evidence});
        self.store.log_event(model_id, AuditKind::Alarm, change, Some(details))?;
        self.remember_alarm(model_id, true);
        self.emit(Some(model_id), EventKind::StopTradingRaised { reason: change.reason.clone() });
        Ok(true)
    }

    /// Clear `model_id`'s alarm (audited with who and why, `alarm.stop_trading.cleared`). An
    /// error when none is raised, so a mistyped model id cannot pass for a cleared alarm.
    pub fn clear_alarm(&self, model_id: &str, change: &Change) -> Result<Alarm> {
        let alarm = self
            .stop_trading(model_id)?
            .ok_or_else(|| Error::NotFound { model_id: model_id.into(), what: "raised stop-trading alarm".into() })?;
        self.store.log_event(model_id, AuditKind::Alarm, change, Some(serde_json::json!({"state": CLEARED})))?;
        self.remember_alarm(model_id, false);
        self.emit(
            Some(model_id),
            EventKind::StopTradingCleared { reason: format!("{}: {}", change.actor, change.reason) },
        );
        Ok(alarm)
    }
}
