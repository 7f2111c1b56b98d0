//! Which label sets are alive, so each is created once and deleted when its last handle goes.
//!
//! Handles are interned per label set: asking twice for `(pool "web", backend
//! "10.0.0.11:80")` returns the same object, so two owners never keep two downtime clocks
//! for one series. The maps hold `Weak` pointers; the last handle's `Drop` deletes the
//! series, but only if the map still names *that* object. A handle created for the same
//! labels in the meantime (a reload that removes and re-adds a backend) replaces the map
//! entry first, and the old `Drop` then leaves the shared series alone.
//!
//! Only control-path code takes this lock: handle creation, handle drop, the first request
//! with a new status code, and scrapes. Never per request.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Weak};

use super::backend::BackendInner;
use super::listener::{ListenerInner, PoolInner, RouteInner};

/// `(listener, pool, backend)` of a `weir_http_requests_total` series, without its code.
pub(super) type RequestKey = (String, String, String);

#[derive(Default)]
pub(super) struct Live {
    pub(super) listeners: HashMap<String, Weak<ListenerInner>>,
    pub(super) routes: HashMap<(String, String), Weak<RouteInner>>,
    pub(super) pools: HashMap<String, Weak<PoolInner>>,
    pub(super) backends: HashMap<(String, String), Weak<BackendInner>>,
    /// Every status code resolved so far per request series, so the series can be
    /// deleted exactly when its route or backend goes (the client library has no
    /// partial-match delete).
    requests: HashMap<RequestKey, Vec<u16>>,
}

/// The live object for `key`, or a new one from `make`.
///
/// The caller must hold the lock and must not drop the returned `Arc` while holding it:
/// the last drop takes the lock again.
pub(super) fn intern<K: Eq + Hash, T>(
    map: &mut HashMap<K, Weak<T>>,
    key: K,
    make: impl FnOnce() -> T,
) -> Arc<T> {
    if let Some(alive) = map.get(&key).and_then(Weak::upgrade) {
        return alive;
    }
    let fresh = Arc::new(make());
    map.insert(key, Arc::downgrade(&fresh));
    fresh
}

/// Called from `Drop`: true if `this` is still the registered object for `key` (its
/// series must then be deleted), false if a newer object took the labels over.
pub(super) fn release<K: Eq + Hash, T>(map: &mut HashMap<K, Weak<T>>, key: &K, this: &T) -> bool {
    match map.get(key) {
        Some(weak) if std::ptr::eq(weak.as_ptr(), this) => {
            map.remove(key);
            true
        }
        _ => false,
    }
}

impl Live {
    /// Records that `code` was resolved for `key`.
    pub(super) fn record_request(&mut self, key: &RequestKey, code: u16) {
        let codes = self.requests.entry(key.clone()).or_default();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }

    /// Takes out every request series whose key matches `pred`, for deletion.
    pub(super) fn take_requests(
        &mut self,
        pred: impl Fn(&RequestKey) -> bool,
    ) -> Vec<(RequestKey, Vec<u16>)> {
        let keys: Vec<RequestKey> = self.requests.keys().filter(|k| pred(k)).cloned().collect();
        keys.into_iter()
            .filter_map(|k| self.requests.remove_entry(&k))
            .collect()
    }

    /// Strong handles to every live backend and pool, for a scrape-time refresh.
    ///
    /// Returned rather than used in place so the caller drops them after releasing the
    /// lock (a last drop would take it again).
    pub(super) fn snapshot(&self) -> (Vec<Arc<BackendInner>>, Vec<Arc<PoolInner>>) {
        (
            self.backends.values().filter_map(Weak::upgrade).collect(),
            self.pools.values().filter_map(Weak::upgrade).collect(),
        )
    }
}
