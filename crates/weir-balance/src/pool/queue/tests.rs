//! Limits and the queue: every strategy skips full backends, a reservation never
//! passes the limit even under a race, and a wait ends with a slot, a timeout, a full
//! queue, a client gone or a removed pool.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use weir_config::StrategyKind;

use super::*;
use crate::test_support::{backend_config, pool_config};

const KINDS: [StrategyKind; 4] = [
    StrategyKind::RoundRobin,
    StrategyKind::Weighted,
    StrategyKind::Random,
    StrategyKind::LeastConnections,
];

/// Pool `p` of `kind` over backends with these `(weight, backup)`, each limited to
/// `limit`, with a queue of `max` waiting at most `timeout`.
fn limited(kind: StrategyKind, spec: &[(u32, bool)], limit: u32, max: u32) -> Pool {
    let configs: Vec<_> = spec
        .iter()
        .enumerate()
        .map(|(i, &(w, backup))| backend_config(i, w, backup))
        .collect();
    let mut config = pool_config("p", kind, configs.clone());
    config.max_in_flight = NonZeroU32::new(limit);
    config.queue = weir_config::QueueConfig {
        max,
        timeout: Duration::from_millis(500),
    };
    let backends = configs
        .iter()
        .map(|c| {
            let b = Arc::new(Backend::new("p", c));
            b.set_max_in_flight(config.max_in_flight_of(c));
            b
        })
        .collect();
    Pool::new(&config, backends)
}

fn names(held: &[Reserved<'_>]) -> Vec<String> {
    let mut n: Vec<_> = held
        .iter()
        .map(|r| r.backend.address().to_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn every_strategy_fills_each_backend_to_its_limit_and_no_further() {
    for kind in KINDS {
        let pool = limited(kind, &[(5, false), (1, false), (1, false)], 2, 10);
        let held: Vec<_> = (0..6)
            .map(|_| pool.try_reserve().expect("room left"))
            .collect();
        assert_eq!(names(&held), ["a", "a", "b", "b", "c", "c"], "{kind:?}");
        assert!(pool
            .backends()
            .all(|b| b.in_flight() == 2 && !b.is_pickable()));
        assert_eq!(pool.try_reserve().err(), Some(Refused::Full), "{kind:?}");
        assert!(
            pool.pick().is_none(),
            "{kind:?}: no strategy picks a full backend"
        );
        drop(held);
        assert!(pool.try_reserve().is_ok(), "{kind:?}: slots freed");
    }
}

#[test]
fn backups_do_not_stand_in_for_busy_primaries() {
    let pool = limited(StrategyKind::RoundRobin, &[(1, false), (1, true)], 1, 10);
    let first = pool.try_reserve().expect("the primary has room");
    assert_eq!(first.backend.address(), "a");
    assert_eq!(pool.try_reserve().err(), Some(Refused::Full));
    pool.primaries()[0].force(false, "test");
    let standby = pool
        .try_reserve()
        .expect("the backup stands in for a dead primary");
    assert_eq!(standby.backend.address(), "b");
}

#[test]
fn a_pool_with_nothing_up_is_no_backend_not_full() {
    let pool = limited(StrategyKind::LeastConnections, &[(1, false)], 1, 10);
    pool.primaries()[0].force(false, "test");
    assert_eq!(pool.try_reserve().err(), Some(Refused::NoBackend));
}

#[test]
fn racing_reservations_never_pass_the_limit() {
    let pool = limited(StrategyKind::Random, &[(1, false), (1, false)], 3, 10);
    let peak = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..2_000 {
                    if let Ok(r) = pool.try_reserve() {
                        peak.fetch_max(r.backend.in_flight(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert!(peak.load(Ordering::Relaxed) <= 3, "{peak:?}");
    assert!(pool.backends().all(|b| b.in_flight() == 0));
}

#[test]
fn without_a_limit_reserving_is_picking() {
    let mut config = pool_config(
        "p",
        StrategyKind::RoundRobin,
        vec![backend_config(0, 1, false)],
    );
    config.queue.max = 0;
    let backends = vec![Arc::new(Backend::new("p", &config.backends[0]))];
    let pool = Pool::new(&config, backends);
    assert!(!pool.is_limited());
    let held: Vec<_> = (0..100)
        .map(|_| pool.try_reserve().expect("unlimited"))
        .collect();
    assert_eq!(pool.primaries()[0].in_flight(), 100);
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gets_the_slot_released_and_others_queue_behind_it() {
    let pool = limited(StrategyKind::LeastConnections, &[(1, false)], 1, 10);
    let held = pool.try_reserve().expect("room");
    let queue = Arc::clone(pool.shared().queue());
    let waiter = pool.reserve(std::future::pending());
    tokio::pin!(waiter);
    assert!(futures_poll(waiter.as_mut()).is_none(), "waits");
    assert_eq!(queue.depth(), 1);
    // A newcomer does not overtake the waiter.
    assert_eq!(pool.try_reserve().err(), Some(Refused::Full));
    drop(held);
    let got = waiter.await.expect("the released slot");
    assert_eq!(got.backend.in_flight(), 1);
    assert_eq!(queue.depth(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_wait_ends_with_a_timeout_a_full_queue_a_client_gone_or_a_removed_pool() {
    let pool = limited(StrategyKind::RoundRobin, &[(1, false)], 1, 1);
    let _held = pool.try_reserve().expect("room");
    let started = tokio::time::Instant::now();
    assert_eq!(
        pool.reserve(std::future::pending()).await.err(),
        Some(Refused::Timeout)
    );
    assert_eq!(started.elapsed(), Duration::from_millis(500));

    let first = pool.reserve(std::future::pending());
    tokio::pin!(first);
    assert!(futures_poll(first.as_mut()).is_none());
    assert_eq!(
        pool.reserve(std::future::pending()).await.err(),
        Some(Refused::Full),
        "max 1 waiting"
    );
    pool.shared().queue().close();
    assert_eq!(first.await.err(), Some(Refused::Closed));
    assert_eq!(pool.shared().queue().depth(), 0);

    let pool = limited(StrategyKind::RoundRobin, &[(1, false)], 1, 1);
    let _held = pool.try_reserve().expect("room");
    assert_eq!(
        pool.reserve(std::future::ready(())).await.err(),
        Some(Refused::Gone)
    );
    assert_eq!(pool.shared().queue().depth(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_raised_limit_and_a_recovered_backend_let_waiters_on() {
    let pool = limited(StrategyKind::RoundRobin, &[(1, false), (1, false)], 1, 10);
    let _a = pool.try_reserve().expect("room");
    let _b = pool.try_reserve().expect("room");
    let waiter = pool.reserve(std::future::pending());
    tokio::pin!(waiter);
    assert!(futures_poll(waiter.as_mut()).is_none());
    pool.primaries()[0].set_max_in_flight(NonZeroU32::new(2));
    pool.shared().queue().kick_all();
    let got = waiter.await.expect("room under the raised limit");
    assert_eq!(got.backend.address(), "a");
}

/// Polls `f` once: `Some` if it finished.
fn futures_poll<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match f.poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}
