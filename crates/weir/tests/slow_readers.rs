//! Issue 8, defect 6: a client that asks for a large response and never reads it must
//! cost weir a bounded buffer, not a megabyte: weir stops reading from the backend
//! (back-pressure) once about 64 KiB per connection are waiting for the client.
//!
//! 50 clients each request a 50 MB body and never read. Once the backend's bytes written
//! stop growing (every socket buffer on the way is full and weir stopped reading), weir's
//! RSS growth over its baseline must stay under 50 × 256 KiB, over plain TCP and TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use weir_e2e::backend::{spawn_raw_backend, RawAction, RawBackend, RawRequest};
use weir_e2e::config::{backends, one_backend_listener, one_pool};
use weir_e2e::tls::{Ca, Dir};
use weir_e2e::Weir;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const CLIENTS: usize = 50;
const BODY: usize = 50 * 1024 * 1024;
const PER_CLIENT_BOUND: u64 = 256 * 1024;

const REQUEST: &[u8] = b"GET /big HTTP/1.1\r\nhost: big.test\r\n\r\n";

/// A backend that answers every request with a 50 MB body.
async fn big_backend() -> (SocketAddr, RawBackend) {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n").into_bytes();
    spawn_raw_backend(move |_: &RawRequest| RawAction::Stream {
        head: head.clone(),
        len: BODY,
    })
    .await
}

/// Waits until every request reached the backend and its writes stopped growing over
/// three 200 ms polls (every buffer between backend and client is then full), 30 s at
/// most; then checks weir's RSS growth since `before`.
async fn assert_bounded(weir: &Weir, backend: &RawBackend, before: u64, what: &str) {
    let steady =
        weir_e2e::until_steady(|| (backend.hits() == CLIENTS).then(|| backend.bytes_written()))
            .await;
    assert!(
        steady.is_some(),
        "the backend kept writing: weir never stopped reading"
    );
    let after = weir.rss_kib() * 1024;
    let growth = after.saturating_sub(before);
    eprintln!(
        "{CLIENTS} stalled {what} readers: backend wrote {} KiB in all, weir RSS {} KiB -> \
         {} KiB (+{} KiB, {} KiB per connection)",
        backend.bytes_written() / 1024,
        before / 1024,
        after / 1024,
        growth / 1024,
        growth / 1024 / CLIENTS as u64
    );
    assert!(
        growth < CLIENTS as u64 * PER_CLIENT_BOUND,
        "weir grew by {} KiB for {CLIENTS} stalled {what} readers (bound {} KiB)",
        growth / 1024,
        CLIENTS as u64 * PER_CLIENT_BOUND / 1024
    );
}

async fn send_and_stall<S: AsyncWrite + Unpin>(mut stream: S) -> S {
    stream.write_all(REQUEST).await.expect("write request");
    stream.flush().await.expect("flush request");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_cost_weir_a_bounded_buffer_each() {
    let (addr, backend) = big_backend().await;
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[addr]), "")).await;
    let listen = weir.listener_addr("web");
    let before = weir.rss_kib() * 1024;
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let s = TcpStream::connect(listen).await.expect("connect to weir");
        clients.push(send_and_stall(s).await);
    }
    assert_bounded(&weir, &backend, before, "plain").await;
}

/// A CA and a leaf for `big.test`, written as PEM files to a private directory.
struct Certs {
    dir: Dir,
    client: ClientConfig,
}

impl Certs {
    fn new() -> Certs {
        let ca = Ca::new();
        let dir = Dir::new();
        dir.install(&ca.leaf(&["big.test"]));
        let client = ca.client(&[b"http/1.1"]);
        Certs { dir, client }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_readers_cost_weir_a_bounded_buffer_each() {
    let certs = Certs::new();
    let (addr, backend) = big_backend().await;
    let yaml = one_backend_listener(
        addr,
        &format!(
            "    tls:\n      certificates:\n        - {{ cert: {d}/site.pem, key: {d}/site.key }}\n",
            d = certs.dir.path().display()
        ),
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let listen = weir.listener_addr("web");
    let before = weir.rss_kib() * 1024;
    let connector = TlsConnector::from(Arc::new(certs.client.clone()));
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let tcp = TcpStream::connect(listen).await.expect("connect to weir");
        let name = ServerName::try_from("big.test").expect("name");
        let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
            .await
            .expect("handshake in time")
            .expect("TLS handshake");
        clients.push(send_and_stall(tls).await);
    }
    assert_bounded(&weir, &backend, before, "TLS").await;
}
