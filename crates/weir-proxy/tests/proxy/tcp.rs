//! TCP listeners: relaying in bulk, half-close, failover on connect, nothing up, least
//! connections by open connections, and the PROXY protocol sent to backends and
//! accepted from trusted balancers.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_config::{AcceptProxyConfig, Cidr, ProxyProtocolVersion, StrategyKind};
use weir_e2e::{spawn_tcp_echo, spawn_tcp_recorder};

use crate::support::*;

fn trusting(cidr: &str) -> Option<AcceptProxyConfig> {
    Some(AcceptProxyConfig {
        trusted: vec![Cidr::parse(cidr).expect("cidr")],
    })
}

#[tokio::test]
async fn tcp_echoes_10_mb_intact() {
    let proxy = Proxy::start(tcp_config("db", &[spawn_tcp_echo().await])).await;
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    // A pattern that does not repeat at any power-of-two period.
    let payload: Vec<u8> = (0..10_000_000u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (mut r, mut w) = s.split();
    let write = async {
        w.write_all(&payload).await.expect("write");
        w.shutdown().await.expect("half-close");
    };
    let mut back = Vec::with_capacity(payload.len());
    let read = r.read_to_end(&mut back);
    tokio::time::timeout(WAIT, async { tokio::join!(write, read).1 })
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(back.len(), payload.len());
    assert!(back == payload, "payload corrupted");
}

#[tokio::test]
async fn tcp_relays_bytes_and_half_close_after_a_failed_connect() {
    let held = closed_port();
    let (dead, echo) = (held.addr(), spawn_tcp_echo().await);
    let proxy = Proxy::start(tcp_config("db", &[dead, echo])).await;
    for _ in 0..2 {
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        let payload: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let (mut r, mut w) = s.split();
        let write = async {
            w.write_all(&payload).await.expect("write");
            w.shutdown().await.expect("half-close");
        };
        let mut back = Vec::new();
        let read = r.read_to_end(&mut back);
        tokio::time::timeout(WAIT, async { tokio::join!(write, read).1 })
            .await
            .expect("echo in time")
            .expect("read");
        assert!(back == payload, "{} bytes back", back.len());
    }
}

#[tokio::test]
async fn tcp_with_nothing_up_closes_the_client() {
    let echo = spawn_tcp_echo().await;
    let proxy = Proxy::start(tcp_config("db", &[echo])).await;
    for b in proxy.table.load().pools()[0].backends() {
        b.force(false, "test");
    }
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

#[tokio::test]
async fn tcp_half_close_lets_the_backend_answer_after_the_clients_eof() {
    // The backend answers only after the request's EOF (like an rsh-style protocol).
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read request");
        let reply = format!("got {} bytes", got.len());
        s.write_all(reply.as_bytes()).await.expect("reply");
    });
    let proxy = Proxy::start(tcp_config("db", &[backend])).await;
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    s.write_all(&[7u8; 12_345]).await.expect("write");
    s.shutdown().await.expect("half-close");
    let mut reply = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut reply))
        .await
        .expect("reply in time")
        .expect("read");
    assert_eq!(reply, "got 12345 bytes");
}

#[tokio::test]
async fn tcp_least_connections_counts_open_connections() {
    let (a, _a_rx) = spawn_tcp_recorder().await;
    let (b, _b_rx) = spawn_tcp_recorder().await;
    let mut cfg = tcp_config("db", &[a, b]);
    cfg.pools[0].strategy = StrategyKind::LeastConnections;
    let proxy = Proxy::start(cfg).await;
    let backends: Vec<_> = proxy.table.load().pools()[0].backends().cloned().collect();
    let open = || (backends[0].in_flight(), backends[1].in_flight());
    let mut held = Vec::new();
    let mut connect_and_see = async |want: (u32, u32)| {
        held.push(TcpStream::connect(proxy.addr).await.expect("connect"));
        for _ in 0..500 {
            if open() == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(open(), want, "after {} connections", held.len());
    };
    // `b` out of rotation: `a` holds two open connections.
    backends[1].force(false, "test");
    connect_and_see((1, 0)).await;
    connect_and_see((2, 0)).await;
    // `b` back: the next two go to `b`, which has fewer open connections.
    backends[1].force(true, "test");
    connect_and_see((2, 1)).await;
    connect_and_see((2, 2)).await;
}

async fn proxied_bytes(version: ProxyProtocolVersion) -> (Vec<u8>, SocketAddr, SocketAddr) {
    let (backend, mut rx) = spawn_tcp_recorder().await;
    let mut cfg = tcp_config("db", &[backend]);
    cfg.listeners[0].proxy_protocol = Some(version);
    let proxy = Proxy::start(cfg).await;
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let client = s.local_addr().expect("client addr");
    s.write_all(b"payload").await.expect("write");
    s.shutdown().await.expect("half-close");
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("backend done in time")
        .expect("one connection");
    (got, client, proxy.addr)
}

#[tokio::test]
async fn tcp_sends_proxy_v1_before_the_payload() {
    let (got, client, proxy) = proxied_bytes(ProxyProtocolVersion::V1).await;
    let want = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\npayload",
        client.port(),
        proxy.port()
    );
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[tokio::test]
async fn tcp_sends_proxy_v2_before_the_payload() {
    let (got, client, proxy) = proxied_bytes(ProxyProtocolVersion::V2).await;
    let mut want = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x7f\0\0\x01\x7f\0\0\x01".to_vec();
    want.extend_from_slice(&client.port().to_be_bytes());
    want.extend_from_slice(&proxy.port().to_be_bytes());
    want.extend_from_slice(b"payload");
    assert_eq!(got, want);
}

#[tokio::test]
async fn tcp_forwards_the_address_a_trusted_proxy_header_carried() {
    let (backend, mut rx) = spawn_tcp_recorder().await;
    let mut cfg = tcp_config("db", &[backend]);
    cfg.listeners[0].proxy_protocol = Some(ProxyProtocolVersion::V1);
    cfg.listeners[0].accept_proxy_protocol = trusting("127.0.0.0/8");
    let proxy = Proxy::start(cfg).await;
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    // v2 in, v1 out: 198.51.100.7:4000 -> 203.0.113.1:5432.
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend_from_slice(&[198, 51, 100, 7, 203, 0, 113, 1, 0x0f, 0xa0, 0x15, 0x38]);
    s.write_all(&header).await.expect("header");
    s.write_all(b"after").await.expect("payload");
    s.shutdown().await.expect("half-close");
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time");
    let got = String::from_utf8(got.expect("one connection")).expect("text");
    assert_eq!(
        got,
        "PROXY TCP4 198.51.100.7 203.0.113.1 4000 5432\r\nafter"
    );
}

/// An HTTP listener to backend `a` that takes PROXY headers from `trusted` sources.
async fn http_accepting_proxy_headers_from(trusted: &str) -> (TestBackend, Proxy) {
    let b = backend(Behaviour::Name("a")).await;
    let mut cfg = config(http_listener("web"), vec![pool("web", &[b.addr])]);
    cfg.listeners[0].accept_proxy_protocol = trusting(trusted);
    (b, Proxy::start(cfg).await)
}

/// What `request` (PROXY header first) gets from an HTTP listener trusting `trusted`.
async fn raw_from(trusted: &str, request: &[u8]) -> (TestBackend, String) {
    let (b, proxy) = http_accepting_proxy_headers_from(trusted).await;
    let reply = raw(proxy.addr, request).await;
    (b, reply)
}

#[tokio::test]
async fn http_x_forwarded_for_is_the_address_a_trusted_proxy_header_carried() {
    let (b, reply) = raw_from("127.0.0.1", b"PROXY TCP4 203.0.113.7 127.0.0.1 4000 80\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(b.last_headers()["x-forwarded-for"], "203.0.113.7");
}

#[tokio::test]
async fn proxy_header_from_an_untrusted_source_closes_the_connection() {
    let (b, reply) = raw_from(
        "10.0.0.0/8",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 4000 80\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(reply, "");
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn malformed_or_missing_proxy_header_closes_the_connection() {
    let (b, proxy) = http_accepting_proxy_headers_from("127.0.0.1/32").await;
    for request in [
        &b"PROXY TCP4 203.0.113.7 nonsense 4000 80\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"PROXY TCP4 203.0.113.7 127.0.0.1 4000 80 and a very long tail that never ends ......................................................................",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04\x01\x02\x03\x04GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        // A TLV announcing 256 bytes in a 16-byte header.
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x10\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02\x01\x01\x00hGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let reply = raw(proxy.addr, request).await;
        assert_eq!(reply, "", "{:?}", String::from_utf8_lossy(request));
    }
    assert_eq!(b.hits(), 0);
}
