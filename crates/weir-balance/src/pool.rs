//! A pool: a strategy over primary backends, with hot-standby backups.
//!
//! [`Pool::pick`] is the one entry point of the data plane, and where the pool-wide
//! health rules apply on top of the strategies (which stay unaware of them):
//!
//! - backups only when no primary is up;
//! - slow start ([`slow_start`]): a backend that came back up recently is accepted with
//!   a probability that grows over `slow_start`, otherwise the pool picks again;
//! - fail-open: with every backend down and `fail_open: true`, spread over all of them;
//! - passive ejection ([`passive`]): the only place that decides whether a backend that
//!   failed live traffic leaves rotation, under the `max_ejected_percent` cap;
//! - the operator's word: a backend drained or in maintenance (runtime API) is never
//!   picked, not even failing open; strategies see it as not routable.
//!
//! What must outlive a reload (the retry budget, the ejection lock) lives in
//! [`PoolShared`], which the registry keeps per pool name.
//!
//! The pool also holds its [`Transport`] (upstream TLS and HTTP version): it is part of
//! the snapshot, so a request connects with the settings of the table it was routed on,
//! and a reload changes them only for requests routed on the new table.

use std::sync::Arc;
use std::time::Duration;

use weir_config::{
    HealthCheckConfig, PassiveConfig, PoolConfig, QueueConfig, RetryBudgetConfig, RetryOn,
    StrategyKind,
};
use weir_telemetry::PoolMetrics;
use weir_upstream::Transport;

use crate::strategy::Strategy;
use crate::Backend;

mod affinity;
mod discovery;
mod passive;
mod queue;
mod shared;
mod slow_start;
mod sticky;
#[cfg(test)]
mod tests;

pub use discovery::{DiscoverySnapshot, DiscoveryStatus};
pub use passive::{Passive, MAX_EJECTION_MULTIPLIER};
pub use queue::{PoolQueue, Refused, Reserved, RESERVE_TRIES};
pub use shared::PoolShared;
pub use slow_start::{MIN_SHARE_PERMILLE, REPICKS};
pub use sticky::{Presented, Sticky, StickyResult, STICKY_ID_LEN};

/// Most attempts (first try plus retries) one request may make; bounds the stack array
/// the proxy keeps of backends already tried, so retries never allocate.
pub const MAX_ATTEMPTS: usize = 8;

/// Upstream settings of a pool, copied from its config when the table is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Time from request sent to response headers.
    pub response_timeout: Duration,
    /// Further attempts after the first, each on a different backend.
    pub retries: u32,
    /// Which failures are retried.
    pub retry_on: RetryOn,
    /// How many retries the pool's request rate allows.
    pub retry_budget: RetryBudgetConfig,
    /// Passive health checking.
    pub passive: PassiveConfig,
    /// With every backend down, spread over all of them instead of failing.
    pub fail_open: bool,
    /// Ramp-up time of a backend that comes back up; `None` for none.
    pub slow_start: Option<Duration>,
    /// Where requests over a backend's `max_in_flight` wait.
    pub queue: QueueConfig,
}

/// A named set of backends and how to choose among them.
#[derive(Debug)]
pub struct Pool {
    name: Arc<str>,
    kind: StrategyKind,
    /// What a consistent-hash pool hashes (`None` for the other strategies).
    hash_on: Option<weir_config::HashOn>,
    primaries: Box<[Arc<Backend>]>,
    backups: Box<[Arc<Backend>]>,
    primary_strategy: Strategy,
    backup_strategy: Strategy,
    settings: PoolSettings,
    health_check: Option<HealthCheckConfig>,
    /// Some backend has a `max_in_flight`: picks reserve against it (see `queue`).
    limited: bool,
    shared: Arc<PoolShared>,
    /// How its backends are reached; its backends' idle connections are tagged with it.
    transport: Arc<Transport>,
    /// The sticky cookie and its backends' ids (`None` without `sticky`).
    sticky: Option<Box<sticky::Sticky>>,
    /// `weir_retries_total{pool}` (`None` outside a registry with metrics).
    metrics: Option<PoolMetrics>,
}

// === impl Pool ===

impl Pool {
    /// Builds a pool from its config and the (registry-owned) backends, in config order,
    /// with fresh shared state (an empty retry budget) and plain TCP to its backends (in
    /// its configured HTTP version).
    pub fn new(config: &PoolConfig, backends: Vec<Arc<Backend>>) -> Self {
        let h2 = config.upstream_protocol == weir_config::UpstreamProtocol::H2;
        Self::with_shared(
            config,
            backends,
            Arc::new(PoolShared::new()),
            Arc::new(Transport::plain(h2)),
        )
    }

    /// Like [`Pool::new`], with shared state carried over from an earlier table and the
    /// pool's `transport`, which its backends adopt for their idle connections (see
    /// [`weir_upstream::Conns::adopt`]): build the table that holds the pool right
    /// before it goes live.
    pub fn with_shared(
        config: &PoolConfig,
        backends: Vec<Arc<Backend>>,
        shared: Arc<PoolShared>,
        transport: Arc<Transport>,
    ) -> Self {
        for b in &backends {
            if b.conns().adopt(&transport) {
                tracing::debug!(
                    pool = %config.name,
                    backend = b.address(),
                    "transport settings changed, idle connections closed"
                );
            }
        }
        let limited = config.max_in_flight.is_some()
            || config.backends.iter().any(|b| b.max_in_flight.is_some());
        for b in &backends {
            b.join_queue(shared.queue());
        }
        let (backups, primaries): (Vec<_>, Vec<_>) =
            backends.into_iter().partition(|b| b.is_backup());
        let primary_strategy = Strategy::for_pool(config, &primaries);
        let backup_strategy = Strategy::for_pool(config, &backups);
        let sticky = config.sticky.as_ref().map(|s| {
            let all: Vec<&Arc<Backend>> = primaries.iter().chain(&backups).collect();
            Box::new(sticky::Sticky::new(s, &config.name, &all))
        });
        Pool {
            name: Arc::from(config.name.as_str()),
            kind: config.strategy,
            hash_on: config.consistent_hash.as_ref().map(|h| h.hash_on.clone()),
            primaries: primaries.into_boxed_slice(),
            backups: backups.into_boxed_slice(),
            primary_strategy,
            backup_strategy,
            settings: PoolSettings {
                connect_timeout: config.timeouts.connect,
                response_timeout: config.timeouts.response,
                retries: config.retries,
                retry_on: config.retry_on,
                retry_budget: config.retry_budget,
                passive: config.passive,
                fail_open: config.fail_open,
                slow_start: config.slow_start.filter(|d| !d.is_zero()),
                queue: config.queue,
            },
            health_check: config.health_check.clone(),
            limited,
            shared,
            transport,
            sticky,
            metrics: None,
        }
    }

    /// The same pool, counting its retries in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: PoolMetrics) -> Self {
        metrics.set_sticky(self.sticky.is_some());
        self.metrics = Some(metrics);
        self
    }

    /// The pool's metric handles (`None` outside a registry with metrics).
    #[inline]
    pub fn metrics(&self) -> Option<&PoolMetrics> {
        self.metrics.as_ref()
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool's name, shared.
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The strategy the pool uses.
    pub fn strategy_kind(&self) -> StrategyKind {
        self.kind
    }

    /// Upstream settings.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// How the pool's backends are reached: TLS, HTTP version, the connector.
    #[inline]
    pub fn transport(&self) -> &Arc<Transport> {
        &self.transport
    }

    /// The active health check, if the pool has one.
    pub fn health_check(&self) -> Option<&HealthCheckConfig> {
        self.health_check.as_ref()
    }

    /// State shared with every table that has a pool of this name: the retry budget and
    /// the fail-open counter.
    pub fn shared(&self) -> &Arc<PoolShared> {
        &self.shared
    }

    /// Primary backends, in config order.
    pub fn primaries(&self) -> &[Arc<Backend>] {
        &self.primaries
    }

    /// Backup backends, in config order.
    pub fn backups(&self) -> &[Arc<Backend>] {
        &self.backups
    }

    /// Every backend, primaries first.
    pub fn backends(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.primaries.iter().chain(self.backups.iter())
    }

    /// Number of backends that are up.
    pub fn up_count(&self) -> usize {
        self.backends().filter(|b| b.is_up()).count()
    }

    /// Chooses a backend: a primary that is up, or, when no primary is up, a backup;
    /// a backend in slow start only as often as its ramp allows; never one at its
    /// `max_in_flight` (`None` when all that are up are: see [`Pool::reserve`]). When
    /// nothing is up: `None`, or with `fail_open` any backend, in turn.
    #[inline]
    pub fn pick(&self) -> Option<&Arc<Backend>> {
        let Some(picked) = self.pick_up() else {
            if self.limited && self.backends().any(|b| b.is_routable()) {
                // Busy, not down: the caller queues; failing open is for a dead pool.
                return None;
            }
            return self.fail_open();
        };
        match self.settings.slow_start {
            Some(ramp) if picked.is_ramping() => Some(self.slow_start(picked, ramp)),
            _ => Some(picked),
        }
    }

    /// The strategies' choice among the backends that are up, backups as standby.
    #[inline]
    fn pick_up(&self) -> Option<&Arc<Backend>> {
        if let Some(i) = self.primary_strategy.pick(&self.primaries) {
            return self.primaries.get(i);
        }
        if self.limited && self.primaries.iter().any(|b| b.is_routable()) {
            // Primaries up but at their limit: the request queues for them; backups
            // stand in for primaries that are down, not for busy ones (HAProxy's too).
            return None;
        }
        self.backup_strategy
            .pick(&self.backups)
            .and_then(|i| self.backups.get(i))
    }

    /// With every backend down: `None`, or with `fail_open` the next backend in turn
    /// among all of them (Envoy's panic mode), logged at most once a second. Backends
    /// an operator drained or put in maintenance, and terminating endpoints, stay out
    /// even then.
    #[cold]
    fn fail_open(&self) -> Option<&Arc<Backend>> {
        if !self.settings.fail_open {
            return None;
        }
        let ready = |b: &&Arc<Backend>| b.may_fail_open();
        let total = self.backends().filter(ready).count();
        if total == 0 {
            return None;
        }
        let n = self.shared.record_fail_open();
        if let Some(suppressed) = self.shared.fail_open_log_due() {
            tracing::warn!(
                pool = %self.name,
                backends = total,
                suppressed,
                "no backend up, failing open: spreading over all backends"
            );
        }
        let i = usize::try_from(n % total as u64).unwrap_or(0);
        self.backends().filter(ready).nth(i)
    }

    /// Chooses a backend for a retry: one that is up, has room under its
    /// `max_in_flight`, and is not in `tried`.
    ///
    /// The strategy is asked first, so retries keep the pool's spread; if it keeps naming
    /// tried backends, any untried primary that is up is taken, then any untried backup
    /// (a backup is better than an error once the primaries have failed this request).
    /// With `fail_open` and nothing up, untried backends are taken whatever their state.
    pub fn pick_excluding(&self, tried: &[&Arc<Backend>]) -> Option<&Arc<Backend>> {
        let is_tried = |b: &Arc<Backend>| tried.iter().any(|t| Arc::ptr_eq(t, b));
        let tries = self.primaries.len().max(self.backups.len());
        for _ in 0..tries.min(MAX_ATTEMPTS * 2) {
            match self.pick() {
                Some(b) if !is_tried(b) => return Some(b),
                Some(_) => continue,
                None => return None,
            }
        }
        let failing_open = self.settings.fail_open && !self.backends().any(|b| b.is_routable());
        self.backends().find(|b| {
            let eligible = if failing_open {
                b.may_fail_open() && b.has_room()
            } else {
                b.is_pickable()
            };
            eligible && !is_tried(b)
        })
    }
}
