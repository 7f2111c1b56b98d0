//! Configuration load and reload outcome: the series an operator alerts on after `SIGHUP`;
//! and the runtime API's writes, the other way the served configuration changes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use super::value::CounterPair;

/// Handles for `weir_config_*`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ConfigMetrics {
    pub(super) state: Arc<ConfigState>,
}

/// What `weir_config_*` read at scrape time.
#[derive(Debug, Default)]
pub(super) struct ConfigState {
    /// `weir_config_reloads_total`, `result` `success` and `failure`.
    pub(super) reloads: CounterPair,
    pub(super) last_successful: AtomicBool,
    /// `weir_admin_changes_total`, `result` `applied` and `unauthorized`.
    pub(super) admin_changes: CounterPair,
    /// `f64` bits of the Unix time of the last success; 0 (0.0) before the first.
    pub(super) last_success_timestamp: AtomicU64,
    /// The `hash` label of `weir_config_info`: the configuration being served.
    hash: Mutex<Option<String>>,
}

impl ConfigState {
    pub(super) fn hash(&self) -> MutexGuard<'_, Option<String>> {
        // Only ever replaced whole, so a poisoned lock still holds a valid hash.
        match self.hash.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl ConfigMetrics {
    /// The configuration loaded at start-up (not a reload, so not counted in
    /// `weir_config_reloads_total`; Prometheus' own `config_last_reload_*` behave alike).
    pub fn loaded(&self, hash: &str) {
        self.mark_current(hash);
    }

    /// A reload applied: counts it and records the new configuration's `hash`.
    pub fn reload_succeeded(&self, hash: &str) {
        self.state.reloads.count(true);
        self.mark_current(hash);
    }

    /// A reload rejected: counts it; the old configuration (and its hash) stays.
    pub fn reload_failed(&self) {
        self.state.reloads.count(false);
        self.state.last_successful.store(false, Ordering::Relaxed);
    }

    /// A runtime API write was applied.
    pub fn admin_change_applied(&self) {
        self.state.admin_changes.count(true);
    }

    /// A runtime API write was refused for a missing or wrong token.
    pub fn admin_change_unauthorized(&self) {
        self.state.admin_changes.count(false);
    }

    fn mark_current(&self, hash: &str) {
        // Exactly one `weir_config_info` series: the configuration being served.
        *self.state.hash() = Some(hash.to_owned());
        self.state.last_successful.store(true, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.state
            .last_success_timestamp
            .store(now.to_bits(), Ordering::Relaxed);
    }
}

/// A short, stable hash of a configuration file's bytes for `weir_config_info{hash}` and
/// `/status`: 16 hex digits of FNV-1a 64. Not cryptographic; it only has to tell two
/// configurations apart on a dashboard, and be the same on every build and host.
pub fn config_hash(bytes: &[u8]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    format!("{hash:016x}")
}
