//! Protocols beyond plain HTTP/1.1 requests: a WebSocket (`Upgrade`) tunnel, and HTTP/2
//! clients speaking h2c with prior knowledge.

use std::collections::HashMap;

use http::Version;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_e2e::client::raw;
use weir_e2e::client::H2Client;
use weir_e2e::config::{backends, one_pool};
use weir_e2e::{deterministic_bytes, fnv1a, spawn_backend, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_tunnelled_both_ways() {
    let (a, ha) = spawn_backend("ws").await;
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[a]), "")).await;
    let mut stream = TcpStream::connect(weir.listener_addr("web"))
        .await
        .expect("connect to weir");

    let handshake = "GET /chat HTTP/1.1\r\n\
        Host: chat.test\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    stream
        .write_all(handshake.as_bytes())
        .await
        .expect("send handshake");
    let resp = raw::read_response(&mut stream)
        .await
        .expect("handshake answer");
    assert_eq!(resp.status, 101, "{}", resp.head);
    assert!(
        resp.header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{}",
        resp.head
    );
    assert!(resp.body.is_empty(), "no tunnel bytes before we send any");

    let seen = ha
        .requests()
        .pop()
        .expect("the backend got the upgrade request");
    assert_eq!(
        seen.header("upgrade"),
        Some("websocket"),
        "{:?}",
        seen.headers
    );

    // Small message, then 256 KiB both ways through the tunnel.
    stream.write_all(b"hello weir").await.expect("send");
    let mut buf = [0u8; 10];
    stream.read_exact(&mut buf).await.expect("echo");
    assert_eq!(&buf, b"hello weir");

    let big = deterministic_bytes(256 * 1024);
    let (mut rd, mut wr) = stream.into_split();
    let to_send = big.clone();
    let writer = tokio::spawn(async move { wr.write_all(&to_send).await.map(|()| wr) });
    let mut back = vec![0u8; big.len()];
    rd.read_exact(&mut back).await.expect("256 KiB echoed back");
    assert_eq!(fnv1a(&back), fnv1a(&big), "tunnelled bytes corrupted");
    let mut wr = writer.await.expect("writer task").expect("write 256 KiB");
    wr.shutdown().await.expect("half-close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_client_requests_are_proxied_and_spread() {
    let (a, ha) = spawn_backend("a").await;
    let (b, hb) = spawn_backend("b").await;
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[a, b]), "")).await;
    let addr = weir.listener_addr("web");
    let client = H2Client::connect(addr)
        .await
        .expect("h2c handshake with weir");

    // 20 concurrent streams on one HTTP/2 connection.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let mut c = client.clone();
            tokio::spawn(async move {
                let resp = c.get("h2.test", &format!("/item/{i}")).await;
                resp.unwrap_or_else(|e| panic!("h2 stream {i} failed: {e}"))
            })
        })
        .collect();
    let mut counts = HashMap::new();
    for t in tasks {
        let resp = t.await.expect("h2 task");
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.version, Version::HTTP_2);
        *counts.entry(resp.text()).or_insert(0) += 1;
    }
    assert_eq!(counts.get("a"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");

    // The :authority became the Host the backend sees over HTTP/1.1.
    let seen = ha
        .requests()
        .into_iter()
        .chain(hb.requests())
        .collect::<Vec<_>>();
    assert_eq!(seen.len(), 20);
    for r in &seen {
        assert_eq!(r.header("host"), Some("h2.test"), "{:?}", r.headers);
        assert_eq!(
            r.version,
            Version::HTTP_11,
            "HTTP/1.1 to backends by default"
        );
        assert!(r.path.starts_with("/item/"), "{}", r.path);
    }
}
