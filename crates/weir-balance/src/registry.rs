//! The backend registry: one `Arc<Backend>` per (pool, address) across reloads.
//!
//! Building a table asks the registry for each configured backend. A backend that an
//! earlier table already had is handed back as the same object, so its health state,
//! in-flight count and upstream connection pool carry over; a new one is created. After
//! a table is swapped in, [`BackendRegistry::retain`] forgets backends it no longer has.
//! Each pool name likewise keeps one [`PoolShared`] (retry budget, ejection lock) across
//! reloads, and one `Arc<Transport>` (TLS, HTTP version): a reload that keeps a pool's
//! transport settings hands the new table the same transport, so the idle connections
//! of kept backends stay usable ([`weir_upstream::carry_over`]); one that changes them
//! gives it a new one, and those connections are closed.
//!
//! The registry also resolves every metric handle the table needs, once per build: a
//! backend's [`BackendMetrics`](weir_telemetry::BackendMetrics) is created with the
//! backend and lives as long as it does, so forgetting a removed backend (and dropping
//! the last table that had it) removes its series from `/metrics`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use weir_config::Config;
use weir_telemetry::{BackendMetrics, Metrics, PoolMetrics};
use weir_upstream::{Transport, Transports};

use crate::policy::Limiters;
use crate::{Backend, Pool, PoolShared, Table};

type Key = (String, String, SocketAddr);

/// Hands out backends by (pool, address as written, resolved address).
///
/// The mutex is only taken when a table is built or pruned, never per request.
#[derive(Debug)]
pub struct BackendRegistry {
    backends: Mutex<HashMap<Key, Arc<Backend>>>,
    pools: Mutex<HashMap<String, Arc<PoolShared>>>,
    /// Each pool's transport in the newest table built.
    transports: Mutex<HashMap<String, Arc<Transport>>>,
    /// Rate limiters by listener and route position, kept while their settings are.
    limiters: Limiters,
    metrics: Option<Metrics>,
}

impl Default for BackendRegistry {
    fn default() -> Self {
        Self::new()
    }
}

// === impl BackendRegistry ===

impl BackendRegistry {
    /// An empty registry with a private metrics registry of its own (tests, benches):
    /// the handles work, nobody scrapes them. If registering the metric families fails
    /// (a bug, logged), tables are built without metrics.
    pub fn new() -> Self {
        match Metrics::new() {
            Ok(metrics) => Self::with_metrics(metrics),
            Err(e) => {
                tracing::error!(error = %e, "cannot register metrics; building tables without them");
                Self::from_metrics(None)
            }
        }
    }

    /// An empty registry whose tables record into `metrics` (the one `/metrics` serves).
    pub fn with_metrics(metrics: Metrics) -> Self {
        Self::from_metrics(Some(metrics))
    }

    fn from_metrics(metrics: Option<Metrics>) -> Self {
        BackendRegistry {
            backends: Mutex::new(HashMap::new()),
            pools: Mutex::new(HashMap::new()),
            transports: Mutex::new(HashMap::new()),
            limiters: Limiters::default(),
            metrics,
        }
    }

    /// The metrics registry tables are built with, if any.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_ref()
    }

    /// Builds the table for `config`, reusing every backend the registry already has,
    /// with plain TCP to every backend (tests, benches, configs without `tls`; see
    /// [`BackendRegistry::build_with`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let yaml = "
    /// listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ pool: app }] }]
    /// pools: { app: { backends: [{ address: 127.0.0.1:9 }] } }
    /// ";
    /// let config = Arc::new(weir_config::parse(yaml, "w.yaml".as_ref()).expect("valid"));
    /// let registry = weir_balance::BackendRegistry::new();
    /// let first = registry.build(Arc::clone(&config), 1);
    /// let second = registry.build(config, 2);
    /// let a = &first.pools()[0].primaries()[0];
    /// let b = &second.pools()[0].primaries()[0];
    /// assert!(Arc::ptr_eq(a, b), "a kept backend is the same object");
    /// ```
    pub fn build(&self, config: Arc<Config>, generation: u64) -> Table {
        self.build_with(config, generation, &Transports::default())
    }

    /// Builds the table for `config` with each pool's `transports` (loaded with the
    /// config, see [`Transports::load`]), reusing every backend the registry already
    /// has. Kept backends adopt their pool's transport here: build the table right
    /// before it goes live.
    pub fn build_with(
        &self,
        config: Arc<Config>,
        generation: u64,
        transports: &Transports,
    ) -> Table {
        self.assemble(config, generation, |kept, pool| {
            weir_upstream::carry_over(kept, transports.for_pool(pool))
        })
    }

    /// A new table for the configuration `table` was built from, under the same
    /// generation: every backend, pool state and transport is the one `table` has, only
    /// the strategies are built afresh from the weights in force. A runtime weight change
    /// reaches the strategies this way (one table swap, like a reload's).
    pub fn rebuild(&self, table: &Table) -> Table {
        let carried: HashMap<&str, &Arc<Transport>> = table
            .pools()
            .iter()
            .map(|p| (p.name(), p.transport()))
            .collect();
        let mut rebuilt = self.assemble(Arc::clone(table.config()), table.generation(), {
            |kept, pool| match carried.get(pool.name.as_str()) {
                Some(t) => Arc::clone(t),
                None => weir_upstream::carry_over(kept, Transports::default().for_pool(pool)),
            }
        });
        rebuilt.copy_aliases(table);
        rebuilt
    }

    fn assemble(
        &self,
        config: Arc<Config>,
        generation: u64,
        transport_of: impl Fn(Option<&Arc<Transport>>, &weir_config::PoolConfig) -> Arc<Transport>,
    ) -> Table {
        let mut map = match self.backends.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut shared = match self.pools.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut kept = match self.transports.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let pools = config
            .pools
            .iter()
            .map(|pool| {
                let backends = pool
                    .backends
                    .iter()
                    .map(|b| {
                        let key = (pool.name.clone(), b.address.clone(), b.addr);
                        let backend = map.entry(key).or_insert_with(|| {
                            Arc::new(match &self.metrics {
                                Some(m) => Backend::with_metrics(
                                    &pool.name,
                                    b,
                                    BackendMetrics::new(m, &pool.name, &b.address),
                                ),
                                None => Backend::new(&pool.name, b),
                            })
                        });
                        backend.set_max_in_flight(pool.max_in_flight_of(b));
                        if let Some(cleared) = backend.update_settings(b) {
                            tracing::info!(
                                pool = %pool.name,
                                backend = %b.address,
                                cleared,
                                weight = b.weight.get(),
                                "configured weight changed: runtime weight override cleared"
                            );
                        }
                        Arc::clone(backend)
                    })
                    .collect();
                let state = shared.entry(pool.name.clone()).or_default();
                // A raised limit may have made room for requests already waiting.
                state.queue().kick_all();
                let transport = transport_of(kept.get(&pool.name), pool);
                kept.insert(pool.name.clone(), Arc::clone(&transport));
                let built = Pool::with_shared(pool, backends, Arc::clone(state), transport);
                Arc::new(match &self.metrics {
                    Some(m) => built.with_metrics(PoolMetrics::new(m, &pool.name)),
                    None => built,
                })
            })
            .collect();
        drop(kept);
        drop(shared);
        drop(map);
        Table::assemble(
            generation,
            config,
            pools,
            self.metrics.as_ref(),
            &self.limiters,
        )
    }

    /// The discovery status of pool `pool`, kept with the pool's other shared state (so
    /// the next table built with the pool has the same one); created if the pool has
    /// none yet. A discovery task writes it, `/status` reads it from the table.
    pub fn discovery_status(&self, pool: &str) -> Arc<crate::DiscoveryStatus> {
        let mut shared = match self.pools.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(shared.entry(pool.to_owned()).or_default().discovery())
    }

    /// Forgets every backend `table` does not contain. Call after `table` is live.
    pub fn retain(&self, table: &Table) {
        let mut map = match self.backends.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // By pointer, in one pass over the table: a search per backend would make a
        // discovery update of a large set quadratic.
        let live: HashSet<*const Backend> = table
            .pools()
            .iter()
            .flat_map(|p| p.backends().map(Arc::as_ptr))
            .collect();
        map.retain(|_, backend| {
            let kept = live.contains(&Arc::as_ptr(backend));
            if !kept {
                backend.conns().retire();
            }
            kept
        });
        drop(map);
        let mut shared = match self.pools.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        shared.retain(|name, state| {
            let kept = table.pool(name).is_some();
            if !kept {
                // Requests waiting for the removed pool's backends get a 503 now.
                state.queue().close();
            }
            kept
        });
        drop(shared);
        let mut kept = match self.transports.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        kept.retain(|name, _| table.pool(name).is_some());
        drop(kept);
        self.limiters.retain(table);
    }

    /// Number of backends known.
    pub fn len(&self) -> usize {
        self.backends.lock().map_or(0, |m| m.len())
    }

    /// Whether no backend is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a new table changes compared with the old one: logged as one line on reload.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Pools only in the new table.
    pub pools_added: Vec<String>,
    /// Pools only in the old table.
    pub pools_removed: Vec<String>,
    /// `pool/address` of backends only in the new table.
    pub backends_added: Vec<String>,
    /// `pool/address` of backends only in the old table.
    pub backends_removed: Vec<String>,
    /// `pool/address old->new` of kept backends whose weight changed.
    pub reweighted: Vec<String>,
    /// Listeners only in the new config.
    pub listeners_added: Vec<String>,
    /// Listeners only in the old config.
    pub listeners_removed: Vec<String>,
}

// === impl Changes ===

impl Changes {
    /// Compares two configurations.
    pub fn between(old: &Config, new: &Config) -> Self {
        let mut c = Changes::default();
        let pools =
            |cfg: &Config| -> Vec<String> { cfg.pools.iter().map(|p| p.name.clone()).collect() };
        let (old_pools, new_pools) = (pools(old), pools(new));
        c.pools_added = new_pools
            .iter()
            .filter(|p| !old_pools.contains(p))
            .cloned()
            .collect();
        c.pools_removed = old_pools
            .iter()
            .filter(|p| !new_pools.contains(p))
            .cloned()
            .collect();
        let backends = |cfg: &Config| -> HashMap<String, u32> {
            cfg.pools
                .iter()
                .flat_map(|p| {
                    p.backends
                        .iter()
                        .map(move |b| (format!("{}/{}", p.name, b.address), b.weight.get()))
                })
                .collect()
        };
        let (old_b, new_b) = (backends(old), backends(new));
        for (k, w) in &new_b {
            match old_b.get(k) {
                None => c.backends_added.push(k.clone()),
                Some(old_w) if old_w != w => c.reweighted.push(format!("{k} {old_w}->{w}")),
                Some(_) => {}
            }
        }
        c.backends_removed = old_b
            .keys()
            .filter(|k| !new_b.contains_key(*k))
            .cloned()
            .collect();
        let names = |cfg: &Config| -> Vec<String> {
            cfg.listeners.iter().map(|l| l.name.clone()).collect()
        };
        let (old_l, new_l) = (names(old), names(new));
        c.listeners_added = new_l
            .iter()
            .filter(|l| !old_l.contains(l))
            .cloned()
            .collect();
        c.listeners_removed = old_l
            .iter()
            .filter(|l| !new_l.contains(l))
            .cloned()
            .collect();
        for v in [
            &mut c.backends_added,
            &mut c.backends_removed,
            &mut c.reweighted,
        ] {
            v.sort();
        }
        c
    }

    /// Whether nothing changed that this summary tracks.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no pool, backend or listener changes");
        }
        let parts = [
            ("pools added", &self.pools_added),
            ("pools removed", &self.pools_removed),
            ("backends added", &self.backends_added),
            ("backends removed", &self.backends_removed),
            ("re-weighted", &self.reweighted),
            ("listeners added", &self.listeners_added),
            ("listeners removed", &self.listeners_removed),
        ];
        let mut first = true;
        for (label, items) in parts {
            if items.is_empty() {
                continue;
            }
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{label}: {}", items.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use weir_config::{BackendConfig, ListenerConfig, PoolConfig, StrategyKind};

    use super::*;
    use crate::test_support::{backend_config, config, http_listener, pool_config, route};

    fn cfg(pools: Vec<PoolConfig>, listeners: Vec<ListenerConfig>) -> Arc<Config> {
        Arc::new(config(listeners, pools))
    }

    fn web(backends: Vec<BackendConfig>) -> PoolConfig {
        pool_config("web", StrategyKind::RoundRobin, backends)
    }

    fn find<'t>(table: &'t Table, pool: &str, address: &str) -> &'t Arc<Backend> {
        table
            .pool(pool)
            .and_then(|p| p.backends().find(|b| b.address() == address))
            .expect("backend in table")
    }

    #[test]
    fn kept_backend_is_the_same_object_with_its_state() {
        let registry = BackendRegistry::new();
        let first = registry.build(cfg(vec![web(vec![backend_config(0, 1, false)])], vec![]), 1);
        let a1 = find(&first, "web", "a");
        a1.force(false, "probe failed");
        let guard = a1.start_request();

        let second_cfg = web(vec![
            backend_config(0, 1, false),
            backend_config(1, 1, false),
        ]);
        let second = registry.build(cfg(vec![second_cfg], vec![]), 2);
        let a2 = find(&second, "web", "a");
        assert!(Arc::ptr_eq(a1, a2));
        assert!(!a2.is_up(), "health survives the reload");
        assert_eq!(a2.in_flight(), 1, "in-flight survives the reload");
        assert_eq!(a2.last_transition().reason, "probe failed");
        drop(guard);
        assert_eq!(a2.in_flight(), 0);
        assert!(find(&second, "web", "b").is_up(), "a new backend starts up");
        assert_eq!(registry.len(), 2);
    }

    #[test]
    fn same_address_in_another_pool_is_another_backend() {
        let registry = BackendRegistry::new();
        let api = pool_config(
            "api",
            StrategyKind::Random,
            vec![backend_config(0, 1, false)],
        );
        let table = registry.build(
            cfg(vec![web(vec![backend_config(0, 1, false)]), api], vec![]),
            1,
        );
        assert!(!Arc::ptr_eq(
            find(&table, "web", "a"),
            find(&table, "api", "a")
        ));
        assert_eq!(find(&table, "api", "a").pool(), "api");
    }

    #[test]
    fn reload_updates_weight_and_backup_of_kept_backend() {
        let registry = BackendRegistry::new();
        let first = registry.build(
            cfg(
                vec![web(vec![
                    backend_config(0, 1, false),
                    backend_config(1, 1, false),
                ])],
                vec![],
            ),
            1,
        );
        assert_eq!(first.pool("web").map(|p| p.backups().len()), Some(0));
        let second = registry.build(
            cfg(
                vec![web(vec![
                    backend_config(0, 4, false),
                    backend_config(1, 1, true),
                ])],
                vec![],
            ),
            2,
        );
        assert_eq!(find(&second, "web", "a").weight(), 4);
        let pool = second.pool("web").expect("pool web");
        assert_eq!(pool.backups().len(), 1);
        assert!(Arc::ptr_eq(&pool.backups()[0], find(&first, "web", "b")));
    }

    #[test]
    fn retain_forgets_removed_backends() {
        let registry = BackendRegistry::new();
        let both = cfg(
            vec![web(vec![
                backend_config(0, 1, false),
                backend_config(1, 1, false),
            ])],
            vec![],
        );
        let first = registry.build(Arc::clone(&both), 1);
        let old_b = Arc::clone(find(&first, "web", "b"));
        let second = registry.build(cfg(vec![web(vec![backend_config(0, 1, false)])], vec![]), 2);
        assert_eq!(registry.len(), 2, "nothing is forgotten before retain");
        registry.retain(&second);
        assert_eq!(registry.len(), 1);
        assert!(!registry.is_empty());
        let third = registry.build(both, 3);
        assert!(
            !Arc::ptr_eq(&old_b, find(&third, "web", "b")),
            "a re-added backend starts afresh"
        );
        assert!(Arc::ptr_eq(
            find(&second, "web", "a"),
            find(&third, "web", "a")
        ));
    }

    #[test]
    fn changes_between_summarises_a_reload() {
        let old = cfg(
            vec![
                web(vec![
                    backend_config(0, 1, false),
                    backend_config(1, 1, false),
                ]),
                pool_config(
                    "old",
                    StrategyKind::RoundRobin,
                    vec![backend_config(2, 1, false)],
                ),
            ],
            vec![
                http_listener("a", vec![route(None, None, "web")]),
                http_listener("gone", vec![]),
            ],
        );
        let new = cfg(
            vec![
                web(vec![
                    backend_config(0, 3, false),
                    backend_config(3, 1, false),
                ]),
                pool_config(
                    "db",
                    StrategyKind::LeastConnections,
                    vec![backend_config(4, 1, false)],
                ),
            ],
            vec![
                http_listener("a", vec![route(None, None, "web")]),
                http_listener("b", vec![]),
            ],
        );
        let changes = Changes::between(&old, &new);
        assert_eq!(
            changes.to_string(),
            "pools added: db; pools removed: old; backends added: db/e, web/d; \
             backends removed: old/c, web/b; re-weighted: web/a 1->3; \
             listeners added: b; listeners removed: gone"
        );
        assert!(!changes.is_empty());
        let same = Changes::between(&old, &old);
        assert!(same.is_empty());
        assert_eq!(same.to_string(), "no pool, backend or listener changes");
    }

    #[test]
    fn kept_pool_keeps_its_retry_budget_and_a_removed_one_is_forgotten() {
        let registry = BackendRegistry::new();
        let first = registry.build(cfg(vec![web(vec![backend_config(0, 1, false)])], vec![]), 1);
        let pool = first.pool("web").expect("web");
        pool.shared().retry_budget().record_request();
        let second = registry.build(cfg(vec![web(vec![backend_config(1, 1, false)])], vec![]), 2);
        let kept = second.pool("web").expect("web");
        assert!(Arc::ptr_eq(pool.shared(), kept.shared()));
        let other = pool_config(
            "other",
            StrategyKind::RoundRobin,
            vec![backend_config(0, 1, false)],
        );
        let third = registry.build(cfg(vec![other], vec![]), 3);
        registry.retain(&third);
        let fourth = registry.build(cfg(vec![web(vec![backend_config(0, 1, false)])], vec![]), 4);
        let fresh = fourth.pool("web").expect("web");
        assert!(
            !Arc::ptr_eq(pool.shared(), fresh.shared()),
            "removed pool starts over"
        );
    }

    #[test]
    fn discovery_status_is_the_pools_own_across_builds_and_goes_with_the_pool() {
        let registry = BackendRegistry::new();
        let status = registry.discovery_status("web");
        status.update(|s| s.backends = 3);
        let first = registry.build(cfg(vec![web(vec![backend_config(0, 1, false)])], vec![]), 1);
        let pool = first.pool("web").expect("web");
        assert!(
            Arc::ptr_eq(&status, pool.shared().discovery()),
            "built with it"
        );
        assert_eq!(pool.shared().discovery().snapshot().backends, 3);
        let other = pool_config(
            "other",
            StrategyKind::RoundRobin,
            vec![backend_config(1, 1, false)],
        );
        let second = registry.build(cfg(vec![other], vec![]), 2);
        registry.retain(&second);
        assert!(
            !Arc::ptr_eq(&status, &registry.discovery_status("web")),
            "a removed pool's status is forgotten"
        );
    }

    #[test]
    fn kept_pool_keeps_its_transport_until_its_settings_change() {
        let registry = BackendRegistry::new();
        let listeners = || vec![http_listener("web", vec![route(None, None, "web")])];
        let pool = || web(vec![backend_config(0, 1, false)]);
        let first = registry.build(cfg(vec![pool()], listeners()), 1);
        let second = registry.build(cfg(vec![pool()], listeners()), 2);
        let id = |t: &Table| t.pool("web").map(|p| p.transport().id());
        assert_eq!(id(&first), id(&second), "same settings, same transport");
        let mut h2 = pool();
        h2.upstream_protocol = weir_config::UpstreamProtocol::H2;
        let third = registry.build(cfg(vec![h2], listeners()), 3);
        assert_ne!(id(&second), id(&third), "HTTP version changed");
        assert!(third.pool("web").is_some_and(|p| p.transport().is_h2()));
        assert!(
            Arc::ptr_eq(find(&second, "web", "a"), find(&third, "web", "a")),
            "the backend itself is kept"
        );
    }
}
