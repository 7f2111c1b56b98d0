//! Backend protection: each backend's `max_in_flight` (HAProxy's server `maxconn`) and
//! the pool's bounded queue where requests over it wait for a free slot.
//!
//! **Reserving a slot.** A backend's limit lives in the [`Backend`] beside its
//! `routable` flag, so every strategy skips a full backend with the same
//! [`Backend::is_pickable`] read it already made; the pick is then confirmed by
//! [`Backend::try_start_request`], a compare-and-swap of the in-flight count against the
//! limit, so two requests that picked the last slot at once cannot both take it. A pool
//! whose backends have no limit takes neither path: [`Pool::try_reserve`] is `pick` and
//! the plain increment of before.
//!
//! **Waiting.** A request that finds every routable backend full (or finds others
//! already waiting, so it does not overtake them) enters the pool's [`PoolQueue`]: a
//! counter bounded by `queue.max` and a `tokio::sync::Notify`, whose `notify_one` wakes
//! waiters oldest first. An in-flight slot released ([`InFlight`](crate::InFlight)'s
//! `Drop`) wakes the oldest waiter, which picks again through the strategy, so
//! `least_connections` and `weighted` still choose among the backends with room. No lock
//! is held across an await, and a release costs one extra load when nobody waits.
//!
//! The order is first come, first served among waiters, with one exception weir accepts
//! for simplicity: a waiter woken while a newcomer takes the freed slot first waits
//! again, at the back. A wait ends with a slot, with `queue.timeout` (503), when the
//! client goes away (the caller's `gone` future), or when a reload removes the pool
//! ([`PoolQueue::close`], 503).
//!
//! The queue belongs to [`super::PoolShared`], kept per pool name across reloads and
//! discovery updates, so waiters survive a reload that keeps their pool; a reload that
//! raises a limit wakes them ([`PoolQueue::kick_all`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Pool;
use crate::{Backend, InFlight};

/// Picks one reservation may make when its picks keep losing the last slot to another
/// request, before the pool counts as full.
pub const RESERVE_TRIES: usize = 4;

/// A backend chosen for a request, with its in-flight slot already taken.
#[derive(Debug)]
pub struct Reserved<'p> {
    /// The backend, as the table lists it.
    pub backend: &'p Arc<Backend>,
    /// Its slot, held for as long as the request (or connection) lasts.
    pub in_flight: InFlight,
}

/// Why a reservation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No backend is up (or every one is drained): the old "no backend" 503.
    NoBackend,
    /// Every routable backend is at its limit and the queue is full (or has `max: 0`).
    Full,
    /// The request waited `queue.timeout` without a slot freeing.
    Timeout,
    /// A reload removed the pool while the request waited.
    Closed,
    /// The client went away while waiting: nobody to answer.
    Gone,
}

impl Refused {
    /// For logs, error bodies and the `reason` label of
    /// `weir_pool_queue_refused_total` (`full` or `timeout`).
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::NoBackend => "no backend up",
            Refused::Full => "full",
            Refused::Timeout => "timeout",
            Refused::Closed => "pool removed",
            Refused::Gone => "client gone",
        }
    }
}

/// The waiting room of one pool (see the module docs).
#[derive(Debug, Default)]
pub struct PoolQueue {
    waiting: AtomicUsize,
    /// Of `waiting`, those waiting for one backend (a sticky cookie's): a newcomer
    /// goes behind the others only, since these take no slot of another backend.
    pinned: AtomicUsize,
    notify: Notify,
    closed: AtomicBool,
}

// === impl PoolQueue ===

impl PoolQueue {
    /// Requests waiting now (`/status`).
    pub fn depth(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Requests waiting for any backend (not for one a sticky cookie names).
    fn unpinned_depth(&self) -> usize {
        let pinned = self.pinned.load(Ordering::SeqCst);
        self.depth().saturating_sub(pinned)
    }

    /// A slot was released: the oldest waiter, if any, tries again. Sequentially
    /// consistent with the waiter's own count-then-try (see [`Backend::try_start_request`]),
    /// so a release either finds the waiter counted or the waiter finds the slot free.
    #[inline]
    pub(crate) fn released(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.notify.notify_one();
        }
    }

    /// Every waiter tries again: a reload may have raised a limit, a backend came back.
    pub fn kick_all(&self) {
        if self.depth() > 0 {
            self.notify.notify_waiters();
        }
    }

    /// The pool is gone from the configuration: every waiter is refused (503), and so is
    /// any request of an old table that would wait.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Counts one more waiter if fewer than `max` wait.
    fn enter(&self, max: usize) -> bool {
        self.waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }
}

/// A waiter's place among those waiting for one backend's slot, counted by the backend
/// (whose releases wake it) and by the pool's queue.
struct Pinned<'p> {
    queue: &'p PoolQueue,
    _backend: crate::backend::PinnedWaiter<'p>,
}

impl<'p> Pinned<'p> {
    fn new(queue: &'p PoolQueue, backend: &'p Backend) -> Self {
        queue.pinned.fetch_add(1, Ordering::SeqCst);
        Pinned {
            queue,
            _backend: backend.pin_waiter(),
        }
    }
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        self.queue.pinned.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A waiter's place in the count; leaving (however the wait ends) gives it back.
struct Place<'p> {
    pool: &'p Pool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.pool
            .shared
            .queue()
            .waiting
            .fetch_sub(1, Ordering::SeqCst);
        if let Some(m) = self.pool.metrics() {
            m.queue_left();
        }
    }
}

impl Pool {
    /// Whether a backend of this table has a `max_in_flight`.
    #[inline]
    pub fn is_limited(&self) -> bool {
        self.limited
    }

    /// The first attempt's backend and its slot, without waiting: `Err(Full)` when the
    /// request has to queue ([`Pool::reserve`] does that).
    #[inline]
    pub fn try_reserve(&self) -> Result<Reserved<'_>, Refused> {
        self.try_reserve_keyed(None)
    }

    /// [`Pool::try_reserve`] for a request whose affinity key hashed to `key`
    /// ([`Pool::pick_keyed`]; `None` for a request without one, or a pool that does not
    /// hash).
    #[inline]
    pub fn try_reserve_keyed(&self, key: Option<u64>) -> Result<Reserved<'_>, Refused> {
        if !self.limited {
            let backend = self.pick_keyed(key).ok_or(Refused::NoBackend)?;
            let in_flight = backend.start_request();
            return Ok(Reserved { backend, in_flight });
        }
        if self.shared.queue().unpinned_depth() > 0 {
            // Others wait already: behind them, not past them.
            return Err(self.full_or_none());
        }
        self.reserve_now(key).ok_or_else(|| self.full_or_none())
    }

    /// The first attempt's backend and its slot, waiting in the pool's queue if every
    /// backend is at its limit, until `gone` resolves (the client left) at the latest.
    pub async fn reserve<G: Future<Output = ()>>(&self, gone: G) -> Result<Reserved<'_>, Refused> {
        self.reserve_keyed(None, gone).await
    }

    /// [`Pool::reserve`] for a request whose affinity key hashed to `key`: the key's
    /// backend when it has room, else the next in the key's order that has
    /// ([`Pool::pick_keyed`]), else the queue.
    pub async fn reserve_keyed<G: Future<Output = ()>>(
        &self,
        key: Option<u64>,
        gone: G,
    ) -> Result<Reserved<'_>, Refused> {
        match self.try_reserve_keyed(key) {
            Err(Refused::Full) => self.wait(key, None, gone).await,
            done => done,
        }
    }

    /// The slot of `backend` (routable, of this pool), which a sticky cookie named:
    /// taken at once when it has room and no other request waits for it, else waited
    /// for (see [`super::sticky`]).
    pub(super) async fn reserve_pinned<'p, G: Future<Output = ()>>(
        &'p self,
        backend: &'p Arc<Backend>,
        key: Option<u64>,
        gone: G,
    ) -> Result<Reserved<'p>, Refused> {
        if !self.limited {
            let in_flight = backend.start_request();
            return Ok(Reserved { backend, in_flight });
        }
        if backend.pinned_waiting() == 0 {
            if let Some(in_flight) = backend.try_start_request() {
                return Ok(Reserved { backend, in_flight });
            }
        }
        self.wait(key, Some(backend), gone).await
    }

    /// A few picks, each confirmed by a reservation against the limit.
    fn reserve_now(&self, key: Option<u64>) -> Option<Reserved<'_>> {
        for _ in 0..RESERVE_TRIES {
            let backend = self.pick_keyed(key)?;
            if let Some(in_flight) = backend.try_start_request() {
                return Some(Reserved { backend, in_flight });
            }
        }
        None
    }

    /// Why nothing could be reserved: full if a backend is in rotation at all.
    #[cold]
    fn full_or_none(&self) -> Refused {
        let failing_open = self.settings.fail_open
            && self
                .backends()
                .any(|b| b.admin_mode() == crate::AdminMode::Ready);
        if failing_open || self.backends().any(|b| b.is_routable()) {
            Refused::Full
        } else {
            Refused::NoBackend
        }
    }

    /// The wait in the queue (see the module docs). A request `pinned` to a backend by
    /// its sticky cookie waits for that backend's slot, on the backend's own wake-up
    /// (released slots go to such waiters first), for as long as the backend stays
    /// routable; then, or without a pin, for any backend the strategy picks.
    #[cold]
    async fn wait<'p, G: Future<Output = ()>>(
        &'p self,
        key: Option<u64>,
        mut pinned: Option<&'p Arc<Backend>>,
        gone: G,
    ) -> Result<Reserved<'p>, Refused> {
        let queue = self.shared.queue();
        let max = usize::try_from(self.settings.queue.max).unwrap_or(usize::MAX);
        if queue.is_closed() {
            return Err(Refused::Closed);
        }
        if !queue.enter(max) {
            self.count_refused(Refused::Full);
            return Err(Refused::Full);
        }
        if let Some(m) = self.metrics() {
            m.queue_entered();
        }
        let place = Place { pool: self };
        let mut pin = pinned.map(|b| Pinned::new(queue, b));
        let start = Instant::now();
        let deadline = tokio::time::sleep(self.settings.queue.timeout);
        tokio::pin!(deadline, gone);
        loop {
            if pinned.is_some_and(|b| !b.is_routable()) {
                // Down, drained or removed from rotation while we waited: balance.
                pinned = None;
                pin = None;
            }
            let notify = pinned.map_or(&queue.notify, |b| b.pinned_notify());
            let notified = notify.notified();
            tokio::pin!(notified);
            // Registered before trying, so a slot released after the try wakes it.
            notified.as_mut().enable();
            if queue.is_closed() {
                return Err(Refused::Closed);
            }
            let reserved = match pinned {
                Some(backend) => backend
                    .try_start_request()
                    .map(|in_flight| Reserved { backend, in_flight }),
                None => self.reserve_now(key),
            };
            if let Some(reserved) = reserved {
                drop(pin);
                drop(place);
                if let Some(m) = self.metrics() {
                    m.queue_waited(start.elapsed());
                }
                // More room than this one slot (a raised limit, a backend back):
                // the next waiter need not wait for the next release.
                if queue.depth() > 0 && self.backends().any(|b| b.is_pickable()) {
                    queue.notify.notify_one();
                }
                return Ok(reserved);
            }
            if self.full_or_none() == Refused::NoBackend {
                return Err(Refused::NoBackend);
            }
            tokio::select! {
                biased;
                () = &mut notified => {}
                () = &mut deadline => {
                    self.count_refused(Refused::Timeout);
                    return Err(Refused::Timeout);
                }
                () = &mut gone => return Err(Refused::Gone),
            }
        }
    }

    fn count_refused(&self, why: Refused) {
        if let Some(m) = self.metrics() {
            m.queue_refused(why == Refused::Timeout);
        }
    }
}

#[cfg(test)]
mod tests;
