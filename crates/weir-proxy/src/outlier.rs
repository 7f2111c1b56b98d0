//! The proxy's side of passive health checking: what live traffic reports, and the
//! timer that brings an ejected backend back in a pool without active checks.
//!
//! HTTP and TCP both report here, so each event has exactly one place: a success resets
//! the backend's count, a failure is weighed by [`Pool::report_failure`] (the only place
//! that decides an ejection, under the pool's cap), and an ejection is logged exactly as
//! an active check's transition is (`warn` `backend down` with pool, backend and
//! reason). Metrics for ejections belong next to those log lines.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use weir_balance::{Backend, Passive, Pool, Transition};

/// The reason written when an ejection time is over.
pub const REASON_EJECTION_OVER: &str = "passive: ejection time over";

/// A request or connection on `backend` succeeded (a response head arrived, or a TCP
/// connect completed).
#[inline]
pub(crate) fn success(pool: &Pool, backend: &Backend) {
    pool.report_success(backend);
}

/// A connect failure, reset or timeout of live traffic on `backend`.
pub(crate) fn failure(pool: &Pool, backend: &Arc<Backend>, error: &dyn fmt::Display) {
    match pool.report_failure(backend, error) {
        Passive::Counted => {}
        Passive::Capped {
            failures,
            down,
            allowed,
        } => tracing::debug!(
            pool = pool.name(),
            backend = backend.address(),
            failures,
            down,
            allowed,
            "passive ejection skipped: max_ejected_percent reached"
        ),
        Passive::Ejected {
            reason,
            ejection,
            return_after,
        } => {
            tracing::warn!(
                pool = pool.name(),
                backend = backend.address(),
                reason = %reason,
                "backend down"
            );
            if let Some(after) = return_after {
                schedule_return(Arc::clone(backend), ejection, after);
            }
        }
    }
}

/// Puts `backend` back in rotation once ejection number `ejection` has lasted `after`
/// (unless something else changed its state meanwhile, see `Backend::end_ejection`).
fn schedule_return(backend: Arc<Backend>, ejection: u32, after: Duration) {
    tracing::debug!(
        pool = backend.pool(),
        backend = backend.address(),
        ejection,
        after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        "ejected backend returns after its ejection time"
    );
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if backend.end_ejection(ejection, REASON_EJECTION_OVER) == Some(Transition::Up) {
            tracing::info!(
                pool = backend.pool(),
                backend = backend.address(),
                reason = REASON_EJECTION_OVER,
                "backend up"
            );
        }
    });
}
