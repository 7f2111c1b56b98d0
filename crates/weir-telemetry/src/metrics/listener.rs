//! Handles of listeners, routes and pools.
//!
//! A route is `(listener, pool)`: it owns the request-latency histogram and is the key under
//! which a backend keeps its request counters (see `requests.rs`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{Histogram, IntCounter, IntGauge};

use super::backend::BackendMetrics;
use super::families::forget;
use super::live::{intern, release};
use super::requests::{remove_series, RequestCounters, RouteEntry, NO_BACKEND};
use super::{Metrics, Shared};

/// Connection and byte counters of one listener.
#[derive(Clone)]
pub struct ListenerMetrics {
    inner: Arc<ListenerInner>,
}

impl std::fmt::Debug for ListenerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerMetrics")
            .field("listener", &self.inner.name)
            .finish_non_exhaustive()
    }
}

pub(crate) struct ListenerInner {
    shared: Arc<Shared>,
    name: String,
    active: IntGauge,
    total: IntCounter,
    rx: IntCounter,
    tx: IntCounter,
    protocol_errors: IntCounter,
}

impl ListenerMetrics {
    /// The handles of the listener named `listener`.
    pub fn new(metrics: &Metrics, listener: &str) -> Self {
        let shared = &metrics.shared;
        let mut live = shared.live();
        let inner = intern(&mut live.listeners, listener.to_owned(), || {
            let f = &shared.families;
            ListenerInner {
                shared: Arc::clone(shared),
                name: listener.to_owned(),
                active: f.connections_active.with_label_values(&[listener]),
                total: f.connections_total.with_label_values(&[listener]),
                rx: f.tcp_bytes.with_label_values(&[listener, "rx"]),
                tx: f.tcp_bytes.with_label_values(&[listener, "tx"]),
                protocol_errors: f.http_protocol_errors.with_label_values(&[listener]),
            }
        });
        drop(live);
        ListenerMetrics { inner }
    }

    /// Counts an accepted connection; it stays in `connections_active` until the guard
    /// drops. The guard keeps the listener's series alive, so a removed listener's
    /// draining connections remain visible.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.inner.total.inc();
        self.inner.active.inc();
        ConnectionGuard {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Bytes read from clients (TCP listeners).
    #[inline]
    pub fn add_rx_bytes(&self, n: u64) {
        self.inner.rx.inc_by(n);
    }

    /// Bytes written to clients (TCP listeners).
    #[inline]
    pub fn add_tx_bytes(&self, n: u64) {
        self.inner.tx.inc_by(n);
    }

    /// Counts a client connection closed for breaking the protocol
    /// (`weir_http_protocol_errors_total`).
    #[inline]
    pub fn protocol_error(&self) {
        self.inner.protocol_errors.inc();
    }

    /// The handles of the route from this listener to `pool`.
    pub fn route(&self, pool: &str) -> RouteMetrics {
        let shared = &self.inner.shared;
        let mut live = shared.live();
        let key = (self.inner.name.clone(), pool.to_owned());
        let inner = intern(&mut live.routes, key, || RouteInner {
            shared: Arc::clone(shared),
            listener: self.inner.name.clone(),
            pool: pool.to_owned(),
            duration: shared
                .families
                .request_duration
                .with_label_values(&[self.inner.name.as_str(), pool]),
            no_backend: OnceLock::new(),
        });
        drop(live);
        RouteMetrics { inner }
    }

    /// The listener label.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl Drop for ListenerInner {
    fn drop(&mut self) {
        let shared = Arc::clone(&self.shared);
        let mut live = shared.live();
        if !release(&mut live.listeners, &self.name, self) {
            return;
        }
        let f = &shared.families;
        let name = [self.name.as_str()];
        forget(
            f.connections_active.remove_label_values(&name),
            "connections_active",
            &name,
        );
        forget(
            f.connections_total.remove_label_values(&name),
            "connections_total",
            &name,
        );
        forget(
            f.http_protocol_errors.remove_label_values(&name),
            "http_protocol_errors",
            &name,
        );
        for direction in ["rx", "tx"] {
            let labels = [self.name.as_str(), direction];
            forget(
                f.tcp_bytes.remove_label_values(&labels),
                "tcp_bytes",
                &labels,
            );
        }
    }
}

/// One open client connection; decrements `weir_listener_connections_active` when dropped.
#[derive(Debug)]
#[must_use = "the connection counts as active only while the guard lives"]
pub struct ConnectionGuard {
    inner: Arc<ListenerInner>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.inner.active.dec();
    }
}

impl std::fmt::Debug for ListenerInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerInner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Request latency and request counters of one `(listener, pool)` route.
#[derive(Clone)]
pub struct RouteMetrics {
    inner: Arc<RouteInner>,
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("listener", &self.inner.listener)
            .field("pool", &self.inner.pool)
            .finish_non_exhaustive()
    }
}

pub(crate) struct RouteInner {
    shared: Arc<Shared>,
    listener: String,
    pool: String,
    duration: Histogram,
    no_backend: OnceLock<RequestCounters>,
}

impl RouteMetrics {
    /// Records a request's time from received to response headers sent.
    #[inline]
    pub fn observe_request(&self, elapsed: Duration) {
        self.inner.duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a response from `backend` with status `code`. Lock-free once this route
    /// has seen this backend and code; the first time takes the control-path lock.
    #[inline]
    pub fn count(&self, backend: &BackendMetrics, code: u16) {
        let routes = backend.inner.routes.load();
        if let Some(entry) = routes.iter().find(|e| e.is(&self.inner)) {
            entry.counters.inc(code);
            return;
        }
        drop(routes);
        self.count_new_backend(backend, code);
    }

    #[cold]
    fn count_new_backend(&self, backend: &BackendMetrics, code: u16) {
        let fresh = Arc::new(RequestCounters::new(
            &self.inner.shared,
            &self.inner.listener,
            &self.inner.pool,
            backend.backend(),
        ));
        let after = backend.inner.routes.rcu(|current| {
            let mut next: Vec<RouteEntry> =
                current.iter().filter(|e| e.is_alive()).cloned().collect();
            if !next.iter().any(|e| e.is(&self.inner)) {
                next.push(RouteEntry::new(&self.inner, Arc::clone(&fresh)));
            }
            next
        });
        // `rcu` returns the list it replaced: look in the new one, which holds either
        // `fresh` or the entry a concurrent first request added.
        drop(after);
        let routes = backend.inner.routes.load();
        match routes.iter().find(|e| e.is(&self.inner)) {
            Some(entry) => entry.counters.inc(code),
            None => fresh.inc(code),
        }
    }

    /// Counts a response weir made itself with status `code` (e.g. 503 with no backend
    /// up); its `backend` label is [`NO_BACKEND`].
    pub fn count_without_backend(&self, code: u16) {
        self.inner
            .no_backend
            .get_or_init(|| {
                RequestCounters::new(
                    &self.inner.shared,
                    &self.inner.listener,
                    &self.inner.pool,
                    NO_BACKEND,
                )
            })
            .inc(code);
    }
}

impl Drop for RouteInner {
    fn drop(&mut self) {
        let shared = Arc::clone(&self.shared);
        let mut live = shared.live();
        let key = (self.listener.clone(), self.pool.clone());
        if !release(&mut live.routes, &key, self) {
            return;
        }
        let f = &shared.families;
        let labels = [self.listener.as_str(), self.pool.as_str()];
        forget(
            f.request_duration.remove_label_values(&labels),
            "request_duration",
            &labels,
        );
        for ((l, p, b), codes) in
            live.take_requests(|(l, p, _)| *l == self.listener && *p == self.pool)
        {
            remove_series(f, &l, &p, &b, &codes);
        }
    }
}

/// Per-pool handles. `weir_pool_backends_up` is computed from the pool's live
/// [`BackendMetrics`] at every scrape, so nothing has to keep it in step.
#[derive(Clone)]
pub struct PoolMetrics {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for PoolMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolMetrics")
            .field("pool", &self.inner.name)
            .finish_non_exhaustive()
    }
}

pub(crate) struct PoolInner {
    shared: Arc<Shared>,
    name: String,
    retries: IntCounter,
    backends_up: IntGauge,
}

impl PoolMetrics {
    /// The handles of the pool named `pool`.
    pub fn new(metrics: &Metrics, pool: &str) -> Self {
        let shared = &metrics.shared;
        let mut live = shared.live();
        let inner = intern(&mut live.pools, pool.to_owned(), || PoolInner {
            shared: Arc::clone(shared),
            name: pool.to_owned(),
            retries: shared.families.retries.with_label_values(&[pool]),
            backends_up: shared.families.pool_backends_up.with_label_values(&[pool]),
        });
        drop(live);
        PoolMetrics { inner }
    }

    /// Counts one further attempt on another backend.
    #[inline]
    pub fn retry(&self) {
        self.inner.retries.inc();
    }
}

impl PoolInner {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn set_backends_up(&self, n: i64) {
        self.backends_up.set(n);
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        let shared = Arc::clone(&self.shared);
        let mut live = shared.live();
        if !release(&mut live.pools, &self.name, self) {
            return;
        }
        let f = &shared.families;
        let labels = [self.name.as_str()];
        forget(f.retries.remove_label_values(&labels), "retries", &labels);
        forget(
            f.pool_backends_up.remove_label_values(&labels),
            "pool_backends_up",
            &labels,
        );
    }
}
