//! The audit log's hash chain: what makes a flipped byte, a dropped, duplicated or reordered
//! record, or a truncated tail of `audit.jsonl` visible.
//!
//! Each chained line ends with `,"prev":"<hex>","hash":"<hex>"}`: `hash` is the BLAKE3 of the
//! line's bytes up to (not including) `,"hash":`, so it covers every field and `prev`; `prev`
//! is the previous record's `hash`. The first chained record's `prev` is the BLAKE3 of every
//! complete line before it — the unchained records an older store wrote, or nothing — so that
//! prefix is sealed too. The chain's end is anchored outside the log in `audit.head`
//! (`{"offset": bytes, "hash": tip}`, replaced atomically after every append, created before
//! the first chained record): a log shorter than the head's offset, or whose record ending
//! there has another hash, lost records from its end. Records past the offset with a valid
//! chain are what a writer that died between its append and its head update left; the next
//! writer moves the head over them.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::atomic::{append_lines, create_dir_durable, io_err, read_optional, read_tail};
use crate::store::audit::AuditRecord;

/// `,"hash":"` + 64 hex digits + `"}`.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// The chain's anchor, `audit.head` beside the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Head {
    /// Length in bytes of the log up to the end of the anchored record.
    pub offset: u64,
    /// That record's hash (the chain's genesis value before any chained record).
    pub hash: String,
}

/// Where the chain broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    /// 1-based line of the first record that does not fit (one past the last line when
    /// records are missing from the end).
    pub line: usize,
    /// That record's model, when it could be read.
    pub model: Option<String>,
    /// That record's time, when it could be read.
    pub ts: Option<Timestamp>,
    /// What is wrong.
    pub detail: String,
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(m) = &self.model {
            write!(f, " ({m}")?;
            if let Some(ts) = self.ts {
                write!(f, ", {ts}")?;
            }
            write!(f, ")")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// How a chained log's lines are read: parse one (its bytes without the newline) and say
/// which model and time a record is about (to name a break).
pub(crate) trait Record: Sized {
    /// Parse a line.
    fn parse(text: &[u8]) -> std::result::Result<Self, String>;
    /// The model and time a record names.
    fn about(&self) -> (Option<String>, Option<Timestamp>);
}

impl Record for AuditRecord {
    fn parse(text: &[u8]) -> std::result::Result<Self, String> {
        serde_json::from_slice(text).map_err(|e| e.to_string())
    }
    fn about(&self) -> (Option<String>, Option<Timestamp>) {
        (self.model.clone(), Some(self.ts))
    }
}

/// Any JSON object per line (what `verify` reads of logs whose records it does not know).
impl Record for serde_json::Value {
    fn parse(text: &[u8]) -> std::result::Result<Self, String> {
        serde_json::from_slice(&payload(text)).map_err(|e| e.to_string())
    }
    fn about(&self) -> (Option<String>, Option<Timestamp>) {
        (None, self.get("ts").and_then(|t| t.as_str()).and_then(|t| t.parse().ok()))
    }
}

/// What a walk of the whole log found.
#[derive(Debug)]
pub(crate) struct ChainCheck<T = AuditRecord> {
    /// The wanted records up to the first break, in file order.
    pub records: Vec<T>,
    /// Records read before the first break (parsed or not).
    pub count: usize,
    /// Records written before the chain started (older stores).
    pub unchained: usize,
    /// The first break, if any.
    pub broken: Option<ChainBreak>,
    /// The log ends with an unterminated line (a writer died mid-append).
    pub torn_tail: bool,
    /// Valid chained records after the head's offset (a writer died before moving the head).
    pub past_head: usize,
}

/// The head beside `log` (`audit.jsonl` → `audit.head`, `<tag>.jsonl` → `<tag>.head`).
pub(crate) fn head_path(log: &Path) -> PathBuf {
    log.with_extension("head")
}

/// Hex BLAKE3 of `bytes`.
fn hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The head, if the file exists (a file that does not parse is `CorruptStore`).
pub(crate) fn read_head(log: &Path) -> Result<Option<Head>> {
    let path = head_path(log);
    let Some(bytes) = read_optional(&path)? else { return Ok(None) };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::CorruptStore { path, reason: e.to_string() })
}

/// Replace the head atomically: a temp file, fsynced, renamed over it. The directory is not
/// fsynced: a rename lost to a power cut leaves the previous head, which lags behind the log —
/// the state a writer that died before moving the head leaves, absorbed by the next writer —
/// so one fsync per append is enough.
pub(crate) fn write_head(log: &Path, head: &Head) -> Result<()> {
    let mut bytes = serde_json::to_vec(head).expect("the head serialises");
    bytes.push(b'\n');
    crate::fsutil::write_atomic_rename_only(&head_path(log), &bytes)
}

/// The hash a chained line claims, and the bytes it covers; `None` for an unchained line.
fn split_hash(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = line.len();
    if n < HASH_SUFFIX_LEN || !line[n - HASH_SUFFIX_LEN..].starts_with(br#","hash":""#) || !line.ends_with(b"\"}") {
        return None;
    }
    Some((&line[..n - HASH_SUFFIX_LEN], &line[n - 66..n - 2]))
}

/// Serialise `items` (JSON objects without `prev`/`hash` of their own) as chained lines after
/// `prev`; returns the bytes and the new tip hash.
pub(crate) fn seal<T: Serialize>(items: &[T], prev: &str) -> (Vec<u8>, String) {
    let mut buf = Vec::with_capacity(320 * items.len());
    let mut prev = prev.to_string();
    for item in items {
        let start = buf.len();
        serde_json::to_writer(&mut buf, item).expect("chained records serialise");
        debug_assert_eq!(buf.last(), Some(&b'}'));
        buf.pop();
        buf.extend_from_slice(br#","prev":""#);
        buf.extend_from_slice(prev.as_bytes());
        buf.push(b'"');
        prev = hex(&buf[start..]);
        buf.extend_from_slice(br#","hash":""#);
        buf.extend_from_slice(prev.as_bytes());
        buf.extend_from_slice(b"\"}\n");
    }
    (buf, prev)
}

/// A line's own JSON object: a chained line without its `prev` and `hash`, an unchained one
/// as it is.
pub(crate) fn payload(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match split_hash(text).map(|(body, _)| body) {
        Some(body) if line_prev(body).is_some() => {
            let mut v = body[..body.len() - PREV_LEN].to_vec();
            v.push(b'}');
            std::borrow::Cow::Owned(v)
        }
        _ => std::borrow::Cow::Borrowed(text),
    }
}

/// The hash a chained line claims (`None` for an unchained line).
pub(crate) fn line_hash(line: &[u8]) -> Option<String> {
    split_hash(line).map(|(_, h)| String::from_utf8_lossy(h).into_owned())
}

/// What the first chained record after `prefix` (every complete line before it) names as
/// `prev`.
pub(crate) fn genesis(prefix: &[u8]) -> String {
    hex(prefix)
}

/// The hash the next record must name as `prev`, from the log's complete bytes: the last
/// record's hash, or the genesis value over an unchained log.
#[cfg(test)]
fn tip_of(complete: &[u8]) -> String {
    let body = complete.strip_suffix(b"\n").unwrap_or(complete);
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    line_hash(&body[start..]).unwrap_or_else(|| genesis(complete))
}

/// `,"prev":"` + 64 hex digits + `"`: what precedes the hash in a chained line.
const PREV_LEN: usize = 9 + 64 + 1;

/// The `prev` a chained line names, read from its fixed place before the hash.
fn line_prev(body: &[u8]) -> Option<&[u8]> {
    let n = body.len();
    (n >= PREV_LEN && body[n - PREV_LEN..].starts_with(br#","prev":""#) && body.ends_with(b"\""))
        .then(|| &body[n - 65..n - 1])
}

/// How a line relates to the chain.
enum Link<'a> {
    /// No hash: written before the chain.
    Unchained,
    /// Its hash does not match its bytes.
    Altered,
    /// Its `prev` is not the hash before it.
    Misplaced,
    /// It continues the chain; its own hash.
    Follows(&'a [u8]),
}

/// Whether `text` (a line without its newline) continues the chain from `prev`.
fn link<'a>(text: &'a [u8], prev: &[u8]) -> Link<'a> {
    match split_hash(text) {
        None => Link::Unchained,
        Some((body, claimed)) if hex(body).as_bytes() != claimed => Link::Altered,
        Some((body, _)) if line_prev(body) != Some(prev) => Link::Misplaced,
        Some((_, claimed)) => Link::Follows(claimed),
    }
}

/// Walk the whole log `bytes` against `head`, parsing into `records` the lines that contain
/// `keep` (every line for `None`; a substring test first, as model ids need no escaping).
pub(crate) fn check_records<T: Record>(bytes: &[u8], head: Option<&Head>, keep: Option<&str>) -> ChainCheck<T> {
    let mut out =
        ChainCheck { records: Vec::new(), count: 0, unchained: 0, broken: None, torn_tail: false, past_head: 0 };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    out.torn_tail = complete < bytes.len();
    if let Some(h) = head
        && h.offset == 0
        && h.hash != genesis(b"")
    {
        out.broken = Some(ChainBreak { line: 1, model: None, ts: None, detail: "the head's hash is wrong".into() });
        return out;
    }
    // `None` until the first chained line, whose `prev` must seal everything before it.
    let mut tip: Option<&[u8]> = None;
    let mut offset = 0usize;
    let mut head_seen = head.is_none_or(|h| h.offset == 0);
    let mut line_no = 0;
    let wanted = |text: &[u8]| keep.is_none_or(|k| std::str::from_utf8(text).is_ok_and(|t| t.contains(k)));
    for line in bytes[..complete].split_inclusive(|&b| b == b'\n') {
        line_no += 1;
        let text = &line[..line.len() - 1];
        let fail = |detail: String| {
            let (model, ts) = T::parse(text).map(|r| r.about()).unwrap_or_default();
            Some(ChainBreak { line: line_no, model, ts, detail })
        };
        let genesis_hash;
        let prev: &[u8] = match tip {
            Some(t) => t,
            None => {
                genesis_hash = genesis(&bytes[..offset]);
                genesis_hash.as_bytes()
            }
        };
        match link(text, prev) {
            Link::Unchained if tip.is_some() => {
                out.broken = fail("a record without a hash after the chain started".into());
                break;
            }
            Link::Unchained => match T::parse(text) {
                Ok(r) => {
                    out.unchained += 1;
                    out.count += 1;
                    if wanted(text) {
                        out.records.push(r);
                    }
                }
                Err(e) => {
                    out.broken = fail(format!("not a valid record ({e})"));
                    break;
                }
            },
            Link::Altered => {
                out.broken = fail("its hash does not match its bytes (the record was altered)".into());
                break;
            }
            Link::Misplaced => {
                out.broken =
                    fail("it does not follow the record before it (a record was removed, repeated or moved)".into());
                break;
            }
            Link::Follows(claimed) => {
                if wanted(text) {
                    match T::parse(text) {
                        Ok(r) => out.records.push(r),
                        Err(e) => {
                            out.broken = fail(format!("not a valid record ({e})"));
                            break;
                        }
                    }
                }
                tip = Some(claimed);
                out.count += 1;
                if head_seen {
                    out.past_head += 1;
                }
            }
        }
        offset += line.len();
        if let Some(h) = head
            && !head_seen
            && offset as u64 == h.offset
        {
            head_seen = true;
            let anchored = tip.map_or_else(|| genesis(&bytes[..offset]) == h.hash, |t| t == h.hash.as_bytes());
            if !anchored {
                out.broken = fail("the record the head anchors has another hash (the log was rewritten)".into());
                return out;
            }
        }
    }
    if out.broken.is_none()
        && let Some(h) = head
        && !head_seen
    {
        out.broken = Some(ChainBreak {
            line: line_no + 1,
            model: None,
            ts: None,
            detail: format!(
                "its complete records end at byte {complete} but its head anchors byte {}: records are missing \
                 from the end",
                h.offset
            ),
        });
    }
    out
}

/// Read and check the log at `path` (a missing log is an empty one), keeping the records
/// that contain `keep`.
pub(crate) fn check_file_records<T: Record>(path: &Path, keep: Option<&str>) -> Result<ChainCheck<T>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(path)(e)),
    };
    let head = read_head(path)?;
    let mut c = check_records(&bytes, head.as_ref(), keep);
    if head.is_none() && c.count > c.unchained && c.broken.is_none() {
        c.broken = Some(ChainBreak {
            line: c.unchained + 1,
            model: None,
            ts: None,
            detail: format!(
                "{} is missing: the chain's end cannot be checked",
                head_path(path).file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            ),
        });
    }
    Ok(c)
}

/// [`check_records`] of the audit log's records.
#[cfg(test)]
pub(crate) fn check(bytes: &[u8], head: Option<&Head>, keep: Option<&str>) -> ChainCheck {
    check_records(bytes, head, keep)
}

/// [`check_file_records`] of the audit log.
pub(crate) fn check_file(path: &Path, keep: Option<&str>) -> Result<ChainCheck> {
    check_file_records(path, keep)
}

/// Append `items` chained to the log's last record (one write, then fsync), and move the
/// chain's head over them. Writers of one log must be serialised (the store lock, or one
/// owner).
pub(crate) fn append_sealed<T: Serialize>(path: &Path, items: &[T]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    // A head that cannot be read is reported by `verify`; writing goes on and replaces it.
    let head = read_head(path).ok().flatten();
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    let (complete, prev) = match head {
        // The usual case: the head anchors the log's last byte, so it names the tip.
        Some(h) if h.offset == len => (h.offset, h.hash),
        Some(_) => chain_end(path)?,
        None => {
            // Anchor the chain's start before its first record, so the head always exists
            // once chained records do (in a log's directory that may not exist yet).
            if let Some(dir) = path.parent() {
                create_dir_durable(dir)?;
            }
            let (complete, prev) = chain_end(path)?;
            write_head(path, &Head { offset: complete, hash: prev.clone() })?;
            (complete, prev)
        }
    };
    let (buf, tip) = seal(items, &prev);
    append_lines(path, &buf)?;
    write_head(path, &Head { offset: complete + buf.len() as u64, hash: tip })
}

/// Length of the log's complete lines and the hash its next record must follow: the last
/// record's hash, read from the end of the file, or (before the chain starts) the genesis
/// value over every complete line.
fn chain_end(path: &Path) -> Result<(u64, String)> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, genesis(b""))),
        Err(e) => return Err(io_err(path)(e)),
    };
    let len = f.metadata().map_err(io_err(path))?.len();
    let n = len.min(256 * 1024);
    let tail = read_tail(&mut f, path, len, n)?;
    let Some(nl) = tail.iter().rposition(|&b| b == b'\n') else {
        if n < len {
            return Err(Error::CorruptStore { path: path.to_path_buf(), reason: "a line over 256 KiB".into() });
        }
        return Ok((0, genesis(b""))); // only a torn line, which the append cuts
    };
    let complete = len - n + nl as u64 + 1;
    let start = tail[..nl].iter().rposition(|&b| b == b'\n').map(|i| i + 1);
    if let Some(start) = start.or((n == len).then_some(0))
        && let Some(hash) = line_hash(&tail[start..nl])
    {
        return Ok((complete, hash));
    }
    // The chain has not started: its first record seals every complete line before it.
    let all = std::fs::read(path).map_err(io_err(path))?;
    Ok((complete, genesis(&all[..complete as usize])))
}

/// The head moved over the records `after` (the log's bytes from `head.offset` to its last
/// complete line), when they continue the chain from it; `None` when they do not.
pub(crate) fn extend(head: &Head, after: &[u8]) -> Option<Head> {
    let mut tip = head.hash.as_bytes();
    let mut offset = head.offset;
    for line in after.split_inclusive(|&b| b == b'\n') {
        let Link::Follows(claimed) = link(line.strip_suffix(b"\n")?, tip) else { return None };
        tip = claimed;
        offset += line.len() as u64;
    }
    Some(Head { offset, hash: String::from_utf8_lossy(tip).into_owned() })
}

/// Under the store lock: when complete records follow the head's offset and continue the
/// chain from it (a writer died between its append and its head update), move the head over
/// them. Anything else is left for `verify` to report.
pub(crate) fn catch_up(log: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(Some(head)) = read_head(log) else { return Ok(()) };
    let mut f = match std::fs::File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(log)(e)),
    };
    let len = f.metadata().map_err(io_err(log))?.len();
    if len <= head.offset {
        return Ok(());
    }
    // Only the bytes past the head are read: this runs before every write.
    let mut rest = Vec::with_capacity((len - head.offset) as usize);
    f.seek(SeekFrom::Start(head.offset)).map_err(io_err(log))?;
    f.read_to_end(&mut rest).map_err(io_err(log))?;
    let complete = rest.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete == 0 {
        return Ok(());
    }
    match extend(&head, &rest[..complete]) {
        Some(moved) => write_head(log, &moved),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::AuditKind;

    fn rec(i: u64) -> AuditRecord {
        let mut r = AuditRecord::new(Timestamp::from_second(i as i64).unwrap(), AuditKind::Registered, "t", "why");
        r.model = Some(format!("m{}", i % 3));
        r.generation = Some(i);
        r
    }

    /// A chained log of `n` records after `prefix`, and its head.
    fn log(prefix: &[u8], n: u64) -> (Vec<u8>, Head) {
        let (buf, tip) = seal(&(0..n).map(rec).collect::<Vec<_>>(), &tip_of(prefix));
        let mut bytes = prefix.to_vec();
        bytes.extend_from_slice(&buf);
        let head = Head { offset: bytes.len() as u64, hash: tip };
        (bytes, head)
    }

    #[test]
    fn an_intact_chain_checks_and_extends() {
        let (bytes, head) = log(b"", 5);
        let c = check(&bytes, Some(&head), None);
        assert!(c.broken.is_none(), "{:?}", c.broken);
        assert_eq!((c.records.len(), c.unchained, c.past_head, c.torn_tail), (5, 0, 0, false));
        assert_eq!(tip_of(&bytes), head.hash);
        // A head two records behind: the rest extends it.
        let cut = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(2).unwrap().0 + 1;
        let behind = Head { offset: cut as u64, hash: tip_of(&bytes[..cut]) };
        let c = check(&bytes, Some(&behind), None);
        assert!(c.broken.is_none() && c.past_head == 2, "{:?} {}", c.broken, c.past_head);
        assert_eq!(extend(&behind, &bytes[cut..]), Some(head));
    }

    #[test]
    fn an_unchained_prefix_is_sealed_by_the_first_chained_record() {
        let mut old = Vec::new();
        for i in 0..3 {
            serde_json::to_writer(&mut old, &rec(100 + i)).unwrap();
            old.push(b'\n');
        }
        let (bytes, head) = log(&old, 2);
        let c = check(&bytes, Some(&head), None);
        assert!(c.broken.is_none(), "{:?}", c.broken);
        assert_eq!((c.unchained, c.records.len()), (3, 5));
        // Editing the unchained prefix breaks the first chained record.
        let mut edited = bytes.clone();
        let at = edited.iter().position(|&b| b == b'w').unwrap(); // the first `why`
        edited[at] = b'W';
        let c = check(&edited, Some(&head), None);
        assert_eq!(c.broken.map(|b| b.line), Some(4));
    }

    #[test]
    fn damage_is_named_by_line() {
        let (bytes, head) = log(b"", 6);
        let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
        let join = |ls: &[&[u8]]| ls.concat();
        // A dropped, a repeated and a swapped record break the chain where they sit.
        let dropped = join(&[lines[0], lines[1], lines[3], lines[4], lines[5]]);
        assert_eq!(check(&dropped, Some(&head), None).broken.unwrap().line, 3);
        let repeated = join(&[lines[0], lines[1], lines[1], lines[2], lines[3], lines[4], lines[5]]);
        assert_eq!(check(&repeated, Some(&head), None).broken.unwrap().line, 3);
        let swapped = join(&[lines[0], lines[2], lines[1], lines[3], lines[4], lines[5]]);
        assert_eq!(check(&swapped, Some(&head), None).broken.unwrap().line, 2);
        // Records cut from the end: the chain is whole, the head is not reached.
        let cut = join(&lines[..4]);
        let b = check(&cut, Some(&head), None).broken.unwrap();
        assert!(b.line == 5 && b.detail.contains("missing from the end"), "{b:?}");
        // A torn last line alone is a crash, not damage.
        let mut torn = bytes.clone();
        torn.extend_from_slice(br#"{"ts":"1970-01-01T00:00:00Z","ev"#);
        let c = check(&torn, Some(&head), None);
        assert!(c.broken.is_none() && c.torn_tail);
        // An altered byte.
        let mut flipped = bytes.clone();
        let at = lines[0].len() + lines[1].len() + 10;
        flipped[at] ^= 0x04;
        let b = check(&flipped, Some(&head), None).broken.unwrap();
        assert_eq!(b.line, 3, "{b:?}");
    }
}
