//! Issue 8, defect 6: a client that asks for a large response and never reads it must
//! cost weir a bounded buffer, not a megabyte: weir stops reading from the backend
//! (back-pressure) once about 64 KiB per connection are waiting for the client.
//!
//! 50 clients each request a 50 MB body and never read. Once the backend's bytes written
//! stop growing (every socket buffer on the way is full and weir stopped reading), weir's
//! RSS growth over its baseline must stay under 50 × 256 KiB.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use weir_e2e::backend::{spawn_raw_backend, RawAction, RawRequest};
use weir_e2e::config::{backends, one_pool};
use weir_e2e::Weir;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const CLIENTS: usize = 50;
const BODY: usize = 50 * 1024 * 1024;
const PER_CLIENT_BOUND: u64 = 256 * 1024;

/// `VmRSS` of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_cost_weir_a_bounded_buffer_each() {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n").into_bytes();
    let (addr, backend) = spawn_raw_backend(move |_: &RawRequest| RawAction::Stream {
        head: head.clone(),
        len: BODY,
    })
    .await;
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[addr]), "")).await;
    let listen = weir.listener_addr("web");
    let before = rss(weir.pid());

    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut s = TcpStream::connect(listen).await.expect("connect to weir");
        s.write_all(b"GET /big HTTP/1.1\r\nhost: big.test\r\n\r\n")
            .await
            .expect("write request");
        clients.push(s);
    }

    // Wait until every request reached the backend and its writes stopped growing over
    // three 200 ms polls: every buffer between backend and client is then full. 30 s at most.
    let mut last = 0;
    let mut still = 0;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = backend.bytes_written();
        if backend.hits() == CLIENTS && now == last {
            still += 1;
            if still == 3 {
                break;
            }
        } else {
            still = 0;
        }
        last = now;
    }
    assert_eq!(
        still, 3,
        "the backend kept writing: weir never stopped reading"
    );
    let after = rss(weir.pid());
    let growth = after.saturating_sub(before);
    eprintln!(
        "{CLIENTS} stalled readers: backend wrote {} KiB in all, weir RSS {} KiB -> {} KiB \
         (+{} KiB, {} KiB per connection)",
        backend.bytes_written() / 1024,
        before / 1024,
        after / 1024,
        growth / 1024,
        growth / 1024 / CLIENTS as u64
    );
    assert!(
        growth < CLIENTS as u64 * PER_CLIENT_BOUND,
        "weir grew by {} KiB for {CLIENTS} stalled readers (bound {} KiB)",
        growth / 1024,
        CLIENTS as u64 * PER_CLIENT_BOUND / 1024
    );
    drop(clients);
}
