//! One task per pool with `discovery`: look up, record, report a changed set, wait.
//!
//! ```text
//! lookup ──success──> status, metrics ──set changed?──> Update to the server (one table swap)
//!        ──empty/failure──> status (last_error), metrics; the last good set keeps serving
//! wait min(refresh, max(TTL, 1 s)), or refresh after a failure
//! ```
//! The task never touches the table: the server owns reloads and swaps, and a
//! discovery update is applied exactly like one ([`Update`]). Each task carries the
//! `epoch` it was started with, so an update a stopped task sent just before it was
//! stopped is recognised and dropped.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::UnboundedSender;
use weir_balance::DiscoveryStatus;
use weir_config::DnsDiscoveryConfig;
use weir_telemetry::{DiscoveryMetrics, LookupResult};

use crate::answer::Discovered;
use crate::dns::DnsSource;

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

/// The discovery of one pool.
#[derive(Debug)]
pub struct Task {
    pool: String,
    epoch: u64,
    source: DnsSource,
    status: Arc<DiscoveryStatus>,
    metrics: Option<DiscoveryMetrics>,
    /// The set last reported (the last good answer), `None` before one.
    last: Option<Vec<Discovered>>,
    /// Lookups failed in a row: the first of a run is a warning, the rest debug lines.
    failures_in_a_row: u32,
}

/// The outcome of one [`Task::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The new set when it changed.
    pub changed: Option<Vec<Discovered>>,
    /// When to look up next.
    pub next: Duration,
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

// === impl Task ===

impl Task {
    /// A task for `pool`, reporting into `status` and `metrics`. `current` is the set
    /// the pool serves now (kept from an earlier task), so an unchanged first answer
    /// is no update.
    ///
    /// # Errors
    ///
    /// When the resolver cannot be built (see [`DnsSource::new`]).
    pub fn new(
        pool: &str,
        epoch: u64,
        config: DnsDiscoveryConfig,
        status: Arc<DiscoveryStatus>,
        metrics: Option<DiscoveryMetrics>,
        current: Option<Vec<Discovered>>,
    ) -> Result<Self, String> {
        let source_text = config.source();
        let source = DnsSource::new(config)?;
        status.update(|s| s.source = source_text);
        Ok(Task {
            pool: pool.to_owned(),
            epoch,
            source,
            status,
            metrics,
            last: current,
            failures_in_a_row: 0,
        })
    }

    /// One lookup, recorded in the status and metrics.
    pub async fn step(&mut self) -> Step {
        let refresh = self.source.config().refresh;
        let result = self.source.lookup().await;
        let now = unix_ms();
        match result {
            Ok(answer) => {
                self.failures_in_a_row = 0;
                let n = answer.backends.len();
                if let Some(m) = &self.metrics {
                    m.lookup(LookupResult::Success);
                    m.set_backends(n);
                }
                let changed = self.last.as_ref() != Some(&answer.backends);
                self.status.update(|s| {
                    s.last_lookup_unix_ms = now;
                    s.last_success_unix_ms = now;
                    s.last_error = None;
                    s.backends = n;
                    if changed {
                        s.last_change_unix_ms = now;
                    }
                });
                let next = next_lookup(answer.ttl, refresh);
                tracing::debug!(pool = %self.pool, backends = n, next_ms = next.as_millis(), "discovery lookup");
                if changed {
                    self.last = Some(answer.backends.clone());
                    return Step {
                        changed: Some(answer.backends),
                        next,
                    };
                }
                Step {
                    changed: None,
                    next,
                }
            }
            Err(e) => {
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
                Step {
                    changed: None,
                    next: refresh,
                }
            }
        }
    }

    /// Looks up after `first_wait`, then for ever, sending each changed set to `tx`.
    /// Ends when the receiver is gone (the server stopped).
    pub async fn run(mut self, first_wait: Duration, tx: UnboundedSender<Update>) {
        tokio::time::sleep(first_wait).await;
        loop {
            let step = self.step().await;
            if let Some(backends) = step.changed {
                let update = Update {
                    pool: self.pool.clone(),
                    epoch: self.epoch,
                    backends,
                };
                if tx.send(update).is_err() {
                    return;
                }
            }
            tokio::time::sleep(step.next).await;
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
