//! The attempts of one request or connection: which backend each goes to, what a
//! failure reports (passive checks, metrics), and whether another attempt follows (the
//! pool's next backend, its `retries`, its retry budget). HTTP (`http::forward`) and TCP
//! (`tcp::serve`) both drive an [`Attempts`], so picking, excluding tried backends,
//! spending the budget and counting retries each happen in one place, and the decision
//! is a typed [`Decision`] (Pingora's `RetryType` plays this part).
//!
//! Each attempt's in-flight slot is reserved when its backend is chosen: the first by
//! the pick phase ([`weir_balance::Pool::reserve`], which may have waited in the pool's
//! queue), a retry's by [`next`] against the backend's `max_in_flight`. A retry never
//! queues: with no other backend free it stops, and the client gets the failed
//! attempt's error (as HAProxy's `redispatch` only goes to a server with room).

use std::sync::Arc;

use weir_balance::{AdminMode, Backend, InFlight, Pool, PoolSettings, Reserved, MAX_ATTEMPTS};
use weir_telemetry::UpstreamErrorKind;

use crate::outlier;

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Decision<'p> {
    /// Another attempt, to this backend (the same one when only a new connection to it
    /// is left, see [`Attempts::failed`]).
    Retry(&'p Arc<Backend>),
    /// No further attempt, and why.
    Stop(Stop),
}

/// What a failed attempt was, as [`Attempts::failed`] weighs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failure {
    /// The failure is one the pool's `retry_on` lists, and the request can be replayed.
    pub(crate) retryable: bool,
    /// Whether a retry of it draws on the budget.
    pub(crate) cost: Cost,
    /// `Some`: the backend is to blame; counted in `weir_upstream_errors_total` under this
    /// kind. `None`: the client's side failed, or weir gave up (not the backend's fault).
    pub(crate) counted: Option<UpstreamErrorKind>,
    /// Reported to passive checks (a counted failure the client may have caused, such as
    /// a response timeout while it still uploads, is not).
    pub(crate) passive: bool,
    /// The attempt failed on a reused connection with a reset, the backend closing a
    /// kept-alive connection as weir reused it: with no other backend left, a new
    /// connection to the same one is the retry (counted, and paid from the budget).
    pub(crate) reset_on_reused: bool,
}

/// The attempts of one request or connection to one pool.
#[derive(Debug)]
pub(crate) struct Attempts<'p> {
    pool: &'p Pool,
    tried: [&'p Arc<Backend>; MAX_ATTEMPTS],
    made: usize,
    max: usize,
    backend: &'p Arc<Backend>,
    /// The slot reserved for the next attempt on `backend`.
    slot: Option<InFlight>,
}

impl<'p> Attempts<'p> {
    /// The attempts of a new request or connection, the first to the backend `first`
    /// reserved; counts it towards the pool's retry budget.
    pub(crate) fn new(pool: &'p Pool, first: Reserved<'p>) -> Self {
        record_request(pool);
        Attempts {
            pool,
            tried: [first.backend; MAX_ATTEMPTS],
            made: 0,
            max: max_attempts(pool.settings()),
            backend: first.backend,
            slot: Some(first.in_flight),
        }
    }

    /// Starts the next attempt: the backend it goes to, and its in-flight count (held
    /// for as long as the attempt, or the response it gave, lasts). A retry is counted
    /// in `weir_retries_total`.
    pub(crate) fn start(&mut self) -> (&'p Arc<Backend>, InFlight) {
        if let Some(slot) = self.tried.get_mut(self.made) {
            *slot = self.backend;
        }
        if self.made > 0 {
            if let Some(m) = self.pool.metrics() {
                m.retry();
            }
        }
        self.made += 1;
        // Always reserved when the backend was chosen; counted anyway if not.
        let slot = match self.slot.take() {
            Some(slot) => slot,
            None => self.backend.start_request(),
        };
        (self.backend, slot)
    }

    /// Attempts made so far.
    pub(crate) fn made(&self) -> usize {
        self.made
    }

    /// The current attempt succeeded: passive checks hear of it.
    pub(crate) fn succeeded(&self) {
        outlier::success(self.pool, self.backend);
    }

    /// The current attempt's answer has a status `retry_on` lists: the backend to try
    /// next, if attempts and the budget allow one and another backend is up.
    pub(crate) fn retry_status(&mut self, replayable: bool) -> Option<&'p Arc<Backend>> {
        if !replayable || self.made >= self.max {
            return None;
        }
        let (next, slot) = next(self.pool, self.tried(), Cost::Budgeted).ok()?;
        self.backend = next;
        self.slot = Some(slot);
        Some(next)
    }

    /// The current attempt failed with `error`, described by `failure`: reports it
    /// (metrics, passive checks) and decides what follows. `used` is the failed
    /// attempt's slot: a new connection to the same backend keeps it, else it is
    /// released once the next backend's slot is held.
    pub(crate) fn failed(
        &mut self,
        failure: Failure,
        error: &dyn std::fmt::Display,
        used: InFlight,
    ) -> Decision<'p> {
        let backend = self.backend;
        if let Some(kind) = failure.counted {
            if let Some(m) = backend.metrics() {
                m.upstream_error(kind);
            }
            if failure.passive {
                outlier::failure(self.pool, backend, error);
            }
        }
        let next = if !failure.retryable {
            Err(Stop::NotRetryable)
        } else if self.made >= self.max {
            Err(Stop::Attempts)
        } else {
            match next(self.pool, self.tried(), failure.cost) {
                // Reopening to the same backend is only for one still in rotation: a
                // drained or maintained one takes no new connections.
                Err(Stop::NoBackend | Stop::Busy)
                    if failure.reset_on_reused && backend.admin_mode() == AdminMode::Ready =>
                {
                    again(self.pool).map(|()| (backend, used))
                }
                next => next,
            }
        };
        match next {
            Ok((b, slot)) => {
                self.backend = b;
                self.slot = Some(slot);
                Decision::Retry(b)
            }
            Err(stop) => Decision::Stop(stop),
        }
    }

    fn tried(&self) -> &[&'p Arc<Backend>] {
        self.tried.get(..self.made).unwrap_or_default()
    }
}

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
    /// No other backend is both up and below its `max_in_flight` (retries do not queue).
    Busy,
}

impl Stop {
    /// For log fields.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stop::NotRetryable => "not retryable",
            Stop::Attempts => "retries used up",
            Stop::NoBackend => "no other backend",
            Stop::Budget => "retry budget exhausted",
            Stop::Busy => "no other backend free (up and below max_in_flight)",
        }
    }
}

/// Attempts (first plus retries) one request or connection may make.
fn max_attempts(settings: &PoolSettings) -> usize {
    usize::try_from(settings.retries)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .min(MAX_ATTEMPTS)
}

/// Counts a new request or connection (not a retry) towards the pool's budget.
#[inline]
fn record_request(pool: &Pool) {
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

/// The backend for the next attempt, untried, up and below its limit, with its slot,
/// if the budget allows a retry.
fn next<'p>(
    pool: &'p Pool,
    tried: &[&Arc<Backend>],
    cost: Cost,
) -> Result<(&'p Arc<Backend>, InFlight), Stop> {
    let Some(next) = pool.pick_excluding(tried) else {
        return Err(if pool.is_limited() {
            Stop::Busy
        } else {
            Stop::NoBackend
        });
    };
    let Some(slot) = next.try_start_request() else {
        return Err(Stop::Busy);
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
    Ok((next, slot))
}

/// Whether the budget allows one more attempt on the backend just tried (a new
/// connection after a reset on a reused one, when no other backend is left).
fn again(pool: &Pool) -> Result<(), Stop> {
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
