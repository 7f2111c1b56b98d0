//! Issue 3 (e): with every backend down by its health check, weir answers 503 at once
//! (it does not wait on a backend it knows is down) and serves again as soon as one
//! backend passes its checks; with `fail_open: true` it spreads over all backends instead.

use std::time::Duration;

use tokio::time::Instant;
use weir_e2e::client;
use weir_e2e::config::{backends, health_check, one_pool};
use weir_e2e::{eventually, spawn_backend, status, BackendHandle, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);

async fn three_backends() -> (Vec<std::net::SocketAddr>, Vec<BackendHandle>) {
    let mut addrs = Vec::new();
    let mut handles = Vec::new();
    for name in ["a", "b", "c"] {
        let (addr, h) = spawn_backend(name).await;
        addrs.push(addr);
        handles.push(h);
    }
    (addrs, handles)
}

/// Fails every backend's health path and waits until weir marked each down.
async fn take_all_down(weir: &Weir, addrs: &[std::net::SocketAddr], handles: &[BackendHandle]) {
    let mark = weir.log_mark();
    for h in handles {
        h.set_health_status(503);
    }
    for addr in addrs {
        weir.wait_for_backend_log(mark, "backend down", *addr, LOG_WAIT)
            .await;
    }
}

/// weir over three backends checked every 100 ms, the pool's YAML ending in
/// `pool_extra`, once every backend is down by its health check.
async fn start_all_down(pool_extra: &str) -> (Weir, Vec<std::net::SocketAddr>, Vec<BackendHandle>) {
    let (addrs, handles) = three_backends().await;
    let pool_extra = format!("{}{pool_extra}", health_check(100, 500, 2, 2));
    let weir = Weir::start(
        WEIR,
        &one_pool("round_robin", &backends(&addrs), &pool_extra),
    )
    .await;
    take_all_down(&weir, &addrs, &handles).await;
    (weir, addrs, handles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_down_answers_503_at_once_then_recovers_when_one_returns() {
    let (weir, addrs, handles) =
        start_all_down("    timeouts: { connect: 2s, response: 10s }\n").await;
    let addr = weir.listener_addr("web");
    assert_eq!(status::pool(&weir.status().await, "web")["backends_up"], 0);
    // Were a request sent to a backend anyway, it would take 5 s to answer.
    for h in &handles {
        h.set_delay(Duration::from_secs(5));
    }
    let hits: usize = handles.iter().map(BackendHandle::hits).sum();

    for i in 0..10 {
        let started = Instant::now();
        let resp = client::get(addr, "/").await;
        let took = started.elapsed();
        assert_eq!(resp.status, 503, "request {i}: {}", resp.text());
        assert!(!resp.body.is_empty(), "the 503 should say why");
        assert!(
            took < Duration::from_secs(2),
            "request {i}: 503 took {took:?}; it should not wait for a down backend \
             (response timeout 10 s)"
        );
    }
    assert_eq!(
        handles.iter().map(BackendHandle::hits).sum::<usize>(),
        hits,
        "a request reached a backend marked down"
    );

    let mark = weir.log_mark();
    handles[1].set_delay(Duration::ZERO);
    handles[1].set_health_status(200);
    weir.wait_for_backend_log(mark, "backend up", addrs[1], LOG_WAIT)
        .await;
    for _ in 0..5 {
        let resp = client::get(addr, "/").await;
        assert_eq!((resp.status.as_u16(), resp.text()), (200, "b".to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_spreads_over_all_backends_when_every_backend_is_down() {
    let (weir, _addrs, handles) = start_all_down("    fail_open: true\n").await;
    let addr = weir.listener_addr("web");

    for i in 0..30 {
        let resp = client::get(addr, "/").await;
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
    }
    for h in &handles {
        assert!(
            h.hits() >= 5,
            "fail-open should spread over every backend; {} got {} of 30",
            h.name(),
            h.hits()
        );
    }
    // Still down in the operator's view: fail-open serves, it does not pretend health.
    eventually("/status still showing every backend down", || async {
        let doc = weir.status().await;
        (status::down_count(&doc, "web") == 3).then_some(())
    })
    .await;
    let doc = weir.status().await;
    let picks = status::pool(&doc, "web")["fail_open_picks"].as_u64();
    assert!(
        picks.is_some_and(|p| p >= 30),
        "failing open should be counted (30 requests): {doc}"
    );
}
