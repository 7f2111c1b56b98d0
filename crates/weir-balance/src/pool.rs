//! A pool: a strategy over primary backends, with hot-standby backups.

use std::sync::Arc;
use std::time::Duration;

use weir_config::{HealthCheckConfig, PoolConfig, StrategyKind};

use crate::strategy::Strategy;
use crate::Backend;

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
}

/// A named set of backends and how to choose among them.
#[derive(Debug)]
pub struct Pool {
    name: Arc<str>,
    kind: StrategyKind,
    primaries: Box<[Arc<Backend>]>,
    backups: Box<[Arc<Backend>]>,
    primary_strategy: Strategy,
    backup_strategy: Strategy,
    settings: PoolSettings,
    health_check: Option<HealthCheckConfig>,
}

// === impl Pool ===

impl Pool {
    /// Builds a pool from its config and the (registry-owned) backends, in config order.
    pub fn new(config: &PoolConfig, backends: Vec<Arc<Backend>>) -> Self {
        let (backups, primaries): (Vec<_>, Vec<_>) =
            backends.into_iter().partition(|b| b.is_backup());
        let primary_strategy = Strategy::new(config.strategy, &primaries);
        let backup_strategy = Strategy::new(config.strategy, &backups);
        Pool {
            name: Arc::from(config.name.as_str()),
            kind: config.strategy,
            primaries: primaries.into_boxed_slice(),
            backups: backups.into_boxed_slice(),
            primary_strategy,
            backup_strategy,
            settings: PoolSettings {
                connect_timeout: config.timeouts.connect,
                response_timeout: config.timeouts.response,
                retries: config.retries,
            },
            health_check: config.health_check.clone(),
        }
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

    /// The active health check, if the pool has one.
    pub fn health_check(&self) -> Option<&HealthCheckConfig> {
        self.health_check.as_ref()
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

    /// Chooses a backend: a primary that is up, or, when no primary is up, a backup.
    /// `None` when nothing is up.
    #[inline]
    pub fn pick(&self) -> Option<&Arc<Backend>> {
        if let Some(i) = self.primary_strategy.pick(&self.primaries) {
            return self.primaries.get(i);
        }
        self.backup_strategy
            .pick(&self.backups)
            .and_then(|i| self.backups.get(i))
    }

    /// Chooses a backend for a retry: one that is up and not in `tried`.
    ///
    /// The strategy is asked first, so retries keep the pool's spread; if it keeps naming
    /// tried backends, any untried primary that is up is taken, then any untried backup
    /// (a backup is better than an error once the primaries have failed this request).
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
        self.primaries
            .iter()
            .chain(self.backups.iter())
            .find(|b| b.is_up() && !is_tried(b))
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use weir_config::StrategyKind;

    use super::*;
    use crate::test_support::{backend_config, pool_config};

    const KINDS: [StrategyKind; 4] = [
        StrategyKind::RoundRobin,
        StrategyKind::Weighted,
        StrategyKind::Random,
        StrategyKind::LeastConnections,
    ];

    /// Backends `a`, `b`, … with `(weight, backup)`.
    fn pool(kind: StrategyKind, spec: &[(u32, bool)]) -> Pool {
        let configs: Vec<_> = spec
            .iter()
            .enumerate()
            .map(|(i, &(w, backup))| backend_config(i, w, backup))
            .collect();
        let backends = configs
            .iter()
            .map(|c| Arc::new(Backend::new("p", c)))
            .collect();
        Pool::new(&pool_config("p", kind, configs), backends)
    }

    fn picks(pool: &Pool, n: usize) -> String {
        (0..n)
            .map(|_| pool.pick().map_or("-", |b| b.address()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn set(pool: &Pool, name: &str, up: bool) {
        let b = pool.backends().find(|b| b.address() == name);
        b.expect("backend exists").force(up, "test");
    }

    #[test]
    fn pool_splits_primaries_and_backups_in_config_order() {
        let p = pool(
            StrategyKind::RoundRobin,
            &[(1, true), (1, false), (1, false)],
        );
        fn names(bs: &[Arc<Backend>]) -> Vec<&str> {
            bs.iter().map(|b| b.address()).collect()
        }
        assert_eq!(names(p.primaries()), ["b", "c"]);
        assert_eq!(names(p.backups()), ["a"]);
        assert_eq!(p.up_count(), 3);
        assert_eq!(p.settings().retries, 2);
    }

    #[test]
    fn backups_idle_while_a_primary_is_up() {
        for kind in KINDS {
            let p = pool(kind, &[(1, false), (1, false), (1, true)]);
            set(&p, "a", false);
            assert_eq!(picks(&p, 6), "b b b b b b", "{kind:?}");
        }
    }

    #[test]
    fn backups_take_over_when_all_primaries_are_down_and_give_back() {
        let p = pool(
            StrategyKind::RoundRobin,
            &[(1, false), (1, false), (1, true), (1, true)],
        );
        set(&p, "a", false);
        set(&p, "b", false);
        assert_eq!(picks(&p, 4), "c d c d");
        set(&p, "b", true);
        assert_eq!(
            picks(&p, 3),
            "b b b",
            "a recovered primary takes all traffic back"
        );
        set(&p, "b", false);
        set(&p, "c", false);
        set(&p, "d", false);
        assert_eq!(p.pick().map(|b| b.address()), None);
    }

    #[test]
    fn pick_excluding_prefers_untried_primaries_then_backups() {
        let p = pool(
            StrategyKind::RoundRobin,
            &[(1, false), (1, false), (1, true)],
        );
        let (a, b, c) = (&p.primaries()[0], &p.primaries()[1], &p.backups()[0]);
        for _ in 0..4 {
            assert!(Arc::ptr_eq(p.pick_excluding(&[a]).expect("b is up"), b));
        }
        assert!(Arc::ptr_eq(p.pick_excluding(&[a, b]).expect("backup"), c));
        assert!(p.pick_excluding(&[a, b, c]).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn pick_excluding_never_returns_a_tried_or_down_backend(
            spec in vec((1u32..=4, any::<bool>(), any::<bool>(), any::<bool>()), 0..12),
        ) {
            for kind in KINDS {
                let p = pool(kind, &spec.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>());
                // Backends are partitioned, so look them up by name for the mask.
                let all: Vec<&Arc<Backend>> = p.backends().collect();
                let mut tried = Vec::new();
                for b in &all {
                    let i: usize = (b.addr().port() - 10_000).into();
                    b.force(spec[i].2, "test");
                    if spec[i].3 {
                        tried.push(*b);
                    }
                }
                let eligible = all.iter().any(|b| b.is_up() && !tried.iter().any(|t| Arc::ptr_eq(t, b)));
                for _ in 0..10 {
                    match p.pick_excluding(&tried) {
                        Some(b) => {
                            prop_assert!(b.is_up());
                            prop_assert!(!tried.iter().any(|t| Arc::ptr_eq(t, b)));
                        }
                        None => prop_assert!(!eligible, "{kind:?}: None with an eligible backend"),
                    }
                }
            }
        }
    }
}
