//! TCP listeners in front of pools with `tls`: the relay originates TLS to the backend
//! (no ALPN, SNI from `server_name`, verified with the pool's CA), sends a PROXY header
//! in the clear before the handshake, and treats a refused certificate as a connect
//! failure (counted by passive checking, retried on another backend).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_config::{ListenerConfig, PoolConfig, Protocol, ProxyProtocolVersion};

use crate::support::*;
use weir_e2e::tls::{Ca, Dir, Leaf};

/// What a TLS echo backend saw on one connection.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// The PROXY v1 line read in the clear before the handshake, if expected.
    proxy_line: Option<String>,
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
    /// Bytes received inside TLS.
    bytes: usize,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A backend that completes a TLS handshake with `leaf` (after reading a PROXY v1 line
/// in the clear when `proxy_line`) and echoes what it receives; logs each connection.
async fn tls_echo_backend(leaf: &Leaf, proxy_line: bool) -> (SocketAddr, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = acceptor(leaf, &[]);
    let log: Log = Arc::default();
    let seen = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                let line = if proxy_line {
                    match read_line(&mut tcp).await {
                        Some(line) => Some(line),
                        None => return,
                    }
                } else {
                    None
                };
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let conn = tls.get_ref().1;
                let index = {
                    let mut log = seen.lock().expect("log");
                    log.push(Seen {
                        proxy_line: line,
                        sni: conn.server_name().map(str::to_owned),
                        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                        bytes: 0,
                    });
                    log.len() - 1
                };
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    seen.lock().expect("log")[index].bytes += n;
                    if tls.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, log)
}

/// One line up to `\r\n`, byte by byte so nothing after it is consumed; at most 108
/// bytes (a PROXY v1 line's limit).
async fn read_line(tcp: &mut TcpStream) -> Option<String> {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") && line.len() < 108 {
        line.push(tcp.read_u8().await.ok()?);
    }
    String::from_utf8(line).ok()
}

/// A plain TCP listener (no TLS towards the client) for pool `web`.
fn plain_tcp_listener() -> ListenerConfig {
    let mut l = listener(Protocol::Tcp, tls_config(&Dir::new(), &[]));
    l.tls = None;
    l
}

fn add_backend(pool: &mut PoolConfig, addr: SocketAddr) {
    pool.backends.push(weir_config::test_util::backend(addr));
}

/// Sends `payload` through the proxy, half-closes, and reads the echo back up to the
/// backend's EOF (the half-close crosses TLS as `close_notify`, both ways).
async fn echo_through(proxy: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(proxy).await?;
    s.write_all(payload).await?;
    s.shutdown().await?;
    let mut back = Vec::with_capacity(payload.len());
    tokio::time::timeout(WAIT, s.read_to_end(&mut back))
        .await
        .map_err(|_| std::io::Error::other("no echo and EOF in time"))??;
    Ok(back)
}

#[tokio::test]
async fn tcp_listener_originates_verified_tls_to_a_tls_pool() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let leaf = ca.leaf(&["backend.test"]);
    let (be, log) = tls_echo_backend(&leaf, false).await;
    let proxy = Proxy::start(
        plain_tcp_listener(),
        pool(be, Some(upstream_tls(&dir, &ca, "backend.test"))),
    )
    .await;
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let back = echo_through(proxy.addr, &payload)
        .await
        .expect("the backend echoes over TLS");
    assert_eq!(back, payload);
    let seen = log.lock().expect("log").clone();
    assert_eq!(seen.len(), 1, "one TLS connection: {seen:?}");
    assert_eq!(seen[0].sni.as_deref(), Some("backend.test"));
    assert_eq!(seen[0].alpn, None, "relayed bytes are not named by ALPN");
    assert_eq!(
        seen[0].bytes,
        payload.len(),
        "every byte arrived inside TLS"
    );
}

#[tokio::test]
async fn proxy_header_goes_in_the_clear_before_the_tls_handshake() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let leaf = ca.leaf(&["backend.test"]);
    let (be, log) = tls_echo_backend(&leaf, true).await;
    let mut l = plain_tcp_listener();
    l.proxy_protocol = Some(ProxyProtocolVersion::V1);
    let proxy = Proxy::start(l, pool(be, Some(upstream_tls(&dir, &ca, "backend.test")))).await;
    let back = echo_through(proxy.addr, b"hello")
        .await
        .expect("echo after the PROXY header and the handshake");
    assert_eq!(back, b"hello");
    let seen = log.lock().expect("log").clone();
    let line = seen[0].proxy_line.as_deref().expect("a PROXY line");
    assert!(
        line.starts_with("PROXY TCP4 127.0.0.1 127.0.0.1 "),
        "{line:?}"
    );
}

#[tokio::test]
async fn backend_certificate_from_another_ca_is_a_counted_connect_failure_and_retried() {
    let (ca, dir, stranger) = (Ca::new(), Dir::new(), Ca::new());
    let (bad, bad_log) = tls_echo_backend(&stranger.leaf(&["backend.test"]), false).await;
    let (good, good_log) = tls_echo_backend(&ca.leaf(&["backend.test"]), false).await;
    let mut p = pool(bad, Some(upstream_tls(&dir, &ca, "backend.test")));
    add_backend(&mut p, good);
    p.retries = 1;
    p.passive.consecutive_failures = 1;
    let proxy = Proxy::start(plain_tcp_listener(), p).await;
    // Round robin tries each backend first once in two connections: both are served.
    for i in 0..2 {
        let back = echo_through(proxy.addr, b"ping")
            .await
            .unwrap_or_else(|e| panic!("connection {i} retried on the good backend: {e}"));
        assert_eq!(back, b"ping");
    }
    let table = proxy.table.load();
    let web = table.pool("web").expect("pool web");
    let bad_state = web.backends().find(|b| b.addr() == bad).expect("backend");
    assert!(!bad_state.is_up(), "the refused backend is ejected");
    let reason = bad_state.last_transition().reason;
    assert!(reason.contains("TLS handshake"), "{reason}");
    assert!(
        bad_log.lock().expect("log").is_empty(),
        "nothing relayed to it"
    );
    assert_eq!(good_log.lock().expect("log").len(), 2);

    // With only the untrusted backend, the client is closed without a byte.
    let (bad2, _) = tls_echo_backend(&stranger.leaf(&["backend.test"]), false).await;
    let proxy = Proxy::start(
        plain_tcp_listener(),
        pool(bad2, Some(upstream_tls(&dir, &ca, "backend.test"))),
    )
    .await;
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    s.write_all(b"secret").await.expect("send");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed without an answer: {read:?}"
    );
}
