//! Protocols beyond plain HTTP/1.1 requests: a WebSocket (`Upgrade`) tunnel, and HTTP/2
//! clients speaking h2c with prior knowledge.

use std::collections::HashMap;

use http::Version;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir_e2e::client::raw;
use weir_e2e::client::H2Client;
use weir_e2e::config::{backends, one_pool};
use weir_e2e::{deterministic_bytes, fnv1a, spawn_backends, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_tunnelled_both_ways() {
    let (weir, ha) = Weir::one_backend(WEIR, "ws").await;
    let mut stream = weir.connect("web").await;

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
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_keep_alive_requests_are_all_served_on_one_connection() {
    let (weir, ha) = Weir::one_backend(WEIR, "a").await;
    let mut stream = weir.connect("web").await;
    // Each request must be answered, with `Connection: keep-alive` (else the client
    // could not know the connection stays open).
    for path in ["/one", "/two", "/three"] {
        let req = format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        stream.write_all(req.as_bytes()).await.expect("request");
        let resp = raw::read_response(&mut stream)
            .await
            .unwrap_or_else(|e| panic!("no answer to {path} on the kept-alive connection: {e}"));
        assert_eq!(
            (resp.status, resp.text()),
            (200, "a".to_owned()),
            "{}",
            resp.head
        );
        assert_eq!(
            resp.header("connection"),
            Some("keep-alive"),
            "{}",
            resp.head
        );
        assert!(resp.head.starts_with("HTTP/1.0 "), "{}", resp.head);
    }
    let paths: Vec<String> = ha.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/one", "/two", "/three"]);

    // Without keep-alive, weir says it closes, and does.
    stream
        .write_all(b"GET /last HTTP/1.0\r\n\r\n")
        .await
        .expect("last request");
    let last = raw::read_response(&mut stream).await.expect("last answer");
    assert_eq!(last.header("connection"), Some("close"), "{}", last.head);
    let mut rest = Vec::new();
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut rest),
    )
    .await
    .expect("weir closes the connection")
    .expect("clean close");
    assert_eq!(n, 0, "nothing after the last response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_response_of_unknown_length_says_close_and_closes() {
    // A backend answering chunked: HTTP/1.0 has no chunked coding, so weir must end the
    // body by closing, and say so.
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let backend_addr = backend.local_addr().expect("backend address");
    tokio::spawn(async move {
        let Ok((mut conn, _)) = backend.accept().await else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 65_536 {
            if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        if conn.write_all(resp).await.is_ok() {
            // Hold the connection until weir drops it (it may pool it).
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).await.ok();
        }
    });
    let weir = Weir::start(
        WEIR,
        &one_pool("round_robin", &backends(&[backend_addr]), ""),
    )
    .await;
    let req = b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let resp = raw::exchange(weir.listener_addr("web"), req)
        .await
        .expect("answer");
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.header("connection"), Some("close"), "{}", resp.head);
    assert!(resp.header("transfer-encoding").is_none(), "{}", resp.head);
    // raw::read_response reads an unframed body to the end of the connection.
    assert_eq!(resp.text(), "hello");
}
