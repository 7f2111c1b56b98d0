//! Per-pool state that outlives a table: the registry keeps one [`PoolShared`] per pool
//! name and hands it to every table that has that pool, so a reload neither refills the
//! retry budget, nor lets two tables eject past the cap at once, nor drops the requests
//! waiting in the pool's queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::budget::RetryBudget;
use crate::clock;

/// The fail-open warning is logged at most this often per pool.
const FAIL_OPEN_LOG_EVERY_MS: u64 = 1000;

/// State of a pool that reloads keep (see the module docs).
#[derive(Debug, Default)]
pub struct PoolShared {
    budget: RetryBudget,
    /// Serialises passive ejection decisions of the pool (a failure path, never taken by
    /// a request that succeeds), so two backends failing at once cannot both pass the
    /// `max_ejected_percent` check.
    eject: Mutex<()>,
    fail_open_picks: AtomicU64,
    /// [`clock::now_ms`] of the last fail-open warning; 0 before the first.
    fail_open_logged_ms: AtomicU64,
    fail_open_suppressed: AtomicU64,
    /// What the pool's backend discovery last did (untouched without `discovery`).
    discovery: std::sync::Arc<super::discovery::DiscoveryStatus>,
    /// Requests waiting for a backend under its `max_in_flight`; its backends wake them.
    queue: std::sync::Arc<super::queue::PoolQueue>,
}

// === impl PoolShared ===

impl PoolShared {
    /// Fresh state: an empty budget, no fail-open so far.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pool's discovery status, written by its discovery task, read by `/status`.
    pub fn discovery(&self) -> &std::sync::Arc<super::discovery::DiscoveryStatus> {
        &self.discovery
    }

    /// The pool's queue (waiters survive a reload that keeps the pool).
    pub fn queue(&self) -> &std::sync::Arc<super::queue::PoolQueue> {
        &self.queue
    }

    /// The pool's retry budget.
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// Picks made while failing open (every backend down, `fail_open: true`) since the
    /// pool first appeared: a counter for metrics and `/status`.
    pub fn fail_open_picks(&self) -> u64 {
        self.fail_open_picks.load(Ordering::Relaxed)
    }

    /// Counts one fail-open pick; returns the count before it (a round-robin position).
    pub(crate) fn record_fail_open(&self) -> u64 {
        self.fail_open_picks.fetch_add(1, Ordering::Relaxed)
    }

    /// `Some(warnings suppressed since the last one)` when the fail-open warning is due.
    pub(crate) fn fail_open_log_due(&self) -> Option<u64> {
        let now = clock::now_ms();
        let last = self.fail_open_logged_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= FAIL_OPEN_LOG_EVERY_MS;
        if due
            && self
                .fail_open_logged_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.fail_open_suppressed.swap(0, Ordering::Relaxed));
        }
        self.fail_open_suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Held while deciding one passive ejection.
    pub(crate) fn eject_lock(&self) -> MutexGuard<'_, ()> {
        match self.eject.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
