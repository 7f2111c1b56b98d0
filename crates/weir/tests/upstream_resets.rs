//! Issue 8, defect 4: every reset a backend causes is counted (`weir_upstream_errors_total`
//! with `kind="reset"`, and passive checking), and a request that left weir is replayed
//! only as `retry_on` allows, never a POST. The backend answers the first request of each
//! keep-alive connection and resets the connection on the next, so every request after
//! the first goes out on a reused connection and is reset after it was sent.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use weir_e2e::backend::{spawn_raw_backend, RawAction, RawBackend, RawRequest};
use weir_e2e::config::{backends, one_pool};
use weir_e2e::{status, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// Answers the first request of each connection, resets the connection on the second.
async fn reset_on_reuse() -> (SocketAddr, RawBackend) {
    spawn_raw_backend(|r: &RawRequest| {
        if r.index == 0 {
            RawAction::Write(OK.to_vec())
        } else {
            RawAction::Reset
        }
    })
    .await
}

async fn resets(weir: &Weir) -> f64 {
    weir.metrics()
        .await
        .sum("weir_upstream_errors_total", &[("kind", "reset")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_on_reused_connections_are_counted_and_retried_as_retry_on_allows() {
    let (addr, backend) = reset_on_reuse().await;
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[addr]), "")).await;
    let mut client = weir.h1_client("web").await;
    const N: usize = 5;
    client.assert_gets(N, "/", "ok").await;
    // Each GET after the first: reset on the reused connection (counted), then retried
    // on a new connection to the same backend (the only one), which answers.
    let scrape = weir.metrics().await;
    let resets = scrape.sum("weir_upstream_errors_total", &[("kind", "reset")]);
    let retries = scrape.sum("weir_retries_total", &[]);
    eprintln!(
        "{N} GETs: backend received {}, resets counted {resets}, retries {retries}",
        backend.hits()
    );
    assert_eq!(backend.hits(), 1 + 2 * (N - 1));
    assert_eq!(resets, (N - 1) as f64, "every reset the backend caused");
    assert_eq!(retries, (N - 1) as f64);
    assert_eq!(
        backend.hits(),
        N + resets as usize,
        "received = answered + reset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reset_in_retry_on_a_reset_after_sending_reaches_the_client() {
    let (addr, backend) = reset_on_reuse().await;
    let extra = "    retry_on: [connect_failure]\n";
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[addr]), extra)).await;
    let mut client = weir.h1_client("web").await;
    let resp = client.get("/").await.expect("first GET");
    assert_eq!(resp.status, 200);
    let resp = client.get("/").await.expect("second GET");
    assert_eq!(
        resp.status,
        502,
        "replayed though retry_on has no reset: {}",
        resp.text()
    );
    assert_eq!(backend.hits(), 2, "the reset request was not replayed");
    assert_eq!(resets(&weir).await, 1.0);
    let doc = weir.status().await;
    assert_eq!(
        status::backend(&doc, "web", addr)["passive_failures"],
        1,
        "passive checking saw the reset: {doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_reset_after_sending_is_never_replayed() {
    let (addr, backend) = reset_on_reuse().await;
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[addr]), "")).await;
    let mut client = weir.h1_client("web").await;
    assert_eq!(client.get("/").await.expect("GET").status, 200);
    let post = Request::post("/orders")
        .body(Full::new(Bytes::from_static(b"{\"n\":1}")))
        .expect("request");
    let resp = client.send(post).await.expect("POST");
    assert_eq!(resp.status, 502, "{}", resp.text());
    let posts = backend
        .requests()
        .iter()
        .filter(|r| r.method() == "POST")
        .count();
    assert_eq!(posts, 1, "the POST reached the backend once");
    assert_eq!(resets(&weir).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_resetting_every_request_has_every_reset_counted() {
    let (addr, backend) = spawn_raw_backend(|_: &RawRequest| RawAction::Reset).await;
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[addr]), "")).await;
    let mut client = weir.h1_client("web").await;
    for i in 0..4 {
        let resp = client.get("/").await.expect("GET");
        assert_eq!(resp.status, 502, "GET {i}");
    }
    assert_eq!(resets(&weir).await, backend.hits() as f64);
}
