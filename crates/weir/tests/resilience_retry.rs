//! Issue 3 (g) and opt-in status retries: `retry_on: [503]` hides a failing backend from
//! clients of idempotent requests, never retries a request that left weir with a body it
//! cannot replay (POST), and the retry budget keeps a failing pool from a retry storm.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::time::Instant;
use weir_e2e::config::{backends, one_pool};
use weir_e2e::{spawn_backend, spawn_backends, BackendHandle, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

const RETRY_503: &str = "    retries: 3\n    retry_on: [connect_failure, reset, 503]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_caps_the_attempts_a_failing_pool_sees() {
    let mut addrs = Vec::new();
    let mut handles: Vec<BackendHandle> = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let (addr, h) = spawn_backend(name).await;
        h.set_status(503);
        addrs.push(addr);
        handles.push(h);
    }
    let pool_extra = format!("{RETRY_503}    retry_budget: {{ percent: 20, min_per_second: 1 }}\n");
    let weir = Weir::start(
        WEIR,
        &one_pool("round_robin", &backends(&addrs), &pool_extra),
    )
    .await;

    const N: usize = 200;
    let mut client = weir.h1_client("web").await;
    let started = Instant::now();
    for i in 0..N {
        let resp = client.get("/").await.expect("request");
        assert_eq!(resp.status, 503, "request {i}: {}", resp.text());
    }
    let secs = started.elapsed().as_secs_f64();
    let attempts: usize = handles.iter().map(BackendHandle::hits).sum();

    // Unbudgeted, every request would be tried 4 times (800 attempts). The budget allows
    // 20% on top, plus 1 per second of the run; +1 s and +5 absorb window edges.
    let allowed = N + N / 5 + (secs.ceil() as usize + 1) + 5;
    eprintln!("{N} requests in {secs:.2}s: {attempts} attempts (allowed {allowed})");
    assert!(
        attempts <= allowed,
        "{attempts} attempts for {N} requests in {secs:.2}s: the budget allows at most {allowed}"
    );
    assert!(
        attempts > N,
        "retry_on 503 should retry within the budget: {attempts} attempts for {N} requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_on_503_hides_a_failing_backend_from_get_but_never_replays_post() {
    let ([good, bad], [hgood, hbad]) = spawn_backends(["good", "bad"]).await;
    hbad.set_status(503);
    let weir = Weir::start(
        WEIR,
        &one_pool("round_robin", &backends(&[good, bad]), RETRY_503),
    )
    .await;
    let mut client = weir.h1_client("web").await;

    client.assert_gets(10, "/", "good").await;
    assert!(hbad.hits() > 0, "round robin should have tried bad too");

    let before = hgood.hits() + hbad.hits();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let req = Request::post("/")
            .body(Full::new(Bytes::from_static(b"not idempotent")))
            .expect("valid request");
        statuses.push(client.send(req).await.expect("POST").status.as_u16());
    }
    assert_eq!(
        hgood.hits() + hbad.hits() - before,
        10,
        "a POST that reached a backend must not be sent again: {statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "POSTs answered 503 by bad are passed through: {statuses:?}"
    );
}
