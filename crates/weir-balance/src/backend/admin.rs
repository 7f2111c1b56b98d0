//! The operator's runtime word on a backend (the admin API): its [`AdminMode`] and a
//! weight override.
//!
//! Both are atomics on the [`Backend`], written under the same mutex as health
//! transitions, which also keep the `routable` flag that strategies read in step: an
//! admin change and a health change can never leave it disagreeing with either.

use std::sync::atomic::Ordering;

use super::Backend;
use crate::clock;

/// What an operator asked of a backend through the runtime API (HAProxy's
/// `set server state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdminMode {
    /// In rotation whenever it is up (the default).
    #[default]
    Ready,
    /// No new requests or connections; in-flight ones finish; health checks go on.
    Drain,
    /// Out of rotation and not probed.
    Maint,
}

// === impl AdminMode ===

impl AdminMode {
    /// The name used in the API body, `/status` and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminMode::Ready => "ready",
            AdminMode::Drain => "drain",
            AdminMode::Maint => "maint",
        }
    }

    pub(super) fn to_u8(self) -> u8 {
        match self {
            AdminMode::Ready => 0,
            AdminMode::Drain => 1,
            AdminMode::Maint => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => AdminMode::Drain,
            2 => AdminMode::Maint,
            _ => AdminMode::Ready,
        }
    }
}

impl std::fmt::Display for AdminMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one runtime change did: the values before and after (equal when unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminChange {
    /// The mode before the change.
    pub old_mode: AdminMode,
    /// The mode after it.
    pub new_mode: AdminMode,
    /// The weight in force before the change.
    pub old_weight: u32,
    /// The weight in force after it.
    pub new_weight: u32,
}

impl AdminChange {
    /// Whether the weight in force changed (strategies then need a new table).
    pub fn reweighted(&self) -> bool {
        self.old_weight != self.new_weight
    }
}

// === impl Backend (admin) ===

impl Backend {
    /// The weight set through the runtime API, if any.
    pub fn weight_override(&self) -> Option<u32> {
        match self.weight_override.load(Ordering::Relaxed) {
            0 => None,
            w => Some(w),
        }
    }

    /// Resolves when the backend next leaves maint (at once if it did since the last
    /// call): the health checker's cue to probe without waiting for its schedule.
    pub async fn left_maint(&self) {
        self.maint_left.notified().await;
    }

    /// What the operator asked of this backend (ready unless changed at runtime).
    pub fn admin_mode(&self) -> AdminMode {
        AdminMode::from_u8(self.admin.load(Ordering::Relaxed))
    }

    /// Applies a runtime change: `mode` and/or a weight override (`1..=256`, checked by
    /// the caller). Returns the values before and after.
    ///
    /// Leaving `maint` makes the backend fragile again, as a new one is: it was not
    /// probed meanwhile, so its first failed probe takes it out at once. Coming back into
    /// rotation from drain or maint starts slow start, as a recovery does. A weight change
    /// only reaches the strategies with the next table built (the caller rebuilds).
    pub fn set_admin(&self, mode: Option<AdminMode>, weight: Option<u32>) -> AdminChange {
        let _serialised = self.lock_last();
        let (old_mode, old_weight) = (self.admin_mode(), self.weight());
        let new_mode = mode.unwrap_or(old_mode);
        if let Some(w) = weight {
            self.weight_override.store(w.max(1), Ordering::Relaxed);
        }
        if old_mode == AdminMode::Maint && new_mode != AdminMode::Maint {
            self.fragile.store(true, Ordering::Relaxed);
        }
        self.admin.store(new_mode.to_u8(), Ordering::Relaxed);
        let routable = self.is_up()
            && new_mode == AdminMode::Ready
            && self.endpoint_state() == weir_config::EndpointState::Ready;
        if routable && !self.is_routable() {
            // Back in rotation after drain or maint: ramp up as after a recovery (the
            // pool decides whether slow start applies). Written before `routable`, as
            // `transition` does, so a pick that sees it routable also sees it ramping.
            self.up_since_ms.store(clock::now_ms(), Ordering::Relaxed);
            self.ramping.store(true, Ordering::Relaxed);
        }
        self.routable.store(routable, Ordering::Release);
        self.wake_pinned();
        if routable {
            self.wake_queue();
        }
        if old_mode == AdminMode::Maint && new_mode != AdminMode::Maint {
            // A stored permit if the probe task is busy: it then skips its next wait.
            self.maint_left.notify_one();
        }
        AdminChange {
            old_mode,
            new_mode,
            old_weight,
            new_weight: self.weight(),
        }
    }
}
