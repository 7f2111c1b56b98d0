//! What a pool's backend discovery last did, for `/status`: kept in the pool's
//! [`PoolShared`](super::PoolShared), so it survives reloads and is there for every table
//! that has the pool.
//!
//! The discovery task writes it after each lookup; `/status` reads it. Both are rare
//! (a lookup every few seconds, a scrape), so a mutex around a small struct is enough and
//! keeps the snapshot consistent (an error never appears with the previous lookup's time).

use std::sync::Mutex;

/// The discovery state of one pool, as `/status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoverySnapshot {
    /// What is looked up (`dns srv _http._tcp.web`); empty before the first lookup.
    pub source: String,
    /// Unix ms of the last lookup, whatever its result; 0 before the first.
    pub last_lookup_unix_ms: u64,
    /// Unix ms of the last answer that gave backends (the one serving); 0 if none yet.
    pub last_success_unix_ms: u64,
    /// Unix ms of the last change of the discovered set applied; 0 if none yet.
    pub last_change_unix_ms: u64,
    /// The last lookup's error, `None` once a lookup succeeds again.
    pub last_error: Option<String>,
    /// Backends the last good answer gave.
    pub backends: usize,
}

/// A pool's [`DiscoverySnapshot`], shared by its discovery task and `/status`.
#[derive(Debug, Default)]
pub struct DiscoveryStatus {
    state: Mutex<DiscoverySnapshot>,
}

// === impl DiscoveryStatus ===

impl DiscoveryStatus {
    /// A copy of the state now.
    pub fn snapshot(&self) -> DiscoverySnapshot {
        self.lock().clone()
    }

    /// Changes the state under the lock.
    pub fn update(&self, change: impl FnOnce(&mut DiscoverySnapshot)) {
        change(&mut self.lock());
    }

    /// A poisoned lock still holds a usable snapshot (plain data).
    fn lock(&self) -> std::sync::MutexGuard<'_, DiscoverySnapshot> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
