//! Wiring: config -> table -> listeners, admin, health checks; signals and reloads.
//!
//! ```text
//! SIGHUP  -> read + validate the file off the data path (blocking pool)
//!         -> build the new table (same Arc<Backend> for kept backends)
//!         -> bind new listener sockets (failure rejects the reload)
//!         -> swap the table -> start/drain listener tasks -> reconcile health tasks
//! SIGTERM -> /healthz 503 -> stop accepting -> wait for in-flight work -> exit 0
//! ```
//! The data plane never waits on any of this: it only `load()`s the table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::signal::unix::{signal, SignalKind};
use weir_admin::AdminState;
use weir_balance::{BackendRegistry, Changes, SharedTable};
use weir_config::Config;
use weir_health::HealthChecker;

use crate::listeners::{self, Listeners};

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
}

/// `weir run -c FILE`.
pub(crate) async fn run_file(path: PathBuf) -> anyhow::Result<()> {
    let config = load(path.clone()).await?;
    let server = Server::start(config, Some(path)).await?;
    server.run().await
}

/// Reads and validates `path` on the blocking pool: file I/O and hostname resolution
/// must not stall a runtime worker that is proxying requests.
async fn load(path: PathBuf) -> anyhow::Result<Config> {
    tokio::task::spawn_blocking(move || weir_config::load(&path))
        .await
        .context("config loader task failed")?
        .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))
}

// === impl Server ===

impl Server {
    /// Binds every listener and the admin server, starts health checks. Returns once
    /// everything accepts.
    pub(crate) async fn start(
        config: Config,
        config_path: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let registry = BackendRegistry::new();
        let table: SharedTable = Arc::new(ArcSwap::from_pointee(
            registry.build(Arc::clone(&config), 1),
        ));

        let listeners = Arc::new(Mutex::new(Listeners::default()));
        {
            let mut set = lock(&listeners);
            let plan = set.prepare(&config)?;
            set.commit(plan, &table, config.shutdown_timeout)?;
        }

        let admin_socket = listeners::bind(config.admin.listen)
            .with_context(|| format!("admin: bind {}", config.admin.listen))?;
        let admin_socket =
            tokio::net::TcpListener::from_std(admin_socket).context("admin socket")?;
        let admin_addr = admin_socket.local_addr().context("admin socket address")?;
        let view = Arc::clone(&listeners);
        let admin = Arc::new(AdminState::new(
            Arc::clone(&table),
            Box::new(move || lock(&view).status()),
        ));
        let admin_task = tokio::spawn(weir_admin::serve(admin_socket, Arc::clone(&admin)));
        tracing::info!(addr = %admin_addr, "admin listening");

        let mut health = HealthChecker::new();
        health.reconcile(&table.load());

        Ok(Server {
            config_path,
            registry,
            table,
            listeners,
            health,
            admin,
            admin_addr,
            admin_task,
        })
    }

    /// The admin server's bound address.
    pub(crate) fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
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
        loop {
            tokio::select! {
                _ = hup.recv() => self.reload().await,
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        self.shutdown(&mut term, &mut int).await;
        Ok(())
    }

    async fn reload(&mut self) {
        let Some(path) = self.config_path.clone() else {
            tracing::warn!("SIGHUP ignored: this configuration was not read from a file");
            return;
        };
        match self.try_reload(path).await {
            Ok((generation, changes)) => {
                tracing::info!(generation, changes = %changes, "config reloaded");
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    generation = self.table.load().generation(),
                    "config reload rejected"
                );
            }
        }
    }

    async fn try_reload(&mut self, path: PathBuf) -> anyhow::Result<(u64, Changes)> {
        let config = Arc::new(load(path).await?);
        let old = self.table.load_full();
        if config.admin.listen != old.config().admin.listen {
            tracing::warn!(
                old = %old.config().admin.listen,
                new = %config.admin.listen,
                "admin.listen changed: the admin server keeps its address until a restart"
            );
        }
        let generation = old.generation() + 1;
        let table = self.registry.build(Arc::clone(&config), generation);
        let plan = lock(&self.listeners).prepare(&config)?;
        let changes = Changes::between(old.config(), &config);
        self.table.store(Arc::new(table));
        lock(&self.listeners).commit(plan, &self.table, config.shutdown_timeout)?;
        let current = self.table.load();
        self.registry.retain(&current);
        self.health.reconcile(&current);
        Ok((generation, changes))
    }

    async fn shutdown(
        mut self,
        term: &mut tokio::signal::unix::Signal,
        int: &mut tokio::signal::unix::Signal,
    ) {
        let timeout = self.table.load().config().shutdown_timeout;
        self.admin.set_draining();
        tracing::info!(
            timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            "shutting down"
        );
        let mut set = std::mem::take(&mut *lock(&self.listeners));
        let forced = tokio::select! {
            forced = set.drain_all(timeout) => forced,
            _ = term.recv() => { tracing::warn!("second signal: stopping now"); 0 }
            _ = int.recv() => { tracing::warn!("second signal: stopping now"); 0 }
        };
        self.health.shutdown();
        self.admin_task.abort();
        tracing::info!(forced, "shutdown complete");
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
