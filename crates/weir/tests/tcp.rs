//! The real binary relaying TCP: 10 MB echoed intact (FNV-1a) with a half-close, and
//! the PROXY v2 header it sends carrying the address a trusted v1 header gave it.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir_e2e::config::ADMIN;
use weir_e2e::{deterministic_bytes, fnv1a, spawn_tcp_echo, spawn_tcp_recorder, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const TEN_MB: usize = 10 * 1024 * 1024;
const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

fn tcp_yaml(backend: SocketAddr, listener_extra: &str) -> String {
    format!(
        "\
{ADMIN}listeners:
  - name: pg
    listen: 127.0.0.1:0
    protocol: tcp
    pool: db
{listener_extra}
pools:
  db:
    backends:
      - {{ address: {backend} }}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_listener_echoes_10_mb_intact_through_the_binary() {
    let echo = spawn_tcp_echo().await;
    let weir = Weir::start(WEIR, &tcp_yaml(echo, "")).await;
    let mut s = weir.connect("pg").await;
    let payload = deterministic_bytes(TEN_MB);
    let (mut r, mut w) = s.split();
    let write = async {
        w.write_all(&payload).await.expect("write");
        w.shutdown().await.expect("half-close");
    };
    let mut back = Vec::with_capacity(TEN_MB);
    let read = r.read_to_end(&mut back);
    tokio::time::timeout(WAIT, async { tokio::join!(write, read).1 })
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(back.len(), TEN_MB);
    assert_eq!(fnv1a(&back), fnv1a(&payload), "payload corrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_listener_turns_a_trusted_v1_header_into_a_v2_header() {
    let (backend, mut rx) = spawn_tcp_recorder().await;
    let extra = "    proxy_protocol: v2\n    accept_proxy_protocol: { trusted: [127.0.0.1/32] }";
    let weir = Weir::start(WEIR, &tcp_yaml(backend, extra)).await;
    let mut s = weir.connect("pg").await;
    s.write_all(b"PROXY TCP4 192.0.2.10 192.0.2.1 40000 5432\r\nhello")
        .await
        .expect("write");
    s.shutdown().await.expect("half-close");
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("backend done in time")
        .expect("bytes");
    let mut want = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    want.extend_from_slice(&[192, 0, 2, 10, 192, 0, 2, 1]);
    want.extend_from_slice(&40000u16.to_be_bytes());
    want.extend_from_slice(&5432u16.to_be_bytes());
    want.extend_from_slice(b"hello");
    assert_eq!(got, want);
}
