//! The support library checked against itself (no weir involved), so a failing end-to-end
//! test points at weir, not at a broken backend or client.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_e2e::client::{self, raw, H1Client};
use weir_e2e::{
    closed_port, deterministic_bytes, eventually, fnv1a, spawn_backend, spawn_tcp_sink,
};

#[tokio::test]
async fn backend_answers_its_name_and_records_requests() {
    let (addr, h) = spawn_backend("alpha").await;
    let mut c = H1Client::connect(addr).await.expect("connect");
    for _ in 0..3 {
        let r = c.get("/x?y=1").await.expect("request");
        assert_eq!((r.status.as_u16(), r.text()), (200, "alpha".to_owned()));
        assert_eq!(r.header("x-backend"), Some("alpha"));
    }
    assert_eq!(h.hits(), 3);
    assert_eq!(h.connections(), 1, "keep-alive reused the connection");
    assert_eq!(h.requests()[0].path, "/x?y=1");

    h.set_status(503);
    assert_eq!(c.get("/").await.expect("request").status, 503);
    h.set_health_status(500);
    let health = client::get(addr, "/health").await;
    assert_eq!(health.status, 500);
    assert_eq!((h.hits(), h.health_probes()), (4, 1), "probes are not hits");
}

#[tokio::test]
async fn killed_backend_refuses_and_closes_open_connections_then_can_return() {
    let (addr, h) = spawn_backend("k").await;
    let mut c = H1Client::connect(addr).await.expect("connect");
    assert_eq!(c.get("/").await.expect("request").text(), "k");
    h.kill().await;
    assert!(raw::is_refused(addr).await, "port still accepts after kill");
    assert!(c.get("/").await.is_err(), "open connection survived kill");

    let h2 = h.restart("k2").await;
    assert_eq!(client::get(addr, "/").await.text(), "k2");
    assert_eq!(h2.hits(), 1);
    assert!(raw::is_refused(closed_port().addr()).await);
}

#[tokio::test]
async fn held_requests_wait_for_release() {
    let (addr, h) = spawn_backend("h").await;
    let slow = tokio::spawn(async move { client::get(addr, "/hold").await });
    eventually("held request arriving", || {
        let n = h.in_progress();
        async move { (n == 1).then_some(()) }
    })
    .await;
    assert!(!slow.is_finished());
    h.release(1);
    assert_eq!(slow.await.expect("task").text(), "h");
    assert_eq!(h.in_progress(), 0);
}

#[tokio::test]
async fn echo_sink_and_bytes_paths_move_bodies_intact() {
    let (addr, h) = spawn_backend("b").await;
    h.set_delay(Duration::from_millis(1));
    let body = deterministic_bytes(100_000);
    let mut c = H1Client::connect(addr).await.expect("connect");
    let req = |path: &str| {
        Request::post(path)
            .body(Full::new(Bytes::from(body.clone())))
            .expect("request")
    };
    assert_eq!(c.send(req("/echo")).await.expect("echo").body, body);
    let sink = c.send(req("/sink")).await.expect("sink").text();
    assert_eq!(sink, format!("100000 {}", fnv1a(&body)));
    let got = c.get("/bytes/100000").await.expect("bytes");
    assert_eq!(got.body, body);
}

#[tokio::test]
async fn websocket_upgrade_echoes_raw_bytes() {
    let (addr, _h) = spawn_backend("ws").await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        .await
        .expect("write");
    let resp = raw::read_response(&mut s).await.expect("101");
    assert_eq!(resp.status, 101, "{}", resp.head);
    s.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.expect("echo");
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn raw_exchange_reads_an_error_answer() {
    let (addr, _h) = spawn_backend("r").await;
    let resp = raw::exchange(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    )
    .await
    .expect("answer");
    assert_eq!(resp.status, 400, "hyper itself refuses differing lengths");
}

#[tokio::test]
async fn tcp_sink_counts_bytes() {
    let (addr, sink) = spawn_tcp_sink().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"12345").await.expect("write");
    eventually("5 bytes at the sink", || {
        let n = sink.bytes_received();
        async move { (n == 5).then_some(()) }
    })
    .await;
    assert_eq!(sink.connections(), 1);
}
