//! A backend's idle connections: bare streams waiting for the next request.
//!
//! Every backend owns one [`Conns`] (a typed field of `weir_balance::Backend`), so it
//! lives exactly as long as the backend: a backend kept across a reload keeps its warm
//! connections, a removed one closes them when its last table goes. Its queue is
//! lock-free, so concurrent requests never contend on a lock.
//!
//! **Settings.** Each connection is tagged with the identity of the [`Transport`] it
//! was made with, and the store remembers the identity the newest table gives the
//! backend's pool ([`Conns::adopt`], called as the table is built). When a reload
//! changes the pool's TLS settings or HTTP version, the identity changes and the idle
//! connections are closed at once; a request still running on the old table then
//! connects afresh with the old settings and its connection is closed after it, never
//! pooled: no request is sent on a connection made with settings other than those of
//! the table it was routed on.
//!
//! **Expiry.** A connection idle longer than the transport's idle timeout is closed by
//! the next [`Conns::sweep`] (one sweeper per process walks every backend of the live
//! table, see `weir_proxy::spawn_idle_sweeper`) or, if a request comes first, at
//! checkout. Both also drop a connection that is no longer quiet (the backend closed
//! it, or sent bytes nobody asked for), so a request that cannot be replayed is never
//! written on a dead socket and the sockets of closed connections are released.
//!
//! **hyper's client state** (HTTP/2 backends share one hyper connection per backend)
//! has a slot here too, [`Conns::h2_client`], typed like the rest ([`H2Client`], whose
//! request body type lives in this crate for that reason). It is tagged with the
//! transport like the streams, and replaced, not reused, when the settings change.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use crossbeam_queue::ArrayQueue;
use tokio::time::Instant;

use crate::{H2Client, Stream, Transport};

/// Idle connections kept per backend; more are closed when they come back.
pub const IDLE_PER_BACKEND: usize = 256;

/// An idle connection in its backend's queue.
#[derive(Debug)]
struct Idle {
    stream: Stream,
    /// When it went idle.
    since: Instant,
    /// [`Transport::id`] of the transport that made it.
    transport: u64,
}

/// hyper's client state and the transport it was made under.
struct Tagged {
    transport: u64,
    value: Arc<H2Client>,
}

/// [`Conns::current`] of a backend that left the configuration: no transport has it
/// (identities count up from 1).
const RETIRED: u64 = u64::MAX;

/// One backend's idle connections (see the module docs).
pub struct Conns {
    /// [`Transport::id`] of the newest table's transport for this backend's pool; 0
    /// before any.
    current: AtomicU64,
    /// Made on the first connection given back: a backend that never pools (TCP
    /// pools, unused backends of a 1,000-backend config) allocates no 256 slots.
    idle: OnceLock<ArrayQueue<Idle>>,
    client: ArcSwapOption<Tagged>,
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conns")
            .field("transport", &self.current.load(Ordering::Relaxed))
            .field("idle", &self.idle())
            .finish_non_exhaustive()
    }
}

impl Default for Conns {
    fn default() -> Self {
        Self::new()
    }
}

// === impl Conns ===

impl Conns {
    /// An empty store, under no transport yet.
    pub fn new() -> Self {
        Conns {
            current: AtomicU64::new(0),
            idle: OnceLock::new(),
            client: ArcSwapOption::empty(),
        }
    }

    /// Makes `transport` the one new requests connect with. If it is another identity
    /// than before (the pool's TLS or HTTP version changed), every idle connection and
    /// the client state are closed; returns whether a former transport was replaced so.
    pub fn adopt(&self, transport: &Transport) -> bool {
        let before = self.current.swap(transport.id(), Ordering::AcqRel);
        if before == transport.id() {
            return false;
        }
        self.clear();
        before != 0
    }

    /// The backend left the configuration: its idle connections are closed, and no
    /// request still running on an older table pools one again (a long-lived tunnel
    /// may keep the backend itself alive for hours, and the sweeper walks only the
    /// current table).
    pub fn retire(&self) {
        self.current.store(RETIRED, Ordering::Release);
        self.clear();
    }

    /// Closes every idle connection and drops the client state.
    pub fn clear(&self) {
        if let Some(idle) = self.idle.get() {
            while idle.pop().is_some() {}
        }
        self.client.store(None);
    }

    /// Whether `transport` is the one the newest table uses: only then are connections
    /// pooled and reused.
    #[inline]
    fn is_current(&self, transport: &Transport) -> bool {
        self.current.load(Ordering::Acquire) == transport.id()
    }

    /// Idle connections held now (some may have been closed by the backend since).
    pub fn idle(&self) -> usize {
        self.idle.get().map_or(0, ArrayQueue::len)
    }

    /// Takes a live idle connection made with `transport`, if there is one. Expired,
    /// closed and noisy connections met on the way are dropped. Never waits.
    pub fn checkout(&self, transport: &Transport) -> Option<Stream> {
        if !self.is_current(transport) {
            return None;
        }
        let queue = self.idle.get()?;
        let now = Instant::now();
        while let Some(idle) = queue.pop() {
            if is_usable(&idle, transport, now) {
                return Some(idle.stream);
            }
            tracing::trace!("idle connection closed or expired");
        }
        None
    }

    /// Returns a connection made with `transport` whose last response was read to its
    /// end. Closed instead when the queue is full or the transport is no longer the
    /// newest table's.
    pub fn give_back(&self, transport: &Transport, stream: Stream) {
        if !self.is_current(transport) {
            tracing::trace!("connection made with former transport settings, closing");
            return;
        }
        let idle = Idle {
            stream,
            since: Instant::now(),
            transport: transport.id(),
        };
        let queue = self.idle.get_or_init(|| ArrayQueue::new(IDLE_PER_BACKEND));
        if queue.push(idle).is_err() {
            tracing::trace!("idle queue full, closing");
        }
    }

    /// Closes the idle connections that expired under `transport`'s idle timeout, are
    /// no longer quiet, or were made with another transport; the others go back in
    /// their order. Returns how many were closed. A request checking out meanwhile may
    /// miss the few connections being looked at and open a new one.
    pub fn sweep(&self, transport: &Transport) -> usize {
        let Some(queue) = self.idle.get() else {
            return 0;
        };
        let now = Instant::now();
        let mut closed = 0;
        for _ in 0..queue.len() {
            let Some(idle) = queue.pop() else {
                break;
            };
            if is_usable(&idle, transport, now) && self.is_current(transport) {
                if queue.push(idle).is_err() {
                    closed += 1;
                }
            } else {
                closed += 1;
            }
        }
        closed
    }

    /// hyper's client state made under `transport`, created on first use. `None` when
    /// `transport` is not the newest table's: nothing is shared with a request routed
    /// on an older table.
    pub fn h2_client(&self, transport: &Transport) -> Option<Arc<H2Client>> {
        if !self.is_current(transport) {
            return None;
        }
        let cur = self.client.load_full();
        if let Some(tagged) = &cur {
            if tagged.transport == transport.id() {
                return Some(Arc::clone(&tagged.value));
            }
        }
        let value = Arc::new(H2Client::default());
        let fresh = Arc::new(Tagged {
            transport: transport.id(),
            value: Arc::clone(&value),
        });
        let prev = self.client.compare_and_swap(&cur, Some(fresh));
        let installed = match (&*prev, &cur) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if installed {
            return Some(value);
        }
        // Another request installed one meanwhile: use that one.
        let now = self.client.load_full()?;
        (now.transport == transport.id()).then(|| Arc::clone(&now.value))
    }
}

/// Whether an idle connection may carry a request under `transport` at `now`.
fn is_usable(idle: &Idle, transport: &Transport, now: Instant) -> bool {
    idle.transport == transport.id()
        && now.duration_since(idle.since) < transport.idle_timeout()
        && idle.stream.is_quiet()
}

#[cfg(test)]
mod tests;
