//! Large HTTP/2 downloads over TLS arrive whole: several streams of one connection, each
//! bigger than every window, from an HTTP/1 backend, through weir's own HTTP/2 server.
//!
//! TLS is where a response's last bytes can stay behind: rustls takes the plaintext and
//! holds what it encrypted until it is flushed, so weir's connection flushes until
//! rustls says it is done, not only after a write. (A connection that stopped flushing
//! while the socket was full would leave a stream's end waiting for the next frame, a
//! keep-alive PING 30 s later; the body wait here is shorter. On loopback the socket
//! seldom fills, so this catches that case only when it does.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use weir_e2e::backend::{spawn_raw_backend, RawAction, RawRequest};
use weir_e2e::config::{backends, ADMIN};
use weir_e2e::tls::{Ca, Dir};
use weir_e2e::Weir;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
/// Each download: 16 windows of the default 64 KiB and then some.
const BODY: usize = 4 * 1024 * 1024 + 17;
const STREAMS: usize = 4;
const WAIT: Duration = Duration::from_secs(20);

async fn h2_over_tls(
    addr: SocketAddr,
    ca: &Ca,
) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("a.test").expect("name");
    let tls = tokio::time::timeout(
        WAIT,
        TlsConnector::from(Arc::new(ca.client(&[b"h2"]))).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_http2_downloads_over_tls_arrive_whole_on_one_connection() {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n").into_bytes();
    let (backend, _handle) = spawn_raw_backend(move |_: &RawRequest| RawAction::Stream {
        head: head.clone(),
        len: BODY,
    })
    .await;
    let (ca, dir) = (Ca::new(), Dir::new());
    dir.install(&ca.leaf(&["a.test"]));
    let yaml = format!(
        "{ADMIN}listeners:\n  - name: tls\n    listen: 127.0.0.1:0\n    tls:\n      certificates:\n        - {{ cert: {d}/site.pem, key: {d}/site.key }}\n    routes:\n      - pool: web\npools:\n  web:\n    strategy: round_robin\n    backends:\n{}",
        backends(&[backend]),
        d = dir.path().display()
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let sender = h2_over_tls(weir.listener_addr("tls"), &ca).await;

    let mut downloads = Vec::new();
    for i in 0..STREAMS {
        let mut sender = sender.clone();
        downloads.push(tokio::spawn(async move {
            let req = Request::builder()
                .uri(format!("https://a.test/big/{i}"))
                .version(Version::HTTP_2)
                .body(Empty::<Bytes>::new())
                .expect("request");
            let resp = tokio::time::timeout(WAIT, sender.send_request(req))
                .await
                .expect("head in time")
                .expect("head");
            assert_eq!(resp.status(), 200, "stream {i}");
            let body = tokio::time::timeout(WAIT, resp.into_body().collect())
                .await
                .unwrap_or_else(|_| panic!("stream {i}: the body did not end in time"))
                .expect("body")
                .to_bytes();
            body.len()
        }));
    }
    for (i, d) in downloads.into_iter().enumerate() {
        assert_eq!(d.await.expect("download task"), BODY, "stream {i}");
    }
}
