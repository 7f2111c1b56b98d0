//! The values behind every series: plain atomics, each bump one relaxed add.
//!
//! Relaxed ordering is enough: a scrape reads each value on its own, and Prometheus
//! never assumes two series were read at one instant. A histogram keeps per-bucket (not
//! cumulative) counts, so an observation touches one bucket and the sum; the scrape adds
//! them up, which also makes `_count` equal the `+Inf` bucket by construction.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Latency buckets in seconds, from 25 µs to 30 s (1–2.5–5 steps).
///
/// Fine enough at the bottom to tell a 40 µs proxy hop from a 400 µs one (Traefik's and
/// the client library's defaults start at 5 ms), coarse enough at the top to stay at
/// 20 series per histogram.
pub const LATENCY_BUCKETS: [f64; 19] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A monotonic count.
#[derive(Debug, Default)]
pub(super) struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub(super) fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub(super) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The two counters of a family split by a two-valued `result` label (a change that took
/// or not): counted from a `bool`, written in label order.
#[derive(Debug, Default)]
pub(super) struct CounterPair {
    yes: Counter,
    no: Counter,
}

impl CounterPair {
    /// Counts one event on the `yes` or the `no` side.
    #[inline]
    pub(super) fn count(&self, yes: bool) {
        if yes { &self.yes } else { &self.no }.inc();
    }

    /// `(label value, counter)` for both sides, `yes` first, given the two label values.
    pub(super) fn by_label(&self, labels: [&'static str; 2]) -> [(&'static str, &Counter); 2] {
        [(labels[0], &self.yes), (labels[1], &self.no)]
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub(super) struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub(super) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(super) fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(super) fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

/// A latency histogram over [`LATENCY_BUCKETS`].
#[derive(Debug, Default)]
pub(super) struct Histogram {
    /// Observations per bucket; the last one is `(30 s, +Inf)`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Nanoseconds, so the sum is one integer add (584 years before it wraps).
    sum_ns: AtomicU64,
}

/// What a scrape reads from a [`Histogram`].
pub(super) struct HistogramSnapshot {
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`]; the `+Inf` one is `count`.
    pub(super) cumulative: [u64; LATENCY_BUCKETS.len()],
    pub(super) count: u64,
    pub(super) sum_seconds: f64,
}

impl Histogram {
    #[inline]
    pub(super) fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        // First bucket whose upper bound is >= the value (`le` is inclusive).
        let i = LATENCY_BUCKETS.partition_point(|&bound| bound < secs);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0; LATENCY_BUCKETS.len()];
        let mut running = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            running += bucket.load(Ordering::Relaxed);
            if let Some(slot) = cumulative.get_mut(i) {
                *slot = running;
            }
        }
        HistogramSnapshot {
            cumulative,
            count: running,
            sum_seconds: Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed)).as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_on_a_bucket_bound_counts_in_that_bucket() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_micros(101));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative[1], 0, "le=0.00005");
        assert_eq!(s.cumulative[2], 1, "le=0.0001 holds 100 µs");
        assert_eq!(s.cumulative[3], 2);
        assert_eq!(s.cumulative[LATENCY_BUCKETS.len() - 1], 2, "le=30");
        assert_eq!(s.count, 3, "+Inf holds 60 s");
        assert!((s.sum_seconds - 60.000_201).abs() < 1e-9);
    }
}
