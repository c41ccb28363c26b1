//! Durable file writes shared by every layer that saves something (tables, models, the
//! version store): a write lands in a temp file that is fsynced and renamed over the target,
//! then the directory is fsynced, so a reader sees the old file or the new one and a finished
//! write survives power loss.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Write `bytes` to `path` atomically (a temp file in the same directory, fsynced and renamed over it).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    write_atomic_with(path, |f| f.write_all(bytes).map_err(|e| Error::Io { path: path.to_path_buf(), source: e }))
}

/// Write `path` atomically and durably: `write` fills a temp file in the same directory
/// (named `.tmp…`, tempfile's default), which is fsynced and renamed over `path`, and then the
/// directory is fsynced, so readers see the old file or the new one, never half of it, and a
/// finished write survives power loss.
pub(crate) fn write_atomic_with(path: &Path, write: impl FnOnce(&mut std::fs::File) -> Result<()>) -> Result<()> {
    replace_with(path, write)?;
    sync_dir(&parent_dir(path))
}

/// Write `bytes` to `path` atomically but without the directory fsync: after a power cut the
/// rename may be lost (the old file is back), never half-done. For files whose previous
/// content is a valid state to return to.
pub(crate) fn write_atomic_rename_only(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    replace_with(path, |f| f.write_all(bytes).map_err(|e| Error::Io { path: path.to_path_buf(), source: e }))
}

/// A temp file beside `path` (named `.tmp…`), filled by `write`, fsynced and renamed over it.
fn replace_with(path: &Path, write: impl FnOnce(&mut std::fs::File) -> Result<()>) -> Result<()> {
    let io = |e: std::io::Error| Error::Io { path: path.to_path_buf(), source: e };
    let mut tmp = tempfile::NamedTempFile::new_in(parent_dir(path)).map_err(io)?;
    write(tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// fsync a directory so that entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a directory as a file; NTFS journals metadata itself.
        let _ = dir;
        Ok(())
    }
}
