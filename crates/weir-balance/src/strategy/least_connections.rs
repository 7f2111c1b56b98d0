//! Least connections: fewest in-flight requests (HTTP) or open connections (TCP),
//! divided by weight.
//!
//! Loads are compared by cross-multiplying (`a.in_flight × b.weight < b.in_flight ×
//! a.weight`), never by dividing, so the comparison is exact and cheap.
//!
//! **Small pools (≤ [`EXACT_SCAN_MAX`] backends): exact.** Every backend is looked at;
//! the scan starts at the backend whose turn it is in the pool's smooth weighted cycle
//! (one `fetch_add`, see `weighted.rs`) and keeps the first of equally loaded backends.
//! So equal backends take turns instead of the first in config order always winning,
//! and ties are broken in proportion to weight, as nginx's `least_conn` does: an idle
//! pool with weights 5,1,1 is served `a a b a c a a`. (The cycle of ≤ 32 backends has at
//! most 8,192 slots.)
//!
//! **Large pools: power of [`CHOICES`] choices.** A scan of 1,000 backends reads 1,000
//! atomics on cache lines other cores write, which breaks the `pick` budget of 100 ns.
//! Above the threshold we do what Envoy's least-request balancer does: sample
//! `CHOICES` up backends at random and take the less loaded. Mitzenmacher's "power of
//! two choices" result is that this already brings the maximum load exponentially
//! close to the optimum, and random sampling breaks ties fairly by itself. Samples are
//! drawn in proportion to weight (binary search over cumulative weights), so an idle
//! pool is still spread by weight, and the load comparison then divides by weight too.
//! If [`SAMPLE_DRAWS`] draws find no up backend (most of the pool is down), an exact
//! scan decides, so `None` still means exactly that nothing is up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::Backend;

use super::sample::{Cumulative, Rng};
use super::Weighted;

/// Largest pool scanned exactly; larger pools sample.
pub const EXACT_SCAN_MAX: usize = 32;

/// Up backends sampled per pick in a large pool.
pub const CHOICES: usize = 2;

/// Random draws a large-pool pick makes looking for `CHOICES` up backends.
pub const SAMPLE_DRAWS: usize = 8;

/// Least-connections state of one pool.
#[derive(Debug)]
pub struct LeastConn {
    weights: Cumulative,
    /// Where the exact scan starts: the smooth weighted cycle, built for small pools only.
    order: Weighted,
    /// Where the exact scan starts when there is no cycle (a large pool falling back).
    next: AtomicUsize,
    rng: Rng,
}

// === impl LeastConn ===

impl LeastConn {
    /// Least connections over `backends`, sampling (large pools) seeded from entropy.
    pub fn new(backends: &[Arc<Backend>]) -> Self {
        Self::with_rng(backends, Rng::from_entropy())
    }

    /// The same with a fixed seed for the sampling, for reproducible tests.
    pub fn with_seed(backends: &[Arc<Backend>], seed: u64) -> Self {
        Self::with_rng(backends, Rng::with_seed(seed))
    }

    fn with_rng(backends: &[Arc<Backend>], rng: Rng) -> Self {
        let order = if backends.len() <= EXACT_SCAN_MAX {
            Weighted::new(backends)
        } else {
            Weighted::default()
        };
        LeastConn {
            weights: Cumulative::new(backends),
            order,
            next: AtomicUsize::new(0),
            rng,
        }
    }

    /// Index of the least loaded up backend (exact or sampled, see the module docs).
    #[inline]
    pub fn pick(&self, backends: &[Arc<Backend>]) -> Option<usize> {
        if backends.len() <= EXACT_SCAN_MAX {
            return self.scan(backends);
        }
        let mut best: Option<Load> = None;
        let mut found = 0;
        for _ in 0..SAMPLE_DRAWS {
            let Some(i) = self.weights.draw(&self.rng) else {
                break;
            };
            let Some(b) = backends.get(i).filter(|b| b.is_pickable()) else {
                continue;
            };
            let load = Load::of(i, b, self.weights.weight(i));
            if best.is_none_or(|best| load.lighter_than(&best)) {
                best = Some(load);
            }
            found += 1;
            if found == CHOICES {
                break;
            }
        }
        match best {
            Some(best) => Some(best.index),
            None => self.scan(backends),
        }
    }

    /// Exact scan from the backend whose turn it is; the first of equally loaded backends
    /// wins.
    fn scan(&self, backends: &[Arc<Backend>]) -> Option<usize> {
        let n = backends.len();
        if n == 0 {
            return None;
        }
        let start = match self.order.turn() {
            Some(i) => i,
            None => self.next.fetch_add(1, Ordering::Relaxed),
        };
        let mut i = start % n;
        let mut best: Option<Load> = None;
        for _ in 0..n {
            let b = &backends[i];
            if b.is_pickable() {
                let load = Load::of(i, b, self.weight(i));
                if best.is_none_or(|best| load.lighter_than(&best)) {
                    best = Some(load);
                }
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
        best.map(|best| best.index)
    }

    /// The weight taken at build time; 1 for a backend outside that slice.
    fn weight(&self, i: usize) -> u64 {
        if i < self.weights.len() {
            self.weights.weight(i)
        } else {
            1
        }
    }
}

/// A backend's load as a fraction `in_flight / weight`.
#[derive(Debug, Clone, Copy)]
struct Load {
    index: usize,
    in_flight: u64,
    weight: u64,
}

impl Load {
    #[inline]
    fn of(index: usize, backend: &Backend, weight: u64) -> Self {
        Load {
            index,
            in_flight: u64::from(backend.in_flight()),
            weight,
        }
    }

    /// `self.in_flight / self.weight < other.in_flight / other.weight`, without division
    /// (both products fit: in-flight < 2³², weight ≤ 256).
    #[inline]
    fn lighter_than(&self, other: &Load) -> bool {
        self.in_flight * other.weight < other.in_flight * self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{backends, names};
    use crate::InFlight;

    fn load(b: &Arc<Backend>, n: usize) -> Vec<InFlight> {
        (0..n).map(|_| b.start_request()).collect()
    }

    #[test]
    fn least_conn_picks_least_loaded() {
        let pool = backends(&[1, 1, 1]);
        let _held = [load(&pool[0], 2), load(&pool[2], 1)];
        let s = LeastConn::new(&pool);
        for _ in 0..5 {
            assert_eq!(s.pick(&pool), Some(1));
        }
    }

    #[test]
    fn least_conn_divides_by_weight() {
        let pool = backends(&[3, 1]);
        // a: 2/3 < b: 1/1.
        let _held = [load(&pool[0], 2), load(&pool[1], 1)];
        let s = LeastConn::new(&pool);
        assert_eq!(s.pick(&pool), Some(0));
        let _more = load(&pool[0], 2);
        // a: 4/3 > b: 1/1.
        assert_eq!(s.pick(&pool), Some(1));
    }

    #[test]
    fn least_conn_ties_take_turns_and_idle_ties_follow_weights() {
        for (case, weights, n, want) in [
            ("ties take turns", [1, 1, 1], 6, "a b c a b c"),
            ("idle ties follow weights", [5, 1, 1], 7, "a a b a c a a"),
        ] {
            let pool = backends(&weights);
            let s = LeastConn::new(&pool);
            assert_eq!(names(&pool, (0..n).map(|_| s.pick(&pool))), want, "{case}");
        }
    }

    #[test]
    fn least_conn_skips_down_even_if_idle() {
        let pool = backends(&[1, 1]);
        let _held = load(&pool[1], 5);
        pool[0].force(false, "test");
        let s = LeastConn::new(&pool);
        assert_eq!(s.pick(&pool), Some(1));
        pool[1].force(false, "test");
        assert_eq!(s.pick(&pool), None);
    }

    #[test]
    fn large_pool_sampling_prefers_idle_backends() {
        let pool = backends(&[1; 64]);
        let _held: Vec<_> = pool[..32].iter().map(|b| load(b, 10)).collect();
        let s = LeastConn::with_seed(&pool, 9);
        let loaded = (0..10_000)
            .filter(|_| s.pick(&pool).expect("all up") < 32)
            .count();
        // Only when both samples are loaded (1/4 of the time) may a loaded one win.
        assert!(loaded.abs_diff(2_500) < 300, "{loaded}");
    }

    #[test]
    fn large_pool_mostly_down_falls_back_to_scan() {
        let pool = backends(&[1; 100]);
        pool[..99].iter().for_each(|b| {
            b.force(false, "test");
        });
        let s = LeastConn::with_seed(&pool, 5);
        for _ in 0..100 {
            assert_eq!(s.pick(&pool), Some(99));
        }
    }
}
