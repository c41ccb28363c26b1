//! Cooperative cancellation and time limits for retraining jobs: a [`CancelToken`] is shared
//! with the training loops (checked every boosting round and every network batch), so a
//! cancelled or overdue job stops within one round instead of running to the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A flag the host (or a deadline) sets; jobs poll it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
    deadline: Option<(Instant, Duration)>,
}

impl CancelToken {
    /// A token that is never cancelled until [`CancelToken::cancel`] is called.
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// Ask every holder to stop.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// The same flag with a time limit of `limit` from now.
    pub fn with_limit(&self, limit: Duration) -> Self {
        CancelToken { flag: self.flag.clone(), deadline: Some((Instant::now() + limit, limit)) }
    }

    /// Why work must stop, if it must.
    pub fn stop_reason(&self) -> Option<String> {
        if self.flag.load(Ordering::Relaxed) {
            return Some("cancelled by the caller".into());
        }
        match self.deadline {
            Some((at, limit)) if Instant::now() >= at => {
                Some(format!("time limit of {:.0} s exceeded", limit.as_secs_f64()))
            }
            _ => None,
        }
    }

    /// Whether work must stop.
    pub fn is_stopped(&self) -> bool {
        self.stop_reason().is_some()
    }

    /// `Err(Error::Cancelled)` if work must stop.
    pub fn check(&self) -> Result<()> {
        match self.stop_reason() {
            Some(reason) => Err(Error::Cancelled { reason }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_and_deadline_stop_work() {
        let t = CancelToken::new();
        assert!(t.check().is_ok());
        let limited = t.with_limit(Duration::ZERO);
        assert!(limited.stop_reason().unwrap().contains("time limit"));
        assert!(t.check().is_ok(), "the original has no deadline");
        t.cancel();
        assert!(matches!(limited.check(), Err(Error::Cancelled { .. })), "the flag is shared");
    }
}
