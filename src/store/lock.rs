//! Advisory file locks (fs4 `flock`): one exclusive lock per store for writers, and one per
//! staging directory so that cleanup can tell a crashed writer's leftovers from a live one's.
//! The kernel drops a lock when its holder dies, so a `kill -9` never leaves the store locked.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fs4::FileExt;

use crate::error::Result;
use crate::store::atomic::io_err;

/// A held exclusive lock; released on drop.
#[derive(Debug)]
pub(crate) struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Block until the exclusive lock on `path` (created if missing) is ours.
    pub(crate) fn acquire(path: &Path) -> Result<Self> {
        loop {
            let file = open(path)?;
            FileExt::lock(&file).map_err(io_err(path))?;
            // A cleaner may have unlinked the file between our open and our lock; a lock on an
            // unlinked inode protects nothing, so start again on the path's current file.
            if same_file(&file, path) {
                return Ok(FileLock { file, path: path.to_path_buf() });
            }
        }
    }

    /// Take the exclusive lock on `path` if nobody holds it; `None` when it is held.
    pub(crate) fn try_acquire(path: &Path) -> Result<Option<Self>> {
        let file = open(path)?;
        match FileExt::try_lock(&file) {
            Ok(()) if same_file(&file, path) => Ok(Some(FileLock { file, path: path.to_path_buf() })),
            Ok(()) => Ok(None),
            Err(fs4::TryLockError::WouldBlock) => Ok(None),
            Err(fs4::TryLockError::Error(e)) => Err(io_err(path)(e)),
        }
    }

    /// Remove the lock file while still holding it (staging locks only).
    pub(crate) fn remove(self) -> Result<()> {
        std::fs::remove_file(&self.path).map_err(io_err(&self.path))?;
        drop(self.file);
        Ok(())
    }
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_err(path))
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_excludes_others_until_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".lock");
        let held = FileLock::acquire(&p).unwrap();
        assert!(FileLock::try_acquire(&p).unwrap().is_none());
        drop(held);
        let again = FileLock::try_acquire(&p).unwrap().expect("free after drop");
        again.remove().unwrap();
        assert!(!p.exists());
    }
}
