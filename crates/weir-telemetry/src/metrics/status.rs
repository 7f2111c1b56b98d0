//! Per-status-code counters of one `(listener, pool, backend)`: the `code` label of
//! `weir_http_requests_total`, counted without a lock or an allocation.
//!
//! The label is the exact code, so a slot per possible code (100–999) would be 900
//! atomics per route and backend. Three tiers instead, each lock-free:
//!
//! 1. the 30 codes real traffic is made of have a fixed slot, found through a constant
//!    table indexed by the code;
//! 2. any other code claims one of [`OTHER`] slots of a small open-addressed table with
//!    one compare-and-swap, and is counted there from then on (slots are never freed,
//!    so a code, once placed, is always found on the same probe path);
//! 3. only if a single route and backend return more than [`OTHER`] distinct unusual
//!    codes is a slot per code allocated, once.
//!
//! A code with a count of zero has no series, so codes never seen are not exposed.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::OnceLock;

/// Codes with a fixed slot.
const COMMON: [u16; 30] = [
    100, 101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408,
    409, 413, 422, 429, 431, 499, 500, 501, 502, 503, 504,
];

/// One past the largest code HTTP can carry (three digits).
const CODES: usize = 1000;

/// `SLOT[code]` is the index into [`COMMON`] plus one, or 0 for an uncommon code.
const SLOT: [u8; 600] = {
    let mut table = [0u8; 600];
    let mut i = 0;
    while i < COMMON.len() {
        table[COMMON[i] as usize] = i as u8 + 1;
        i += 1;
    }
    table
};

/// Slots for uncommon codes before the per-code array is allocated.
const OTHER: usize = 16;

/// Response counts of one `(listener, pool, backend)` by status code.
#[derive(Debug, Default)]
pub(super) struct StatusCounters {
    common: [AtomicU64; COMMON.len()],
    /// `(code, count)`; code 0 marks a free slot.
    other: [(AtomicU16, AtomicU64); OTHER],
    /// Counts indexed by code, once [`OTHER`] is full.
    overflow: OnceLock<Box<[AtomicU64]>>,
}

impl StatusCounters {
    /// Counts one response with `code`.
    #[inline]
    pub(super) fn inc(&self, code: u16) {
        let slot = SLOT.get(usize::from(code)).copied().unwrap_or(0);
        match self.common.get(usize::from(slot).wrapping_sub(1)) {
            Some(count) => {
                count.fetch_add(1, Ordering::Relaxed);
            }
            None => self.inc_other(code),
        }
    }

    fn inc_other(&self, code: u16) {
        if code == 0 || usize::from(code) >= CODES {
            // HTTP status codes have three digits; the parsers upstream guarantee it.
            debug_assert!(false, "status code {code} out of range");
            return;
        }
        let start = usize::from(code) % OTHER;
        for i in 0..OTHER {
            let (key, count) = &self.other[(start + i) % OTHER];
            let found = match key.load(Ordering::Acquire) {
                0 => match key.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => true,
                    Err(winner) => winner == code,
                },
                k => k == code,
            };
            if found {
                count.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.overflow_inc(code);
    }

    #[cold]
    fn overflow_inc(&self, code: u16) {
        let per_code = self
            .overflow
            .get_or_init(|| (0..CODES).map(|_| AtomicU64::new(0)).collect());
        if let Some(count) = per_code.get(usize::from(code)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every code counted at least once, ascending, with its count.
    pub(super) fn snapshot(&self) -> Vec<(u16, u64)> {
        let mut out: Vec<(u16, u64)> = COMMON
            .iter()
            .zip(&self.common)
            .map(|(&code, n)| (code, n.load(Ordering::Relaxed)))
            .collect();
        out.extend(
            self.other
                .iter()
                .map(|(k, n)| (k.load(Ordering::Acquire), n.load(Ordering::Relaxed)))
                .filter(|&(code, _)| code != 0),
        );
        if let Some(per_code) = self.overflow.get() {
            out.extend(
                (0u16..)
                    .zip(per_code.iter())
                    .map(|(code, n)| (code, n.load(Ordering::Relaxed))),
            );
        }
        out.retain(|&(_, n)| n > 0);
        out.sort_unstable_by_key(|&(code, _)| code);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_other_and_overflow_codes_are_all_counted_exactly() {
        let c = StatusCounters::default();
        c.inc(200);
        c.inc(200);
        c.inc(418);
        // 40 distinct uncommon codes: 16 fill the table, the rest overflow.
        let uncommon: Vec<u16> = (600..640).collect();
        for &code in &uncommon {
            for _ in 0..3 {
                c.inc(code);
            }
        }
        let got = c.snapshot();
        assert_eq!(got[0], (200, 2));
        assert_eq!(got[1], (418, 1));
        assert_eq!(got.len(), 2 + uncommon.len(), "one entry per code");
        assert!(got[2..].iter().zip(&uncommon).all(|(g, &u)| *g == (u, 3)));
    }

    #[test]
    fn every_common_code_has_its_own_slot() {
        assert!(COMMON.windows(2).all(|w| w[0] < w[1]));
        let c = StatusCounters::default();
        for code in COMMON {
            c.inc(code);
        }
        assert!(c.other.iter().all(|(k, _)| k.load(Ordering::Relaxed) == 0));
        assert_eq!(c.snapshot().len(), COMMON.len());
    }
}
