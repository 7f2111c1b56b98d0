//! A route's values: request latency, and `weir_http_requests_total{listener, pool,
//! backend, code}` without a label lookup per request.
//!
//! The four labels come from three things the proxy already holds: the route
//! (`listener`, `pool`), the backend it picked from the route's pool, and the status.
//! A [`RouteMetrics`] is built with the table, together with the pool it routes to, so
//! it holds the [`RequestCounters`] of each of that pool's backends in a slice indexed
//! by the backend's *ordinal* (a small number unique among the pool's live backends).
//! Counting is then an index, a pointer comparison and one atomic add; nothing changes
//! after the table is built, so there is nothing to lock or swap.
//!
//! Counters are shared by label set while they are live: the table a reload builds gets
//! the same counters for a kept route and backend, so their series go on counting, and
//! they are dropped with the last table that had them.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::backend::{BackendInner, BackendMetrics};
use super::status::StatusCounters;
use super::value::Histogram;
use super::Shared;

/// The `backend` label of responses weir made itself (no backend up, or none picked).
/// Backend labels are `host:port`, so this can never clash with one.
pub const NO_BACKEND: &str = "none";

/// Request latency and request counters of one `(listener, pool)` route.
#[derive(Clone)]
pub struct RouteMetrics {
    inner: Arc<RouteInner>,
    /// Indexed by [`BackendInner::ordinal`].
    by_backend: Arc<[Option<Arc<RequestCounters>>]>,
}

debug_by_labels!(RouteMetrics { "listener" => inner.listener, "pool" => inner.pool });

/// What every table's view of one `(listener, pool)` shares.
pub(super) struct RouteInner {
    pub(super) listener: String,
    pub(super) pool: String,
    pub(super) duration: Histogram,
    /// Answers weir gave itself (`backend="none"`).
    pub(super) no_backend: StatusCounters,
}

/// The request counters of one `(listener, pool, backend)`.
pub(super) struct RequestCounters {
    pub(super) route: Arc<RouteInner>,
    /// Weak: a backend's series go when the backend goes, whoever still holds this.
    pub(super) backend: Weak<BackendInner>,
    pub(super) codes: StatusCounters,
}

impl RequestCounters {
    fn is_of(&self, route: &Arc<RouteInner>, backend: &Arc<BackendInner>) -> bool {
        Arc::ptr_eq(&self.route, route) && std::ptr::eq(self.backend.as_ptr(), Arc::as_ptr(backend))
    }
}

impl RouteMetrics {
    pub(super) fn new<'b>(
        shared: &Shared,
        listener: &str,
        pool: &str,
        backends: impl IntoIterator<Item = &'b BackendMetrics>,
    ) -> Self {
        let mut live = shared.live();
        let key = (listener.to_owned(), pool.to_owned());
        let inner = live.routes.intern_any(key, || RouteInner {
            listener: listener.to_owned(),
            pool: pool.to_owned(),
            duration: Histogram::default(),
            no_backend: StatusCounters::default(),
        });
        let mut by_backend: Vec<Option<Arc<RequestCounters>>> = Vec::new();
        for b in backends {
            let b = &b.inner;
            debug_assert_eq!(b.pool, pool, "a route counts only its own pool's backends");
            let key = (listener.to_owned(), pool.to_owned(), b.backend.clone());
            let counters = live.requests.intern(
                key,
                |c| c.is_of(&inner, b),
                || RequestCounters {
                    route: Arc::clone(&inner),
                    backend: Arc::downgrade(b),
                    codes: StatusCounters::default(),
                },
            );
            if by_backend.len() <= b.ordinal {
                by_backend.resize(b.ordinal + 1, None);
            }
            by_backend[b.ordinal] = Some(counters);
        }
        drop(live);
        RouteMetrics {
            inner,
            by_backend: by_backend.into(),
        }
    }

    /// Records a request's time from received to response headers sent.
    #[inline]
    pub fn observe_request(&self, elapsed: Duration) {
        self.inner.duration.observe(elapsed);
    }

    /// Counts a response from `backend` with status `code`: one of the backends this
    /// route was built with (the route's pool in the same table, which is where every
    /// pick comes from).
    #[inline]
    pub fn count(&self, backend: &BackendMetrics, code: u16) {
        let b = &backend.inner;
        match self.by_backend.get(b.ordinal) {
            Some(Some(c)) if std::ptr::eq(c.backend.as_ptr(), Arc::as_ptr(b)) => c.codes.inc(code),
            _ => not_in_route(&self.inner, b),
        }
    }

    /// Counts a response weir made itself with status `code` (e.g. 503 with no backend
    /// up); its `backend` label is [`NO_BACKEND`].
    #[inline]
    pub fn count_without_backend(&self, code: u16) {
        self.inner.no_backend.inc(code);
    }
}

/// A backend from outside the route's pool: a wiring bug, never a request's doing.
#[cold]
fn not_in_route(route: &RouteInner, backend: &BackendInner) {
    debug_assert!(
        false,
        "route {}/{} was not built with backend {}/{}",
        route.listener, route.pool, backend.pool, backend.backend
    );
    tracing::warn!(
        listener = %route.listener,
        pool = %route.pool,
        backend = %backend.backend,
        "response from a backend outside the route's pool not counted"
    );
}
