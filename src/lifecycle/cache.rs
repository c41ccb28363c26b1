//! A memo of training work that jobs would otherwise repeat: two jobs with the same model
//! kind, hyperparameters, feature and label specs, candle window and validation settings fit
//! exactly the same models (every fit is deterministic for a seed), so the second reuses the
//! first's cross-validation, final fit and reference statistics; baselines cross-validated on
//! the same rows are shared the same way. Only what is decided against a deployed version
//! (the comparison, the decision, the registration) runs again.
//!
//! Several [`crate::lifecycle::Retrainer`]s can share one cache (a replay compares policies
//! on the same history). It holds the newest `capacity` results: jobs move forward in time, so
//! older windows are not asked for again.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::data::Bars;
use crate::error::Result;

/// A content key: the blake3 digest of everything a result depends on.
pub type Key = [u8; 32];

type Entry = (Key, Arc<dyn Any + Send + Sync>);

/// A bounded, thread-safe memo of training results (see the module docs).
pub struct JobCache {
    entries: Mutex<VecDeque<Entry>>,
    /// Keys a job has said it is computing now (see [`JobCache::claim`]).
    claimed: Mutex<std::collections::HashSet<Key>>,
    capacity: usize,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

impl std::fmt::Debug for JobCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCache").field("capacity", &self.capacity).field("hits", &self.hits()).finish()
    }
}

impl JobCache {
    /// A cache keeping the newest `capacity` results (at least 1).
    pub fn new(capacity: usize) -> Self {
        JobCache {
            entries: Mutex::new(VecDeque::new()),
            claimed: Mutex::new(Default::default()),
            capacity: capacity.max(1),
            hits: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
        }
    }

    /// Lookups answered from the cache so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that had to compute.
    pub fn misses(&self) -> usize {
        self.misses.load(Ordering::Relaxed)
    }

    /// Claim `key`: true when it is neither kept nor claimed by another job, which the caller
    /// then computes (with [`JobCache::get_or_compute`], which ends the claim). A job that gets
    /// false does its other work first and asks later, when the claimant has usually finished:
    /// two jobs started together share the work without either waiting inside the pool.
    pub fn claim(&self, key: Key) -> bool {
        let kept =
            self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().any(|(k, _)| *k == key);
        !kept && self.claimed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key)
    }

    /// The value under `key`, computing (outside the lock) and keeping it when absent; the
    /// flag says whether it was reused. Concurrent misses of one key both compute (the same
    /// value: the first kept wins) rather than one waiting inside the training pool.
    pub fn get_or_compute<T: Any + Send + Sync>(
        &self,
        key: Key,
        compute: impl FnOnce() -> Result<T>,
    ) -> Result<(Arc<T>, bool)> {
        let lock = || self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = lock().iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
        if let Some(v) = found.and_then(|v| v.downcast::<T>().ok()) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok((v, true));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let value = compute();
        self.claimed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
        let value = Arc::new(value?);
        let mut entries = lock();
        if !entries.iter().any(|(k, _)| *k == key) {
            entries.push_back((key, value.clone()));
            while entries.len() > self.capacity {
                entries.pop_front();
            }
        }
        Ok((value, false))
    }
}

/// Builds a [`Key`] from the parts a result depends on.
pub struct KeyBuilder(blake3::Hasher);

impl KeyBuilder {
    /// A key for results of kind `what` (e.g. `training`, `baseline`).
    pub fn new(what: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(what.as_bytes());
        KeyBuilder(h)
    }

    /// Add a string part (length-prefixed, so parts cannot run into each other).
    pub fn text(mut self, s: &str) -> Self {
        self.0.update(&(s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
        self
    }

    /// Add a serialisable part as its JSON.
    pub fn json<T: serde::Serialize + ?Sized>(self, v: &T) -> Self {
        let s = serde_json::to_string(v).expect("cache key parts serialise");
        self.text(&s)
    }

    /// Add every candle of `bars` (symbol, times and OHLCV).
    pub fn bars(mut self, bars: &Bars) -> Self {
        self = self.text(bars.symbol());
        self.0.update(&(bars.len() as u64).to_le_bytes());
        for &t in bars.timestamps() {
            self.0.update(&t.to_le_bytes());
        }
        for col in [bars.open(), bars.high(), bars.low(), bars.close(), bars.volume()] {
            for &v in col {
                self.0.update(&v.to_bits().to_le_bytes());
            }
        }
        self
    }

    /// The key.
    pub fn finish(self) -> Key {
        *self.0.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_once_per_key_and_forgets_the_oldest() {
        let c = JobCache::new(2);
        let k = |s: &str| KeyBuilder::new("t").text(s).finish();
        let calls = AtomicUsize::new(0);
        let f = |v: u32| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(v)
        };
        assert_eq!(*c.get_or_compute(k("a"), || f(1)).unwrap().0, 1);
        let (v, reused) = c.get_or_compute(k("a"), || f(9)).unwrap();
        assert_eq!((*v, reused), (1, true));
        c.get_or_compute(k("b"), || f(2)).unwrap();
        c.get_or_compute(k("c"), || f(3)).unwrap();
        // "a" was the oldest of three in a cache of two.
        assert_eq!(*c.get_or_compute(k("a"), || f(4)).unwrap().0, 4);
        assert_eq!(calls.load(Ordering::Relaxed), 4);
        assert_eq!((c.hits(), c.misses()), (1, 4));
        // An error is returned and nothing is kept.
        assert!(c.get_or_compute::<u32>(k("e"), || Err(crate::error::Error::param("x", "boom"))).is_err());
        assert!(!c.get_or_compute(k("e"), || f(5)).unwrap().1);
    }

    #[test]
    fn a_claim_is_granted_once_until_the_value_is_kept() {
        let c = JobCache::new(4);
        let k = KeyBuilder::new("t").text("a").finish();
        assert!(c.claim(k));
        assert!(!c.claim(k), "claimed by another job");
        c.get_or_compute(k, || Ok(1u8)).unwrap();
        assert!(!c.claim(k), "kept");
        // A failed computation ends its claim: the next job may try.
        let e = KeyBuilder::new("t").text("e").finish();
        assert!(c.claim(e));
        assert!(c.get_or_compute::<u8>(e, || Err(crate::error::Error::param("x", "boom"))).is_err());
        assert!(c.claim(e));
    }

    #[test]
    fn parts_do_not_run_into_each_other() {
        let a = KeyBuilder::new("t").text("ab").text("c").finish();
        let b = KeyBuilder::new("t").text("a").text("bc").finish();
        assert_ne!(a, b);
    }
}
