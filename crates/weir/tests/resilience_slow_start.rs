//! Issue 3 (h): with `slow_start`, a backend that comes back up ramps from a small share to
//! its full share, for every strategy (HAProxy `slowstart`).
//!
//! The phases are anchored on the `backend up` log line, not on guesses: the early window
//! is the first 500 ms after it (at most a sixth of a 3 s ramp), the late window starts
//! 500 ms after the ramp has ended and lasts for 400 requests (so `random`'s noise stays
//! small even on a slow machine). Only shares are compared, so a slow machine sends fewer
//! requests but does not change the outcome. The health check's timeout is generous: a
//! busy machine must not take a backend down by accident in the middle of a window.

use std::time::Duration;

use tokio::time::Instant;
use weir_e2e::config::{backends, health_check, one_pool};
use weir_e2e::{spawn_backends, status, until, BackendHandle, Load, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);
const SLOW_START: Duration = Duration::from_secs(3);
const EARLY: Duration = Duration::from_millis(500);
const LATE_REQUESTS: usize = 400;
/// Fewer requests than this in the early window cannot show a share.
const EARLY_MIN_REQUESTS: usize = 20;

/// Hits of `a` and `b` from now until `until`.
async fn hits_until(a: &BackendHandle, b: &BackendHandle, until: Instant) -> (usize, usize) {
    let (a0, b0) = (a.hits(), b.hits());
    tokio::time::sleep_until(until).await;
    (a.hits() - a0, b.hits() - b0)
}

/// Hits of `a` and `b` from now until together they got `n` more (at most 10 s).
async fn hits_for(a: &BackendHandle, b: &BackendHandle, n: usize) -> (usize, usize) {
    let (a0, b0) = (a.hits(), b.hits());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (da, db) = (a.hits() - a0, b.hits() - b0);
        if da + db >= n {
            return (da, db);
        }
        assert!(
            Instant::now() < deadline,
            "only {} requests in 10 s ({da} + {db}); wanted {n}",
            da + db
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn share(of: usize, other: usize) -> f64 {
    of as f64 / (of + other) as f64
}

async fn recovered_backend_ramps_up(strategy: &str) {
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
    let pool_extra = format!(
        "{}    slow_start: {}ms\n",
        health_check(100, 500, 2, 2),
        SLOW_START.as_millis()
    );
    let weir = Weir::start(WEIR, &one_pool(strategy, &backends(&[a, b]), &pool_extra)).await;
    until("a few probes of b", || hb.health_probes() >= 2).await;

    let mark = weir.log_mark();
    hb.set_health_status(503);
    weir.wait_for_backend_log(mark, "backend down", b, LOG_WAIT)
        .await;
    let load = Load::start(weir.listener_addr("web"), 4);
    load.wait_for_more(50, "while b is down").await;

    let mark = weir.log_mark();
    hb.set_health_status(200);
    weir.wait_for_backend_log(mark, "backend up", b, LOG_WAIT)
        .await;
    let t0 = Instant::now();
    let (early_a, early_b) = hits_until(&ha, &hb, t0 + EARLY).await;
    let doc = weir.status().await;
    assert_eq!(
        status::backend(&doc, "web", b)["in_slow_start"],
        true,
        "{strategy}: /status should show the ramp: {doc}"
    );
    tokio::time::sleep_until(t0 + SLOW_START + Duration::from_millis(500)).await;
    let (late_a, late_b) = hits_for(&ha, &hb, LATE_REQUESTS).await;
    let report = load.stop().await;
    let doc = weir.status().await;
    assert_eq!(
        status::backend(&doc, "web", b)["in_slow_start"],
        false,
        "{strategy}: the ramp is over: {doc}"
    );

    eprintln!(
        "{strategy}: early a={early_a} b={early_b}, late a={late_a} b={late_b}, {} ok",
        report.ok
    );
    report.assert_no_failures("slow start");
    assert!(
        early_a + early_b >= EARLY_MIN_REQUESTS,
        "too few requests to measure the early share: {early_a} + {early_b}"
    );
    let early = share(early_b, early_a);
    let late = share(late_b, late_a);
    assert!(
        early < 0.35,
        "{strategy}: b took {:.0}% in the first {EARLY:?} of a {SLOW_START:?} slow start",
        early * 100.0
    );
    assert!(
        (0.4..=0.6).contains(&late),
        "{strategy}: b took {:.0}% after its slow start ended; full share is 50%",
        late * 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_recovered_backend_under_round_robin() {
    recovered_backend_ramps_up("round_robin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_recovered_backend_under_weighted() {
    recovered_backend_ramps_up("weighted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_recovered_backend_under_random() {
    recovered_backend_ramps_up("random").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_recovered_backend_under_least_connections() {
    recovered_backend_ramps_up("least_connections").await;
}
