//! Values of a pool's backend discovery: `weir_discovery_lookups_total{pool,result}` and
//! `weir_discovery_backends{pool}`.
//!
//! The pool's discovery task holds the handle, so the series exist exactly while a
//! pool has `discovery` (a reload that removes the block, or the pool, ends them). A
//! restarted task (its block changed) asks for the same name and keeps counting.

use super::value::{Counter, Gauge};
use super::Metrics;

/// The outcome of one lookup, the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupResult {
    /// An answer with at least one usable backend.
    Success,
    /// NXDOMAIN, no records, or records that give no backend: the last good answer
    /// keeps serving.
    Empty,
    /// No answer (timeout, refused, malformed): the last good answer keeps serving.
    Failure,
}

impl LookupResult {
    /// Every result, in label order: also the order of [`DiscoveryInner`]'s counters.
    const ALL: [LookupResult; 3] = [
        LookupResult::Success,
        LookupResult::Empty,
        LookupResult::Failure,
    ];

    /// The label value: `success`, `empty`, `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            LookupResult::Success => "success",
            LookupResult::Empty => "empty",
            LookupResult::Failure => "failure",
        }
    }
}

handle!(
    /// Lookup counters and the discovered-backend gauge of one pool.
    DiscoveryMetrics => DiscoveryInner { "pool" => pool }
    values {
        /// Indexed by the result's place in [`LookupResult::ALL`] (its discriminant).
        lookups: [Counter; LookupResult::ALL.len()],
        backends: Gauge,
    }
);

impl DiscoveryMetrics {
    /// The values of pool `pool`'s discovery (the same ones while a holder lives).
    pub fn new(metrics: &Metrics, pool: &str) -> Self {
        let inner = metrics.intern(|l| &mut l.discovery, pool, || DiscoveryInner::zero(pool));
        DiscoveryMetrics { inner }
    }

    /// Counts one lookup.
    pub fn lookup(&self, result: LookupResult) {
        self.inner.lookups[result as usize].inc();
    }

    /// The number of backends the pool's discovery now serves.
    pub fn set_backends(&self, n: usize) {
        self.inner
            .backends
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

impl DiscoveryInner {
    /// `(result label, count)` for each result, in label order.
    pub(super) fn lookups(&self) -> [(&'static str, u64); 3] {
        LookupResult::ALL.map(|result| (result.as_str(), self.lookups[result as usize].get()))
    }
}
