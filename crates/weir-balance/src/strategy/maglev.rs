//! Consistent hashing: Google's Maglev lookup table, with bounded load.
//!
//! **Why Maglev and not a ring.** A ring with virtual nodes needs a binary search over
//! `N × vnodes` points per pick and spreads unevenly unless the vnode count is large;
//! Maglev's lookup is one hash and one array index (O(1)), its table gives each backend
//! a share within a fraction of a percent of its weight, and removing one of N backends
//! moves about 1/N of the keys (Eisenbud et al., NSDI 2016). Weights are honoured by
//! slot share: in each round of the table fill a backend of weight `w` takes `w` turns.
//!
//! The table is built once per pool when a routing table is built (off the data path),
//! from the backends' addresses hashed with a fixed-key hash ([`hash64`], FNV-1a with a
//! 64-bit finaliser). It is therefore the same in every process and every Rust version,
//! so two balancers in front of the same backends agree on each key.
//!
//! **Preference order and health.** A key's first choice is its table slot; when that
//! backend is not pickable (down, draining, over its load bound) the next slots of the
//! table are walked, taking the first other pickable backend. Table slots are spread
//! pseudo-randomly, so a down backend's keys are spread over the others by their share,
//! and come back to it as soon as it is up again (nothing is rebuilt on health changes).
//!
//! **Bounded load** (Mirrokni, Thorup and Zadimoghaddam, "Consistent hashing with
//! bounded loads", as Vimeo runs it in HAProxy): a backend whose in-flight load is over
//! `balance_factor ×` its weighted share of the pool's in-flight load (plus this
//! request, rounded up) passes the key on. The pool's total is summed only when the
//! key's backend already has more in flight than the smallest possible bound, so an
//! unloaded pool pays one atomic load per pick.

use std::sync::Arc;

use crate::Backend;

use super::weight_of;

/// Smallest table: a prime well above any pool weir expects, so shares are even.
pub const MIN_TABLE_SIZE: usize = 65_537;

/// Table slots per backend at least (Maglev's paper uses M ≥ 100 N).
pub const SLOTS_PER_BACKEND: usize = 100;

/// Table slots a pick walks looking for a pickable backend before it scans the pool.
pub const WALK_LIMIT: usize = 256;

/// The check every pick applies to a candidate: in rotation and below its
/// `max_in_flight` ([`Backend::is_pickable`]), as for every strategy; a key whose
/// backend is full goes on in the key's order, as an overloaded one does.
#[inline]
pub(crate) fn is_pickable(backend: &Backend) -> bool {
    backend.is_pickable()
}

/// A stable 64-bit hash of `bytes`: FNV-1a, then a finaliser (splitmix64) so nearby
/// keys (`user1`, `user2`) land far apart in the table.
#[inline]
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finaliser.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The Maglev table of one pool, and its bounded-load factor.
#[derive(Debug)]
pub struct Maglev {
    /// Backend index per slot; empty when the pool has no backends.
    table: Box<[u32]>,
    /// `balance_factor` in thousandths, so the bound is integer arithmetic.
    factor_milli: u64,
}

// === impl Maglev ===

impl Maglev {
    /// The table over `backends` (their addresses and current weights), bounding load
    /// at `balance_factor ×` the weighted average.
    pub fn new(backends: &[Arc<Backend>], balance_factor: f64) -> Self {
        // Validated to 1..=100; the clamp keeps a hand-built config sane too.
        let factor_milli = (balance_factor.clamp(1.0, 100.0) * 1000.0).round() as u64;
        Maglev {
            table: build(backends).into_boxed_slice(),
            factor_milli,
        }
    }

    /// Number of slots (a prime).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the table has no slots (a pool with no backends).
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The backend at `key`'s slot, ignoring health and load.
    #[inline]
    pub fn lookup(&self, key: u64) -> Option<usize> {
        let len = self.table.len() as u64;
        if len == 0 {
            return None;
        }
        self.table.get((key % len) as usize).map(|&i| i as usize)
    }

    /// Index of the backend for the key hashed to `key`: its slot's backend if it is
    /// pickable and within its load bound, else the next such one in table order.
    /// `None` exactly when no backend is pickable.
    #[inline]
    pub fn pick(&self, key: u64, backends: &[Arc<Backend>]) -> Option<usize> {
        self.pick_where(key, backends, |_| true)
    }

    /// Like [`Maglev::pick`], among the backends `allowed` accepts (a retry excludes the
    /// backends it tried).
    #[inline]
    pub fn pick_where(
        &self,
        key: u64,
        backends: &[Arc<Backend>],
        allowed: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let len = self.table.len();
        if len == 0 || backends.is_empty() {
            return None;
        }
        let start = (key % len as u64) as usize;
        let ok = |i: usize| allowed(i) && backends.get(i).is_some_and(|b| is_pickable(b));
        // The first pickable backend in preference order, to fall back on if every
        // pickable backend is over its bound (the bound then cannot be met).
        let mut first_ok = None;
        let mut last = usize::MAX;
        for k in 0..len.min(WALK_LIMIT) {
            let i = self.table.get((start + k) % len).map_or(0, |&i| i as usize);
            if i == last || !ok(i) {
                last = i;
                continue;
            }
            last = i;
            if self.within_bound(i, backends) {
                return Some(i);
            }
            first_ok.get_or_insert(i);
        }
        if first_ok.is_some() {
            return first_ok;
        }
        // The walk met no pickable backend (nearly all down): scan from the key's own.
        let n = backends.len();
        let first = (key % n as u64) as usize;
        (0..n).map(|k| (first + k) % n).find(|&i| ok(i))
    }

    /// Whether backend `i` may take one more request: its in-flight load plus one is at
    /// most `factor ×` its weighted share of the pickable backends' load plus one.
    #[inline]
    fn within_bound(&self, i: usize, backends: &[Arc<Backend>]) -> bool {
        let Some(b) = backends.get(i) else {
            return false;
        };
        let mine = u64::from(b.in_flight()) + 1;
        // The smallest bound is factor × (1 / N) rounded up, at least 1: an idle backend
        // always fits, without reading the others.
        if mine <= 1 {
            return true;
        }
        let (mut total, mut weights) = (1u64, 0u64);
        for o in backends.iter().filter(|o| is_pickable(o)) {
            total += u64::from(o.in_flight());
            weights += u64::from(weight_of(o));
        }
        let w = u64::from(weight_of(b));
        // mine ≤ ceil(factor × total × w / weights), in thousandths.
        let bound = (self.factor_milli * total * w).div_ceil(1000 * weights.max(1));
        mine <= bound
    }
}

/// The smallest prime ≥ `n`.
fn prime_at_least(n: usize) -> usize {
    let is_prime = |m: usize| {
        m >= 2
            && (2..)
                .take_while(|d| d * d <= m)
                .all(|d| !m.is_multiple_of(d))
    };
    (n..).find(|&m| is_prime(m)).unwrap_or(n)
}

/// Fills the table: each backend walks its own permutation of the slots (offset and
/// skip from two hashes of its address) and takes the next free slot, `weight` turns
/// per round, until every slot is taken.
fn build(backends: &[Arc<Backend>]) -> Vec<u32> {
    let n = backends.len();
    if n == 0 {
        return Vec::new();
    }
    let m = prime_at_least(MIN_TABLE_SIZE.max(SLOTS_PER_BACKEND.saturating_mul(n)));
    let mm = m as u64;
    let perms: Vec<(u64, u64)> = backends
        .iter()
        .map(|b| {
            let h = hash64(b.address().as_bytes());
            let offset = h % mm;
            let skip = mix(h ^ 0x9e37_79b9_7f4a_7c15) % (mm - 1) + 1;
            (offset, skip)
        })
        .collect();
    let weights: Vec<u32> = backends.iter().map(|b| weight_of(b)).collect();
    let mut next = vec![0u64; n];
    let mut table = vec![u32::MAX; m];
    let mut filled = 0;
    while filled < m {
        for i in 0..n {
            for _ in 0..weights[i] {
                let (offset, skip) = perms[i];
                // A permutation of 0..m (m prime, 0 < skip < m): a free slot is found
                // within m steps while any is left.
                let mut c = (offset + next[i] * skip) % mm;
                while table[c as usize] != u32::MAX {
                    next[i] += 1;
                    c = (offset + next[i] * skip) % mm;
                }
                table[c as usize] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == m {
                    return table;
                }
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::backends;

    fn shares(m: &Maglev, n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for &i in m.table.iter() {
            counts[i as usize] += 1;
        }
        counts
    }

    #[test]
    fn the_table_is_a_prime_of_at_least_100_slots_per_backend() {
        assert_eq!(Maglev::new(&backends(&[1; 3]), 1.25).len(), 65_537);
        assert_eq!(Maglev::new(&backends(&[1; 1000]), 1.25).len(), 100_003);
        assert!(Maglev::new(&[], 1.25).is_empty());
    }

    #[test]
    fn equal_weights_get_equal_shares_and_weights_scale_them() {
        let m = Maglev::new(&backends(&[1; 5]), 1.25);
        for s in shares(&m, 5) {
            let dev = (s as f64 - 65_537.0 / 5.0).abs() / (65_537.0 / 5.0);
            assert!(dev < 0.01, "share {s} off by {dev}");
        }
        let m = Maglev::new(&backends(&[1, 2, 3]), 1.25);
        let s = shares(&m, 3);
        let ratio = |a: usize, b: usize| a as f64 / b as f64;
        assert!((ratio(s[1], s[0]) - 2.0).abs() < 0.05, "{s:?}");
        assert!((ratio(s[2], s[0]) - 3.0).abs() < 0.05, "{s:?}");
    }

    #[test]
    fn removing_one_of_n_moves_about_one_nth_of_the_keys() {
        let all = backends(&[1; 10]);
        let before = Maglev::new(&all, 1.25);
        // The same addresses without the fourth: indices shift, so compare addresses.
        let rest: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .map(|(_, b)| b.clone())
            .collect();
        let after = Maglev::new(&rest, 1.25);
        let keys = 10_000;
        let moved = (0..keys)
            .filter(|k| {
                let h = hash64(format!("user-{k}").as_bytes());
                let a = all[before.lookup(h).unwrap()].address();
                let b = rest[after.lookup(h).unwrap()].address();
                a != b
            })
            .count();
        // 1/10 must move (the removed backend's keys); Maglev moves a little more.
        assert!(moved as f64 <= 1.5 * keys as f64 / 10.0, "moved {moved}");
        assert!(moved as f64 >= 0.9 * keys as f64 / 10.0, "moved {moved}");
    }

    #[test]
    fn the_table_is_the_same_every_time_it_is_built() {
        let b = backends(&[1, 2, 1, 4]);
        assert_eq!(Maglev::new(&b, 1.25).table, Maglev::new(&b, 1.25).table);
        // Pinned: the hash must not change between releases (a pair of balancers and
        // a rolling upgrade must agree on every key).
        assert_eq!(hash64(b"weir"), 0xfb3884be95259539);
        assert_ne!(hash64(b"user1"), hash64(b"user2"));
    }

    /// A key whose slot is backend `i`'s.
    fn key_of(m: &Maglev, i: usize) -> u64 {
        (0..).map(mix).find(|&h| m.lookup(h) == Some(i)).unwrap()
    }

    #[test]
    fn a_down_backends_keys_move_and_come_back() {
        let b = backends(&[1; 4]);
        let m = Maglev::new(&b, 1.25);
        let key = key_of(&m, 2);
        assert_eq!(m.pick(key, &b), Some(2));
        b[2].force(false, "test");
        let other = m.pick(key, &b).unwrap();
        assert_ne!(other, 2);
        assert_eq!(m.pick(key, &b), Some(other), "stable while down");
        b[2].force(true, "test");
        assert_eq!(m.pick(key, &b), Some(2));
        for x in &b {
            x.force(false, "test");
        }
        assert_eq!(m.pick(key, &b), None);
    }

    #[test]
    fn a_backend_over_its_bound_passes_the_key_on() {
        let b = backends(&[1; 4]);
        let m = Maglev::new(&b, 1.25);
        let key = key_of(&m, 1);
        // Backend 1 holds 4 requests, the others none: bound ceil(1.25 × 5 / 4) = 2.
        let held: Vec<_> = (0..4).map(|_| b[1].start_request()).collect();
        let spilled = m.pick(key, &b).unwrap();
        assert_ne!(spilled, 1);
        drop(held);
        assert_eq!(m.pick(key, &b), Some(1));
    }
}
