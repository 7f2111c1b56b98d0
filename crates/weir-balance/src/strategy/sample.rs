//! Lock-free randomness and weight tables shared by the `random` and
//! `least_connections` strategies.
//!
//! The generator is splitmix64 over one `AtomicU64` advanced by `fetch_add`: every caller
//! gets its own position in the sequence with a single atomic instruction, so there is
//! no lock, no `thread_local` and no CAS loop. Its output is not cryptographic, only
//! well spread, which is all load balancing needs.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Backend;

use super::weight_of;

/// splitmix64's increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A shared random number generator: splitmix64 on an atomic counter.
#[derive(Debug)]
pub(crate) struct Rng {
    state: AtomicU64,
}

// === impl Rng ===

impl Rng {
    /// A generator whose sequence is fully determined by `seed`.
    pub(crate) fn with_seed(seed: u64) -> Self {
        Rng {
            state: AtomicU64::new(seed),
        }
    }

    /// A generator seeded from process entropy (std's per-process hash keys), the
    /// clock and the generator's own address, so that pools built at the same instant
    /// still draw different sequences.
    pub(crate) fn from_entropy() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        hasher.write_u128(nanos);
        let rng = Rng::with_seed(0);
        hasher.write_usize(std::ptr::addr_of!(rng) as usize);
        rng.state.store(hasher.finish(), Ordering::Relaxed);
        rng
    }

    /// The next 64 random bits.
    #[inline]
    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`), by Lemire's multiply-shift: no division, and
    /// a bias below `bound / 2^64`, far under anything a load balancer could notice.
    #[inline]
    pub(crate) fn below(&self, bound: u64) -> u64 {
        debug_assert!(bound > 0, "callers check for an empty range first");
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// Cumulative weights of a slice of backends: `ends[i]` is the sum of the weights of
/// backends `0..=i`, so a draw `r` in `0..total` lands on the first `i` with
/// `ends[i] > r`, found by binary search.
#[derive(Debug, Default)]
pub(crate) struct Cumulative {
    ends: Box<[u64]>,
}

// === impl Cumulative ===

impl Cumulative {
    /// Reads the backends' weights now; later weight changes need a new table.
    pub(crate) fn new(backends: &[Arc<Backend>]) -> Self {
        let mut sum = 0u64;
        let ends = backends
            .iter()
            .map(|b| {
                sum += u64::from(weight_of(b));
                sum
            })
            .collect();
        Cumulative { ends }
    }

    /// Sum of all weights; 0 for an empty slice.
    #[inline]
    pub(crate) fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Number of backends.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The weight the table holds for backend `i`.
    #[inline]
    pub(crate) fn weight(&self, i: usize) -> u64 {
        match i {
            0 => self.ends.first().copied().unwrap_or(0),
            _ => self.ends[i] - self.ends[i - 1],
        }
    }

    /// A backend index drawn in proportion to weight, up or not; `None` if empty.
    #[inline]
    pub(crate) fn draw(&self, rng: &Rng) -> Option<usize> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let r = rng.below(total);
        let i = self.ends.partition_point(|&end| end <= r);
        debug_assert!(i < self.ends.len(), "r < total = the last end");
        Some(i)
    }
}
