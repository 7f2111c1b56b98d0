//! Slow start: a backend that came back up takes a share of traffic that grows from
//! [`MIN_SHARE_PERMILLE`] to full over the pool's `slow_start` (HAProxy's `slowstart`).
//!
//! It works for every strategy without touching them: after the strategy picks a
//! ramping backend, the pick is kept with probability `f = max(10%, elapsed / slow_start)`,
//! otherwise the pool picks again, at most [`REPICKS`] times, and then keeps the last
//! pick, so a pool whose only live backend is ramping still serves. When a strategy
//! picks the same rejected backend again (least connections favours the emptiest, which
//! a recovered backend is), another backend that is up is taken instead. A backend's
//! share therefore grows about in proportion to `f`. Backends not ramping cost one
//! relaxed load per pick; the ramping flag is cleared once the ramp is over.

use std::sync::Arc;
use std::time::Duration;

use super::Pool;
use crate::strategy::sample::Rng;
use crate::{clock, Backend};

/// The share (in ‰ of its full share) a backend gets the moment it comes back.
pub const MIN_SHARE_PERMILLE: u64 = 100;

/// Further picks after a ramping backend is declined, before the last pick is kept.
pub const REPICKS: usize = 3;

/// The shared generator for slow-start draws (lock-free, one `fetch_add` per draw).
fn rng() -> &'static Rng {
    static RNG: std::sync::OnceLock<Rng> = std::sync::OnceLock::new();
    RNG.get_or_init(Rng::from_entropy)
}

impl Pool {
    /// Keeps `picked`, or picks again according to its ramp (see the module docs).
    #[cold]
    pub(super) fn slow_start<'a>(
        &'a self,
        mut picked: &'a Arc<Backend>,
        ramp: Duration,
    ) -> &'a Arc<Backend> {
        for _ in 0..REPICKS {
            if !picked.is_ramping() || accepts(picked, ramp) {
                return picked;
            }
            let declined = picked;
            picked = match self.pick_up() {
                Some(b) if !Arc::ptr_eq(b, declined) => b,
                _ => match self.other_up(declined) {
                    Some(b) => b,
                    None => return declined,
                },
            };
        }
        picked
    }

    /// Whether `backend` is still ramping up under this pool's `slow_start`.
    pub fn in_slow_start(&self, backend: &Backend) -> bool {
        match self.settings.slow_start {
            Some(ramp) => {
                backend.is_up()
                    && backend.is_ramping()
                    && share_permille(backend, ramp, clock::now_ms()) < 1000
            }
            None => false,
        }
    }

    /// Another backend that is up, in the tier (primaries or backups) `declined` is in,
    /// starting from a random position so none is favoured.
    fn other_up(&self, declined: &Arc<Backend>) -> Option<&Arc<Backend>> {
        let tier: &[Arc<Backend>] = if self.primaries.iter().any(|b| b.is_routable()) {
            &self.primaries
        } else {
            &self.backups
        };
        let n = tier.len();
        if n == 0 {
            return None;
        }
        let start = usize::try_from(rng().below(n as u64)).unwrap_or(0);
        (0..n)
            .filter_map(|k| tier.get((start + k) % n))
            .find(|b| b.is_pickable() && !Arc::ptr_eq(b, declined))
    }
}

/// The backend's current share in ‰ of its full one: at least [`MIN_SHARE_PERMILLE`].
fn share_permille(backend: &Backend, ramp: Duration, now_ms: u64) -> u64 {
    let elapsed = now_ms.saturating_sub(backend.up_since_ms());
    let ramp_ms = clock::millis(ramp).max(1);
    (elapsed.saturating_mul(1000) / ramp_ms).clamp(MIN_SHARE_PERMILLE, 1000)
}

/// Draws whether to keep a pick of the ramping `backend`; ends its ramp when it is over.
fn accepts(backend: &Backend, ramp: Duration) -> bool {
    let share = share_permille(backend, ramp, clock::now_ms());
    if share >= 1000 {
        backend.stop_ramping();
        return true;
    }
    rng().below(1000) < share
}
