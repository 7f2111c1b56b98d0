//! Retries after resets: replayed for idempotent requests, never for others, and a
//! backend closing kept-alive connections costs no request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

/// A raw backend: reads each request head, then either answers `ok` and closes the
/// connection without saying so (`answer`), or closes without answering.
async fn raw_backend(answer: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let heads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&heads);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                if answer {
                    let res = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if let Err(e) = s.write_all(res).await {
                        eprintln!("raw backend: {e}");
                    }
                }
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn backend_closing_kept_alive_connections_costs_no_request() {
    let (addr, heads) = raw_backend(true).await;
    let proxy = Proxy::http(&[addr]).await;
    let mut c = client(proxy.addr).await;
    for i in 0..5 {
        let (status, _, body) = send(&mut c, get("/")).await;
        assert_eq!(status, StatusCode::OK, "request {i}");
        assert_eq!(body, "ok");
    }
    assert_eq!(heads.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn reset_before_response_is_retried_elsewhere_for_idempotent_requests() {
    let (resetting, heads) = raw_backend(false).await;
    let good = backend(Behaviour::Name("good")).await;
    let proxy = Proxy::http(&[resetting, good.addr]).await;
    let mut c = client(proxy.addr).await;
    for _ in 0..4 {
        let (status, _, body) = send(&mut c, get("/")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "good");
    }
    assert!(
        heads.load(Ordering::SeqCst) >= 1,
        "the resetting backend was tried"
    );
}

#[tokio::test]
async fn reset_after_a_post_was_sent_is_not_replayed() {
    let (resetting, heads) = raw_backend(false).await;
    let good = backend(Behaviour::Name("good")).await;
    let mut p = pool("app", &[resetting, good.addr]);
    p.strategy = weir_config::StrategyKind::RoundRobin;
    let proxy = Proxy::start(config(http_listener("app"), vec![p])).await;
    let mut c = client(proxy.addr).await;
    let mut bad_gateways = 0;
    for _ in 0..4 {
        let req = post(b"pay");
        let (status, _, body) = send(&mut c, req).await;
        match status {
            StatusCode::OK => assert_eq!(body, "good"),
            StatusCode::BAD_GATEWAY => bad_gateways += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        bad_gateways,
        heads.load(Ordering::SeqCst),
        "each reset POST answered 502"
    );
    assert!(bad_gateways >= 1);
    assert_eq!(good.hits(), 4 - bad_gateways);
}
