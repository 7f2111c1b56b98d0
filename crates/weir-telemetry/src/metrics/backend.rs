//! Per-backend handles: state, downtime clock, probes, upstream errors, latency.
//!
//! Downtime is a counter that must grow *while* a backend is down, not only when it comes
//! back, or a 30-day availability query would miss an outage still in progress. So each
//! backend keeps a small clock: going down stamps the instant; going up, and every scrape
//! ([`Metrics::refresh`](super::Metrics::refresh)), add the time since the stamp to the
//! counter and move the stamp forward. The clock is `tokio::time::Instant`, so
//! paused-time tests see exact figures.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::{Counter, Histogram, IntCounter, IntGauge};
use tokio::time::Instant;

use super::families::{forget, result_pair};
use super::live::{intern, release};
use super::requests::RouteEntry;
use super::{Metrics, Shared};

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

/// The metric handles of one backend of one pool.
///
/// Create it with the `Backend` (the registry keeps one per `(pool, address)`) and keep it
/// as long as the backend; its series are deleted when the last clone is dropped.
#[derive(Clone)]
pub struct BackendMetrics {
    pub(super) inner: Arc<BackendInner>,
}

impl std::fmt::Debug for BackendMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendMetrics")
            .field("pool", &self.inner.pool)
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

pub(crate) struct BackendInner {
    shared: Arc<Shared>,
    pool: String,
    backend: String,
    up: IntGauge,
    in_flight: IntGauge,
    downtime: Counter,
    to_up: IntCounter,
    to_down: IntCounter,
    check_success: IntCounter,
    check_failure: IntCounter,
    err_connect: IntCounter,
    err_timeout: IntCounter,
    err_reset: IntCounter,
    response: Histogram,
    clock: Mutex<Clock>,
    /// Request counters of this backend, one entry per route that sent it traffic.
    /// Read lock-free per request; replaced (copy on write) only when a route is new.
    pub(super) routes: ArcSwap<Vec<RouteEntry>>,
}

struct Clock {
    up: bool,
    /// While down: the instant up to which downtime has been added to the counter.
    down_accounted_to: Option<Instant>,
}

impl BackendMetrics {
    /// The handles for `backend` (its address exactly as written in the config) of
    /// `pool`. A new backend starts *up*, as `weir_balance::Backend` does; asking again
    /// for live labels returns the same handles and state.
    pub fn new(metrics: &Metrics, pool: &str, backend: &str) -> Self {
        let shared = &metrics.shared;
        let mut live = shared.live();
        let key = (pool.to_owned(), backend.to_owned());
        let inner = intern(&mut live.backends, key, || {
            let f = &shared.families;
            let labels = [pool, backend];
            let to = |state: &str| {
                f.backend_transitions
                    .with_label_values(&[pool, backend, state])
            };
            let kind = |k: &str| f.upstream_errors.with_label_values(&[pool, backend, k]);
            let (check_success, check_failure) = result_pair(&f.health_checks, &labels);
            let up = f.backend_up.with_label_values(&labels);
            up.set(1);
            BackendInner {
                shared: Arc::clone(shared),
                pool: pool.to_owned(),
                backend: backend.to_owned(),
                up,
                in_flight: f.backend_in_flight.with_label_values(&labels),
                downtime: f.backend_downtime.with_label_values(&labels),
                to_up: to("up"),
                to_down: to("down"),
                check_success,
                check_failure,
                err_connect: kind("connect"),
                err_timeout: kind("timeout"),
                err_reset: kind("reset"),
                response: f.backend_response_duration.with_label_values(&labels),
                clock: Mutex::new(Clock {
                    up: true,
                    down_accounted_to: None,
                }),
                routes: ArcSwap::from_pointee(Vec::new()),
            }
        });
        drop(live);
        BackendMetrics { inner }
    }

    /// Records the backend's state. On a change it counts the transition, sets
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
                self.inner.add_downtime(since, now);
            }
            self.inner.up.set(1);
            self.inner.to_up.inc();
        } else {
            clock.down_accounted_to = Some(now);
            self.inner.up.set(0);
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
        self.inner.account_downtime(Instant::now());
        self.inner.downtime.get()
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
        self.inner.response.observe(elapsed.as_secs_f64());
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
        match self.clock.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.clock().up
    }

    pub(super) fn pool(&self) -> &str {
        &self.pool
    }

    /// Adds the downtime of an outage still in progress up to `now`.
    pub(super) fn account_downtime(&self, now: Instant) {
        let mut clock = self.clock();
        if let Some(since) = clock.down_accounted_to {
            if now > since {
                self.add_downtime(since, now);
                clock.down_accounted_to = Some(now);
            }
        }
    }

    fn add_downtime(&self, since: Instant, now: Instant) {
        self.downtime
            .inc_by(now.saturating_duration_since(since).as_secs_f64());
    }
}

impl Drop for BackendInner {
    fn drop(&mut self) {
        let shared = Arc::clone(&self.shared);
        let mut live = shared.live();
        let key = (self.pool.clone(), self.backend.clone());
        if !release(&mut live.backends, &key, self) {
            return;
        }
        let f = &shared.families;
        let (pool, backend) = (self.pool.as_str(), self.backend.as_str());
        let pb = [pool, backend];
        forget(f.backend_up.remove_label_values(&pb), "backend_up", &pb);
        forget(
            f.backend_in_flight.remove_label_values(&pb),
            "in_flight",
            &pb,
        );
        forget(f.backend_downtime.remove_label_values(&pb), "downtime", &pb);
        forget(
            f.backend_response_duration.remove_label_values(&pb),
            "backend_response_duration",
            &pb,
        );
        let by_value: [(&str, &prometheus::IntCounterVec, &[&str]); 3] = [
            ("transitions", &f.backend_transitions, &["up", "down"]),
            ("health_checks", &f.health_checks, &["success", "failure"]),
            (
                "upstream_errors",
                &f.upstream_errors,
                &["connect", "timeout", "reset"],
            ),
        ];
        for (family, vec, values) in by_value {
            for value in values {
                let labels = [pool, backend, value];
                forget(vec.remove_label_values(&labels), family, &labels);
            }
        }
        for ((listener, p, b), codes) in
            live.take_requests(|(_, p, b)| p.as_str() == pool && b.as_str() == backend)
        {
            super::requests::remove_series(f, &listener, &p, &b, &codes);
        }
    }
}
