//! Where everything lives under a store root, and which names are legal there.
//!
//! ```text
//! <root>/FORMAT                                   "retrain-store 1"
//! <root>/.lock                                    writers' exclusive lock (fs4)
//! <root>/audit.jsonl                              append-only audit log
//! <root>/.staging/<unique>/ + <unique>.lock       versions being written
//! <root>/.trash/<millis>.<model>.<tag>/           deleted versions awaiting purge
//! <root>/models/<model_id>/aliases.json           statuses + aliases + generation (commit point)
//! <root>/models/<model_id>/versions/<tag>/        artifacts, meta.json, manifest.json
//! <root>/models/<model_id>/decisions/<file>.json  decision reports referenced from the audit log
//! <root>/models/<model_id>/shadow/<tag>.jsonl     paired predictions and outcomes of a shadow test
//! <root>/cache/ks-exact-p.bin                     exact KS p-values computed so far (a cache of
//!                                                 pure values: safe to delete, ignored if corrupt)
//! ```

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::error::{Error, Result};

/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// First word of the FORMAT file.
pub(crate) const FORMAT_MAGIC: &str = "retrain-store";
/// Version metadata file inside a version directory.
pub const META_FILE: &str = "meta.json";
/// Checksum manifest inside a version directory (written last).
pub const MANIFEST_FILE: &str = "manifest.json";
/// Per-model state file: statuses, aliases and the generation counter.
pub const ALIASES_FILE: &str = "aliases.json";

/// Paths of one store root.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
    pub(crate) fn format(&self) -> PathBuf {
        self.root.join("FORMAT")
    }
    pub(crate) fn lock(&self) -> PathBuf {
        self.root.join(".lock")
    }
    pub(crate) fn audit(&self) -> PathBuf {
        self.root.join("audit.jsonl")
    }
    pub(crate) fn staging(&self) -> PathBuf {
        self.root.join(".staging")
    }
    pub(crate) fn trash(&self) -> PathBuf {
        self.root.join(".trash")
    }
    pub(crate) fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }
    pub(crate) fn models(&self) -> PathBuf {
        self.root.join("models")
    }
    pub(crate) fn model(&self, model_id: &str) -> PathBuf {
        self.models().join(model_id)
    }
    pub(crate) fn versions(&self, model_id: &str) -> PathBuf {
        self.model(model_id).join("versions")
    }
    pub(crate) fn version(&self, model_id: &str, tag: &str) -> PathBuf {
        self.versions(model_id).join(tag)
    }
    pub(crate) fn aliases(&self, model_id: &str) -> PathBuf {
        self.model(model_id).join(ALIASES_FILE)
    }
    pub(crate) fn decisions(&self, model_id: &str) -> PathBuf {
        self.model(model_id).join("decisions")
    }
    pub(crate) fn shadow_log(&self, model_id: &str, tag: &str) -> PathBuf {
        self.model(model_id).join("shadow").join(format!("{tag}.jsonl"))
    }
}

/// Characters allowed in model ids and artifact names: portable across file systems and
/// shells, no separators, so a name can never climb out of its directory.
fn portable(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A model id must be 1–128 of `[A-Za-z0-9_.-]`, not starting with a dot.
pub fn check_model_id(model_id: &str) -> Result<()> {
    if portable(model_id) {
        Ok(())
    } else {
        Err(Error::param(
            "model_id",
            format!("`{model_id}` must be 1-128 characters of [A-Za-z0-9_.-] and not start with '.'"),
        ))
    }
}

/// An artifact name follows the model-id rule and may not shadow the store's own files.
pub fn check_artifact_name(name: &str) -> Result<()> {
    if !portable(name) {
        return Err(Error::param(
            "artifact",
            format!("`{name}` must be 1-128 characters of [A-Za-z0-9_.-] and not start with '.'"),
        ));
    }
    if name == META_FILE || name == MANIFEST_FILE {
        return Err(Error::param("artifact", format!("`{name}` is reserved for the store's own metadata")));
    }
    Ok(())
}

/// The tag for a version created at `t`: `vYYYYMMDD_HHMMSS` in UTC.
pub fn base_tag(t: Timestamp) -> String {
    t.strftime("v%Y%m%d_%H%M%S").to_string()
}

/// Whether `tag` has the store's shape: `vYYYYMMDD_HHMMSS`, optionally `_N` for a same-second twin.
pub fn is_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    if b.len() < 16 || b[0] != b'v' || b[9] != b'_' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !digits(1..9) || !digits(10..16) {
        return false;
    }
    match &b[16..] {
        [] => true,
        [b'_', rest @ ..] => !rest.is_empty() && rest.len() <= 6 && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// A version tag given by a caller must have the store's shape (see [`is_tag`]).
pub fn check_tag(tag: &str) -> Result<()> {
    if is_tag(tag) {
        Ok(())
    } else {
        Err(Error::param("tag", format!("`{tag}` is not a version tag (expected vYYYYMMDD_HHMMSS[_N])")))
    }
}

/// The `n`-th tag for a base (`n` = 1 is the base itself, then `_2`, `_3`, …).
pub(crate) fn nth_tag(base: &str, n: u32) -> String {
    if n <= 1 { base.to_string() } else { format!("{base}_{n}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_utc_seconds() {
        let t: Timestamp = "2026-11-23T10:15:07.9+02:00".parse().unwrap();
        assert_eq!(base_tag(t), "v20261123_081507");
        assert!(is_tag("v20261123_081507"));
        assert!(is_tag(&nth_tag("v20261123_081507", 12)));
        assert_eq!(nth_tag("v20261123_081507", 1), "v20261123_081507");
        for bad in
            ["", "v2026", "v20261123-081507", "x20261123_081507", "v20261123_081507_", "v20261123_08150a", "../v1"]
        {
            assert!(!is_tag(bad), "{bad}");
        }
    }

    #[test]
    fn names_cannot_escape_their_directory() {
        for ok in ["btc_1h", "lightgbm.v2", "A-b"] {
            check_model_id(ok).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "..", "a b", "é", &"x".repeat(129)] {
            assert!(check_model_id(bad).is_err(), "{bad}");
        }
        assert!(check_artifact_name("meta.json").is_err());
        assert!(check_artifact_name("manifest.json").is_err());
        check_artifact_name("model.json").unwrap();
    }
}
