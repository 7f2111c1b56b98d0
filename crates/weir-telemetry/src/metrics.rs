//! Prometheus metrics: the families of DESIGN.md §5 and the handles the data plane bumps.
//!
//! [`Metrics`] owns one `prometheus::Registry` (not the global one, so every test and every
//! embedded instance has its own) holding every family, `weir_build_info`,
//! `weir_config_info` and the process collector. Everything else is a *handle* resolved
//! once when the table is built, so the request path only does atomic adds (STYLE.md §10):
//!
//! - [`ListenerMetrics`]: connections and TCP bytes of one listener; hands out
//!   [`RouteMetrics`] for `(listener, pool)`: request latency and per-backend request
//!   counters.
//! - [`PoolMetrics`]: retries; `weir_pool_backends_up` is computed at scrape time.
//! - [`BackendMetrics`]: up, in-flight, transitions, downtime, probes, upstream errors,
//!   response latency.
//! - [`ConfigMetrics`]: reload outcome and the config hash.
//!
//! A handle's series live as long as any handle for the same labels: dropping the last
//! one (a reload removed the backend, pool, listener or route) deletes them, so removed
//! backends vanish from `/metrics` without any explicit call.

mod backend;
mod config;
mod families;
mod listener;
mod live;
mod requests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lifecycle;

use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::{Registry, TextEncoder};
use tokio::time::Instant;

pub use backend::{BackendMetrics, UpstreamErrorKind};
pub use config::{config_hash, ConfigMetrics};
pub use families::LATENCY_BUCKETS;
pub use listener::{ConnectionGuard, ListenerMetrics, PoolMetrics, RouteMetrics};
pub use requests::NO_BACKEND;

use families::Families;
use live::Live;

/// The `Content-Type` of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Registering a family failed (a duplicate name: a bug, reported rather than panicking).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// The registry and every metric family. Cheap to clone: clones share one registry.
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What every handle points back to (to delete its series when dropped).
pub(crate) struct Shared {
    registry: Registry,
    families: Families,
    live: Mutex<Live>,
}

impl Shared {
    /// The live-series tables. A panic while holding the lock cannot leave them
    /// inconsistent in a way that matters (worst case: a series is not deleted), so a
    /// poisoned lock is used as is.
    fn live(&self) -> MutexGuard<'_, Live> {
        match self.live.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl Metrics {
    /// A fresh registry with every family registered, `weir_build_info{version}` set and,
    /// on Linux, the `process_*` collector.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let families = Families::register(&registry)?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        families
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Both outcomes exist from the start, so `increase(...[5m])` sees the first failure.
        families.config_reloads.with_label_values(&["success"]);
        families.config_reloads.with_label_values(&["failure"]);
        Ok(Metrics {
            shared: Arc::new(Shared {
                registry,
                families,
                live: Mutex::new(Live::default()),
            }),
        })
    }

    /// The underlying registry, to register further collectors.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// The configuration reload handles.
    pub fn config(&self) -> ConfigMetrics {
        ConfigMetrics::new(&self.shared.families)
    }

    /// Brings the scrape-time values up to date: downtime of backends that are down right
    /// now, and `weir_pool_backends_up`. [`Metrics::encode`] calls it; call it yourself
    /// only when gathering the registry another way.
    pub fn refresh(&self) {
        let (backends, pools) = self.shared.live().snapshot();
        let now = Instant::now();
        let mut up: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for backend in &backends {
            backend.account_downtime(now);
            if backend.is_up() {
                *up.entry(backend.pool()).or_default() += 1;
            }
        }
        for pool in &pools {
            pool.set_backends_up(up.get(pool.name()).copied().unwrap_or(0));
        }
        // `backends` and `pools` drop here, after the lock was released.
    }

    /// Every metric in the Prometheus text format (serve with [`TEXT_CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, MetricsError> {
        self.refresh();
        let families = self.shared.registry.gather();
        Ok(TextEncoder::new().encode_to_string(&families)?)
    }
}
