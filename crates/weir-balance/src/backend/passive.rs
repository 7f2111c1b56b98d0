//! A backend's side of passive health checking: counting failures of live traffic,
//! ejection and its end.
//!
//! The counting here is per backend and lock-free; whether a backend that reached the
//! threshold may actually leave (the pool's `max_ejected_percent`) is decided by
//! [`Pool::report_failure`](crate::Pool::report_failure), the only caller of
//! [`Backend::eject`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Backend, Transition};
use crate::clock;

impl Backend {
    /// Counts one connect failure, reset or timeout seen by live traffic; returns the
    /// number of consecutive ones so far.
    #[inline]
    pub fn passive_failure(&self) -> u32 {
        self.passive_failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1)
    }

    /// A request or connection succeeded: the consecutive count starts over. Writes only
    /// when there is something to reset, so healthy traffic only reads the counter.
    #[inline]
    pub fn passive_success(&self) {
        if self.passive_failures.load(Ordering::Relaxed) != 0 {
            self.passive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Consecutive failures of live traffic counted so far.
    pub fn passive_failures(&self) -> u32 {
        self.passive_failures.load(Ordering::Relaxed)
    }

    /// Whether the backend is down because passive checking ejected it.
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// Passive ejections so far (reset after a long enough time in rotation).
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Takes the backend out of rotation for passive reasons. Returns the number of this
    /// ejection (1 for the first), or `None` if it was already down.
    ///
    /// Ejections count up so that a backend that keeps failing stays out longer, and are
    /// forgotten when the backend has been up for `forget_after` since it last came back
    /// (Envoy lowers its multiplier the same way, one step per healthy interval).
    pub(crate) fn eject(&self, reason: &str, forget_after: Duration) -> Option<u32> {
        if !self.is_up() {
            return None;
        }
        let up_for = clock::now_ms().saturating_sub(self.up_since_ms());
        self.transition(false, reason, true, || true)?;
        if up_for >= clock::millis(forget_after) {
            self.ejections.store(0, Ordering::Relaxed);
        }
        Some(
            self.ejections
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1),
        )
    }

    /// Ends ejection number `ejection` (a pool without active checks, once its ejection
    /// time is over). Does nothing if the backend came back meanwhile, went down for
    /// another reason, or was ejected again since (that ejection has its own timer).
    pub fn end_ejection(&self, ejection: u32, reason: &str) -> Option<Transition> {
        self.transition(true, reason, false, || {
            self.is_ejected() && self.ejections() == ejection
        })
    }
}
