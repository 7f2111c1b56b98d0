//! A backend server and its live state.
//!
//! A `Backend` outlives any one routing table: the registry hands the same `Arc<Backend>`
//! to every table that keeps it, so its health, in-flight count and upstream connection
//! pool survive reloads. All mutable state is atomic, because the data plane reads it on
//! every pick and must never lock.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use weir_config::BackendConfig;

/// A change of a backend's health state, reported once when it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The backend went from down to up.
    Up,
    /// The backend went from up to down.
    Down,
}

/// What `/status` shows about a backend's last transition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastTransition {
    /// Unix time in milliseconds; 0 if the backend never changed state.
    pub at_unix_ms: u64,
    /// Why (the health check's error text, or "check passed").
    pub reason: String,
}

/// One backend server of one pool.
pub struct Backend {
    pool: Arc<str>,
    address: Arc<str>,
    addr: SocketAddr,
    weight: AtomicU32,
    backup: AtomicBool,
    up: AtomicBool,
    in_flight: AtomicU32,
    /// Consecutive successful probes while down (towards `rise`).
    successes: AtomicU32,
    /// Consecutive failed probes while up (towards `fall`).
    failures: AtomicU32,
    /// Until the first probe result, one failure is enough to mark a backend down
    /// (HAProxy's initial state): a new backend takes traffic at once, yet a dead one is
    /// pulled after a single probe instead of `fall`.
    fragile: AtomicBool,
    transitions: AtomicU64,
    /// Control-path only (health tasks write, `/status` reads): never touched per request.
    last: Mutex<LastTransition>,
    /// The proxy's per-backend upstream state (its idle connection pool). Kept here so it
    /// lives exactly as long as the backend; typed `Any` so this crate does not depend on
    /// the proxy's HTTP stack.
    extension: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("pool", &self.pool)
            .field("address", &self.address)
            .field("addr", &self.addr)
            .field("up", &self.is_up())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

// === impl Backend ===

impl Backend {
    /// A new backend of `pool`, initially up (see [`Backend::observe`]).
    pub fn new(pool: &str, config: &BackendConfig) -> Self {
        Backend {
            pool: Arc::from(pool),
            address: Arc::from(config.address.as_str()),
            addr: config.addr,
            weight: AtomicU32::new(config.weight.get()),
            backup: AtomicBool::new(config.backup),
            up: AtomicBool::new(true),
            in_flight: AtomicU32::new(0),
            successes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            fragile: AtomicBool::new(true),
            transitions: AtomicU64::new(0),
            last: Mutex::new(LastTransition::default()),
            extension: OnceLock::new(),
        }
    }

    /// The pool this backend belongs to.
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// The address exactly as written in the config: the backend's name everywhere.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The resolved socket address to connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The weight of the newest table that contains this backend.
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Whether the newest table lists this backend as a hot standby.
    pub fn is_backup(&self) -> bool {
        self.backup.load(Ordering::Relaxed)
    }

    /// Records the settings of the newest table. Strategies keep their own copy of the
    /// weights, so a table built earlier keeps picking consistently.
    pub fn update_settings(&self, config: &BackendConfig) {
        self.weight.store(config.weight.get(), Ordering::Relaxed);
        self.backup.store(config.backup, Ordering::Relaxed);
    }

    /// Whether the backend may be picked.
    #[inline]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Requests (HTTP) or connections (TCP) currently being served.
    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one request or connection until the returned guard is dropped.
    #[inline]
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            backend: Arc::clone(self),
        }
    }

    /// Number of up/down transitions so far.
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }

    /// When and why the backend last changed state.
    pub fn last_transition(&self) -> LastTransition {
        match self.last.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Consecutive probe results counting towards the next transition:
    /// `(successes while down, failures while up)`.
    pub fn consecutive(&self) -> (u32, u32) {
        (
            self.successes.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Feeds one health probe result through the `rise`/`fall` hysteresis and reports a
    /// transition only when the state flips.
    ///
    /// A new backend starts up but "fragile": its first failed probe marks it down at
    /// once (HAProxy's default), so a backend that is dead at start-up or when added by a
    /// reload is pulled after one probe; a kept backend needs `fall` failures in a row.
    /// Only one health task writes a given backend, so the load-then-store sequences here
    /// do not race with each other.
    pub fn observe(&self, ok: bool, rise: u32, fall: u32, reason: &str) -> Option<Transition> {
        let fragile = self.fragile.swap(false, Ordering::Relaxed);
        if self.is_up() {
            if ok {
                self.failures.store(0, Ordering::Relaxed);
                return None;
            }
            let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if fragile || failures >= fall.max(1) {
                self.set_state(false, reason);
                return Some(Transition::Down);
            }
            None
        } else {
            if !ok {
                self.successes.store(0, Ordering::Relaxed);
                return None;
            }
            let successes = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
            if successes >= rise.max(1) {
                self.set_state(true, reason);
                return Some(Transition::Up);
            }
            None
        }
    }

    /// Forces the state (a pool whose health check was removed puts its backends back up).
    /// Returns the transition if the state changed.
    pub fn force(&self, up: bool, reason: &str) -> Option<Transition> {
        if self.is_up() == up {
            return None;
        }
        self.set_state(up, reason);
        Some(if up { Transition::Up } else { Transition::Down })
    }

    fn set_state(&self, up: bool, reason: &str) {
        self.successes.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.up.store(up, Ordering::Relaxed);
        self.transitions.fetch_add(1, Ordering::Relaxed);
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut last = match self.last.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *last = LastTransition {
            at_unix_ms,
            reason: reason.to_owned(),
        };
    }

    /// The proxy's per-backend state of type `T`, created on first use.
    ///
    /// Returns `None` only if another type was stored first, which would be a bug in the
    /// caller (one crate owns the slot).
    pub fn extension<T: Default + Send + Sync + 'static>(&self) -> Option<&T> {
        self.extension
            .get_or_init(|| Box::new(T::default()))
            .downcast_ref::<T>()
    }
}

/// Counts one in-flight request or connection against a backend until dropped.
///
/// Holding the `Arc` keeps the backend alive for as long as the request, even if a
/// reload removed it meanwhile.
#[derive(Debug)]
pub struct InFlight {
    backend: Arc<Backend>,
}

impl InFlight {
    /// The backend being counted against.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::backend_config;

    fn backend() -> Arc<Backend> {
        Arc::new(Backend::new("web", &backend_config(0, 2, false)))
    }

    #[test]
    fn new_backend_is_up_with_its_config() {
        let b = backend();
        assert!(b.is_up());
        assert_eq!((b.pool(), b.address(), b.weight()), ("web", "a", 2));
        assert_eq!(b.addr().port(), 10_000);
        assert!(!b.is_backup());
        assert_eq!(b.transitions(), 0);
        assert_eq!(b.last_transition(), LastTransition::default());
    }

    #[test]
    fn first_failure_of_a_new_backend_marks_it_down() {
        let b = backend();
        assert_eq!(b.observe(false, 2, 3, "refused"), Some(Transition::Down));
        assert!(!b.is_up());
        assert_eq!(b.last_transition().reason, "refused");
    }

    #[test]
    fn checked_backend_needs_fall_failures_in_a_row() {
        let b = backend();
        assert_eq!(
            b.observe(true, 2, 3, "ok"),
            None,
            "already up: no transition"
        );
        assert_eq!(b.observe(false, 2, 3, "x"), None);
        assert_eq!(b.observe(false, 2, 3, "x"), None);
        assert_eq!(b.consecutive(), (0, 2));
        assert_eq!(
            b.observe(true, 2, 3, "ok"),
            None,
            "a success resets the count"
        );
        assert_eq!(b.consecutive(), (0, 0));
        assert_eq!(b.observe(false, 2, 3, "x"), None);
        assert_eq!(b.observe(false, 2, 3, "x"), None);
        assert_eq!(b.observe(false, 2, 3, "timeout"), Some(Transition::Down));
        assert_eq!(b.transitions(), 1);
    }

    #[test]
    fn down_backend_needs_rise_successes_in_a_row() {
        let b = backend();
        assert_eq!(b.observe(false, 2, 3, "x"), Some(Transition::Down));
        assert_eq!(b.observe(true, 2, 3, "ok"), None);
        assert_eq!(
            b.observe(false, 2, 3, "x"),
            None,
            "a failure resets the count"
        );
        assert_eq!(b.consecutive(), (0, 0));
        assert_eq!(b.observe(true, 2, 3, "ok"), None);
        assert_eq!(b.observe(true, 2, 3, "check passed"), Some(Transition::Up));
        assert!(b.is_up());
        assert_eq!(b.last_transition().reason, "check passed");
        assert!(b.last_transition().at_unix_ms > 0);
    }

    #[test]
    fn transitions_are_reported_once() {
        let b = backend();
        assert_eq!(b.observe(false, 1, 1, "x"), Some(Transition::Down));
        for _ in 0..5 {
            assert_eq!(b.observe(false, 1, 1, "x"), None);
        }
        assert_eq!(b.observe(true, 1, 1, "ok"), Some(Transition::Up));
        for _ in 0..5 {
            assert_eq!(b.observe(true, 1, 1, "ok"), None);
        }
        assert_eq!(b.transitions(), 2);
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let b = backend();
        assert_eq!(b.observe(true, 0, 0, "ok"), None);
        assert_eq!(b.observe(false, 0, 0, "x"), Some(Transition::Down));
        assert_eq!(b.observe(true, 0, 0, "ok"), Some(Transition::Up));
    }

    #[test]
    fn force_reports_only_a_change() {
        let b = backend();
        assert_eq!(b.force(true, "no check"), None);
        assert_eq!(b.force(false, "admin"), Some(Transition::Down));
        assert_eq!(b.force(false, "admin"), None);
        assert_eq!(b.force(true, "no check"), Some(Transition::Up));
    }

    #[test]
    fn in_flight_guard_counts_until_dropped() {
        let b = backend();
        let g1 = b.start_request();
        let g2 = b.start_request();
        assert_eq!(b.in_flight(), 2);
        assert!(Arc::ptr_eq(g1.backend(), &b));
        drop(g1);
        assert_eq!(b.in_flight(), 1);
        drop(g2);
        assert_eq!(b.in_flight(), 0);
    }

    #[test]
    fn update_settings_changes_weight_and_backup() {
        let b = backend();
        b.update_settings(&backend_config(0, 7, true));
        assert_eq!(b.weight(), 7);
        assert!(b.is_backup());
    }

    #[test]
    fn extension_is_created_once_and_typed() {
        let b = backend();
        let first: &AtomicU32 = b.extension().expect("first type stored");
        first.store(5, Ordering::Relaxed);
        let again: &AtomicU32 = b.extension().expect("same type");
        assert_eq!(again.load(Ordering::Relaxed), 5);
        assert!(b.extension::<String>().is_none(), "another type is refused");
    }
}
