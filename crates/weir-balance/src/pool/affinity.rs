//! Keyed picks: a consistent-hash pool choosing by the request's affinity key.
//!
//! The proxy extracts the key the pool's `hash_on` names (see [`Pool::hash_on`]), hashes
//! it with [`crate::strategy::maglev::hash64`] and passes the hash here. The pool-wide
//! rules of [`Pool::pick`] still apply (backups only when no primary is up, fail-open),
//! except slow start: a ramping backend keeps its keys, since sending them elsewhere
//! would break the affinity the operator asked for. Without a key the pool balances
//! round robin. A retry after a failed attempt takes [`Pool::pick_excluding`], as for
//! every strategy: the key's backend just failed it, any other is as good.

use std::sync::Arc;

use weir_config::HashOn;

use super::Pool;
use crate::Backend;

impl Pool {
    /// What the pool hashes to choose a backend, if it is a consistent-hash pool.
    #[inline]
    pub fn hash_on(&self) -> Option<&HashOn> {
        self.hash_on.as_ref()
    }

    /// Slots of the primaries' Maglev table (`/status`), for a consistent-hash pool.
    pub fn maglev_table_size(&self) -> Option<usize> {
        self.primary_strategy.maglev().map(|m| m.len())
    }

    /// Chooses a backend for the request whose key hashed to `key` (`None`: it has no
    /// key, round robin).
    #[inline]
    pub fn pick_keyed(&self, key: Option<u64>) -> Option<&Arc<Backend>> {
        let Some(key) = key else {
            return self.pick();
        };
        if let Some(i) = self.primary_strategy.pick_keyed(key, &self.primaries) {
            return self.primaries.get(i);
        }
        if let Some(i) = self.backup_strategy.pick_keyed(key, &self.backups) {
            return self.backups.get(i);
        }
        self.pick()
    }
}
