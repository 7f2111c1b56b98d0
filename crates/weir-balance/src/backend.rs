//! A backend server and its live state.
//!
//! A `Backend` outlives any one routing table: the registry hands the same `Arc<Backend>`
//! to every table that keeps it, so its health, in-flight count and idle connections
//! ([`Conns`], a typed field) survive reloads. All mutable state is atomic, because the data plane reads it on
//! every pick and must never lock.
//!
//! Three writers change a backend's state: its health task ([`Backend::observe`]), live
//! traffic (passive ejection, in [`passive`]) and the control path ([`Backend::force`]).
//! Every change goes through one private `transition`, serialised by the small mutex that
//! also holds the last reason: transitions are rare, so the lock costs nothing per
//! request, and a transition is counted exactly once even when writers race. That is
//! also where the backend's metric handles ([`BackendMetrics`]) learn the new state, so
//! `weir_backend_up`, transitions and downtime can never disagree with `/status`.
//!
//! An operator's runtime decisions ([`AdminMode`] and a weight override, from the admin
//! API) live here too, so they survive reloads exactly as health does. Health and the
//! admin mode are folded into one `routable` flag, written under the same mutex by both
//! kinds of change, so a strategy's `pick` still reads a single atomic per candidate.
//! A discovered endpoint's own state ([`EndpointState`], Kubernetes' conditions) is the
//! third input of that flag: only a ready endpoint is routable, a terminating one
//! drains like an operator's drain.

mod admin;
mod passive;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weir_config::{BackendConfig, EndpointState};
use weir_telemetry::BackendMetrics;
use weir_upstream::Conns;

use crate::clock;
use crate::pool::PoolQueue;

pub use admin::{AdminChange, AdminMode};

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
    /// Why (the health check's error text, "check passed", or the passive cause).
    pub reason: String,
}

/// One backend server of one pool.
pub struct Backend {
    pool: Arc<str>,
    address: Arc<str>,
    addr: SocketAddr,
    /// The weight of the newest config that lists this backend.
    weight: AtomicU32,
    /// [`BackendConfig::announced_weight`] of that config: what a change of clears the
    /// override.
    announced: AtomicU32,
    /// A weight set through the runtime API; 0 for none. Cleared by a reload that
    /// changes the configured weight (the file then says something new).
    weight_override: AtomicU32,
    backup: AtomicBool,
    up: AtomicBool,
    /// [`AdminMode`] as a byte; written only under `last`.
    admin: AtomicU8,
    /// [`EndpointState`] as a byte, from the newest table; written only under `last`.
    endpoint: AtomicU8,
    /// `up && admin == Ready && endpoint == Ready`: what strategies read. Written only
    /// under `last`, by transitions, admin and endpoint changes alike, so it never
    /// disagrees with any of them.
    routable: AtomicBool,
    /// `max_in_flight` of the newest config that lists this backend; 0 for unlimited.
    /// Read beside `routable` by every pick ([`Backend::is_pickable`]).
    max_in_flight: AtomicU32,
    /// The queue of the backend's pool, woken when a slot is released. Set once, by
    /// the first table built with the backend (a backend belongs to one pool name).
    queue: OnceLock<Arc<PoolQueue>>,
    /// Requests of a sticky pool waiting for this backend's own slot (their cookie names
    /// it): a release wakes one of them before the pool's queue.
    pinned_waiting: AtomicU32,
    pinned: tokio::sync::Notify,
    /// Woken when the backend leaves maint, so its probe task checks it at once instead
    /// of at the next tick (it was not probed meanwhile).
    maint_left: tokio::sync::Notify,
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
    /// Consecutive connect failures, resets and timeouts of live traffic.
    passive_failures: AtomicU32,
    /// Down because passive checking ejected it (cleared when it comes back up).
    ejected: AtomicBool,
    /// Passive ejections so far (the next ejection lasts longer); forgotten after the
    /// backend has served long enough without one.
    ejections: AtomicU32,
    /// [`clock::now_ms`] of the last transition to up (creation for a new backend).
    up_since_ms: AtomicU64,
    /// Set when the backend comes back up; the pool clears it once slow start is over.
    /// Backends that are not ramping cost one relaxed load per pick.
    ramping: AtomicBool,
    /// [`clock::now_ms`] of the last transition to down.
    down_since_ms: AtomicU64,
    /// Time spent down, up to the last transition to up.
    downtime_ms: AtomicU64,
    /// Unix time in milliseconds when this object was created (start or reload).
    created_unix_ms: u64,
    /// Written only by transitions (which hold it, so they are serialised) and read by
    /// `/status`: never touched per request.
    last: Mutex<LastTransition>,
    /// Idle connections to this backend, kept here so they live exactly as long as the
    /// backend (and across reloads that keep it). Which settings they were made with
    /// is their own business ([`Conns::adopt`]).
    conns: Conns,
    /// The metric handles, created with the backend (by the registry) and dropped with
    /// it, which removes its series. `None` only for backends built outside a registry
    /// with metrics (unit tests).
    metrics: Option<BackendMetrics>,
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
    /// A new backend of `pool`, initially up (see [`Backend::observe`]), without metrics.
    pub fn new(pool: &str, config: &BackendConfig) -> Self {
        Self::build(pool, config, None)
    }

    /// A new backend of `pool` whose state and traffic are also recorded in `metrics`
    /// (the handles for this pool and address).
    pub fn with_metrics(pool: &str, config: &BackendConfig, metrics: BackendMetrics) -> Self {
        // A new backend is up; handles interned from an earlier object for the same
        // labels (removed and re-added while an old table still runs) must agree.
        metrics.set_up(true);
        Self::build(pool, config, Some(metrics))
    }

    fn build(pool: &str, config: &BackendConfig, metrics: Option<BackendMetrics>) -> Self {
        Backend {
            pool: Arc::from(pool),
            address: Arc::from(config.address.as_str()),
            addr: config.addr,
            weight: AtomicU32::new(config.weight.get()),
            announced: AtomicU32::new(config.announced_weight),
            weight_override: AtomicU32::new(0),
            backup: AtomicBool::new(config.backup),
            up: AtomicBool::new(true),
            admin: AtomicU8::new(AdminMode::Ready.to_u8()),
            endpoint: AtomicU8::new(endpoint_to_u8(config.endpoint)),
            routable: AtomicBool::new(config.endpoint == EndpointState::Ready),
            max_in_flight: AtomicU32::new(0),
            queue: OnceLock::new(),
            pinned_waiting: AtomicU32::new(0),
            pinned: tokio::sync::Notify::new(),
            maint_left: tokio::sync::Notify::new(),
            in_flight: AtomicU32::new(0),
            successes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            fragile: AtomicBool::new(true),
            transitions: AtomicU64::new(0),
            passive_failures: AtomicU32::new(0),
            ejected: AtomicBool::new(false),
            ejections: AtomicU32::new(0),
            up_since_ms: AtomicU64::new(clock::now_ms()),
            ramping: AtomicBool::new(false),
            down_since_ms: AtomicU64::new(0),
            downtime_ms: AtomicU64::new(0),
            created_unix_ms: unix_ms(),
            last: Mutex::new(LastTransition::default()),
            conns: Conns::new(),
            metrics,
        }
    }

    /// The backend's metric handles (`None` outside a registry with metrics).
    #[inline]
    pub fn metrics(&self) -> Option<&BackendMetrics> {
        self.metrics.as_ref()
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

    /// The weight in force: the runtime override if one is set, else the weight of the
    /// newest config that lists this backend. Strategies copy it when a table is built.
    pub fn weight(&self) -> u32 {
        match self.weight_override.load(Ordering::Relaxed) {
            0 => self.weight.load(Ordering::Relaxed),
            w => w,
        }
    }

    /// The weight the configuration gives this backend.
    pub fn configured_weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Whether the newest table lists this backend as a hot standby.
    pub fn is_backup(&self) -> bool {
        self.backup.load(Ordering::Relaxed)
    }

    /// Records the settings of the newest table. Strategies keep their own copy of the
    /// weights, so a table built earlier keeps picking consistently.
    ///
    /// A new announced weight clears a runtime weight override (the operator edited
    /// the file since, or the SRV record of this backend changed, and the source wins;
    /// HAProxy without a state file loses the override on every reload). A configured
    /// weight that changed only because discovery re-scaled the set (another record's
    /// weight changed) keeps the override. Returns the override so cleared, if any.
    pub fn update_settings(&self, config: &BackendConfig) -> Option<u32> {
        self.set_endpoint(config.endpoint);
        self.weight.store(config.weight.get(), Ordering::Relaxed);
        let new = config.announced_weight;
        let old = self.announced.swap(new, Ordering::Relaxed);
        self.backup.store(config.backup, Ordering::Relaxed);
        if old == new {
            return None;
        }
        let cleared = self.weight_override.swap(0, Ordering::Relaxed);
        (cleared != 0).then_some(cleared)
    }

    /// Whether health checking (active or passive) considers the backend up.
    #[inline]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether the backend may be picked for a new request or connection: up, and not
    /// drained or in maintenance. The one flag strategies read.
    #[inline]
    pub fn is_routable(&self) -> bool {
        self.routable.load(Ordering::Relaxed)
    }

    /// Requests (HTTP) or connections (TCP) currently being served.
    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The most requests or connections served at once; `None` for unlimited.
    pub fn max_in_flight(&self) -> Option<u32> {
        match self.max_in_flight.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// Sets the limit of the newest table (`None`: unlimited). A lowered limit applies
    /// to new picks only; requests already in flight finish.
    pub fn set_max_in_flight(&self, limit: Option<std::num::NonZeroU32>) {
        let limit = limit.map_or(0, std::num::NonZeroU32::get);
        self.max_in_flight.store(limit, Ordering::Relaxed);
    }

    /// Whether the backend is below its `max_in_flight` (always, without one).
    #[inline]
    pub fn has_room(&self) -> bool {
        match self.max_in_flight.load(Ordering::Relaxed) {
            0 => true,
            limit => self.in_flight.load(Ordering::Relaxed) < limit,
        }
    }

    /// Whether a strategy may pick the backend: routable and below its limit. The one
    /// check every strategy makes per candidate; without a limit it costs one more
    /// relaxed load than `is_routable`.
    #[inline]
    pub fn is_pickable(&self) -> bool {
        self.is_routable() && self.has_room()
    }

    /// Lets the backend wake `queue` when it releases a slot (the first call wins).
    pub(crate) fn join_queue(&self, queue: &Arc<PoolQueue>) {
        let _ = self.queue.set(Arc::clone(queue));
    }

    /// Counts one request or connection until the returned guard is dropped, whatever
    /// the limit (a pool without limits, or a retry on the same backend's slot).
    #[inline]
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.counted()
    }

    /// Like [`Backend::start_request`] if the backend is below its limit, else `None`.
    /// A compare-and-swap against the limit: two requests that both saw the last free
    /// slot cannot both take it. Sequentially consistent, like the release and the
    /// queue's count, so a waiter never misses the slot a release frees.
    #[inline]
    pub fn try_start_request(self: &Arc<Self>) -> Option<InFlight> {
        let limit = self.max_in_flight.load(Ordering::Relaxed);
        if limit == 0 {
            return Some(self.start_request());
        }
        let mut now = self.in_flight.load(Ordering::SeqCst);
        loop {
            if now >= limit {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                now,
                now + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Some(self.counted()),
                Err(actual) => now = actual,
            }
        }
    }

    #[inline]
    fn counted(self: &Arc<Self>) -> InFlight {
        if let Some(m) = &self.metrics {
            m.in_flight_inc();
        }
        InFlight {
            backend: Arc::clone(self),
        }
    }

    /// Counts one more request waiting for this backend's slot (see `PoolQueue` for the
    /// ordering) until the guard is dropped.
    pub(crate) fn pin_waiter(&self) -> PinnedWaiter<'_> {
        self.pinned_waiting.fetch_add(1, Ordering::SeqCst);
        PinnedWaiter { backend: self }
    }

    /// Requests waiting for this backend's own slot now.
    pub(crate) fn pinned_waiting(&self) -> u32 {
        self.pinned_waiting.load(Ordering::SeqCst)
    }

    /// What a request waiting for this backend's slot waits on.
    pub(crate) fn pinned_notify(&self) -> &tokio::sync::Notify {
        &self.pinned
    }

    /// In or out of rotation: requests waiting for this backend look again (out of it,
    /// they are balanced over the others).
    fn wake_pinned(&self) {
        if self.pinned_waiting.load(Ordering::SeqCst) > 0 {
            self.pinned.notify_waiters();
        }
    }

    /// Back in rotation: a waiter of the pool's queue may now find room here.
    fn wake_queue(&self) {
        if let Some(q) = self.queue.get() {
            q.kick_all();
        }
    }

    /// Number of up/down transitions so far.
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }

    /// When and why the backend last changed state.
    pub fn last_transition(&self) -> LastTransition {
        self.lock_last().clone()
    }

    /// The mutex that serialises every state change (a poisoned one still holds a
    /// whole value: it is replaced, never edited in place).
    fn lock_last(&self) -> std::sync::MutexGuard<'_, LastTransition> {
        match self.last.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
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
    /// Only one health task writes the counters of a given backend; the state itself may
    /// also be changed by passive ejection meanwhile, which `transition` arbitrates.
    pub fn observe(&self, ok: bool, rise: u32, fall: u32, reason: &str) -> Option<Transition> {
        let fragile = self.fragile.swap(false, Ordering::Relaxed);
        if self.is_up() {
            if ok {
                if self.failures.load(Ordering::Relaxed) != 0 {
                    self.failures.store(0, Ordering::Relaxed);
                }
                return None;
            }
            let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if fragile || failures >= fall.max(1) {
                return self.transition(false, reason, false, || true);
            }
            None
        } else {
            if !ok {
                self.successes.store(0, Ordering::Relaxed);
                return None;
            }
            let successes = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
            if successes >= rise.max(1) {
                return self.transition(true, reason, false, || true);
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
        self.transition(up, reason, false, || true)
    }

    /// The one place the up/down state changes. Returns the transition, or `None` if
    /// another writer got there first (the state already is `up`) or `allowed`, checked
    /// under the lock, says no.
    ///
    /// Coming up starts slow start (the pool decides whether it applies) and adds the
    /// time spent down to the downtime; going down records when. Slow-start marks are
    /// written before the state, so a pick that sees the backend up also sees it ramping.
    fn transition(
        &self,
        up: bool,
        reason: &str,
        ejected: bool,
        allowed: impl FnOnce() -> bool,
    ) -> Option<Transition> {
        let mut last = self.lock_last();
        if self.is_up() == up || !allowed() {
            return None;
        }
        let now = clock::now_ms();
        self.successes.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.passive_failures.store(0, Ordering::Relaxed);
        if up {
            let since = self.down_since_ms.load(Ordering::Relaxed);
            self.downtime_ms
                .fetch_add(now.saturating_sub(since), Ordering::Relaxed);
            self.up_since_ms.store(now, Ordering::Relaxed);
            self.ramping.store(true, Ordering::Relaxed);
            self.ejected.store(false, Ordering::Relaxed);
        } else {
            self.down_since_ms.store(now, Ordering::Relaxed);
            self.ramping.store(false, Ordering::Relaxed);
            self.ejected.store(ejected, Ordering::Relaxed);
        }
        self.up.store(up, Ordering::Release);
        self.routable.store(
            up && self.admin_mode() == AdminMode::Ready
                && self.endpoint_state() == EndpointState::Ready,
            Ordering::Release,
        );
        self.transitions.fetch_add(1, Ordering::Relaxed);
        self.wake_pinned();
        if let Some(m) = &self.metrics {
            m.set_up(up);
        }
        if up {
            self.wake_queue();
        }
        *last = LastTransition {
            at_unix_ms: unix_ms(),
            reason: reason.to_owned(),
        };
        Some(if up { Transition::Up } else { Transition::Down })
    }

    /// Unix time in milliseconds of the last transition, or of the backend's creation if
    /// it never changed state: "in this state since".
    pub fn since_unix_ms(&self) -> u64 {
        match self.last_transition().at_unix_ms {
            0 => self.created_unix_ms,
            at => at,
        }
    }

    /// Total time spent down, including the current down period.
    pub fn downtime(&self) -> Duration {
        let mut ms = self.downtime_ms.load(Ordering::Relaxed);
        if !self.is_up() {
            let since = self.down_since_ms.load(Ordering::Relaxed);
            ms = ms.saturating_add(clock::now_ms().saturating_sub(since));
        }
        Duration::from_millis(ms)
    }

    /// Whether the backend came back up recently and may still be in slow start (the
    /// pool, which knows the slow-start time, clears it once the ramp is over).
    #[inline]
    pub fn is_ramping(&self) -> bool {
        self.ramping.load(Ordering::Relaxed)
    }

    /// [`clock::now_ms`] of the last transition to up or return to rotation from drain
    /// or maint (creation for a new backend).
    pub fn up_since_ms(&self) -> u64 {
        self.up_since_ms.load(Ordering::Relaxed)
    }

    /// Ends slow start for this backend.
    pub(crate) fn stop_ramping(&self) {
        self.ramping.store(false, Ordering::Relaxed);
    }

    /// The backend's idle connections (the proxy's HTTP paths check them out and give
    /// them back; the pool's transport decides which may be reused).
    #[inline]
    pub fn conns(&self) -> &Conns {
        &self.conns
    }
}

fn endpoint_to_u8(state: EndpointState) -> u8 {
    match state {
        EndpointState::Ready => 0,
        EndpointState::NotReady => 1,
        EndpointState::Terminating => 2,
    }
}

fn endpoint_from_u8(v: u8) -> EndpointState {
    match v {
        1 => EndpointState::NotReady,
        2 => EndpointState::Terminating,
        _ => EndpointState::Ready,
    }
}

// === impl Backend (endpoint state) ===

impl Backend {
    /// What the backend's source says of it (always ready for a backend of the file).
    pub fn endpoint_state(&self) -> EndpointState {
        endpoint_from_u8(self.endpoint.load(Ordering::Relaxed))
    }

    /// Whether failing open (every backend down) may still pick this backend: one an
    /// operator drained or put in maintenance, or a terminating endpoint, stays out even
    /// then; a not-ready endpoint counts as down, like a failed health check.
    pub fn may_fail_open(&self) -> bool {
        self.admin_mode() == AdminMode::Ready && self.endpoint_state() != EndpointState::Terminating
    }

    /// Records the endpoint state of the newest table (a discovery update) and folds it
    /// into `routable`. Back in rotation (not ready or terminating before) starts slow
    /// start, as a recovery does.
    fn set_endpoint(&self, state: EndpointState) {
        if self.endpoint_state() == state {
            return;
        }
        let _serialised = self.lock_last();
        self.endpoint
            .store(endpoint_to_u8(state), Ordering::Relaxed);
        let routable =
            self.is_up() && self.admin_mode() == AdminMode::Ready && state == EndpointState::Ready;
        if routable && !self.is_routable() {
            // Written before `routable`, as `transition` does.
            self.up_since_ms.store(clock::now_ms(), Ordering::Relaxed);
            self.ramping.store(true, Ordering::Relaxed);
        }
        self.routable.store(routable, Ordering::Release);
        self.wake_pinned();
    }
}

/// The wall clock in Unix milliseconds, for `/status` (0 if the clock is before 1970).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
        // Sequentially consistent with the queue's waiter count (see `PoolQueue`); the
        // same instruction as a relaxed one on x86.
        self.backend.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(m) = &self.backend.metrics {
            m.in_flight_dec();
        }
        if self.backend.pinned_waiting.load(Ordering::SeqCst) > 0 {
            self.backend.pinned.notify_one();
        } else if let Some(q) = self.backend.queue.get() {
            q.released();
        }
    }
}

/// A request's place among those waiting for one backend's slot.
pub(crate) struct PinnedWaiter<'b> {
    backend: &'b Backend,
}

impl Drop for PinnedWaiter<'_> {
    fn drop(&mut self) {
        self.backend.pinned_waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests;
