//! The shutdown grace (`shutdown_grace`), what a balancer behind a VIP or an outer load
//! balancer needs: on SIGTERM `/healthz` answers 503 at once, so keepalived's check fails
//! and the VIP moves, while the listener goes on accepting and serving the clients that
//! still arrive, each response closing its connection (HTTP/1 `Connection: close`,
//! HTTP/2 GOAWAY) so they come back through the VIP's new owner; an HTTP/1 keep-alive
//! connection idle between requests is closed at once (a FIN while the VIP is still
//! here, not a reset from the new owner on the next request). Only when the grace is
//! over does it refuse, drain as without a grace, and exit 0.
//!
//! The grace is long (12 s) so that every in-grace assertion, each waiting on an event,
//! is done well inside it on a loaded machine; nothing here measures time.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use weir_e2e::client::{self, raw, H1Client, H2Client};
use weir_e2e::{check_config, config, eventually, spawn_backend, until, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const GRACE: Duration = Duration::from_secs(12);

/// `one_pool` over `backend` with a 12 s grace.
fn with_grace(backend: std::net::SocketAddr) -> String {
    config::one_pool("round_robin", &config::backend(backend), "").replace(
        "shutdown_timeout: 10s\n",
        "shutdown_timeout: 10s\nshutdown_grace: 12s\n",
    )
}

fn connection_header(resp: &client::Response) -> Option<String> {
    resp.header("connection").map(str::to_ascii_lowercase)
}

const RAW_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: weir\r\n\r\n";

/// Asserts that the server closes `stream`, on which nothing more is sent, with a FIN
/// (a read of 0 bytes) and not a reset (an error); `what` says which close it was.
/// Bounded well beyond the grace's start.
async fn assert_closed_with_fin(stream: &mut TcpStream, what: &str) {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
        .await
        .unwrap_or_else(|_| panic!("the connection was neither closed nor reset within 10 s"));
    assert_eq!(read.expect("a FIN, not a reset"), 0, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_grace_answers_healthz_503_keeps_accepting_then_refuses_and_exits_0() {
    let (backend, _ha) = spawn_backend("a").await;
    let mut weir = Weir::start(WEIR, &with_grace(backend)).await;
    let addr = weir.listener_addr("web");
    let authority = addr.to_string();

    // Clients that used their connection before the signal and will use it again during
    // the grace: an HTTP/1 keep-alive one and an HTTP/2 one.
    let mut kept = H1Client::connect(addr).await.expect("connect h1 client");
    let resp = kept.get("/").await.expect("h1 warm-up request");
    assert_eq!(
        (resp.status.as_u16(), connection_header(&resp)),
        (200, None)
    );
    let mut h2 = H2Client::connect(addr).await.expect("connect h2 client");
    let resp = h2.get(&authority, "/").await.expect("h2 warm-up request");
    assert_eq!(resp.status, 200);
    // The same keep-alive client on a raw socket, to tell a FIN from a reset.
    let mut idle = TcpStream::connect(addr).await.expect("connect raw client");
    idle.write_all(RAW_GET).await.expect("raw warm-up request");
    let resp = raw::read_response(&mut idle)
        .await
        .expect("raw warm-up response");
    assert_eq!((resp.status, resp.header("connection")), (200, None));
    // And one accepted before the signal that has not sent its first request yet.
    let mut early = TcpStream::connect(addr)
        .await
        .expect("connect early client");
    let resp = client::get(addr, "/").await;
    assert_eq!(resp.status.as_u16(), 200, "weir serving before the signal");

    let mark = weir.log_mark();
    let term_at = Instant::now();
    weir.sigterm().await;
    weir.wait_for_log_after(mark, "shutting down", Duration::from_secs(5))
        .await;
    let health = weir
        .healthz()
        .await
        .expect("admin answers during the grace");
    assert_eq!(
        (health.status.as_u16(), health.text().trim().to_owned()),
        (503, "draining".to_owned()),
        "/healthz must fail at once, so keepalived moves the VIP during the grace"
    );

    // Still accepting: a client arriving now is served, and told to reconnect.
    let fresh = client::get(addr, "/").await;
    assert_eq!(
        (fresh.status.as_u16(), fresh.text()),
        (200, "a".to_owned()),
        "a new connection during the grace is served"
    );
    assert_eq!(
        connection_header(&fresh).as_deref(),
        Some("close"),
        "a response during the grace closes its connection: {:?}",
        fresh.headers
    );
    // Keep-alive connections idle between requests are closed at once, with a FIN: a
    // client sees it while the VIP still leads here, and reconnects through its new
    // owner instead of having its next request reset there.
    assert_closed_with_fin(
        &mut idle,
        "an idle keep-alive connection is closed when the grace starts",
    )
    .await;
    until("the idle hyper keep-alive client seeing the close", || {
        kept.is_closed()
    })
    .await;
    assert!(
        kept.get("/").await.is_err(),
        "no request goes out on a connection the grace closed"
    );
    // One waiting for its first request was accepted for it: served, and closed after.
    early
        .write_all(RAW_GET)
        .await
        .expect("first request on the early connection");
    let resp = raw::read_response(&mut early)
        .await
        .expect("the early connection's first request is served during the grace");
    assert_eq!(
        (resp.status, resp.header("connection")),
        (200, Some("close"))
    );
    assert_closed_with_fin(&mut early, "closed after its response").await;
    // HTTP/2: GOAWAY, so the connection ends once its streams are done.
    until("the HTTP/2 connection ending after GOAWAY", || {
        h2.is_closed()
    })
    .await;
    let mut h2_again = H2Client::connect(addr)
        .await
        .expect("a new HTTP/2 connection during the grace");
    let resp = h2_again
        .get(&authority, "/")
        .await
        .expect("h2 request during the grace");
    assert_eq!(resp.status, 200);
    until("the new HTTP/2 connection ending after its request", || {
        h2_again.is_closed()
    })
    .await;
    assert!(!weir.has_exited(), "weir must wait out the grace");

    // Then it stops accepting, and exits as a drain without a grace does.
    weir.wait_for_log_after(
        mark,
        "shutdown grace over: stop accepting",
        GRACE + Duration::from_secs(5),
    )
    .await;
    eventually("the listener refusing new connections", || async {
        raw::is_refused(addr).await.then_some(())
    })
    .await;
    let refused_after = term_at.elapsed();
    assert!(
        refused_after >= GRACE,
        "refused {refused_after:?} after SIGTERM, before the {GRACE:?} grace was over"
    );
    let status = weir.wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "exit status {status}\n{}",
        weir.log_tail(20)
    );
    let done = weir
        .wait_for_log_after(mark, "shutdown complete", Duration::from_secs(1))
        .await;
    assert_eq!(done["forced"], 0, "nothing was left to close by force");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_during_the_grace_is_ignored_and_a_second_signal_stops_at_once() {
    let (backend, _ha) = spawn_backend("a").await;
    let mut weir = Weir::start(WEIR, &with_grace(backend)).await;
    let mark = weir.log_mark();
    weir.sigterm().await;
    weir.wait_for_log_after(mark, "shutting down", Duration::from_secs(5))
        .await;
    // A reload during the grace would rebuild listeners that are winding down: it is
    // refused, and says so.
    weir.sighup().await;
    weir.wait_for_log_after(
        mark,
        "SIGHUP ignored: shutting down",
        Duration::from_secs(5),
    )
    .await;
    weir.sigint().await;
    weir.wait_for_log_after(mark, "second signal: stopping now", Duration::from_secs(5))
        .await;
    let status = weir.wait_exit(Duration::from_secs(5)).await;
    assert!(status.success(), "exit status {status}");
    assert!(
        weir.logs_after(mark, "shutdown grace over: stop accepting")
            .is_empty(),
        "the grace was cut short"
    );
}

#[tokio::test]
async fn weir_check_reports_a_bad_shutdown_grace_and_accepts_a_good_one() {
    for (bad, error) in [
        (
            "soon",
            "weir.yaml:1:1: shutdown_grace: invalid duration \"soon\" (expected a number and a unit: 250ms, 2s, 1m, 1h)",
        ),
        ("2h", "weir.yaml:1:1: shutdown_grace: must be at most 1h, got 2h"),
    ] {
        let bad = format!("shutdown_grace: {bad}\n{}", config::MINIMAL);
        weir_e2e::assert_check_errors(WEIR, &bad, &[error, "weir.yaml: 1 error"]).await;
    }
    // `0s` is the documented default, written out.
    for good in ["5s", "0s", "0"] {
        let good = format!("shutdown_grace: {good}\n{}", config::MINIMAL);
        let out = check_config(WEIR, &good).await;
        assert_eq!(out.code, Some(0), "{good}: {}", out.stderr);
    }
}
