//! Durable file primitives: every write is fsynced, every replacement is a rename of a
//! fsynced temp file followed by an fsync of the directory, so a crash at any instant leaves
//! either the old bytes or the new ones — never a torn file — and a finished call survives
//! power loss.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
pub(crate) use crate::fsutil::{parent_dir, sync_dir};

/// Wrap an I/O error with the path it concerned.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// A name no other writer (process or thread) will pick: pid, nanoseconds and a counter.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Create `path` (it must not exist), write `bytes`, fsync.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Copy `from` into the new file `to`, fsync, and return its size and blake3 hash.
pub(crate) fn copy_new(from: &Path, to: &Path) -> Result<(u64, blake3::Hash)> {
    let mut dst = OpenOptions::new().write(true).create_new(true).open(to).map_err(io_err(to))?;
    let out = stream(from, |chunk| dst.write_all(chunk).map_err(io_err(to)))?;
    dst.sync_all().map_err(io_err(to))?;
    Ok(out)
}

/// Size and blake3 hash of a file, streamed.
pub(crate) fn hash_file(path: &Path) -> Result<(u64, blake3::Hash)> {
    stream(path, |_| Ok(()))
}

/// Read `path` in 1 MiB chunks, hashing each and handing it to `sink`.
fn stream(path: &Path, mut sink: impl FnMut(&[u8]) -> Result<()>) -> Result<(u64, blake3::Hash)> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        sink(&buf[..n])?;
        size += n as u64;
    }
    Ok((size, hasher.finalize()))
}

/// Create `dir` and any missing parents, fsyncing each parent whose entry list changed.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Prefix of the temp files [`replace`] writes next to their target (tempfile's default);
/// `gc`/`open` remove stale ones.
pub(crate) const TMP_PREFIX: &str = ".tmp";

/// Replace `path` with `bytes` atomically and durably (temp file, fsync, rename, fsync dir).
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fsutil::write_atomic(path, bytes)
}

/// Entry names of `dir`, sorted; a missing directory has none.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>> {
    match fs::read_dir(dir) {
        Ok(rd) => {
            let mut v = Vec::new();
            for e in rd {
                v.push(e.map_err(io_err(dir))?.file_name().to_string_lossy().into_owned());
            }
            v.sort();
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Read a whole file; `Ok(None)` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Append whole `\n`-terminated lines to a JSONL file durably: an unterminated last line
/// left by a writer that died mid-append is cut first, then one write and an fsync (the
/// file's directory entry is synced when the file is new). Callers serialise appends.
pub(crate) fn append_lines(path: &Path, buf: &[u8]) -> Result<()> {
    let created = !path.exists();
    if created && let Some(dir) = path.parent() {
        create_dir_durable(dir)?;
    }
    let mut f = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io_err(path))?;
    if created {
        sync_dir(&parent_dir(path))?;
    }
    cut_torn_tail(&mut f, path)?;
    f.write_all(buf).map_err(io_err(path))?;
    f.sync_data().map_err(io_err(path))
}

/// Truncate an unterminated last line left by a writer that died mid-append.
fn cut_torn_tail(f: &mut File, path: &Path) -> Result<()> {
    let len = f.metadata().map_err(io_err(path))?.len();
    if len == 0 {
        return Ok(());
    }
    let tail = read_tail(f, path, len, 1)?;
    if tail == b"\n" {
        return Ok(());
    }
    let mut keep = 0u64;
    let mut end = len;
    while end > 0 {
        let n = end.min(64 * 1024);
        let chunk = read_tail(f, path, end, n)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            keep = end - n + i as u64 + 1;
            break;
        }
        end -= n;
    }
    tracing::warn!(path = %path.display(), bytes = len - keep, "cutting a torn JSONL line left by a crashed writer");
    f.set_len(keep).map_err(io_err(path))?;
    f.sync_data().map_err(io_err(path))
}

/// The `n` bytes that end at offset `end`.
pub(crate) fn read_tail(f: &mut File, path: &Path, end: u64, n: u64) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n as usize];
    f.seek(SeekFrom::Start(end - n)).map_err(io_err(path))?;
    f.read_exact(&mut buf).map_err(io_err(path))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_swaps_whole_files_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        replace(&p, b"old").unwrap();
        replace(&p, b"new contents").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new contents");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn copies_hash_what_they_write() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::write(&a, vec![7u8; 3_000_000]).unwrap();
        let (n, h) = copy_new(&a, &b).unwrap();
        assert_eq!(n, 3_000_000);
        assert_eq!(h, blake3::hash(&fs::read(&b).unwrap()));
        assert_eq!(hash_file(&b).unwrap(), (n, h));
        assert!(copy_new(&a, &b).is_err(), "never overwrites");
        create_dir_durable(&d.path().join("x/y/z")).unwrap();
        assert!(d.path().join("x/y/z").is_dir());
    }
}
