//! The discovery tasks of the running configuration, and the sets they found.
//!
//! ```text
//! start   -> one Task per pool with `discovery`; first lookups before the first table
//! update  -> Update{pool, epoch, set} over a channel -> Server applies it: one table swap
//! SIGHUP  -> the new table keeps every kept pool's set (no flap to empty), then
//!            reconcile: same block -> task kept; changed -> restarted (the old set
//!            serves until the new task's first answer); removed -> stopped, set dropped
//! SIGTERM -> tasks stopped
//! ```
//! Every task gets a fresh epoch; an update whose epoch is not its pool's current one
//! came from a stopped task and is dropped.

use std::collections::HashMap;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use weir_balance::BackendRegistry;
use weir_config::{Config, DiscoveryConfig};
use weir_discovery::{Discovered, SetChange, Task, Update};
use weir_telemetry::DiscoveryMetrics;

/// How long start-up waits for all the first lookups (DNS) and lists (Kubernetes)
/// together: a stalled server delays serving by this much at most, not by its
/// timeouts times the pools.
const PRIME_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

struct Running {
    config: DiscoveryConfig,
    epoch: u64,
    handle: JoinHandle<()>,
}

/// The discovery side of the server.
pub(crate) struct Discovery {
    tasks: HashMap<String, Running>,
    /// Each pool's discovered set in the live table.
    sets: HashMap<String, Vec<Discovered>>,
    tx: UnboundedSender<Update>,
    rx: UnboundedReceiver<Update>,
    next_epoch: u64,
}

// === impl Discovery ===

impl Discovery {
    pub(crate) fn new() -> Self {
        let (tx, rx) = unbounded_channel();
        Discovery {
            tasks: HashMap::new(),
            sets: HashMap::new(),
            tx,
            rx,
            next_epoch: 1,
        }
    }

    /// The discovered sets, to merge into the configuration a table is built from.
    pub(crate) fn sets(&self) -> &HashMap<String, Vec<Discovered>> {
        &self.sets
    }

    /// Starts, restarts and stops tasks so that exactly the pools of `config` with
    /// `discovery` have one, with their current block. With `prime`, new tasks look up
    /// once before this returns (start-up: the first table then has their backends;
    /// all together bounded by [`PRIME_DEADLINE`], after which the pools not answered
    /// start with what they have: their static backends, or 503). Sets of pools without discovery are dropped.
    pub(crate) async fn reconcile(
        &mut self,
        config: &Config,
        registry: &BackendRegistry,
        prime: bool,
    ) {
        let wanted: HashMap<&str, &DiscoveryConfig> = config
            .pools
            .iter()
            .filter_map(|p| p.discovery.as_ref().map(|d| (p.name.as_str(), d)))
            .collect();
        self.tasks.retain(|pool, running| {
            let keep = wanted.get(pool.as_str()) == Some(&&running.config);
            if !keep {
                running.handle.abort();
            }
            keep
        });
        self.sets
            .retain(|pool, _| wanted.contains_key(pool.as_str()));
        let mut fresh = Vec::new();
        for (pool, dns) in wanted {
            if self.tasks.contains_key(pool) {
                continue;
            }
            let epoch = self.next_epoch;
            self.next_epoch += 1;
            let metrics = registry.metrics().map(|m| DiscoveryMetrics::new(m, pool));
            let status = registry.discovery_status(pool);
            match Task::new(
                pool,
                epoch,
                dns,
                status,
                metrics,
                self.sets.get(pool).cloned(),
            ) {
                Ok(task) => fresh.push((pool.to_owned(), dns.clone(), epoch, task)),
                Err(e) => tracing::error!(pool, error = %e, "discovery cannot start"),
            }
        }
        let mut first = tokio::task::JoinSet::new();
        let mut priming = HashMap::new();
        for (pool, config, epoch, mut task) in fresh {
            if prime {
                priming.insert(pool.clone(), (config.clone(), epoch));
                first.spawn(async move {
                    let step = task.step().await;
                    (pool, config, epoch, task, step.changed, step.next)
                });
            } else {
                self.spawn(pool, config, epoch, task, std::time::Duration::ZERO);
            }
        }
        let deadline = tokio::time::Instant::now() + PRIME_DEADLINE;
        loop {
            let done = match tokio::time::timeout_at(deadline, first.join_next()).await {
                Ok(Some(done)) => done,
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        pools = priming.len(),
                        "discovery: first lookups not done in time; starting without them"
                    );
                    first.abort_all();
                    break;
                }
            };
            let Ok((pool, config, epoch, task, changed, next)) = done else {
                tracing::error!("a first discovery lookup panicked");
                continue;
            };
            priming.remove(&pool);
            if let Some(set) = changed {
                tracing::info!(pool = %pool, backends = set.len(), "discovery: first answer");
                self.sets.insert(pool.clone(), set);
            }
            self.spawn(pool, config, epoch, task, next);
        }
        // A pool whose first lookup timed out or panicked still gets its task (a new
        // one: the old one went with its lookup), looking up again at once.
        for (pool, (config, epoch)) in priming {
            let metrics = registry.metrics().map(|m| DiscoveryMetrics::new(m, &pool));
            let status = registry.discovery_status(&pool);
            match Task::new(
                &pool,
                epoch,
                &config,
                status,
                metrics,
                self.sets.get(&pool).cloned(),
            ) {
                Ok(task) => self.spawn(pool, config, epoch, task, std::time::Duration::ZERO),
                Err(e) => tracing::error!(pool, error = %e, "discovery cannot start"),
            }
        }
    }

    fn spawn(
        &mut self,
        pool: String,
        config: DiscoveryConfig,
        epoch: u64,
        task: Task,
        first_wait: std::time::Duration,
    ) {
        let handle = tokio::spawn(task.run(first_wait, self.tx.clone()));
        self.tasks.insert(
            pool,
            Running {
                config,
                epoch,
                handle,
            },
        );
    }

    /// The next update of a running task (stale ones are skipped). Never ends while the
    /// server holds a sender.
    pub(crate) async fn next(&mut self) -> Update {
        loop {
            let Some(update) = self.rx.recv().await else {
                // `self.tx` lives as long as `self`: unreachable, but wait rather than spin.
                std::future::pending::<()>().await;
                continue;
            };
            if self
                .tasks
                .get(&update.pool)
                .is_some_and(|r| r.epoch == update.epoch)
            {
                return update;
            }
            tracing::debug!(pool = %update.pool, "dropping an update of a stopped discovery task");
        }
    }

    /// Records `update` as the pool's set; returns what changed.
    pub(crate) fn accept(&mut self, update: Update) -> SetChange {
        let old = self.sets.get(&update.pool).map_or(&[][..], Vec::as_slice);
        let change = SetChange::between(old, &update.backends);
        self.sets.insert(update.pool, update.backends);
        change
    }

    /// Stops every task.
    pub(crate) fn shutdown(&mut self) {
        for (_, running) in self.tasks.drain() {
            running.handle.abort();
        }
    }
}
