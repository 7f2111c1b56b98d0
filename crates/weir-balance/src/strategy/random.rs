//! Random choice in proportion to weight.
//!
//! The cumulative weights are computed once in [`Random::new`]; a pick draws one number
//! from a lock-free generator (splitmix64 on an atomic counter, see `sample.rs`) and
//! binary-searches it: `O(log n)`, no lock, no allocation. If the drawn backend is down
//! the draw is repeated up to [`REDRAWS`] times, which almost always succeeds while most
//! of the weight is up; otherwise an exact weighted draw among the up backends follows
//! (two `O(n)` passes), so the shares stay proportional to weight among the survivors
//! and `None` means exactly that nothing is up.

use std::sync::Arc;

use crate::Backend;

use super::sample::{Cumulative, Rng};

/// Draws over all backends before an exact draw among the up ones.
pub const REDRAWS: usize = 4;

/// Weighted random state of one pool.
#[derive(Debug)]
pub struct Random {
    weights: Cumulative,
    rng: Rng,
}

// === impl Random ===

impl Random {
    /// A weighted random choice over `backends`, seeded from process entropy.
    pub fn new(backends: &[Arc<Backend>]) -> Self {
        Random {
            weights: Cumulative::new(backends),
            rng: Rng::from_entropy(),
        }
    }

    /// The same with a fixed seed, so tests see a reproducible sequence.
    pub fn with_seed(backends: &[Arc<Backend>], seed: u64) -> Self {
        Random {
            weights: Cumulative::new(backends),
            rng: Rng::with_seed(seed),
        }
    }

    /// Index of a random up backend, drawn in proportion to weight.
    #[inline]
    pub fn pick(&self, backends: &[Arc<Backend>]) -> Option<usize> {
        for _ in 0..REDRAWS {
            let i = self.weights.draw(&self.rng)?;
            if backends.get(i).is_some_and(|b| b.is_pickable()) {
                return Some(i);
            }
        }
        self.pick_among_up(backends)
    }

    /// Exact weighted draw restricted to the backends that are up.
    ///
    /// Health may change between the two passes; then the second pass may run past the
    /// draw, and the last up backend seen is taken rather than none.
    fn pick_among_up(&self, backends: &[Arc<Backend>]) -> Option<usize> {
        let n = backends.len().min(self.weights.len());
        let weight = |i: usize| self.weights.weight(i);
        let up_total: u64 = (0..n)
            .filter(|&i| backends[i].is_pickable())
            .map(weight)
            .sum();
        if up_total == 0 {
            return None;
        }
        let mut r = self.rng.below(up_total);
        let mut last_up = None;
        for i in (0..n).filter(|&i| backends[i].is_pickable()) {
            let w = weight(i);
            if r < w {
                return Some(i);
            }
            r -= w;
            last_up = Some(i);
        }
        last_up
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::backends;

    fn counts(s: &Random, pool: &[Arc<Backend>], picks: usize) -> Vec<usize> {
        crate::test_support::counts(pool.len(), picks, || s.pick(pool))
    }

    #[test]
    fn random_shares_follow_weights() {
        let pool = backends(&[5, 3, 1, 1]);
        let s = Random::with_seed(&pool, 42);
        let got = counts(&s, &pool, 100_000);
        for (count, weight) in got.iter().zip([5, 3, 1, 1]) {
            let want = 100_000 * weight / 10;
            assert!(count.abs_diff(want) < want / 20, "{got:?}");
        }
    }

    #[test]
    fn random_with_same_seed_repeats() {
        let pool = backends(&[1, 2, 3]);
        let (a, b) = (Random::with_seed(&pool, 7), Random::with_seed(&pool, 7));
        let seq = |s: &Random| (0..50).map(|_| s.pick(&pool)).collect::<Vec<_>>();
        assert_eq!(seq(&a), seq(&b));
    }

    #[test]
    fn random_mostly_down_pool_still_finds_survivors_by_weight() {
        let mut weights = vec![256; 50];
        weights.extend([1, 3]);
        let pool = backends(&weights);
        for b in &pool[..50] {
            b.force(false, "test");
        }
        let s = Random::with_seed(&pool, 1);
        let got = counts(&s, &pool, 40_000);
        assert_eq!(got[..50].iter().sum::<usize>(), 0);
        assert!(got[50].abs_diff(10_000) < 1_000, "{got:?}");
        assert!(got[51].abs_diff(30_000) < 1_000, "{got:?}");
    }

    #[test]
    fn random_all_down_is_none() {
        let pool = backends(&[1, 2]);
        pool.iter().for_each(|b| {
            b.force(false, "test");
        });
        assert_eq!(Random::with_seed(&pool, 3).pick(&pool), None);
        assert_eq!(Random::new(&[]).pick(&[]), None);
    }
}
