//! Passive ejection (threshold, cap, return), fail-open, `retry_on: [503]` and the retry
//! budget, through the real proxy on loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use weir_balance::Backend;
use weir_config::{Config, PoolConfig};
use weir_e2e::until;

use crate::support::*;

fn backend_state(proxy: &Proxy, addr: SocketAddr) -> Arc<Backend> {
    let table = proxy.table.load();
    let pool = table.pool("app").expect("pool app");
    let b = pool.backends().find(|b| b.addr() == addr).expect("backend");
    Arc::clone(b)
}

fn app(addrs: &[SocketAddr], edit: impl FnOnce(&mut PoolConfig)) -> Config {
    let mut p = pool("app", addrs);
    edit(&mut p);
    config(http_listener("app"), vec![p])
}

#[tokio::test]
async fn dead_backend_is_ejected_after_three_connect_failures_and_clients_see_200() {
    let held = closed_port();
    let dead = held.addr();
    let good = backend(Behaviour::Name("good")).await;
    let proxy = Proxy::start(app(&[dead, good.addr], |_| {})).await;
    let mut c = client(proxy.addr).await;
    for i in 0..12 {
        let (status, _, body) = send(&mut c, get("/")).await;
        assert_eq!(status, StatusCode::OK, "request {i}");
        assert_eq!(body, "good");
    }
    let d = backend_state(&proxy, dead);
    assert!(!d.is_up() && d.is_ejected());
    assert_eq!(d.transitions(), 1);
    let reason = d.last_transition().reason;
    assert!(
        reason.starts_with("passive: 3 consecutive failures (last: connect to"),
        "{reason}"
    );
    assert_eq!(good.hits(), 12);
}

#[tokio::test]
async fn cap_keeps_the_second_of_two_failing_backends_in_rotation() {
    let (_held, [a, b]) = closed_ports();
    let proxy = Proxy::start(app(&[a, b], |_| {})).await;
    let mut c = client(proxy.addr).await;
    for _ in 0..10 {
        let (status, _, _) = send(&mut c, get("/")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "never 503: one stays up");
    }
    let (sa, sb) = (backend_state(&proxy, a), backend_state(&proxy, b));
    assert_eq!(
        [sa.is_up(), sb.is_up()].iter().filter(|up| **up).count(),
        1,
        "exactly one ejected at 50% of 2"
    );
    assert_eq!(sa.transitions() + sb.transitions(), 1);
}

#[tokio::test]
async fn ejected_backend_returns_after_its_ejection_time() {
    let held = closed_port();
    let flaky = held.addr();
    let good = backend(Behaviour::Name("good")).await;
    let proxy = Proxy::start(app(&[flaky, good.addr], |p| {
        p.passive.base_ejection_time = Duration::from_millis(200);
    }))
    .await;
    let mut c = client(proxy.addr).await;
    for _ in 0..6 {
        assert_eq!(send(&mut c, get("/")).await.0, StatusCode::OK);
    }
    let f = backend_state(&proxy, flaky);
    assert!(f.is_ejected());
    until("the ejection to end", || f.is_up()).await;
    assert_eq!(f.last_transition().reason, weir_proxy::REASON_EJECTION_OVER);
    assert_eq!(f.ejections(), 1);
    assert_eq!(f.transitions(), 2);
}

#[tokio::test]
async fn all_down_answers_503_or_with_fail_open_spreads_over_all() {
    let a = backend(Behaviour::Name("a")).await;
    let b = backend(Behaviour::Name("b")).await;
    for fail_open in [false, true] {
        let proxy = Proxy::start(app(&[a.addr, b.addr], |p| p.fail_open = fail_open)).await;
        for addr in [a.addr, b.addr] {
            backend_state(&proxy, addr).force(false, "probe failed");
        }
        let before = (a.hits(), b.hits());
        let mut c = client(proxy.addr).await;
        for _ in 0..6 {
            let (status, _, _) = send(&mut c, get("/")).await;
            let expected = if fail_open {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            assert_eq!(status, expected, "fail_open: {fail_open}");
        }
        let spread = (a.hits() - before.0, b.hits() - before.1);
        if fail_open {
            assert_eq!(spread, (3, 3), "spread over all backends");
            let table = proxy.table.load();
            let picks = table.pool("app").expect("pool").shared().fail_open_picks();
            assert_eq!(picks, 6);
        } else {
            assert_eq!(spread, (0, 0));
        }
    }
}

fn post(path: &str) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "example.com")
        .body(Full::new(Bytes::from_static(b"payload")))
        .expect("request")
}

#[tokio::test]
async fn retry_on_503_retries_idempotent_requests_only() {
    let busy = backend(Behaviour::Status(503)).await;
    let good = backend(Behaviour::Name("good")).await;
    let proxy = Proxy::start(app(&[busy.addr, good.addr], |p| {
        p.retry_on.status_503 = true;
    }))
    .await;
    let mut c = client(proxy.addr).await;
    for i in 0..4 {
        let (status, _, body) = send(&mut c, get("/")).await;
        assert_eq!(status, StatusCode::OK, "GET {i}");
        assert_eq!(body, "good");
    }
    assert!(busy.hits() >= 2, "the 503 backend was asked");
    let busy_before = busy.hits();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(send(&mut c, post("/")).await.0);
    }
    assert!(
        statuses.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "a POST that met the 503 backend is not retried: {statuses:?}"
    );
    assert_eq!(
        busy.hits() - busy_before,
        statuses
            .iter()
            .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
            .count()
    );
    let b = backend_state(&proxy, busy.addr);
    assert!(b.is_up(), "a 503 answer is not a passive failure");
}

#[tokio::test]
async fn without_retry_on_503_the_backends_503_reaches_the_client() {
    let busy = backend(Behaviour::Status(503)).await;
    let proxy = Proxy::start(app(&[busy.addr], |_| {})).await;
    let mut c = client(proxy.addr).await;
    let (status, _, body) = send(&mut c, get("/")).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::SERVICE_UNAVAILABLE, &b"status"[..])
    );
}

/// Accepts connections, counts them, reads a little and closes: every attempt resets.
async fn resetting_backend(connections: Arc<AtomicUsize>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if let Err(e) = s.read(&mut buf).await {
                    eprintln!("resetting backend: {e}");
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn retry_budget_caps_the_attempts_a_failing_pool_sees() {
    let connections = Arc::new(AtomicUsize::new(0));
    let mut addrs = Vec::new();
    for _ in 0..3 {
        addrs.push(resetting_backend(Arc::clone(&connections)).await);
    }
    let proxy = Proxy::start(app(&addrs, |p| {
        p.passive.consecutive_failures = 0;
        p.retries = 2;
        p.retry_budget.percent = 20;
        p.retry_budget.min_per_second = 0;
    }))
    .await;
    let requests = 50;
    for i in 0..requests {
        let mut c = client(proxy.addr).await;
        let (status, _, _) = send(&mut c, get("/")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "request {i}");
    }
    let attempts = connections.load(Ordering::SeqCst);
    // Without a budget: 3 attempts per request (150). With 20%: at most 50 + 10.
    assert!(
        attempts > requests,
        "retries still happen within the budget: {attempts}"
    );
    assert!(
        attempts <= requests + requests / 5 + 1,
        "retries bounded by the budget: {attempts} attempts for {requests} requests"
    );
}

#[tokio::test]
async fn tcp_connect_failures_eject_the_backend() {
    let held = closed_port();
    let dead = held.addr();
    let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let live = echo.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = echo.accept().await {
            drop(s);
        }
    });
    let proxy = Proxy::start(tcp_config("app", &[dead, live])).await;
    for _ in 0..8 {
        let mut s = tokio::net::TcpStream::connect(proxy.addr)
            .await
            .expect("connect");
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(WAIT, s.read(&mut buf)).await;
        assert!(read.is_ok(), "relay ends when the backend closes");
    }
    let d = backend_state(&proxy, dead);
    assert!(
        d.is_ejected(),
        "TCP connect failures count against the backend"
    );
    assert!(backend_state(&proxy, live).is_up());
}

#[tokio::test]
async fn a_client_stalling_its_upload_does_not_get_a_healthy_backend_ejected() {
    use tokio::io::AsyncWriteExt;
    let a = backend(Behaviour::Status(200)).await;
    let b = backend(Behaviour::Status(200)).await;
    let proxy = Proxy::start(app(&[a.addr, b.addr], |p| {
        p.passive.consecutive_failures = 1;
        p.timeouts.response = Duration::from_millis(200);
    }))
    .await;
    // Promises 1,000 bytes, sends 10, then stalls: the backend waits for the rest, so
    // the response timer (which also covers the upload) runs out.
    let mut raw = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect to the proxy");
    raw.write_all(b"POST /upload HTTP/1.1\r\nhost: app\r\ncontent-length: 1000\r\n\r\n0123456789")
        .await
        .expect("send a partial upload");
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .expect("read the answer");
        assert!(n > 0, "connection closed without an answer");
        head.extend_from_slice(&buf[..n]);
    }
    assert_starts_with(&head, b"HTTP/1.1 504");
    for addr in [a.addr, b.addr] {
        let state = backend_state(&proxy, addr);
        assert!(
            state.is_up() && !state.is_ejected(),
            "{addr} ejected because a client stalled"
        );
    }
}
