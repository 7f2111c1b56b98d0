//! Taking turns over a cycle of slots when some backends are down.
//!
//! Round robin and smooth weighted round robin both hand out turns from a fixed cycle
//! (`0 1 2 ...` for round robin, nginx's interleaving for weighted). When a turn lands on
//! a backend that is down, simply walking forward to the next slot would give the dead
//! backend's whole share to its neighbour (with 4 backends and one down, one survivor
//! would get half the traffic). Instead the turn is re-drawn from a second rotation over
//! the *same* cycle that only accepts backends that are up. Over a cycle, the orphaned
//! turns are therefore spread over the survivors in proportion to their own slots: round
//! robin stays even and weighted keeps the weight ratio among the backends that are up,
//! without rebuilding anything when health changes and with no lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::Backend;

/// How many slots of the second rotation one pick may try before falling back to a scan
/// (only reached when nearly every backend of a large pool is down).
pub const SKIP_LIMIT: usize = 64;

/// The two rotations of a cycle.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    next: AtomicUsize,
    skip: AtomicUsize,
}

impl Turns {
    /// The next turn's backend among `len` slots, `slot` mapping a slot to a backend index.
    #[inline]
    pub(crate) fn take(
        &self,
        len: usize,
        slot: impl Fn(usize) -> usize,
        backends: &[Arc<Backend>],
    ) -> Option<usize> {
        if len == 0 || backends.is_empty() {
            return None;
        }
        let up = |i: usize| backends.get(i).is_some_and(|b| b.is_pickable());
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let i = slot(turn % len);
        if up(i) {
            return Some(i);
        }
        for _ in 0..len.min(SKIP_LIMIT) {
            let i = slot(self.skip.fetch_add(1, Ordering::Relaxed) % len);
            if up(i) {
                return Some(i);
            }
        }
        // Nearly everything is down: any backend that is up, scanning from this turn.
        let n = backends.len();
        let first = turn % n;
        (0..n).map(|k| (first + k) % n).find(|&i| up(i))
    }

    /// The next turn's slot, ignoring health (least connections' tie order).
    #[inline]
    pub(crate) fn raw(&self, len: usize) -> Option<usize> {
        (len > 0).then(|| self.next.fetch_add(1, Ordering::Relaxed) % len)
    }
}
