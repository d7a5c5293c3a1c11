//! Injectable clocks: production code reads [`SystemClock`], tests move a
//! [`ManualClock`] by hand instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of time in microseconds (wall clock, so instances and Redis agree).
pub trait Clock: Send + Sync + 'static {
    /// Now, in microseconds.
    fn now_us(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

/// A clock tests move by hand.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// Starts at `us`.
    pub fn starting_at(us: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(us)))
    }

    /// Moves time forward.
    pub fn advance(&self, d: std::time::Duration) {
        self.0.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
