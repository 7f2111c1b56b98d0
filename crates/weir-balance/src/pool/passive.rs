//! Passive ejection: the one place that decides whether a backend whose live traffic
//! keeps failing leaves rotation.
//!
//! Each failure is counted on the backend without a lock. Only when the count reaches
//! `consecutive_failures` is the pool's ejection lock taken (shared across reloads, see
//! [`super::PoolShared`]), so that two backends reaching the threshold at once are
//! weighed one after the other against `max_ejected_percent`. A backend is ejected only
//! if the backends down for any reason, plus this one, stay within
//! `floor(backends × max_ejected_percent / 100)` (HAProxy and Envoy also refuse an
//! ejection that would pass their cap; unlike Envoy, weir never ejects the last half of
//! a small pool, so a pool of one backend is never ejected at the default 50%).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Pool;
use crate::Backend;

/// The longest ejection, as a multiple of `base_ejection_time`.
pub const MAX_EJECTION_MULTIPLIER: u32 = 10;

/// What a reported failure led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passive {
    /// Counted; the backend stays in rotation (or passive checking is off).
    Counted,
    /// The backend reached the threshold but ejecting it would pass the cap.
    Capped {
        /// Consecutive failures of the backend.
        failures: u32,
        /// Backends of the pool down now, for any reason.
        down: usize,
        /// The most the cap lets be down.
        allowed: usize,
    },
    /// The backend was taken out of rotation now.
    Ejected {
        /// The transition reason, as logged and shown in `/status`.
        reason: String,
        /// Which ejection of this backend this is (1 for the first).
        ejection: u32,
        /// When to put it back: `None` in a pool with active checks, which bring it
        /// back after `rise` passing probes.
        return_after: Option<Duration>,
    },
}

impl Pool {
    /// Records a connect failure, reset or timeout of live traffic on `backend` (one of
    /// this pool's), and ejects it if it reached the threshold and the cap allows.
    /// `last` (the error) is only formatted when the backend is ejected.
    pub fn report_failure(&self, backend: &Arc<Backend>, last: &dyn fmt::Display) -> Passive {
        let passive = &self.settings.passive;
        if passive.consecutive_failures == 0 {
            return Passive::Counted;
        }
        let failures = backend.passive_failure();
        if failures < passive.consecutive_failures || !backend.is_up() {
            return Passive::Counted;
        }
        let _decision = self.shared.eject_lock();
        let total = self.primaries.len() + self.backups.len();
        // Drained and maintained backends take no traffic either: counting only the
        // down ones would let the last routable backend be ejected.
        let down = self.backends().filter(|b| !b.is_routable()).count();
        let allowed = total * passive.max_ejected_percent as usize / 100;
        if down + 1 > allowed {
            return Passive::Capped {
                failures,
                down,
                allowed,
            };
        }
        let reason = format!("passive: {failures} consecutive failures (last: {last})");
        let forget_after = passive
            .base_ejection_time
            .saturating_mul(MAX_EJECTION_MULTIPLIER);
        let Some(ejection) = backend.eject(&reason, forget_after) else {
            return Passive::Counted;
        };
        let return_after = self.health_check.is_none().then(|| {
            passive
                .base_ejection_time
                .saturating_mul(ejection.min(MAX_EJECTION_MULTIPLIER))
        });
        Passive::Ejected {
            reason,
            ejection,
            return_after,
        }
    }

    /// Records a success of live traffic on `backend`: its consecutive count restarts.
    #[inline]
    pub fn report_success(&self, backend: &Backend) {
        backend.passive_success();
    }
}
