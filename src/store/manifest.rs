//! `manifest.json`: the size and blake3 hash of every file of a version, written last, so a
//! version with a readable manifest is complete and any later damage is detectable.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::atomic::{hash_file, io_err};
use crate::store::layout::MANIFEST_FILE;

/// One file's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Size in bytes.
    pub size: u64,
    /// blake3 hash, lowercase hex.
    pub blake3: String,
}

/// Checksums of every file in a version directory except the manifest itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// File name → identity.
    pub files: BTreeMap<String, FileEntry>,
}

impl Manifest {
    /// An empty manifest.
    pub(crate) fn new() -> Self {
        Manifest { format: 1, files: BTreeMap::new() }
    }

    /// Record a file.
    pub(crate) fn add(&mut self, name: &str, size: u64, hash: blake3::Hash) {
        self.files.insert(name.to_string(), FileEntry { size, blake3: hash.to_hex().to_string() });
    }

    /// Read `dir/manifest.json`; a missing or unparsable one makes the version corrupt.
    pub(crate) fn read(dir: &Path, model_id: &str, tag: &str) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let corrupt = |reason: String| Error::CorruptVersion { model_id: model_id.into(), tag: tag.into(), reason };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt(format!("{} is missing", path.display())));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("{}: {e}", path.display())))
    }

    /// Check one file against its entry and return its bytes.
    pub(crate) fn load(&self, dir: &Path, name: &str, model_id: &str, tag: &str) -> Result<Vec<u8>> {
        let corrupt = |reason: String| Error::CorruptVersion { model_id: model_id.into(), tag: tag.into(), reason };
        let entry = self.files.get(name).ok_or_else(|| Error::NotFound {
            model_id: model_id.into(),
            what: format!("artifact `{name}` in version {tag} (has: {})", self.names().join(", ")),
        })?;
        let path = dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt(format!("{} is missing", path.display())));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        self.check_bytes(entry, name, bytes.len() as u64, blake3::hash(&bytes)).map_err(corrupt)?;
        Ok(bytes)
    }

    /// Check every listed file on disk (streamed) and report unlisted ones.
    pub(crate) fn verify_dir(&self, dir: &Path, model_id: &str, tag: &str) -> Result<()> {
        let corrupt = |reason: String| Error::CorruptVersion { model_id: model_id.into(), tag: tag.into(), reason };
        for (name, entry) in &self.files {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(corrupt(format!("{} is missing", path.display())));
            }
            let (size, hash) = hash_file(&path)?;
            self.check_bytes(entry, name, size, hash).map_err(corrupt)?;
        }
        for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let e = e.map_err(io_err(dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name != MANIFEST_FILE && !self.files.contains_key(&name) {
                return Err(corrupt(format!("{} is not listed in the manifest", e.path().display())));
            }
        }
        Ok(())
    }

    fn check_bytes(
        &self,
        entry: &FileEntry,
        name: &str,
        size: u64,
        hash: blake3::Hash,
    ) -> std::result::Result<(), String> {
        if size != entry.size {
            return Err(format!("{name}: {size} bytes on disk, manifest says {}", entry.size));
        }
        if hash.to_hex().as_str() != entry.blake3 {
            return Err(format!("{name}: blake3 {} does not match the manifest's {}", hash.to_hex(), entry.blake3));
        }
        Ok(())
    }

    /// Names of the listed files.
    pub fn names(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }
}
