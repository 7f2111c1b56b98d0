//! The idle sweeper: closes pooled backend connections that stayed idle too long.
//!
//! One task per process walks every backend of the live table at a fixed period and
//! closes the idle connections older than their transport's idle timeout (60 s by
//! default), as well as those the backend has closed meanwhile (their sockets would
//! otherwise sit in `CLOSE_WAIT` until the next request to that backend). This is how
//! HAProxy purges idle server connections (one periodic task, `pool-purge-delay`, 5 s
//! by default) rather than Envoy's timer per connection: a pooled connection has no
//! task, timer or buffer of its own, and a walk over the table costs nothing per
//! request. A connection therefore closes between its timeout and one period later;
//! the period is a quarter of the shortest timeout in the table, at most 5 s. A request
//! that comes first still checks the age and the socket at checkout.

use std::time::Duration;

use tokio::task::JoinHandle;
use weir_balance::SharedTable;

/// Longest period between two sweeps (HAProxy's default `pool-purge-delay`).
pub const MAX_SWEEP_PERIOD: Duration = Duration::from_secs(5);

/// Shortest period, so a tiny idle timeout cannot spin a core.
const MIN_SWEEP_PERIOD: Duration = Duration::from_millis(10);

/// Starts the process's idle sweeper over whatever table `table` holds at each sweep
/// (a reload needs nothing more). Abort the handle to stop it.
///
/// Must be called inside a tokio runtime.
pub fn spawn_idle_sweeper(table: SharedTable) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let period = sweep(&table);
            tokio::time::sleep(period).await;
        }
    })
}

/// One walk over the live table; returns the period until the next one.
fn sweep(table: &SharedTable) -> Duration {
    let table = table.load();
    let mut period = MAX_SWEEP_PERIOD;
    let mut closed = 0usize;
    for pool in table.pools() {
        let transport = pool.transport();
        period = period.min(transport.idle_timeout() / 4);
        for backend in pool.backends() {
            closed += backend.conns().sweep(transport);
        }
    }
    if closed > 0 {
        tracing::debug!(closed, "idle backend connections closed");
    }
    period.max(MIN_SWEEP_PERIOD)
}
