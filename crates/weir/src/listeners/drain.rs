//! Taking listeners out of service: one a reload removed drains in the background, and
//! shutdown drains them all against one deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use weir_proxy::ListenerHandle;

use super::{Listeners, Running};

/// A listener a reload removed, draining in the background; shutdown waits for it too.
pub(super) struct Retiring {
    handle: Arc<ListenerHandle>,
    task: JoinHandle<()>,
}

impl Retiring {
    pub(super) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

// === impl Listeners ===

impl Listeners {
    /// Stops `r` accepting and drains it in the background, at most `timeout`.
    pub(super) fn retire(&mut self, r: Running, timeout: Duration) {
        tracing::info!(listener = %r.name, addr = %r.handle.local_addr(), "listener removed: draining");
        r.handle.drain();
        // Our duplicate is dropped here: once the accept task drops its own, the address
        // stops accepting (unless a new task took over a duplicate).
        drop(r.socket);
        let handle = Arc::clone(&r.handle);
        let task = tokio::spawn(async move {
            let forced = handle.drained(timeout).await;
            tracing::info!(listener = %handle.name(), forced, "listener drained");
        });
        self.retiring.push(Retiring {
            handle: r.handle,
            task,
        });
    }

    /// Stops accepting everywhere and waits for the connections of every listener, the
    /// running ones and those a reload removed that are still draining, all at once and
    /// until one common `deadline`; then closes the rest. Returns how many were closed
    /// by force.
    pub(crate) async fn drain_all(&mut self, deadline: Instant) -> usize {
        let handles = self.handles();
        for handle in &handles {
            handle.drain();
        }
        // Close our duplicates of the listening sockets now: while any descriptor stays
        // open the kernel keeps completing handshakes into a backlog nobody accepts, and
        // those clients would hang until exit instead of being refused at once.
        self.running.clear();
        self.retiring.clear();
        let mut waits = tokio::task::JoinSet::new();
        for handle in handles {
            // A removed listener's own drain task may close it earlier, at its own
            // deadline; whichever comes first applies.
            waits.spawn(async move {
                handle
                    .drained(deadline.saturating_duration_since(Instant::now()))
                    .await
            });
        }
        let mut forced = 0;
        while let Some(done) = waits.join_next().await {
            match done {
                Ok(n) => forced += n,
                Err(e) => tracing::error!(error = %e, "listener drain task failed"),
            }
        }
        forced
    }

    /// Every listener with connections to wait for at shutdown: the running ones and
    /// those a reload removed that are still draining.
    pub(crate) fn handles(&self) -> Vec<Arc<ListenerHandle>> {
        self.running
            .iter()
            .map(|r| Arc::clone(&r.handle))
            .chain(
                self.retiring
                    .iter()
                    .filter(|r| !r.is_finished())
                    .map(|r| Arc::clone(&r.handle)),
            )
            .collect()
    }
}
