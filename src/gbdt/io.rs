//! Saving and loading models: readable JSON (serde) or a compact checksummed binary form.
//!
//! Binary layout (little endian): magic `RTGBDT`, format version (u16), the model's metadata as
//! JSON with the trees left out (u64 length + bytes), the tree count (u32), then per tree its
//! node and leaf counts (u32 each), nodes (feature u32, threshold f32, bin u16, default_left u8,
//! gain f32, count u32, left i32, right i32) and leaves (value f64, count u32); finally the
//! blake3 hash of everything before it. Truncation, a flipped bit or a newer version gives
//! [`Error::CorruptModel`]. Both forms load to a model with bit-identical predictions.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::gbdt::booster::Gbdt;
use crate::gbdt::tree::{Node, Tree};

const MAGIC: &[u8; 6] = b"RTGBDT";
const VERSION: u16 = 1;

impl Gbdt {
    /// Readable JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a model always serialises")
    }

    /// Parse JSON written by [`Gbdt::to_json`].
    pub fn from_json(s: &str) -> Result<Gbdt> {
        let m: Gbdt = serde_json::from_str(s)
            .map_err(|e| Error::CorruptModel { source_name: "<json>".into(), reason: e.to_string() })?;
        m.check("<json>")?;
        Ok(m)
    }

    /// Compact binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let meta = Gbdt { trees: Vec::new(), ..self.clone() };
        let meta = serde_json::to_vec(&meta).expect("a model always serialises");
        let mut b =
            Vec::with_capacity(64 + meta.len() + self.trees.iter().map(|t| t.nodes.len() * 30 + 12).sum::<usize>());
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        b.extend_from_slice(&meta);
        b.extend_from_slice(&(self.trees.len() as u32).to_le_bytes());
        for t in &self.trees {
            b.extend_from_slice(&(t.nodes.len() as u32).to_le_bytes());
            b.extend_from_slice(&(t.leaf_values.len() as u32).to_le_bytes());
            for n in &t.nodes {
                b.extend_from_slice(&n.feature.to_le_bytes());
                b.extend_from_slice(&n.threshold.to_le_bytes());
                b.extend_from_slice(&n.bin.to_le_bytes());
                b.push(n.default_left as u8);
                b.extend_from_slice(&n.gain.to_le_bytes());
                b.extend_from_slice(&n.count.to_le_bytes());
                b.extend_from_slice(&n.left.to_le_bytes());
                b.extend_from_slice(&n.right.to_le_bytes());
            }
            for (v, c) in t.leaf_values.iter().zip(&t.leaf_counts) {
                b.extend_from_slice(&v.to_le_bytes());
                b.extend_from_slice(&c.to_le_bytes());
            }
        }
        let h = blake3::hash(&b);
        b.extend_from_slice(h.as_bytes());
        b
    }

    /// Parse the binary form; `source_name` labels errors.
    pub fn from_bytes(bytes: &[u8], source_name: &str) -> Result<Gbdt> {
        let bad = |reason: &str| Error::CorruptModel { source_name: source_name.into(), reason: reason.into() };
        if bytes.len() < MAGIC.len() + 2 + 32 || &bytes[..6] != MAGIC {
            return Err(bad("missing RTGBDT header (not a retrain binary model)"));
        }
        let (body, hash) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != hash {
            return Err(bad("checksum mismatch (truncated or modified file)"));
        }
        let mut r = Reader { b: body, pos: 6 };
        let version = u16::from_le_bytes(r.take::<2>().ok_or_else(|| bad("truncated"))?);
        if version != VERSION {
            return Err(bad(&format!("format version {version}, this build reads {VERSION}")));
        }
        let meta_len = u64::from_le_bytes(r.take::<8>().ok_or_else(|| bad("truncated"))?) as usize;
        let meta = r.slice(meta_len).ok_or_else(|| bad("truncated metadata"))?;
        let mut m: Gbdt = serde_json::from_slice(meta).map_err(|e| bad(&format!("metadata: {e}")))?;
        let n_trees = r.u32().ok_or_else(|| bad("truncated"))? as usize;
        let mut trees = Vec::with_capacity(n_trees.min(1 << 20));
        for _ in 0..n_trees {
            let nn = r.u32().ok_or_else(|| bad("truncated tree"))? as usize;
            let nl = r.u32().ok_or_else(|| bad("truncated tree"))? as usize;
            let mut t = Tree::default();
            for _ in 0..nn {
                let node = (|| {
                    Some(Node {
                        feature: r.u32()?,
                        threshold: f32::from_le_bytes(r.take::<4>()?),
                        bin: u16::from_le_bytes(r.take::<2>()?),
                        default_left: r.take::<1>()?[0] != 0,
                        gain: f32::from_le_bytes(r.take::<4>()?),
                        count: r.u32()?,
                        left: i32::from_le_bytes(r.take::<4>()?),
                        right: i32::from_le_bytes(r.take::<4>()?),
                    })
                })()
                .ok_or_else(|| bad("truncated node"))?;
                t.nodes.push(node);
            }
            for _ in 0..nl {
                let v = f64::from_le_bytes(r.take::<8>().ok_or_else(|| bad("truncated leaf"))?);
                t.leaf_values.push(v);
                t.leaf_counts.push(r.u32().ok_or_else(|| bad("truncated leaf"))?);
            }
            trees.push(t);
        }
        if r.pos != body.len() {
            return Err(bad("trailing bytes after the last tree"));
        }
        m.trees = trees;
        m.check(source_name)?;
        Ok(m)
    }

    /// Save as JSON when the path ends in `.json`, else binary; written atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = if is_json(path) { self.to_json().into_bytes() } else { self.to_bytes() };
        write_atomic(path, &bytes)
    }

    /// Load a model saved by [`Gbdt::save`] (format detected from the content).
    pub fn load(path: impl AsRef<Path>) -> Result<Gbdt> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        let name = path.display().to_string();
        if bytes.starts_with(MAGIC) {
            Gbdt::from_bytes(&bytes, &name)
        } else {
            let s = std::str::from_utf8(&bytes).map_err(|_| Error::CorruptModel {
                source_name: name.clone(),
                reason: "neither JSON nor binary".into(),
            })?;
            Gbdt::from_json(s).map_err(|e| match e {
                Error::CorruptModel { reason, .. } => Error::CorruptModel { source_name: name, reason },
                other => other,
            })
        }
    }

    /// Structural checks so a corrupt file cannot make prediction index out of bounds.
    fn check(&self, source_name: &str) -> Result<()> {
        let bad = |reason: String| Error::CorruptModel { source_name: source_name.into(), reason };
        let k = self.num_outputs;
        if k == 0 || self.init_score.len() != k || !self.trees.len().is_multiple_of(k) {
            return Err(bad(format!(
                "{} trees / {} init scores for {k} outputs",
                self.trees.len(),
                self.init_score.len()
            )));
        }
        for (ti, t) in self.trees.iter().enumerate() {
            let nl = t.leaf_values.len() as i64;
            if nl == 0 || t.leaf_counts.len() != t.leaf_values.len() || (t.nodes.len() as i64) != nl - 1 {
                return Err(bad(format!("tree {ti}: {} nodes for {nl} leaves", t.nodes.len())));
            }
            for (ni, n) in t.nodes.iter().enumerate() {
                let child_ok =
                    |c: i32| if c >= 0 { (c as usize) > ni && (c as usize) < t.nodes.len() } else { (!c as i64) < nl };
                if n.feature as usize >= self.n_features || !child_ok(n.left) || !child_ok(n.right) {
                    return Err(bad(format!("tree {ti} node {ni}: feature or child out of range")));
                }
            }
        }
        Ok(())
    }
}

fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let s = self.slice(N)?;
        s.try_into().ok()
    }
    fn slice(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
}
