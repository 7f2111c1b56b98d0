//! Per-backend values: state, downtime clock, probes, upstream errors, latency.
//!
//! Downtime is a counter that must grow *while* a backend is down, not only when it comes
//! back, or a 30-day availability query would miss an outage still in progress. So each
//! backend keeps a small clock: going down stamps the instant; going up, and every scrape,
//! add the time since the stamp to the total and move the stamp forward. The clock is
//! `tokio::time::Instant`, so paused-time tests see exact figures. Its mutex is taken on
//! state changes and scrapes only, never per request.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::value::{Counter, Gauge, Histogram};
use super::Metrics;

/// Why a request to a backend failed (the `kind` label of `weir_upstream_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// The TCP (or TLS) connection could not be made.
    Connect,
    /// The backend did not answer in time.
    Timeout,
    /// The connection was reset or closed before a complete response.
    Reset,
}

handle!(
    /// The metric values of one backend of one pool.
    ///
    /// Create it with the `Backend` (the registry keeps one per `(pool, address)`) and
    /// keep it as long as the backend; its series leave `/metrics` when the last clone is
    /// dropped.
    BackendMetrics => BackendInner { "pool" => pool, "backend" => backend }
    values {
        /// Smallest number no other live backend of the pool has: where a route's view
        /// keeps this backend's request counters (see `route.rs`).
        ordinal: usize,
        in_flight: Gauge,
        to_up: Counter,
        to_down: Counter,
        check_success: Counter,
        check_failure: Counter,
        err_connect: Counter,
        err_timeout: Counter,
        err_reset: Counter,
        response: Histogram,
        clock: Mutex<Clock>,
    }
);

pub(super) struct Clock {
    up: bool,
    /// While down: the instant up to which downtime has been added to `downtime`.
    down_accounted_to: Option<Instant>,
    downtime: Duration,
}

/// A new backend starts up, as `weir_balance::Backend` does, with no downtime.
impl Default for Clock {
    fn default() -> Self {
        Clock {
            up: true,
            down_accounted_to: None,
            downtime: Duration::ZERO,
        }
    }
}

impl BackendMetrics {
    /// The values for `backend` (its address exactly as written in the config) of
    /// `pool`. A new backend starts *up*, as `weir_balance::Backend` does; asking again
    /// for live labels returns the same values and state.
    pub fn new(metrics: &Metrics, pool: &str, backend: &str) -> Self {
        let inner = metrics
            .shared
            .live()
            .backend(pool, backend, |ordinal| BackendInner {
                ordinal,
                ..BackendInner::zero(pool, backend)
            });
        BackendMetrics { inner }
    }

    /// Records the backend's state. On a change it counts the transition, flips
    /// `weir_backend_up` and starts or stops the downtime clock; the same state again is
    /// a no-op. Returns whether the state changed.
    pub fn set_up(&self, up: bool) -> bool {
        let mut clock = self.inner.clock();
        if clock.up == up {
            return false;
        }
        let now = Instant::now();
        clock.up = up;
        if up {
            if let Some(since) = clock.down_accounted_to.take() {
                clock.downtime += now.saturating_duration_since(since);
            }
            self.inner.to_up.inc();
        } else {
            clock.down_accounted_to = Some(now);
            self.inner.to_down.inc();
        }
        true
    }

    /// Whether the last [`set_up`](Self::set_up) said up.
    pub fn is_up(&self) -> bool {
        self.inner.is_up()
    }

    /// Total downtime so far in seconds, the current outage included (for `/status`).
    pub fn downtime_seconds(&self) -> f64 {
        self.inner.downtime(Instant::now()).as_secs_f64()
    }

    /// One more request (HTTP) or connection (TCP) in flight.
    #[inline]
    pub fn in_flight_inc(&self) {
        self.inner.in_flight.inc();
    }

    /// One request or connection fewer in flight.
    #[inline]
    pub fn in_flight_dec(&self) {
        self.inner.in_flight.dec();
    }

    /// Counts one active health probe.
    pub fn health_check(&self, success: bool) {
        if success {
            self.inner.check_success.inc();
        } else {
            self.inner.check_failure.inc();
        }
    }

    /// Counts one failure seen by live traffic.
    #[inline]
    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        match kind {
            UpstreamErrorKind::Connect => self.inner.err_connect.inc(),
            UpstreamErrorKind::Timeout => self.inner.err_timeout.inc(),
            UpstreamErrorKind::Reset => self.inner.err_reset.inc(),
        }
    }

    /// Records the time from sending a request to this backend to its response headers.
    #[inline]
    pub fn observe_response(&self, elapsed: Duration) {
        self.inner.response.observe(elapsed);
    }

    /// The pool label.
    pub fn pool(&self) -> &str {
        &self.inner.pool
    }

    /// The backend label.
    pub fn backend(&self) -> &str {
        &self.inner.backend
    }
}

impl BackendInner {
    fn clock(&self) -> MutexGuard<'_, Clock> {
        // A panic while holding the clock cannot leave it worse than one lost interval.
        match self.clock.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.clock().up
    }

    /// Total downtime up to `now`, an outage still in progress included.
    pub(super) fn downtime(&self, now: Instant) -> Duration {
        let mut clock = self.clock();
        if let Some(since) = clock.down_accounted_to {
            if now > since {
                clock.downtime += now.saturating_duration_since(since);
                clock.down_accounted_to = Some(now);
            }
        }
        clock.downtime
    }
}
