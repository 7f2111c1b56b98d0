//! One task per pool with `discovery`: look up, record, report a changed set, wait.
//!
//! ```text
//! step ──success──> status, metrics ──set changed?──> Update to the server (one table swap)
//!      ──empty/failure──> status (last_error), metrics; the last good set keeps serving
//! dns:        wait min(refresh, max(TTL, 1 s)), or refresh after a failure
//! kubernetes: no wait; the next step waits for the watch's next event (the watcher
//!             backs off after an error itself)
//! ```
//! Both sources report through one [`Report`], so `/status`, the metrics and the
//! "keep the last good set" rule are the same whatever the source. The task never
//! touches the table: the server owns reloads and swaps, and a discovery update is
//! applied exactly like one ([`Update`]). Each task carries the `epoch` it was started
//! with, so an update a stopped task sent just before it was stopped is recognised and
//! dropped.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::UnboundedSender;
use weir_balance::DiscoveryStatus;
use weir_config::{DiscoveryConfig, DnsDiscoveryConfig};
use weir_telemetry::{DiscoveryMetrics, LookupResult};

use crate::answer::Discovered;
use crate::dns::{DnsSource, LookupError};

/// A pool's new discovered set, for the server to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The pool.
    pub pool: String,
    /// The task's epoch (see the module docs).
    pub epoch: u64,
    /// The whole discovered set, sorted by address; never empty.
    pub backends: Vec<Discovered>,
}

/// Unix time in milliseconds (0 before 1970).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The wait before the next lookup after an answer with `ttl`: the TTL when it is
/// shorter than `refresh`, never below [`DnsDiscoveryConfig::MIN_REFRESH`].
pub fn next_lookup(ttl: Option<u32>, refresh: Duration) -> Duration {
    let ttl = ttl.map_or(refresh, |t| Duration::from_secs(u64::from(t)));
    ttl.clamp(
        DnsDiscoveryConfig::MIN_REFRESH,
        refresh.max(DnsDiscoveryConfig::MIN_REFRESH),
    )
}

/// What one source's outcomes do to the pool's status and metrics, and the set last
/// reported (the last good answer).
#[derive(Debug)]
pub struct Report {
    pool: String,
    status: Arc<DiscoveryStatus>,
    metrics: Option<DiscoveryMetrics>,
    /// The set last reported, `None` before one.
    last: Option<Vec<Discovered>>,
    /// Failures in a row: the first of a run is a warning, the rest debug lines.
    failures_in_a_row: u32,
}

// === impl Report ===

impl Report {
    /// Reports of `pool` into `status` and `metrics`; `current` is the set the pool
    /// serves now (kept from an earlier task), so an unchanged first answer is no update.
    pub fn new(
        pool: &str,
        source: String,
        status: Arc<DiscoveryStatus>,
        metrics: Option<DiscoveryMetrics>,
        current: Option<Vec<Discovered>>,
    ) -> Self {
        status.update(|s| s.source = source);
        Report {
            pool: pool.to_owned(),
            status,
            metrics,
            last: current,
            failures_in_a_row: 0,
        }
    }

    /// The pool.
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// A good answer (never empty): recorded; returns it if it differs from the last.
    pub fn success(&mut self, backends: Vec<Discovered>) -> Option<Vec<Discovered>> {
        debug_assert!(!backends.is_empty(), "an empty answer is a LookupError");
        let now = unix_ms();
        self.failures_in_a_row = 0;
        let n = backends.len();
        if let Some(m) = &self.metrics {
            m.lookup(LookupResult::Success);
            m.set_backends(n);
        }
        let changed = self.last.as_ref() != Some(&backends);
        self.status.update(|s| {
            s.last_lookup_unix_ms = now;
            s.last_success_unix_ms = now;
            s.last_error = None;
            s.backends = n;
            if changed {
                s.last_change_unix_ms = now;
            }
        });
        if !changed {
            return None;
        }
        self.last = Some(backends.clone());
        Some(backends)
    }

    /// An answer without backends, or none: recorded; the last good set keeps serving.
    pub fn failure(&mut self, e: &LookupError) {
        let now = unix_ms();
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        if let Some(m) = &self.metrics {
            m.lookup(e.result);
        }
        self.status.update(|s| {
            s.last_lookup_unix_ms = now;
            s.last_error = Some(e.message.clone());
        });
        let kept = self.last.as_ref().map_or(0, Vec::len);
        if self.failures_in_a_row == 1 {
            tracing::warn!(
                pool = %self.pool,
                result = e.result.as_str(),
                error = %e.message,
                kept_backends = kept,
                "discovery lookup gave no backends; keeping the last good answer"
            );
        } else {
            tracing::debug!(pool = %self.pool, result = e.result.as_str(), error = %e.message, failures = self.failures_in_a_row, "discovery lookup failed again");
        }
    }
}

/// The discovery of one pool, whatever its source.
#[derive(Debug)]
pub struct Task {
    epoch: u64,
    source: Source,
    report: Report,
}

#[derive(Debug)]
enum Source {
    /// Boxed: the resolver is large beside the watch (one task per pool, built once).
    Dns(Box<DnsSource>),
    #[cfg(feature = "kubernetes")]
    Kubernetes(crate::kubernetes::KubernetesSource),
}

/// The outcome of one [`Task::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The new set when it changed.
    pub changed: Option<Vec<Discovered>>,
    /// When to step next.
    pub next: Duration,
}

// === impl Task ===

impl Task {
    /// A task for `pool`, reporting into `status` and `metrics`. `current` is the set
    /// the pool serves now (kept from an earlier task), so an unchanged first answer
    /// is no update.
    ///
    /// # Errors
    ///
    /// When the DNS resolver cannot be built (see [`DnsSource::new`]), or for a
    /// `kubernetes` block in a build without the `kubernetes` feature (which `weir
    /// check` refuses first).
    pub fn new(
        pool: &str,
        epoch: u64,
        config: &DiscoveryConfig,
        status: Arc<DiscoveryStatus>,
        metrics: Option<DiscoveryMetrics>,
        current: Option<Vec<Discovered>>,
    ) -> Result<Self, String> {
        let source =
            match config {
                DiscoveryConfig::Dns(dns) => Source::Dns(Box::new(DnsSource::new(dns.clone())?)),
                #[cfg(feature = "kubernetes")]
                DiscoveryConfig::Kubernetes(k) => {
                    Source::Kubernetes(crate::kubernetes::KubernetesSource::new(k.clone()))
                }
                #[cfg(not(feature = "kubernetes"))]
                DiscoveryConfig::Kubernetes(_) => return Err(
                    "this weir was built without Kubernetes discovery (cargo feature `kubernetes`)"
                        .to_owned(),
                ),
            };
        let report = Report::new(pool, config.source(), status, metrics, current);
        Ok(Task {
            epoch,
            source,
            report,
        })
    }

    /// One lookup (DNS) or watch outcome (Kubernetes), recorded in the status and
    /// metrics.
    pub async fn step(&mut self) -> Step {
        match &mut self.source {
            Source::Dns(dns) => {
                let refresh = dns.config().refresh;
                match dns.lookup().await {
                    Ok(answer) => {
                        let next = next_lookup(answer.ttl, refresh);
                        tracing::debug!(pool = %self.report.pool(), backends = answer.backends.len(), next_ms = next.as_millis(), "discovery lookup");
                        Step {
                            changed: self.report.success(answer.backends),
                            next,
                        }
                    }
                    Err(e) => {
                        self.report.failure(&e);
                        Step {
                            changed: None,
                            next: refresh,
                        }
                    }
                }
            }
            #[cfg(feature = "kubernetes")]
            Source::Kubernetes(k) => match k.next_set().await {
                Ok(set) => Step {
                    changed: self.report.success(set),
                    next: Duration::ZERO,
                },
                Err((e, next)) => {
                    self.report.failure(&e);
                    Step {
                        changed: None,
                        next,
                    }
                }
            },
        }
    }

    /// Steps after `first_wait`, then for ever, sending each changed set to `tx`.
    /// Ends when the receiver is gone (the server stopped).
    pub async fn run(mut self, first_wait: Duration, tx: UnboundedSender<Update>) {
        tokio::time::sleep(first_wait).await;
        loop {
            let step = self.step().await;
            if let Some(backends) = step.changed {
                let update = Update {
                    pool: self.report.pool().to_owned(),
                    epoch: self.epoch,
                    backends,
                };
                if tx.send(update).is_err() {
                    return;
                }
            }
            if !step.next.is_zero() {
                tokio::time::sleep(step.next).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shorter_ttl_wins_within_the_floor_and_refresh() {
        let refresh = Duration::from_secs(30);
        assert_eq!(next_lookup(Some(5), refresh), Duration::from_secs(5));
        assert_eq!(next_lookup(Some(300), refresh), refresh);
        assert_eq!(
            next_lookup(Some(0), refresh),
            Duration::from_secs(1),
            "floor 1 s"
        );
        assert_eq!(next_lookup(None, refresh), refresh);
    }
}
