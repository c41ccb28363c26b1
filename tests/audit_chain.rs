//! The audit trail is tamper-evident: any damage to `audit.jsonl` (a flipped bit anywhere, a
//! cut in the middle, a deleted, repeated or swapped line) or to a decision report makes
//! `verify` report a problem, every time; an untouched store, one whose writer died
//! mid-append, and one written before the chain existed verify clean.

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use proptest::prelude::*;
use retrain::clock::{Clock, ManualClock};
use retrain::lifecycle::Call;
use retrain::lifecycle::shadow::{Mode, ShadowTest};
use retrain::store::{Artifact, AuditKind, Change, Severity, Status, VersionMeta, VersionStore};

/// A store with two models, promotions, a rollback, decision reports and lifecycle records.
fn populated(dir: &Path) -> VersionStore {
    let c = Arc::new(ManualClock::new("2026-11-23T10:15:00Z".parse().unwrap()));
    let s = VersionStore::open(dir).unwrap().with_clock(c.clone());
    let who = Change::new("test", "because");
    for model in ["btc", "eth"] {
        let mut tags = Vec::new();
        for i in 0..3u8 {
            c.advance(SignedDuration::from_secs(1));
            let mut meta = VersionMeta::new("lightgbm");
            meta.status = Status::Shadow;
            let tag = s.register(model, meta, &[Artifact::bytes("model.bin", vec![i; 16])], &who).unwrap();
            let report = serde_json::json!({ "decision": "DEPLOY", "improvement": 0.07 + f64::from(i) });
            s.record_decision(model, &tag, &report, &Change::new("lifecycle", "DEPLOY")).unwrap();
            s.promote(model, &tag, &who).unwrap();
            tags.push(tag);
        }
        s.rollback(model, &tags[0], &Change::new("ops", "live score fell")).unwrap();
        // A shadow test of the newest version, with paired calls and outcomes.
        let shadow =
            ShadowTest::at(s.shadow_log_path(model, &tags[2]).unwrap(), model, &tags[2], None, Mode::Shadow).unwrap();
        for k in 0..4 {
            let key = format!("{model}@{k}");
            shadow.record(&key, c.now(), Call::new(1, Some(0.6)), Call::new(-1, Some(0.55))).unwrap();
            shadow.record_outcome(&key, c.now(), 0.001 * f64::from(k), None).unwrap();
        }
        s.log_event(model, AuditKind::Job, &Change::new("lifecycle", "retrain"), Some(serde_json::json!({"ok": 1})))
            .unwrap();
    }
    s
}

fn problems(s: &VersionStore) -> Vec<String> {
    s.verify().unwrap().problems().map(|f| format!("{} ({})", f.detail, f.path.display())).collect()
}

fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

#[test]
fn an_untouched_store_verifies_clean_and_history_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = populated(dir.path());
    let rep = s.verify().unwrap();
    assert!(rep.is_ok(), "{rep}");
    assert_eq!(rep.reports, 6);
    assert!(rep.findings.is_empty(), "{rep}");
    let trail = s.audit_trail("btc").unwrap();
    assert!(trail.broken.is_none() && trail.unchained == 0);
    assert_eq!(trail.records, s.history("btc").unwrap());
    assert!(trail.records.iter().any(|r| r.event == AuditKind::RolledBack));
    assert!(trail.records.iter().all(|r| r.hash.is_some() && r.prev.is_some()));
    // One pass for several models gives each model's history.
    let all = s.histories(&["btc", "eth", "unknown"]).unwrap();
    assert_eq!(all["btc"], s.history("btc").unwrap());
    assert_eq!(all["eth"], s.history("eth").unwrap());
    assert!(all["unknown"].is_empty());
}

/// One way of damaging the log.
#[derive(Debug, Clone)]
enum Damage {
    Flip { at: prop::sample::Index, bit: u8 },
    Cut { at: prop::sample::Index },
    Delete { line: prop::sample::Index },
    Duplicate { line: prop::sample::Index },
    Swap { line: prop::sample::Index },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        any::<prop::sample::Index>().prop_map(|at| Damage::Cut { at }),
        any::<prop::sample::Index>().prop_map(|line| Damage::Delete { line }),
        any::<prop::sample::Index>().prop_map(|line| Damage::Duplicate { line }),
        any::<prop::sample::Index>().prop_map(|line| Damage::Swap { line }),
    ]
}

/// `bytes` damaged; `None` when the damage would change nothing (swapping equal lines).
fn apply(bytes: &[u8], d: &Damage) -> Option<Vec<u8>> {
    let mut ls = lines(bytes);
    Some(match d {
        Damage::Flip { at, bit } => {
            let mut b = bytes.to_vec();
            let i = at.index(b.len());
            b[i] ^= 1 << bit;
            b
        }
        // A cut strictly inside the log: at least one byte goes.
        Damage::Cut { at } => bytes[..at.index(bytes.len())].to_vec(),
        Damage::Delete { line } => {
            ls.remove(line.index(ls.len()));
            ls.concat()
        }
        Damage::Duplicate { line } => {
            let i = line.index(ls.len());
            ls.insert(i, ls[i].clone());
            ls.concat()
        }
        Damage::Swap { line } => {
            let i = line.index(ls.len() - 1);
            if ls[i] == ls[i + 1] {
                return None;
            }
            ls.swap(i, i + 1);
            ls.concat()
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_damage_to_the_log_is_reported(d in damage()) {
        let dir = tempfile::tempdir().unwrap();
        let s = populated(dir.path());
        let log = dir.path().join("audit.jsonl");
        let bytes = std::fs::read(&log).unwrap();
        let Some(bad) = apply(&bytes, &d) else { return Ok(()) };
        std::fs::write(&log, &bad).unwrap();
        let p = problems(&s);
        prop_assert!(p.iter().any(|m| m.contains("audit chain broken")), "{d:?}: {p:?}");
        // The library's readers show the records before the break and say where it is.
        let trail = s.audit_trail("btc");
        if let Ok(trail) = trail {
            prop_assert!(trail.broken.is_some(), "{d:?}");
        }
    }

    #[test]
    fn any_damage_to_a_decision_report_is_reported(which in 0usize..6, at in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let s = populated(dir.path());
        let mut reports: Vec<_> = ["btc", "eth"]
            .iter()
            .flat_map(|m| std::fs::read_dir(dir.path().join("models").join(m).join("decisions")).unwrap())
            .map(|e| e.unwrap().path())
            .collect();
        reports.sort();
        let path = &reports[which];
        let mut bytes = std::fs::read(path).unwrap();
        if cut {
            bytes.truncate(at.index(bytes.len()));
        } else {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        std::fs::write(path, &bytes).unwrap();
        let p = problems(&s);
        prop_assert!(p.iter().any(|m| m.contains("decision report") && m.contains(&*path.file_name().unwrap().to_string_lossy())), "{p:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn any_damage_to_a_shadow_log_is_reported_and_refused(d in damage()) {
        let dir = tempfile::tempdir().unwrap();
        let s = populated(dir.path());
        let logs: Vec<_> = std::fs::read_dir(dir.path().join("models/eth/shadow"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        prop_assert_eq!(logs.len(), 1);
        let bytes = std::fs::read(&logs[0]).unwrap();
        let Some(bad) = apply(&bytes, &d) else { return Ok(()) };
        std::fs::write(&logs[0], &bad).unwrap();
        let p = problems(&s);
        prop_assert!(p.iter().any(|m| m.contains("shadow-test log's hash chain broken")), "{d:?}: {p:?}");
        let tag = logs[0].file_stem().unwrap().to_string_lossy().into_owned();
        prop_assert!(ShadowTest::at(&logs[0], "eth", &tag, None, Mode::Shadow).is_err(), "{d:?}");
    }
}

#[test]
fn a_missing_report_or_head_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let s = populated(dir.path());
    let decisions = dir.path().join("models/eth/decisions");
    let first = std::fs::read_dir(&decisions).unwrap().next().unwrap().unwrap().path();
    std::fs::remove_file(&first).unwrap();
    assert!(problems(&s).iter().any(|m| m.contains("decision report is missing")));

    let dir = tempfile::tempdir().unwrap();
    let s = populated(dir.path());
    std::fs::remove_file(dir.path().join("audit.head")).unwrap();
    assert!(problems(&s).iter().any(|m| m.contains("audit.head is missing")));
}

#[test]
fn a_writer_killed_mid_append_or_before_moving_the_head_leaves_no_problem() {
    let dir = tempfile::tempdir().unwrap();
    let s = populated(dir.path());
    let log = dir.path().join("audit.jsonl");
    let head = dir.path().join("audit.head");
    // Died before moving the head: the head anchors an earlier record.
    let before = std::fs::read(&head).unwrap();
    s.log_event("btc", AuditKind::Alert, &Change::new("lifecycle", "drift HIGH"), None).unwrap();
    std::fs::write(&head, &before).unwrap();
    // … and another writer died mid-append.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(br#"{"ts":"2026-11-23T10:20:00Z","event":"trig"#);
    std::fs::write(&log, &bytes).unwrap();
    let rep = s.verify().unwrap();
    assert!(rep.is_ok(), "{rep}");
    let leftovers: Vec<&str> =
        rep.findings.iter().filter(|f| f.severity == Severity::Leftover).map(|f| f.detail.as_str()).collect();
    assert!(leftovers.iter().any(|d| d.contains("torn last line")), "{leftovers:?}");
    assert!(leftovers.iter().any(|d| d.contains("past the chain's head")), "{leftovers:?}");
    // The next writer cuts the torn line and moves the head; the store is spotless again.
    s.log_event("btc", AuditKind::Alert, &Change::new("lifecycle", "drift LOW"), None).unwrap();
    let rep = s.verify().unwrap();
    assert!(rep.is_ok() && rep.findings.is_empty(), "{rep}");
    assert_eq!(s.history("btc").unwrap().last().unwrap().reason, "drift LOW");
}

#[test]
fn a_report_written_by_a_writer_that_died_before_recording_it_is_a_leftover_gc_removes() {
    let dir = tempfile::tempdir().unwrap();
    let s = populated(dir.path());
    let orphan = dir.path().join("models/btc/decisions/1796000000000-v20261123_101500.json");
    std::fs::write(&orphan, b"{\"decision\": \"DEPLOY\"}\n").unwrap();
    let rep = s.verify().unwrap();
    assert!(rep.is_ok(), "{rep}");
    assert!(rep.findings.iter().any(|f| f.severity == Severity::Leftover && f.path == orphan), "{rep}");
    let dry = s.gc(&retrain::store::RetentionPolicy::default(), true).unwrap();
    assert_eq!(dry.reports_removed.len(), 1);
    assert!(orphan.exists(), "a dry run changes nothing");
    let gc = s.gc(&retrain::store::RetentionPolicy::default(), false).unwrap();
    assert_eq!(gc.reports_removed, [orphan.display().to_string()]);
    assert!(!orphan.exists());
    assert!(s.verify().unwrap().findings.is_empty());
    // With a broken chain nothing is judged orphaned.
    std::fs::write(&orphan, b"{}\n").unwrap();
    let log = dir.path().join("audit.jsonl");
    let mut ls = lines(&std::fs::read(&log).unwrap());
    ls.remove(3);
    std::fs::write(&log, ls.concat()).unwrap();
    assert!(s.gc(&retrain::store::RetentionPolicy::default(), false).unwrap().reports_removed.is_empty());
    assert!(orphan.exists());
}

#[test]
fn a_store_written_before_the_chain_is_accepted_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let s = populated(dir.path());
    // Rewrite the log as an older build wrote it: no prev/hash, no checksums, no head.
    let log = dir.path().join("audit.jsonl");
    let mut old = Vec::new();
    for line in lines(&std::fs::read(&log).unwrap()) {
        let mut v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        for k in ["prev", "hash", "checksum"] {
            v.as_object_mut().unwrap().remove(k);
        }
        serde_json::to_writer(&mut old, &v).unwrap();
        old.push(b'\n');
    }
    let n = lines(&old).len();
    std::fs::write(&log, &old).unwrap();
    std::fs::remove_file(dir.path().join("audit.head")).unwrap();
    // The shadow-test logs too.
    let shadow_dir = dir.path().join("models/btc/shadow");
    let shadow_log = std::fs::read_dir(&shadow_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let mut old_shadow = Vec::new();
    for line in lines(&std::fs::read(&shadow_log).unwrap()) {
        let mut v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        v.as_object_mut().unwrap().retain(|k, _| k != "prev" && k != "hash");
        serde_json::to_writer(&mut old_shadow, &v).unwrap();
        old_shadow.push(b'\n');
    }
    std::fs::write(&shadow_log, &old_shadow).unwrap();
    std::fs::remove_file(shadow_log.with_extension("head")).unwrap();
    let tag = shadow_log.file_stem().unwrap().to_string_lossy().into_owned();
    let reopened = ShadowTest::at(&shadow_log, "btc", &tag, None, Mode::Shadow).unwrap();
    assert_eq!(reopened.samples().0.len(), 4);
    let rep = s.verify().unwrap();
    assert!(rep.is_ok(), "{rep}");
    let notes: Vec<&str> =
        rep.findings.iter().filter(|f| f.severity == Severity::Note).map(|f| f.detail.as_str()).collect();
    assert!(notes.iter().any(|d| d.contains(&format!("first {n} audit records were written before"))), "{notes:?}");
    assert!(notes.iter().any(|d| d.contains("6 decision report(s)")), "{notes:?}");
    assert!(notes.iter().any(|d| d.contains("first 8 shadow records were written before")), "{notes:?}");
    // History still reads; the next change starts the chain, which seals the old records.
    assert!(s.history("btc").unwrap().len() > 5);
    s.log_event("btc", AuditKind::Alert, &Change::new("lifecycle", "first chained"), None).unwrap();
    let rep = s.verify().unwrap();
    assert!(rep.is_ok(), "{rep}");
    // Editing an old record is now caught.
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.windows(7).position(|w| w == b"because").unwrap();
    bytes[at] = b'B';
    std::fs::write(&log, &bytes).unwrap();
    assert!(problems(&s).iter().any(|m| m.contains("audit chain broken")));
}

#[test]
fn the_cli_names_the_break_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path());
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_retrain"))
            .args(args)
            .arg("--store")
            .arg(dir.path())
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["store", "verify"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, whole, _) = run(&["history", "btc"]);
    assert_eq!(code, Some(0));

    // Alter the reason of the 5th record.
    let log = dir.path().join("audit.jsonl");
    let mut ls = lines(&std::fs::read(&log).unwrap());
    let at = ls[4].windows(8).position(|w| w == b"\"reason\"").unwrap() + 10;
    ls[4][at] ^= 0x20;
    std::fs::write(&log, ls.concat()).unwrap();

    let (code, out, err) = run(&["store", "verify"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("audit chain broken at line 5"), "{out}");
    let (code, out, err) = run(&["history", "btc"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("broken at line 5"), "{err}");
    assert!(out.lines().count() < whole.lines().count(), "only the records before the break:\n{out}");
}
