//! Whether a failed attempt gets another one: the pool's next backend and its retry
//! budget. HTTP and TCP both ask here, so retries and budget exhaustion each happen in
//! one place (where their metrics belong).

use std::sync::Arc;

use weir_balance::{Backend, Pool, PoolSettings, MAX_ATTEMPTS};

/// Why no further attempt is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The failure is not one `retry_on` lists (or the request cannot be replayed).
    NotRetryable,
    /// The pool's `retries` are used up.
    Attempts,
    /// Every eligible backend was tried.
    NoBackend,
    /// The pool's retry budget is spent: retrying now would feed a retry storm.
    Budget,
}

impl Stop {
    /// For log fields.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stop::NotRetryable => "not retryable",
            Stop::Attempts => "retries used up",
            Stop::NoBackend => "no other backend",
            Stop::Budget => "retry budget exhausted",
        }
    }
}

/// Attempts (first plus retries) one request or connection may make.
pub(crate) fn max_attempts(settings: &PoolSettings) -> usize {
    usize::try_from(settings.retries)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .min(MAX_ATTEMPTS)
}

/// Counts a new request or connection (not a retry) towards the pool's budget.
#[inline]
pub(crate) fn record_request(pool: &Pool) {
    pool.shared().retry_budget().record_request();
}

/// Whether a retry draws on the pool's retry budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cost {
    /// The failed attempt never reached a backend (the connect was refused or timed
    /// out): retrying it adds no load to any backend, so it is free. This is what keeps
    /// a hard-killed backend from costing clients errors while the other backends are
    /// up and the budget is spent on the dead one's refused connects.
    Free,
    /// The request (or part of it) reached a backend: the retry replays work, so it is
    /// bounded by the budget and a failing pool never sees a retry storm.
    Budgeted,
}

/// The backend for the next attempt, untried and up, if the budget allows a retry.
pub(crate) fn next<'p>(
    pool: &'p Pool,
    tried: &[&Arc<Backend>],
    cost: Cost,
) -> Result<&'p Arc<Backend>, Stop> {
    let Some(next) = pool.pick_excluding(tried) else {
        return Err(Stop::NoBackend);
    };
    let settings = pool.settings();
    if cost == Cost::Budgeted
        && !pool
            .shared()
            .retry_budget()
            .try_retry(&settings.retry_budget)
    {
        tracing::debug!(pool = pool.name(), "retry budget exhausted, not retrying");
        return Err(Stop::Budget);
    }
    Ok(next)
}

/// Whether the budget allows one more attempt on the backend just tried (a new
/// connection after a reset on a reused one, when no other backend is left).
pub(crate) fn again(pool: &Pool) -> Result<(), Stop> {
    if pool
        .shared()
        .retry_budget()
        .try_retry(&pool.settings().retry_budget)
    {
        Ok(())
    } else {
        tracing::debug!(pool = pool.name(), "retry budget exhausted, not retrying");
        Err(Stop::Budget)
    }
}
