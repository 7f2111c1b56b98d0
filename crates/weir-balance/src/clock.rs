//! A monotonic millisecond clock for the state that backends and pools keep in atomics.
//!
//! Time is read from `tokio::time::Instant`, so tests under paused time
//! (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`) drive slow start,
//! downtime and the retry budget exactly. Outside a runtime it is the real monotonic
//! clock. Milliseconds fit an `AtomicU64`, which an `Instant` does not.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// The clock's zero, set on first use. It is placed an hour before that first reading so
/// that a paused test runtime created a little before it (whose clock starts where the
/// real one stood then) still reads a positive, growing time instead of saturating at 0.
static BASE: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the process-wide base (a few thousand at least, never 0 in practice).
#[inline]
pub fn now_ms() -> u64 {
    u64::try_from(since_base().as_millis()).unwrap_or(u64::MAX)
}

/// Nanoseconds since the same base as [`now_ms`], for the rate limiters, whose tokens
/// come back faster than one a millisecond. A u64 of nanoseconds lasts 584 years.
#[inline]
pub fn now_ns() -> u64 {
    u64::try_from(since_base().as_nanos()).unwrap_or(u64::MAX)
}

#[inline]
fn since_base() -> Duration {
    let base = *BASE.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(Duration::from_secs(3600)).unwrap_or(now)
    });
    Instant::now().saturating_duration_since(base)
}

/// A duration in whole milliseconds, saturating.
#[inline]
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
