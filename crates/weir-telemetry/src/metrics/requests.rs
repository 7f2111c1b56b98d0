//! `weir_http_requests_total{listener, pool, backend, code}` without a label lookup per request.
//!
//! The four labels come from three places the proxy already holds: the route
//! (`listener`, `pool`), the backend it picked, and the status. So the counters of one
//! `(route, backend)` pair live in a [`RequestCounters`], found from the backend's small
//! copy-on-write list of routes (usually one or two entries, scanned by pointer), and
//! indexed by status code: the common codes have a slot each, resolved on first use and
//! lock-free after; any other code takes a short mutex (rare by definition).

use std::sync::{Arc, Mutex, OnceLock, Weak};

use prometheus::IntCounter;

use super::families::{forget, Families};
use super::listener::RouteInner;
use super::live::RequestKey;
use super::Shared;

/// The `backend` label of responses weir made itself (no backend up, or none picked).
/// Backend labels are `host:port`, so this can never clash with one.
pub const NO_BACKEND: &str = "none";

/// Codes with a lock-free slot, sorted for binary search.
const COMMON: [(u16, &str); 30] = [
    (100, "100"),
    (101, "101"),
    (200, "200"),
    (201, "201"),
    (202, "202"),
    (204, "204"),
    (206, "206"),
    (301, "301"),
    (302, "302"),
    (303, "303"),
    (304, "304"),
    (307, "307"),
    (308, "308"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (408, "408"),
    (409, "409"),
    (413, "413"),
    (422, "422"),
    (429, "429"),
    (431, "431"),
    (499, "499"),
    (500, "500"),
    (501, "501"),
    (502, "502"),
    (503, "503"),
    (504, "504"),
];

/// One entry of a backend's route list.
#[derive(Clone)]
pub(super) struct RouteEntry {
    /// Identity only: holding the `Weak` keeps the allocation (so the address cannot be
    /// reused by a newer route) without keeping the route's series alive.
    route: Weak<RouteInner>,
    pub(super) counters: Arc<RequestCounters>,
}

impl RouteEntry {
    pub(super) fn new(route: &Arc<RouteInner>, counters: Arc<RequestCounters>) -> Self {
        RouteEntry {
            route: Arc::downgrade(route),
            counters,
        }
    }

    #[inline]
    pub(super) fn is(&self, route: &Arc<RouteInner>) -> bool {
        std::ptr::eq(self.route.as_ptr(), Arc::as_ptr(route))
    }

    /// False once the route's last handle is gone (its series are already deleted).
    pub(super) fn is_alive(&self) -> bool {
        self.route.strong_count() > 0
    }
}

/// The request counters of one `(listener, pool, backend)`, per status code.
pub(super) struct RequestCounters {
    shared: Arc<Shared>,
    key: RequestKey,
    common: [OnceLock<IntCounter>; COMMON.len()],
    other: Mutex<Vec<(u16, IntCounter)>>,
}

impl RequestCounters {
    pub(super) fn new(shared: &Arc<Shared>, listener: &str, pool: &str, backend: &str) -> Self {
        RequestCounters {
            shared: Arc::clone(shared),
            key: (listener.to_owned(), pool.to_owned(), backend.to_owned()),
            common: std::array::from_fn(|_| OnceLock::new()),
            other: Mutex::new(Vec::new()),
        }
    }

    /// Counts one response with `code`.
    #[inline]
    pub(super) fn inc(&self, code: u16) {
        match COMMON.binary_search_by_key(&code, |&(c, _)| c) {
            Ok(slot) => self.common[slot]
                .get_or_init(|| self.resolve(code, COMMON[slot].1))
                .inc(),
            Err(_) => self.inc_other(code),
        }
    }

    #[cold]
    fn inc_other(&self, code: u16) {
        let mut other = match self.other.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((_, counter)) = other.iter().find(|(c, _)| *c == code) {
            counter.inc();
            return;
        }
        let counter = self.resolve(code, &code.to_string());
        counter.inc();
        other.push((code, counter));
    }

    /// Creates the series under the live lock, recording it for deletion.
    #[cold]
    fn resolve(&self, code: u16, code_label: &str) -> IntCounter {
        let mut live = self.shared.live();
        live.record_request(&self.key, code);
        let (listener, pool, backend) = &self.key;
        self.shared.families.http_requests.with_label_values(&[
            listener.as_str(),
            pool,
            backend,
            code_label,
        ])
    }
}

/// Deletes the request series of one `(listener, pool, backend)` for every code in `codes`.
pub(super) fn remove_series(
    f: &Families,
    listener: &str,
    pool: &str,
    backend: &str,
    codes: &[u16],
) {
    for code in codes {
        let code = code.to_string();
        let labels = [listener, pool, backend, code.as_str()];
        forget(
            f.http_requests.remove_label_values(&labels),
            "http_requests",
            &labels,
        );
    }
}
