//! Prometheus metrics: the families of DESIGN.md §5, kept as plain atomics on the objects
//! they describe and written out at scrape time.
//!
//! The data plane holds *handles*, resolved once when the table is built, and every
//! handle is the values themselves, so the request path only does atomic adds
//! (STYLE.md §10):
//!
//! - [`ListenerMetrics`]: connections and TCP bytes of one listener; hands out
//!   [`RouteMetrics`] for `(listener, pool)`: request latency and per-backend request
//!   counters.
//! - [`PoolMetrics`]: retries and the queue (depth, wait, refusals); `weir_pool_backends_up`
//!   is computed at scrape time.
//! - [`BackendMetrics`]: up, in-flight, transitions, downtime, probes, upstream errors,
//!   response latency.
//! - [`ConfigMetrics`]: reload outcome and the config hash.
//! - [`PolicyMetrics`]: requests refused by a rate limit, and connections or requests
//!   refused by an access list, per listener and route.
//! - [`DiscoveryMetrics`]: lookups by result and discovered backends of one pool, held
//!   by the pool's discovery task (series only for pools with `discovery`).
//!
//! [`Metrics`] keeps a weak pointer to every live handle, by label set. Asking for live
//! labels returns the same values, so a reload that keeps a listener, route, pool or
//! backend keeps counting; a scrape ([`Metrics::encode`]) walks the handles that are
//! still alive and writes them as text. When the last holder of a handle goes (a reload
//! removed the backend, pool, listener or route, and the last table and connection that
//! had it are done), its series are simply no longer there: nothing is ever deleted.

/// `Debug` for a metrics handle: its type and the labels that name its series, never its
/// values (reading those takes the atomics a scrape reads).
macro_rules! debug_by_labels {
    ($ty:ident { $($label:literal => $($field:ident).+),+ $(,)? }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field($label, &self.$($field).+))+
                    .finish_non_exhaustive()
            }
        }
    };
}

/// A metrics handle: a cheap clone of the `Arc` of the values its holders share, whose
/// `Debug` ([`debug_by_labels!`]) shows the labels read through that `Arc`.
///
/// With `values { .. }` it also declares that shared type ([`labelled_values!`]).
macro_rules! handle {
    ($(#[$doc:meta])* $ty:ident => $inner:ident { $($label:literal => $field:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $ty {
            pub(super) inner: std::sync::Arc<$inner>,
        }

        debug_by_labels!($ty { $($label => inner.$field),+ });
    };
    ($(#[$doc:meta])* $ty:ident => $inner:ident { $($label:literal => $field:ident),+ $(,)? }
     values { $($(#[$vdoc:meta])* $value:ident: $vty:ty),+ $(,)? }) => {
        handle!($(#[$doc])* $ty => $inner { $($label => $field),+ });
        labelled_values!($inner { $($field),+ } { $($(#[$vdoc])* $value: $vty),+ });
    };
}

/// The values a handle shares, declared so that each label is named once: it becomes a
/// `String` field and a parameter of `$inner::zero`, which starts every value at zero
/// (`Default`).
macro_rules! labelled_values {
    ($inner:ident { $($field:ident),+ } { $($(#[$vdoc:meta])* $value:ident: $vty:ty),+ }) => {
        pub(super) struct $inner {
            $(pub(super) $field: String,)+
            $($(#[$vdoc])* pub(super) $value: $vty,)+
        }

        impl $inner {
            /// The values of these labels, all at zero.
            fn zero($($field: &str),+) -> Self {
                $inner {
                    $($field: $field.to_owned(),)+
                    $($value: Default::default(),)+
                }
            }
        }
    };
}

mod backend;
mod config;
mod discovery;
mod exposition;
mod listener;
mod policy;
mod route;
mod scrape;
mod status;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lifecycle;
mod value;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

pub use backend::{BackendMetrics, UpstreamErrorKind};
pub use config::{config_hash, ConfigMetrics};
pub use discovery::{DiscoveryMetrics, LookupResult};
pub use listener::{ConnectionGuard, ListenerMetrics, PoolMetrics, StickyResult};
pub use policy::PolicyMetrics;
pub use route::{RouteMetrics, NO_BACKEND};
pub use value::LATENCY_BUCKETS;

use backend::BackendInner;
use config::ConfigState;
use discovery::DiscoveryInner;
use listener::{ListenerInner, PoolInner};
use policy::PolicyInner;
use route::{RequestCounters, RouteInner};

/// The `Content-Type` of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Encoding the `process_*` metrics failed.
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Every live handle and the configuration state. Cheap to clone: clones share them.
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct Shared {
    live: Mutex<Live>,
    config: Arc<ConfigState>,
    /// `process_*` (CPU, memory, file descriptors, threads), from the client library,
    /// which reads `/proc` exactly; Linux only, as there.
    #[cfg(target_os = "linux")]
    process: prometheus::process_collector::ProcessCollector,
}

impl Shared {
    /// The live set. Only the control path takes this lock (handle creation when a table
    /// is built, and scrapes), never a request. A panic while holding it leaves at worst
    /// a dead weak pointer behind, so a poisoned lock is used as is.
    fn live(&self) -> MutexGuard<'_, Live> {
        match self.live.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl Metrics {
    /// The live handle in the live set's `map` for `key`, else a new one from `make`:
    /// how every handle whose live one is always the right one is registered.
    fn intern<K: Eq + Hash, T>(
        &self,
        map: fn(&mut Live) -> &mut WeakMap<K, T>,
        key: impl Into<K>,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        map(&mut self.shared.live()).intern_any(key.into(), make)
    }

    /// Empty metrics: `weir_build_info{version}` and the reload counters (both outcomes
    /// at 0, so `increase(...[5m])` sees the first failure) exist from the start.
    ///
    /// # Errors
    ///
    /// None today; the `Result` stays so that a collector that can fail to set up has
    /// somewhere to report it.
    pub fn new() -> Result<Self, MetricsError> {
        Ok(Metrics {
            shared: Arc::new(Shared {
                live: Mutex::new(Live::default()),
                config: Arc::default(),
                #[cfg(target_os = "linux")]
                process: prometheus::process_collector::ProcessCollector::for_self(),
            }),
        })
    }

    /// The configuration reload handles.
    pub fn config(&self) -> ConfigMetrics {
        ConfigMetrics {
            state: Arc::clone(&self.shared.config),
        }
    }
}

/// Weak pointers to the live handles of one kind, by label set.
struct WeakMap<K, T> {
    map: HashMap<K, Weak<T>>,
    /// Dead entries are swept when the map reaches this size (and at every scrape), so a
    /// process that is never scraped does not grow with reloads.
    sweep_at: usize,
}

impl<K, T> Default for WeakMap<K, T> {
    fn default() -> Self {
        WeakMap {
            map: HashMap::new(),
            sweep_at: 64,
        }
    }
}

impl<K: Eq + Hash, T> WeakMap<K, T> {
    /// The live handle for `key` if `accept` takes it, else a new one from `make`.
    fn intern(&mut self, key: K, accept: impl Fn(&T) -> bool, make: impl FnOnce() -> T) -> Arc<T> {
        if let Some(alive) = self.map.get(&key).and_then(Weak::upgrade) {
            if accept(&alive) {
                return alive;
            }
        }
        let fresh = Arc::new(make());
        self.map.insert(key, Arc::downgrade(&fresh));
        if self.map.len() >= self.sweep_at {
            self.sweep();
            self.sweep_at = (self.map.len() * 2).max(64);
        }
        fresh
    }

    /// The live handle for `key`, else a new one from `make`: for the handles any live
    /// one of which is the right one.
    fn intern_any(&mut self, key: K, make: impl FnOnce() -> T) -> Arc<T> {
        self.intern(key, |_| true, make)
    }

    fn sweep(&mut self) {
        self.map.retain(|_, w| w.strong_count() > 0);
    }

    /// Strong pointers to every live handle, for a scrape.
    fn alive(&mut self) -> Vec<Arc<T>> {
        self.sweep();
        self.map.values().filter_map(Weak::upgrade).collect()
    }
}

/// Every live handle.
#[derive(Default)]
struct Live {
    listeners: WeakMap<String, ListenerInner>,
    routes: WeakMap<(String, String), RouteInner>,
    pools: WeakMap<String, PoolInner>,
    backends: WeakMap<(String, String), BackendInner>,
    requests: WeakMap<(String, String, String), RequestCounters>,
    discovery: WeakMap<String, DiscoveryInner>,
    policies: WeakMap<(String, String), PolicyInner>,
    /// Per pool, its backends by ordinal; a dead entry's ordinal is free again.
    ordinals: HashMap<String, Vec<Weak<BackendInner>>>,
}

impl Live {
    /// The live backend `(pool, backend)`, or a new one from `make(ordinal)` with the
    /// smallest ordinal no live backend of the pool has.
    fn backend(
        &mut self,
        pool: &str,
        backend: &str,
        make: impl FnOnce(usize) -> BackendInner,
    ) -> Arc<BackendInner> {
        let slots = self.ordinals.entry(pool.to_owned()).or_default();
        let key = (pool.to_owned(), backend.to_owned());
        let mut created = None;
        let inner = self.backends.intern_any(key, || {
            let free = slots.iter().position(|w| w.strong_count() == 0);
            let ordinal = free.unwrap_or(slots.len());
            created = Some(ordinal);
            make(ordinal)
        });
        if let Some(ordinal) = created {
            let weak = Arc::downgrade(&inner);
            match slots.get_mut(ordinal) {
                Some(slot) => *slot = weak,
                None => slots.push(weak),
            }
        }
        inner
    }
}
