//! The append-only audit log, `audit.jsonl`: one JSON object per line for every registration,
//! status change, promotion, rollback, retirement, deletion and decision.
//!
//! Writers append under the store lock *before* committing the change the record describes,
//! each record carrying the model generation it produces. If the writer dies between the two,
//! the next writer (also under the lock) sees that the last record's generation was never
//! committed and appends an `aborted` marker; readers drop records so marked, and records
//! newer than the committed generation. A torn last line (a crash mid-append) is ignored by
//! readers and cut off by the next writer before it appends.
//!
//! Every record is sealed into a hash chain anchored by `audit.head` (see `chain.rs`), so a
//! damaged, dropped, repeated, reordered or truncated record is detected; a decision record
//! carries the BLAKE3 of the report it references.

use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use std::fs::File;

use crate::store::atomic::{io_err, read_tail};
use crate::store::chain;
use crate::store::meta::Status;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A version was committed.
    Registered,
    /// A status changed (directly or as a side effect of another change).
    StatusChanged,
    /// A shadow became active.
    Promoted,
    /// An older version was made active again.
    RolledBack,
    /// A version was retired.
    Retired,
    /// Retention (or orphan cleanup) moved a version to the trash.
    Trashed,
    /// A trashed version was deleted for good.
    Purged,
    /// A deployment decision report was recorded.
    Decision,
    /// The preceding record(s) with this model and generation were never committed.
    Aborted,
    /// A lifecycle trigger fired (priority and reason in `details`).
    Trigger,
    /// A retraining job finished: COMPLETED, FAILED, DEFERRED or CANCELLED, with its duration
    /// in `details` (the plan's duration estimates come from these).
    Job,
    /// A lifecycle alert (drift, degraded health, stuck shadow test).
    Alert,
    /// A stop-trading alarm was raised or cleared (`details.state`: `RAISED` or `CLEARED`).
    Alarm,
    /// A reinforcement-learning table was archived and re-initialised on a regime change
    /// (`details`: the archived version, the regimes, its update count).
    RlReset,
    /// Long-unvisited states were dropped from a reinforcement-learning table (`details`:
    /// how many, the idle limit).
    RlPruned,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When (from the store's clock).
    pub ts: Timestamp,
    /// What happened.
    pub event: AuditKind,
    /// The model, when the event concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The version, when the event concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Status before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Status>,
    /// Status after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Status>,
    /// Who asked (user, `lifecycle`, `gc`, …).
    pub actor: String,
    /// Why.
    pub reason: String,
    /// The model generation this record's change commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// A related path (decision report, trash location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Structured details of lifecycle records (trigger priority, job status and duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// BLAKE3 (hex) of the file `reference` names, when that file is checksummed (decision
    /// reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// The previous record's `hash` (the audit log's hash chain; absent in records written
    /// before the chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// BLAKE3 (hex) of this record's line up to this field. Always the last field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl AuditRecord {
    /// A record with the required fields; the optional ones start empty.
    pub fn new(ts: Timestamp, event: AuditKind, actor: &str, reason: &str) -> Self {
        AuditRecord {
            ts,
            event,
            model: None,
            version: None,
            from: None,
            to: None,
            actor: actor.into(),
            reason: reason.into(),
            generation: None,
            reference: None,
            details: None,
            checksum: None,
            prev: None,
            hash: None,
        }
    }
}

/// Append `records` to the chained log (see [`chain::append_sealed`]). Call only under the
/// store lock.
pub(crate) fn append(path: &Path, records: &[AuditRecord]) -> Result<()> {
    chain::append_sealed(path, records)
}

/// The last complete record, read from the end of the file (cheap for any log size).
pub(crate) fn last(path: &Path) -> Result<Option<AuditRecord>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let len = f.metadata().map_err(io_err(path))?.len();
    let n = len.min(256 * 1024);
    let tail = read_tail(&mut f, path, len, n)?;
    let Some(end) = tail.iter().rposition(|&b| b == b'\n') else { return Ok(None) };
    let start = tail[..end].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if start == 0 && n < len {
        return Ok(None); // one line longer than the window: not ours
    }
    Ok(serde_json::from_slice(&tail[start..end]).ok())
}

/// The committed history of `model`: aborted and not-yet-committed records removed.
pub(crate) fn committed(records: Vec<AuditRecord>, model: &str, generation: u64) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::new();
    for r in records {
        if r.model.as_deref() != Some(model) {
            continue;
        }
        if r.event == AuditKind::Aborted {
            out.retain(|o| o.generation != r.generation || o.generation.is_none());
            continue;
        }
        out.push(r);
    }
    out.retain(|r| r.generation.is_none_or(|g| g <= generation));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn rec(model: &str, g: Option<u64>, kind: AuditKind) -> AuditRecord {
        let mut r = AuditRecord::new(Timestamp::UNIX_EPOCH, kind, "test", "");
        r.model = Some(model.into());
        r.generation = g;
        r
    }

    #[test]
    fn torn_tail_is_ignored_then_cut() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.jsonl");
        append(&p, &[rec("m", Some(1), AuditKind::Registered)]).unwrap();
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"ts":"1970-01-01T00:00:00Z","event":"regis"#).unwrap();
        let log = chain::check_file(&p, None).unwrap();
        assert_eq!((log.records.len(), log.torn_tail, log.broken), (1, true, None));
        assert_eq!(last(&p).unwrap().unwrap().generation, Some(1));
        append(&p, &[rec("m", Some(2), AuditKind::Promoted)]).unwrap();
        let log = chain::check_file(&p, None).unwrap();
        assert_eq!((log.records.len(), log.torn_tail, log.broken), (2, false, None));
        assert_eq!(last(&p).unwrap().unwrap().event, AuditKind::Promoted);
    }

    #[test]
    fn a_garbage_line_breaks_the_chain_and_models_are_filtered() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.jsonl");
        append(&p, &[rec("m", Some(1), AuditKind::Registered), rec("other", Some(1), AuditKind::Registered)]).unwrap();
        append(&p, &[rec("m", Some(2), AuditKind::Registered)]).unwrap();
        let log = chain::check_file(&p, Some("\"model\":\"m\"")).unwrap();
        assert_eq!((log.records.len(), log.count, log.broken), (2, 3, None));
        OpenOptions::new().append(true).open(&p).unwrap().write_all(b"not json\n").unwrap();
        let log = chain::check_file(&p, None).unwrap();
        assert_eq!(log.records.len(), 3);
        assert_eq!(log.broken.map(|b| b.line), Some(4));
    }

    #[test]
    fn an_old_unchained_log_is_sealed_by_the_first_append() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.jsonl");
        let mut old = Vec::new();
        for g in 1..=3 {
            serde_json::to_writer(&mut old, &rec("m", Some(g), AuditKind::Registered)).unwrap();
            old.push(b'\n');
        }
        std::fs::write(&p, &old).unwrap();
        let log = chain::check_file(&p, None).unwrap();
        assert_eq!((log.unchained, log.count, log.broken), (3, 3, None));
        append(&p, &[rec("m", Some(4), AuditKind::Promoted)]).unwrap();
        let log = chain::check_file(&p, None).unwrap();
        assert_eq!((log.unchained, log.count, log.broken), (3, 4, None));
        let r = last(&p).unwrap().unwrap();
        assert_eq!(r.prev.as_deref(), Some(chain::genesis(&old).as_str()));
        assert!(r.hash.is_some());
    }

    #[test]
    fn aborted_and_uncommitted_records_are_dropped() {
        use AuditKind::*;
        let recs = vec![
            rec("m", Some(1), Registered),
            rec("x", Some(2), Registered),
            rec("m", Some(2), Promoted),
            rec("m", Some(2), Aborted),
            rec("m", Some(2), RolledBack),
            rec("m", None, Purged),
            rec("m", Some(3), Retired),
        ];
        let kept: Vec<AuditKind> = committed(recs, "m", 2).into_iter().map(|r| r.event).collect();
        assert_eq!(kept, vec![Registered, RolledBack, Purged]);
    }
}
