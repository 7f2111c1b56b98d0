//! Smooth weighted round robin, exactly as nginx interleaves it.
//!
//! Weights 5,1,1 give `a a b a c a a`: the heavy backend is interleaved with the light
//! ones, never sent a burst. nginx computes each pick by adding every weight to a running
//! score and taking the highest (ties: first in config order); the sequence is periodic
//! with period `sum(weights) / gcd(weights)`, so [`Weighted::new`] runs that algorithm
//! once over a whole period and stores the result. `pick` is then one `fetch_add` and an
//! index into the cycle.
//!
//! **Size.** Weights are `1..=256` and a pool may have 1,000 backends, so a cycle can hold
//! ~256k entries. Entries are backend indices stored as `u16` when the pool has at most
//! 65,536 backends (512 KiB at worst), `u32` beyond.
//!
//! **Build cost.** Backends of equal weight are picked in config order, one after the
//! other (their scores differ only by how often each was picked), so the build tracks
//! one candidate per *distinct* weight, and a kinetic tournament tree finds the highest
//! score per step in about `O(log distinct weights)`: 1,000 backends build in ~0.3 ms
//! with weights 1..=4 and ~12 ms in the worst case (256 distinct weights, a 128k-slot
//! cycle), inside the 50 ms reload budget.
//!
//! **Down backends.** The cycle is built with every backend. A turn that lands on a
//! down backend is re-drawn from a second rotation over the same cycle that accepts only
//! backends that are up (see `turns`), so over a cycle the orphaned turns are spread over
//! the survivors in proportion to their weights: with 5,2,3 and the first down, the
//! others get exactly 40% and 60%. No rebuild is needed when health changes.

use std::sync::Arc;

use crate::Backend;

use super::smooth::smooth_cycle;
use super::turns::Turns;
use super::weight_of;

/// Smooth weighted round-robin state of one pool.
#[derive(Debug, Default)]
pub struct Weighted {
    cycle: Cycle,
    turns: Turns,
}

/// One period of the smooth weighted sequence, as backend indices.
#[derive(Debug)]
enum Cycle {
    /// Pools of at most 65,536 backends: half the memory (and cache) of `Wide`.
    Narrow(Box<[u16]>),
    Wide(Box<[u32]>),
}

impl Default for Cycle {
    fn default() -> Self {
        Cycle::Narrow(Box::default())
    }
}

// === impl Cycle ===

impl Cycle {
    fn from_indices(indices: Vec<u32>) -> Self {
        let narrow: Result<Box<[u16]>, _> = indices.iter().map(|&i| u16::try_from(i)).collect();
        match narrow {
            Ok(narrow) => Cycle::Narrow(narrow),
            Err(_) => Cycle::Wide(indices.into_boxed_slice()),
        }
    }

    #[inline]
    fn len(&self) -> usize {
        match self {
            Cycle::Narrow(c) => c.len(),
            Cycle::Wide(c) => c.len(),
        }
    }

    /// The backend index in slot `slot` (`slot < len`).
    #[inline]
    fn get(&self, slot: usize) -> usize {
        match self {
            Cycle::Narrow(c) => usize::from(c[slot]),
            Cycle::Wide(c) => c[slot] as usize,
        }
    }
}

// === impl Weighted ===

impl Weighted {
    /// Precomputes one period of the sequence from the backends' current weights.
    pub fn new(backends: &[Arc<Backend>]) -> Self {
        let weights: Vec<u32> = backends.iter().map(|b| weight_of(b)).collect();
        Weighted {
            cycle: Cycle::from_indices(smooth_cycle(&weights)),
            turns: Turns::default(),
        }
    }

    /// Number of slots in one period: `sum(weights) / gcd(weights)`.
    pub fn cycle_len(&self) -> usize {
        self.cycle.len()
    }

    /// The backend whose turn it is, up or not; `None` for an empty pool. Least
    /// connections starts its scan there, so its ties follow the weights too.
    #[inline]
    pub(crate) fn turn(&self) -> Option<usize> {
        self.turns
            .raw(self.cycle.len())
            .map(|slot| self.cycle.get(slot))
    }

    /// Index of the backend whose turn it is, or, if it is down, of a survivor (see `turns`).
    #[inline]
    pub fn pick(&self, backends: &[Arc<Backend>]) -> Option<usize> {
        let cycle = &self.cycle;
        self.turns
            .take(cycle.len(), |slot| cycle.get(slot), backends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{backends, names};

    fn sequence(weights: &[u32], picks: usize) -> String {
        let pool = backends(weights);
        let s = Weighted::new(&pool);
        names(&pool, (0..picks).map(|_| s.pick(&pool)))
    }

    #[test]
    fn weighted_5_1_1_interleaves_like_nginx() {
        assert_eq!(sequence(&[5, 1, 1], 7), "a a b a c a a");
    }

    #[test]
    fn weighted_cycle_repeats() {
        assert_eq!(sequence(&[5, 1, 1], 14), "a a b a c a a a a b a c a a");
    }

    #[test]
    fn weighted_2_1_and_equal_weights() {
        assert_eq!(sequence(&[2, 1], 6), "a b a a b a");
        assert_eq!(sequence(&[1, 1, 1], 6), "a b c a b c");
        assert_eq!(sequence(&[3, 3, 3], 6), "a b c a b c");
    }

    #[test]
    fn weighted_cycle_is_reduced_by_gcd() {
        let pool = backends(&[10, 20, 30]);
        assert_eq!(Weighted::new(&pool).cycle_len(), 6);
        assert_eq!(sequence(&[10, 20, 30], 6), sequence(&[1, 2, 3], 6));
    }

    #[test]
    fn weighted_skips_down_backend_to_next_in_cycle() {
        let pool = backends(&[5, 1, 1]);
        pool[1].force(false, "test");
        let s = Weighted::new(&pool);
        let got = names(&pool, (0..7).map(|_| s.pick(&pool)));
        assert_eq!(got, "a a a a c a a", "b's slot passes to the a after it");
    }

    #[test]
    fn weighted_falls_back_when_long_runs_are_down() {
        let pool = backends(&[256, 1]);
        pool[0].force(false, "test");
        let s = Weighted::new(&pool);
        for _ in 0..600 {
            assert_eq!(s.pick(&pool), Some(1));
        }
        pool[1].force(false, "test");
        assert_eq!(s.pick(&pool), None);
    }

    #[test]
    fn large_pools_use_wide_indices() {
        let weights = vec![1; 70_000];
        let cycle = Cycle::from_indices(smooth_cycle(&weights));
        assert!(matches!(cycle, Cycle::Wide(_)));
        assert_eq!(cycle.get(69_999), 69_999);
        let pool = backends(&[1; 3]);
        assert!(matches!(Weighted::new(&pool).cycle, Cycle::Narrow(_)));
    }
}
