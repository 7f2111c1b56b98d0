//! Wiring: config -> table -> listeners, admin, health checks; signals and reloads.
//!
//! ```text
//! SIGHUP  -> read + validate the file off the data path (blocking pool)
//!         -> read certificates and keys (failure rejects the reload)
//!         -> prepare: bind/duplicate/register listener sockets (failure rejects it)
//!         -- from here nothing can fail --
//!         -> build the new table (same Arc<Backend> for kept backends, each pool's
//!            transport in it: kept settings keep their idle connections)
//!         -> kept listeners take their new TLS; replaced and removed ones stop accepting
//!         -> swap the table -> rename kept listeners, start new tasks, drain the old
//!         -> reconcile health tasks, then discovery tasks (the new table already has
//!            every kept pool's discovered backends)
//!         -> weir_config_reloads_total{result}, config hash for /metrics and /status
//! runtime API weight change -> rebuild the table from the same config and backends
//!            (new strategies, same generation) -> swap; in the same loop as SIGHUP, so
//!            the two never interleave
//! discovery update (a pool's DNS answer changed; see discovery.rs)
//!         -> the file's config + every discovered set -> build -> swap -> reconcile
//!            health: exactly a reload's table step, logged as `discovery updated`
//! SIGTERM -> /healthz 503 -> for `shutdown_grace`: go on accepting, every HTTP
//!            response closes its connection (idle keep-alive ones at once) -> stop
//!            accepting -> wait for in-flight work on every listener at once, until
//!            one deadline -> exit 0 (a SIGHUP meanwhile is logged and ignored)
//! ```
//! The data plane never waits on any of this: it only `load()`s the table.
//!
//! One [`Metrics`] registry lives for the whole process; the tables built from it hold
//! the metric handles, so series of backends, pools and listeners a reload removes
//! disappear with the last table that had them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::signal::unix::{signal, SignalKind};
use weir_admin::{AdminState, ConfigStamp};
use weir_balance::{BackendRegistry, Changes, SharedTable};
use weir_config::Config;
use weir_health::HealthChecker;
use weir_telemetry::{config_hash, ConfigMetrics, Metrics};

use crate::discovery::Discovery;
use crate::listeners::{self, Listeners};
use crate::tls::TlsSet;

/// A started weir: everything bound and serving.
pub(crate) struct Server {
    config_path: Option<PathBuf>,
    registry: BackendRegistry,
    table: SharedTable,
    listeners: Arc<Mutex<Listeners>>,
    health: HealthChecker,
    admin: Arc<AdminState>,
    admin_addr: SocketAddr,
    admin_task: tokio::task::JoinHandle<()>,
    /// Closes pooled backend connections idle past their timeout.
    sweeper: tokio::task::JoinHandle<()>,
    config_metrics: ConfigMetrics,
    /// The runtime API's requests for a table rebuilt with new weights.
    rebuilds: tokio::sync::mpsc::Receiver<tokio::sync::oneshot::Sender<()>>,
    /// The configuration as loaded from the file, without discovered backends.
    base: Arc<Config>,
    /// Each pool's upstream transport as loaded with `base`, to rebuild tables with.
    transports: weir_upstream::Transports,
    discovery: Discovery,
}

/// A validated configuration and the hash of the bytes it was parsed from.
struct Loaded {
    config: Config,
    hash: String,
    /// Certificates and keys, read with the file (a reload re-reads them).
    tls: TlsSet,
}

/// `weir run -c FILE`.
pub(crate) async fn run_file(path: PathBuf) -> anyhow::Result<()> {
    let loaded = load(path.clone()).await?;
    let server = Server::start_loaded(loaded, Some(path)).await?;
    server.run().await
}

/// Reads and validates `path` on the blocking pool: file I/O and hostname resolution
/// must not stall a runtime worker that is proxying requests. The file is read once, so
/// the hash always describes exactly the bytes that were validated.
async fn load(path: PathBuf) -> anyhow::Result<Loaded> {
    tokio::task::spawn_blocking(move || {
        let source = weir_config::read_source(&path)
            .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
        let config = weir_config::parse(&source, &path)
            .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
        let tls = crate::tls::load(&config).map_err(|errors| {
            anyhow::anyhow!("invalid configuration:\n{}", crate::tls::describe(&errors))
        })?;
        Ok(Loaded {
            config,
            hash: config_hash(source.as_bytes()),
            tls,
        })
    })
    .await
    .context("config loader task failed")?
}

/// Unix time in milliseconds (0 if the clock is before 1970).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

// === impl Server ===

impl Server {
    /// Binds every listener and the admin server, starts health checks. Returns once
    /// everything accepts.
    ///
    /// For a configuration built in memory (the demo): its hash is taken over the
    /// validated model, since there are no file bytes.
    pub(crate) async fn start(
        config: Config,
        config_path: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let hash = config_hash(format!("{config:?}").as_bytes());
        let tls = crate::tls::load(&config).map_err(|errors| {
            anyhow::anyhow!("invalid configuration:\n{}", crate::tls::describe(&errors))
        })?;
        Self::start_loaded(Loaded { config, hash, tls }, config_path).await
    }

    async fn start_loaded(loaded: Loaded, config_path: Option<PathBuf>) -> anyhow::Result<Self> {
        let Loaded { config, hash, tls } = loaded;
        let config = Arc::new(config);
        let metrics = Metrics::new().context("registering metrics")?;
        let config_metrics = metrics.config();
        let registry = BackendRegistry::with_metrics(metrics.clone());
        let listeners = Arc::new(Mutex::new(Listeners::default()));
        let plan = lock(&listeners).prepare(&config, tls.listeners)?;
        // The admin socket is the last thing that can fail, so it is bound before any
        // listener accepts: a start-up that fails has served nobody.
        let admin_socket = listeners::bind(config.admin.listen)
            .with_context(|| format!("admin: bind {}", config.admin.listen))?;
        let admin_socket =
            tokio::net::TcpListener::from_std(admin_socket).context("admin socket")?;
        let admin_addr = admin_socket.local_addr().context("admin socket address")?;
        let mut discovery = Discovery::new();
        discovery.reconcile(&config, &registry, true).await;
        let effective = Arc::new(weir_discovery::effective_config(&config, discovery.sets()));
        let first = registry.build_with(effective, 1, &tls.upstream);
        let table: SharedTable = Arc::new(ArcSwap::from_pointee(first));
        // Nothing runs yet, so there is nothing to hand over.
        lock(&listeners).commit(plan, &table, config.shutdown_timeout);

        let view = Arc::clone(&listeners);
        let (rebuild_tx, rebuilds) = tokio::sync::mpsc::channel(16);
        let admin = Arc::new(
            AdminState::new(
                Arc::clone(&table),
                Box::new(move || lock(&view).status()),
                metrics,
            )
            .with_rebuild(rebuild_tx),
        );
        if config.admin.api.is_some() {
            tracing::info!(addr = %admin_addr, "admin runtime API enabled");
        }
        admin.set_config(ConfigStamp {
            hash: hash.clone(),
            loaded_unix_ms: unix_ms(),
        });
        config_metrics.loaded(&hash);
        let admin_task = tokio::spawn(weir_admin::serve(admin_socket, Arc::clone(&admin)));
        tracing::info!(addr = %admin_addr, "admin listening");
        warn_if_exposed(admin_addr);

        let mut health = HealthChecker::new();
        health.reconcile(&table.load());
        let sweeper = weir_proxy::spawn_idle_sweeper(Arc::clone(&table));

        Ok(Server {
            config_path,
            registry,
            table,
            listeners,
            health,
            admin,
            admin_addr,
            admin_task,
            sweeper,
            config_metrics,
            rebuilds,
            base: config,
            transports: tls.upstream,
            discovery,
        })
    }

    /// The admin server's bound address.
    pub(crate) fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The routing table, as the demo reads its backends' health from it.
    pub(crate) fn table(&self) -> SharedTable {
        Arc::clone(&self.table)
    }

    /// The bound address of listener `name`.
    pub(crate) fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        lock(&self.listeners).bound(name)
    }

    /// Handles signals until SIGTERM/SIGINT, then drains and returns.
    pub(crate) async fn run(mut self) -> anyhow::Result<()> {
        let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        tracing::info!(
            generation = self.table.load().generation(),
            admin = %self.admin_addr,
            "weir ready"
        );
        crate::notify::notify("READY=1");
        loop {
            tokio::select! {
                _ = hup.recv() => self.reload().await,
                Some(done) = self.rebuilds.recv() => self.rebuild(done),
                update = self.discovery.next() => self.apply_discovery(update),
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        // A reload now would rebuild listeners that are winding down or draining: say
        // that it was not done rather than drop the signal silently.
        let hup_ignored = tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::warn!("SIGHUP ignored: shutting down");
            }
        });
        self.shutdown(&mut term, &mut int).await;
        hup_ignored.abort();
        Ok(())
    }

    async fn reload(&mut self) {
        let Some(path) = self.config_path.clone() else {
            tracing::warn!("SIGHUP ignored: this configuration was not read from a file");
            return;
        };
        crate::notify::notify("RELOADING=1");
        let result = self.try_reload(path).await;
        crate::notify::notify("READY=1");
        match result {
            Ok((generation, changes, hash)) => {
                self.config_metrics.reload_succeeded(&hash);
                self.admin.set_config(ConfigStamp {
                    hash: hash.clone(),
                    loaded_unix_ms: unix_ms(),
                });
                tracing::info!(generation, changes = %changes, hash, "config reloaded");
                warn_if_exposed(self.admin_addr);
            }
            Err(e) => {
                self.config_metrics.reload_failed();
                tracing::warn!(
                    error = format!("{e:#}"),
                    generation = self.table.load().generation(),
                    "config reload rejected"
                );
            }
        }
    }

    /// Rebuilds the table with the weights now in force (a runtime API change), then
    /// tells every waiting writer: requests queued meanwhile share this one rebuild.
    fn rebuild(&mut self, first: tokio::sync::oneshot::Sender<()>) {
        let mut waiting = vec![first];
        while let Ok(more) = self.rebuilds.try_recv() {
            waiting.push(more);
        }
        let old = self.table.load_full();
        let table = self.registry.rebuild(&old);
        self.table.store(Arc::new(table));
        tracing::debug!(
            generation = old.generation(),
            "table rebuilt with runtime weights"
        );
        for done in waiting {
            if done.send(()).is_err() {
                tracing::debug!("runtime API writer left before the rebuild finished");
            }
        }
    }

    async fn try_reload(&mut self, path: PathBuf) -> anyhow::Result<(u64, Changes, String)> {
        let Loaded { config, hash, tls } = load(path).await?;
        let config = Arc::new(config);
        let old = self.table.load_full();
        if config.admin.listen != old.config().admin.listen {
            tracing::warn!(
                old = %old.config().admin.listen,
                new = %config.admin.listen,
                "admin.listen changed: the admin server keeps its address until a restart"
            );
        }
        // Phase one, the last step that can fail: every socket the new listeners need.
        // Nothing that serves has changed yet, so an error rejects the reload whole.
        let mut plan = lock(&self.listeners).prepare(&config, tls.listeners)?;
        // Phase two cannot fail. Building the table is here, not before, because it
        // updates the settings of kept backends in place (weights, and the transport
        // their new idle connections are pooled under).
        let generation = old.generation() + 1;
        // Kept pools keep their discovered backends: no flap to empty until the next
        // lookup. A pool whose block was removed loses them here.
        let effective = Arc::new(weir_discovery::effective_config(
            &config,
            self.discovery.sets(),
        ));
        let mut table = self
            .registry
            .build_with(Arc::clone(&effective), generation, &tls.upstream);
        plan.alias_renamed(&mut table);
        let changes = Changes::between(old.config(), &effective);
        // No task may accept for a listener the new table lacks: the ones that stop,
        // stop first (their clients wait in the kernel's queue until the new tasks run).
        let stopping = lock(&self.listeners).hand_over(&mut plan);
        listeners::accept_stopped(&stopping).await;
        self.table.store(Arc::new(table));
        lock(&self.listeners).commit(plan, &self.table, config.shutdown_timeout);
        let current = self.table.load();
        self.registry.retain(&current);
        self.health.reconcile(&current);
        drop(current);
        self.discovery
            .reconcile(&config, &self.registry, false)
            .await;
        self.base = config;
        self.transports = tls.upstream;
        Ok((generation, changes, hash))
    }

    /// A pool's discovered set changed: the same table step as a reload (same
    /// `Arc<Backend>` for the addresses that stay, health checks for the new ones, the
    /// ones that left drain their in-flight requests), without re-reading anything.
    fn apply_discovery(&mut self, update: weir_discovery::Update) {
        let pool = update.pool.clone();
        let change = self.discovery.accept(update);
        if change.is_empty() {
            return;
        }
        let started = tokio::time::Instant::now();
        let effective = Arc::new(weir_discovery::effective_config(
            &self.base,
            self.discovery.sets(),
        ));
        let generation = self.table.load().generation() + 1;
        let mut table = self
            .registry
            .build_with(effective, generation, &self.transports);
        // A discovery update is not a reload: the listener aliases the last reload set
        // (a renamed listener's old name) stay, as `BackendRegistry::rebuild` keeps them.
        table.copy_aliases(&self.table.load());
        self.table.store(Arc::new(table));
        let current = self.table.load();
        self.registry.retain(&current);
        self.health.reconcile(&current);
        let backends = current.pool(&pool).map_or(0, |p| p.backends().count());
        tracing::info!(
            pool = %pool,
            added = %weir_discovery::SetChange::list(&change.added),
            removed = %weir_discovery::SetChange::list(&change.removed),
            reweighted = %weir_discovery::SetChange::list(&change.changed),
            endpoint_state = %change.restated.join(", "),
            backends,
            generation,
            apply_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "discovery updated"
        );
    }

    async fn shutdown(
        mut self,
        term: &mut tokio::signal::unix::Signal,
        int: &mut tokio::signal::unix::Signal,
    ) {
        let (grace, timeout) = {
            let table = self.table.load();
            (
                table.config().shutdown_grace,
                table.config().shutdown_timeout,
            )
        };
        self.admin.set_draining();
        crate::notify::notify("STOPPING=1");
        tracing::info!(
            grace_ms = millis(grace),
            timeout_ms = millis(timeout),
            "shutting down"
        );
        let handles = lock(&self.listeners).handles();
        // On a second signal every connection still open is cut when the process exits.
        let abandoned = || -> usize {
            tracing::warn!("second signal: stopping now");
            handles.iter().map(|h| h.active_connections()).sum()
        };
        let forced = if self.grace(grace, &handles, term, int).await {
            // One deadline for every listener, fixed now: draining them one after the
            // other, each with its own timeout, would take one timeout per busy listener.
            let deadline = tokio::time::Instant::now() + timeout;
            let mut set = std::mem::take(&mut *lock(&self.listeners));
            tokio::select! {
                forced = set.drain_all(deadline) => forced,
                _ = term.recv() => abandoned(),
                _ = int.recv() => abandoned(),
            }
        } else {
            abandoned()
        };
        self.health.shutdown();
        self.discovery.shutdown();
        self.sweeper.abort();
        self.admin_task.abort();
        tracing::info!(forced, "shutdown complete");
    }

    /// The shutdown grace: `/healthz` already answers 503, and for `grace` every
    /// listener goes on accepting and serving while its HTTP connections close after
    /// their next response. Whatever routes clients here (keepalived moving the VIP, an
    /// outer balancer's health check) has that long to send them elsewhere; a client
    /// that still arrives meanwhile is served, not refused. Health checks go on, so the
    /// backends picked stay the live ones. `false` when a second signal cut it short:
    /// then weir stops at once, as during the drain.
    async fn grace(
        &self,
        grace: std::time::Duration,
        handles: &[Arc<weir_proxy::ListenerHandle>],
        term: &mut tokio::signal::unix::Signal,
        int: &mut tokio::signal::unix::Signal,
    ) -> bool {
        if grace.is_zero() {
            return true;
        }
        for handle in handles {
            handle.wind_down();
        }
        let over = tokio::select! {
            () = tokio::time::sleep(grace) => true,
            _ = term.recv() => false,
            _ = int.recv() => false,
        };
        if over {
            tracing::info!("shutdown grace over: stop accepting");
        }
        over
    }
}

/// Milliseconds of `d` for a log field (saturating).
fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `/status` shows the topology (and a runtime API would give control): say so when
/// the admin server is reachable from beyond this host.
fn warn_if_exposed(addr: SocketAddr) {
    if !addr.ip().to_canonical().is_loopback() {
        tracing::warn!(
            addr = %addr,
            hint = "anyone who can reach it reads the topology from /status; \
                    bind admin.listen to loopback or firewall it",
            "admin listening on a non-loopback address"
        );
    }
}

/// The listener set is touched by reloads and `/status` only; a poisoned lock still
/// holds a usable set.
fn lock(m: &Mutex<Listeners>) -> std::sync::MutexGuard<'_, Listeners> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
