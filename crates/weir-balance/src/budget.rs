//! The retry budget of a pool: retries may add at most `percent`% on top of the pool's
//! request rate over the last second, plus `min_per_second` (Envoy's `retry_budget`,
//! tower's `TpsBudget`), so a pool whose backends all fail never sees a retry storm.
//!
//! The window is ten 100 ms buckets of (requests, retries) in atomics: recording is one
//! `fetch_add` on the current bucket (plus a reset when a bucket comes round again), and
//! a retry sums the ten buckets. No mutex, no allocation. Buckets are reused by epoch
//! (`now / 100 ms`); a bucket whose epoch is older than the window counts as empty.
//! Races at a bucket's rollover can lose a count or two, which a budget tolerates.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use weir_config::RetryBudgetConfig;

use crate::clock;

/// Width of one bucket.
const BUCKET_MS: u64 = 100;
/// Buckets in the window: 10 × 100 ms = 1 s.
const BUCKETS: usize = 10;

#[derive(Debug, Default)]
struct Bucket {
    /// `now_ms / BUCKET_MS` of the counts held; a different epoch means stale.
    epoch: AtomicU64,
    requests: AtomicU32,
    retries: AtomicU32,
}

/// Requests and retries over the last second, shared by every table that has the pool.
#[derive(Debug, Default)]
pub struct RetryBudget {
    buckets: [Bucket; BUCKETS],
}

// === impl RetryBudget ===

impl RetryBudget {
    /// An empty budget (only `min_per_second` retries allowed until requests arrive).
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request (a first attempt, not a retry).
    #[inline]
    pub fn record_request(&self) {
        self.current(clock::now_ms())
            .requests
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget if it allows one now. `false` means the budget is
    /// exhausted: the caller must not retry.
    ///
    /// The retry is counted first and withdrawn if it does not fit, so concurrent callers
    /// cannot all slip through on the same last unit.
    pub fn try_retry(&self, config: &RetryBudgetConfig) -> bool {
        let now = clock::now_ms();
        let bucket = self.current(now);
        bucket.retries.fetch_add(1, Ordering::Relaxed);
        let (requests, retries) = self.window(now);
        let allowed = u64::from(config.min_per_second)
            .saturating_add(requests.saturating_mul(u64::from(config.percent)) / 100);
        if retries <= allowed {
            return true;
        }
        bucket.retries.fetch_sub(1, Ordering::Relaxed);
        false
    }

    /// `(requests, retries)` over the last second.
    pub fn window(&self, now_ms: u64) -> (u64, u64) {
        let epoch = now_ms / BUCKET_MS;
        let oldest = epoch.saturating_sub(BUCKETS as u64 - 1);
        let (mut requests, mut retries) = (0u64, 0u64);
        for b in &self.buckets {
            let e = b.epoch.load(Ordering::Acquire);
            if (oldest..=epoch).contains(&e) {
                requests += u64::from(b.requests.load(Ordering::Relaxed));
                retries += u64::from(b.retries.load(Ordering::Relaxed));
            }
        }
        (requests, retries)
    }

    /// The bucket for `now_ms`, emptied first if it still holds an older epoch.
    #[inline]
    fn current(&self, now_ms: u64) -> &Bucket {
        let epoch = now_ms / BUCKET_MS;
        let bucket = &self.buckets[(epoch % BUCKETS as u64) as usize];
        let seen = bucket.epoch.load(Ordering::Acquire);
        if seen != epoch
            && bucket
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            bucket.requests.store(0, Ordering::Relaxed);
            bucket.retries.store(0, Ordering::Relaxed);
        }
        bucket
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(percent: u32, min_per_second: u32) -> RetryBudgetConfig {
        RetryBudgetConfig {
            percent,
            min_per_second,
        }
    }

    fn retries_allowed(budget: &RetryBudget, config: &RetryBudgetConfig) -> usize {
        (0..10_000).take_while(|_| budget.try_retry(config)).count()
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_pool_gets_the_floor_of_retries_per_second() {
        let budget = RetryBudget::new();
        assert_eq!(retries_allowed(&budget, &config(20, 10)), 10);
        assert!(!budget.try_retry(&config(20, 10)), "stays exhausted");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_add_at_most_percent_of_requests_plus_floor() {
        let budget = RetryBudget::new();
        for _ in 0..100 {
            budget.record_request();
        }
        assert_eq!(retries_allowed(&budget, &config(20, 10)), 30);
        let b2 = RetryBudget::new();
        for _ in 0..100 {
            b2.record_request();
        }
        assert_eq!(retries_allowed(&b2, &config(20, 0)), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn budget_refills_as_the_window_slides() {
        let budget = RetryBudget::new();
        let cfg = config(0, 5);
        assert_eq!(retries_allowed(&budget, &cfg), 5);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(retries_allowed(&budget, &cfg), 0, "still within the second");
        tokio::time::advance(Duration::from_millis(600)).await;
        assert_eq!(
            retries_allowed(&budget, &cfg),
            5,
            "old retries left the window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requests_older_than_a_second_no_longer_count() {
        let budget = RetryBudget::new();
        for _ in 0..100 {
            budget.record_request();
        }
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert_eq!(retries_allowed(&budget, &config(50, 0)), 0);
        assert_eq!(budget.window(clock::now_ms()), (0, 0));
    }
}
