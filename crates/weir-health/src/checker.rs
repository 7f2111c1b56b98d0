//! Task supervision: one probe task per backend, reconciled with each new table.
//!
//! Tasks are keyed by backend identity (the `Arc<Backend>`'s pointer) and remember the
//! check config they run with. The registry hands a kept backend the same `Arc` across
//! reloads, so a reload that keeps a backend and its pool's check leaves its task alone:
//! no extra probe, no reset of the schedule, and the rise/fall counters stay where they
//! are because they live in the `Backend`, not in the task. Each entry holds a `Weak` to
//! its backend, which keeps the allocation (and so the pointer used as key) from being
//! reused by another backend while the entry exists.
//!
//! **Maintenance.** A backend an operator put in `maint` (runtime API) is not probed
//! while it stays there; `drain` keeps probing, so a drained backend's health is known
//! when it is made ready again.
//!
//! **Transport.** A task connects with its pool's transport (TLS, HTTP version) from the
//! newest table it was reconciled with: a reload that changes a pool's `tls` applies to
//! the next probe of each kept task, without restarting it.
//!
//! **Schedule.** A task probes at once, then waits a random delay in
//! `[interval/2, interval]` before the second probe and `[0.9 × interval, interval]`
//! between later ones, measured from the start of the previous probe. Backends added
//! together (at start-up or by one reload) are thus spread over the interval instead of
//! being probed in lock-step, while no wait is ever longer than `interval`, so a dead
//! backend is still pulled within `fall × interval + timeout`. The randomness is a small
//! xorshift seeded from std's per-process random hasher keys: no `rand` dependency.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use weir_balance::{AdminMode, Backend, Table, Transition};
use weir_config::HealthCheckConfig;
use weir_upstream::Transport;

use crate::probe::{probe, ProbeError};

/// What a pool whose health check was removed writes as its backends' transition reason.
pub const REASON_CHECK_REMOVED: &str = "health check removed";

/// What a successful probe writes as the transition reason.
pub const REASON_PASSED: &str = "check passed";

/// The smallest wait between probes, so a zero interval cannot spin a core.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Owns one probe task per backend of every pool that has a `health_check`.
///
/// Dropping the checker stops every task, like [`HealthChecker::shutdown`].
#[derive(Debug, Default)]
pub struct HealthChecker {
    tasks: HashMap<usize, CheckTask>,
}

/// A running probe task.
#[derive(Debug)]
struct CheckTask {
    /// Pins the allocation whose address is this task's key.
    backend: Weak<Backend>,
    check: HealthCheckConfig,
    /// The pool's transport in the newest table; the task reads it at each probe.
    transport: Arc<ArcSwap<Transport>>,
    handle: JoinHandle<()>,
}

/// The identity of a backend: its `Arc`'s address.
fn key(backend: &Arc<Backend>) -> usize {
    Arc::as_ptr(backend) as usize
}

// === impl HealthChecker ===

impl HealthChecker {
    /// No tasks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the running tasks match `table`: tasks of backends no longer present stop,
    /// new backends get a task that probes at once, a kept backend whose check settings
    /// did not change keeps its task (and state), and one whose settings changed gets a
    /// new task (its state stays in the `Backend`). Backends of a pool whose health
    /// check was removed are forced up, so none stays down with nothing to bring it back.
    ///
    /// Must run inside a tokio runtime; outside one it logs an error and changes nothing.
    pub fn reconcile(&mut self, table: &Table) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("health checker reconciled outside a tokio runtime; no probes run");
            return;
        };
        let mut present = HashSet::with_capacity(self.tasks.len());
        let (mut started, mut restarted, mut kept) = (0usize, 0usize, 0usize);
        for pool in table.pools() {
            for backend in pool.backends() {
                let key = key(backend);
                present.insert(key);
                match (pool.health_check(), self.tasks.get(&key)) {
                    (Some(check), Some(task)) if task.check == *check => {
                        debug_assert!(
                            std::ptr::eq(task.backend.as_ptr(), Arc::as_ptr(backend)),
                            "the Weak pins the allocation, so an equal key is the same backend"
                        );
                        task.transport.store(Arc::clone(pool.transport()));
                        kept += 1;
                    }
                    (Some(check), existing) => {
                        if existing.is_some() {
                            restarted += 1;
                        } else {
                            started += 1;
                        }
                        let transport = Arc::new(ArcSwap::new(Arc::clone(pool.transport())));
                        let task = CheckTask {
                            backend: Arc::downgrade(backend),
                            check: check.clone(),
                            handle: runtime.spawn(run(
                                Arc::clone(backend),
                                check.clone(),
                                Arc::clone(&transport),
                            )),
                            transport,
                        };
                        if let Some(old) = self.tasks.insert(key, task) {
                            old.handle.abort();
                        }
                    }
                    (None, Some(_)) => {
                        if let Some(task) = self.tasks.remove(&key) {
                            task.handle.abort();
                        }
                        if backend.force(true, REASON_CHECK_REMOVED) == Some(Transition::Up) {
                            tracing::info!(
                                pool = %backend.pool(),
                                backend = %backend.address(),
                                reason = REASON_CHECK_REMOVED,
                                "backend up"
                            );
                        }
                    }
                    (None, None) => {}
                }
            }
        }
        let before = self.tasks.len();
        self.tasks.retain(|key, task| {
            let keep = present.contains(key);
            if !keep {
                task.handle.abort();
            }
            keep
        });
        let stopped = before - self.tasks.len();
        tracing::debug!(
            started,
            restarted,
            kept,
            stopped,
            "health check tasks reconciled"
        );
    }

    /// Stops every task. Backends keep their last state.
    pub fn shutdown(&mut self) {
        for (_, task) in self.tasks.drain() {
            task.handle.abort();
        }
    }

    /// Number of probe tasks running (one per checked backend).
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Whether `backend` has a probe task.
    pub fn is_checking(&self, backend: &Arc<Backend>) -> bool {
        self.tasks.contains_key(&key(backend))
    }

    /// The tokio id of `backend`'s probe task: the same id after a reconcile means the
    /// task was kept, not restarted.
    pub fn task_id(&self, backend: &Arc<Backend>) -> Option<tokio::task::Id> {
        self.tasks.get(&key(backend)).map(|t| t.handle.id())
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

// === probe loop ===

/// The task of one backend: probe, record, wait, forever (until aborted).
async fn run(backend: Arc<Backend>, check: HealthCheckConfig, transport: Arc<ArcSwap<Transport>>) {
    // Shared with each probe future, so a probe clones one `Arc` and not the config.
    let target = Arc::new((Arc::clone(&backend), check.clone(), transport));
    run_with(backend, check, move || {
        let target = Arc::clone(&target);
        async move {
            let transport = target.2.load_full();
            probe(&target.0, &target.1, &transport).await
        }
    })
    .await;
}

/// The probe loop with the probe injected, so the schedule and hysteresis can be tested
/// under paused time without sockets.
async fn run_with<P, F>(backend: Arc<Backend>, check: HealthCheckConfig, mut probe: P)
where
    P: FnMut() -> F,
    F: Future<Output = Result<(), ProbeError>>,
{
    let mut jitter = Jitter::for_backend(&backend);
    let interval = check.interval.max(MIN_INTERVAL);
    let mut first = true;
    loop {
        let started = Instant::now();
        // A backend in maintenance is not probed (HAProxy's MAINT): the operator may be
        // rebooting it. The schedule goes on, and leaving maint wakes the loop at once.
        if backend.admin_mode() != AdminMode::Maint {
            let result = probe().await;
            record(&backend, &check, result);
        }
        let wait = if first {
            jitter.between(interval / 2, interval)
        } else {
            jitter.between(interval - interval / 10, interval)
        };
        first = false;
        // Leaving maint cuts the wait short: the backend was not probed meanwhile.
        tokio::select! {
            () = tokio::time::sleep_until(started + wait) => {}
            () = backend.left_maint() => {}
        }
    }
}

/// Counts the probe (`weir_health_checks_total`), feeds its result through the
/// backend's hysteresis and logs a transition (the backend updates its own state metrics).
fn record(backend: &Backend, check: &HealthCheckConfig, result: Result<(), ProbeError>) {
    let failure = result.err().map(|e| e.to_string());
    if let Some(reason) = &failure {
        tracing::debug!(
            pool = %backend.pool(),
            backend = %backend.address(),
            reason = %reason,
            "health check failed"
        );
    }
    let reason = failure.as_deref().unwrap_or(REASON_PASSED);
    if let Some(m) = backend.metrics() {
        m.health_check(failure.is_none());
    }
    match backend.observe(failure.is_none(), check.rise, check.fall, reason) {
        Some(Transition::Down) => tracing::warn!(
            pool = %backend.pool(),
            backend = %backend.address(),
            reason = %reason,
            "backend down"
        ),
        Some(Transition::Up) => tracing::info!(
            pool = %backend.pool(),
            backend = %backend.address(),
            "backend up"
        ),
        None => {}
    }
}

/// xorshift64*: plenty for spreading probe times, and no dependency.
#[derive(Debug)]
struct Jitter(u64);

impl Jitter {
    /// Seeded from the process's random hasher keys and the backend's name, so backends
    /// (and weir processes) get different sequences.
    fn for_backend(backend: &Backend) -> Self {
        let seed = RandomState::new().hash_one((backend.pool(), backend.address()));
        Jitter(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A duration in `[low, high]`, to the nanosecond.
    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = u64::try_from(high.saturating_sub(low).as_nanos()).unwrap_or(u64::MAX);
        if span == 0 {
            return low;
        }
        low + Duration::from_nanos(self.next() % span.saturating_add(1))
    }
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
