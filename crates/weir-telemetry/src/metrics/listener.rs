//! Values of listeners and pools.

use std::sync::Arc;

use super::backend::BackendMetrics;
use super::route::RouteMetrics;
use super::value::{Counter, Gauge, Histogram};
use super::{Metrics, Shared};

/// Connection and byte counters of one listener.
#[derive(Clone)]
pub struct ListenerMetrics {
    pub(super) inner: Arc<ListenerInner>,
    /// To resolve routes. The handle holds it, not the values: the live set points at
    /// those (weakly), and connection guards keep them alive.
    shared: Arc<Shared>,
}

debug_by_labels!(ListenerMetrics { "listener" => inner.name });

labelled_values!(ListenerInner { name } {
    active: Gauge,
    total: Counter,
    rx: Counter,
    tx: Counter,
    protocol_errors: Counter
});

impl ListenerMetrics {
    /// The values of the listener named `listener`; asking again while it is live
    /// returns the same ones, so a reload that keeps the listener keeps counting.
    pub fn new(metrics: &Metrics, listener: &str) -> Self {
        let make = || ListenerInner::zero(listener);
        ListenerMetrics {
            inner: metrics.intern(|l| &mut l.listeners, listener, make),
            shared: Arc::clone(&metrics.shared),
        }
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
        self.inner.rx.add(n);
    }

    /// Bytes written to clients (TCP listeners).
    #[inline]
    pub fn add_tx_bytes(&self, n: u64) {
        self.inner.tx.add(n);
    }

    /// Counts a client connection closed for breaking the protocol
    /// (`weir_http_protocol_errors_total`).
    #[inline]
    pub fn protocol_error(&self) {
        self.inner.protocol_errors.inc();
    }

    /// The values of the route from this listener to `pool`, whose backends (in the
    /// table being built) are `backends`: [`RouteMetrics::count`] finds each of them
    /// by index, so those are the backends it can count.
    pub fn route<'b>(
        &self,
        pool: &str,
        backends: impl IntoIterator<Item = &'b BackendMetrics>,
    ) -> RouteMetrics {
        RouteMetrics::new(&self.shared, &self.inner.name, pool, backends)
    }

    /// The listener label.
    pub fn name(&self) -> &str {
        &self.inner.name
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

debug_by_labels!(ListenerInner { "name" => name });

impl PoolInner {
    pub(super) fn sticky_counter(&self, result: StickyResult) -> &Counter {
        match result {
            StickyResult::Hit => &self.sticky_hit,
            StickyResult::New => &self.sticky_new,
            StickyResult::Rebalanced => &self.sticky_rebalanced,
            StickyResult::Invalid => &self.sticky_invalid,
        }
    }
}

handle!(
    /// Per-pool values. `weir_pool_backends_up` is computed from the pool's live
    /// [`BackendMetrics`] at every scrape, so nothing has to keep it in step.
    PoolMetrics => PoolInner { "pool" => name }
    values {
        retries: Counter,
        /// Requests waiting in the pool's queue for a backend under its `max_in_flight`.
        queue_depth: Gauge,
        /// How long requests that got a slot waited for it.
        queue_wait: Histogram,
        /// Requests refused because the queue was full.
        refused_full: Counter,
        /// Requests refused after waiting `queue.timeout`.
        refused_timeout: Counter,
        /// 1 while the pool has a sticky cookie: only such pools have
        /// `weir_sticky_total` series.
        sticky: Gauge,
        sticky_hit: Counter,
        sticky_new: Counter,
        sticky_rebalanced: Counter,
        sticky_invalid: Counter,
    }
);

/// Where a sticky pool's request was served, for `weir_sticky_total`'s `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickyResult {
    /// The cookie's backend took the request.
    Hit,
    /// No cookie: balanced, and a cookie set.
    New,
    /// Served by another backend than the cookie's (down, drained, in maintenance,
    /// removed, or its attempt failed): cookie replaced.
    Rebalanced,
    /// The cookie named no backend of the table (tampered, another key, a removed
    /// backend): balanced, cookie replaced.
    Invalid,
}

impl StickyResult {
    /// Every result, in the order `weir_sticky_total` lists them.
    pub const ALL: [StickyResult; 4] = [
        StickyResult::Hit,
        StickyResult::New,
        StickyResult::Rebalanced,
        StickyResult::Invalid,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StickyResult::Hit => "hit",
            StickyResult::New => "new",
            StickyResult::Rebalanced => "rebalanced",
            StickyResult::Invalid => "invalid",
        }
    }
}

impl PoolMetrics {
    /// The values of the pool named `pool` (the same ones while it is live).
    pub fn new(metrics: &Metrics, pool: &str) -> Self {
        let inner = metrics.intern(|l| &mut l.pools, pool, || PoolInner::zero(pool));
        PoolMetrics { inner }
    }

    /// Counts one further attempt on another backend.
    #[inline]
    pub fn retry(&self) {
        self.inner.retries.inc();
    }

    /// A request started waiting in the pool's queue.
    pub fn queue_entered(&self) {
        self.inner.queue_depth.inc();
    }

    /// A request stopped waiting (with a slot or not).
    pub fn queue_left(&self) {
        self.inner.queue_depth.dec();
    }

    /// A request got its slot after waiting `waited`.
    pub fn queue_waited(&self, waited: std::time::Duration) {
        self.inner.queue_wait.observe(waited);
    }

    /// Whether the pool (as the newest table builds it) has a sticky cookie.
    pub fn set_sticky(&self, on: bool) {
        self.inner.sticky.set(i64::from(on));
    }

    /// Counts one pick of a sticky pool.
    #[inline]
    pub fn sticky(&self, result: StickyResult) {
        self.inner.sticky_counter(result).inc();
    }

    /// A request was refused by the queue: after its timeout, or because it was full.
    pub fn queue_refused(&self, timeout: bool) {
        if timeout {
            &self.inner.refused_timeout
        } else {
            &self.inner.refused_full
        }
        .inc();
    }
}
