//! Issue 8, defect 6, for HTTP/2 *clients*: one that grants the largest windows HTTP/2
//! allows, opens 100 large downloads and stops reading must not make weir queue much per
//! stream. Only weir's per-stream send buffer bounds that (hyper's default, ~400 KiB,
//! let such a connection hold 40 MB); back-pressure must stop the backends instead.

use weir_e2e::backend::{spawn_raw_backend, RawAction, RawRequest};
use weir_e2e::client::H2Client;
use weir_e2e::config::{backends, one_pool};
use weir_e2e::{h2attack, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
/// The default `max_concurrent_streams`: all of them stalled.
const STREAMS: usize = 100;
const BODY: usize = 20 * 1024 * 1024;
/// What one stalled stream may cost: its 64 KiB send buffer, the backend connection's
/// read buffer and a chunk or two in between, with allocator slack (~150 KiB measured).
/// With hyper's default send buffer (400 KiB) it was ~520 KiB.
const PER_STREAM_BOUND_KIB: u64 = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_that_stops_reading_holds_little_per_stream() {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n").into_bytes();
    let (addr, backend) = spawn_raw_backend(move |r: &RawRequest| {
        if r.head.starts_with("GET /big") {
            RawAction::Stream {
                head: head.clone(),
                len: BODY,
            }
        } else {
            RawAction::Write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec())
        }
    })
    .await;
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[addr]), "")).await;
    let listen = weir.listener_addr("web");
    let mut h2 = H2Client::connect(listen).await.expect("h2 connect");
    assert_eq!(h2.get("warm.test", "/").await.expect("GET").status, 200);
    let before = weir.rss_kib();

    let attack = tokio::spawn(h2attack::run("stalled-reader", listen, STREAMS as u64));
    // Until every download started and the backend's writes stopped growing over three
    // 200 ms polls (weir stopped reading: back-pressure); 30 s at most.
    let mut peak = before;
    let last = weir_e2e::until_steady(|| {
        peak = peak.max(weir.rss_kib());
        (backend.hits() > STREAMS).then(|| backend.bytes_written())
    })
    .await;
    let Some(last) = last else {
        panic!(
            "the backend writes never stopped ({} bytes)",
            backend.bytes_written()
        );
    };
    assert!(!attack.is_finished(), "the client was still stalled");
    let after = weir.rss_kib().max(peak);
    let growth = after.saturating_sub(before);
    eprintln!(
        "{STREAMS} stalled h2 streams: RSS {before} -> {after} KiB (+{growth}), backend wrote {} KiB of {} KiB",
        last / 1024,
        STREAMS * BODY / 1024
    );
    assert!(
        growth < STREAMS as u64 * PER_STREAM_BOUND_KIB,
        "RSS grew {growth} KiB for {STREAMS} stalled streams"
    );
    // Killing the client frees its streams; weir serves on.
    attack.abort();
    let mut h2 = H2Client::connect(listen).await.expect("h2 connect");
    assert_eq!(h2.get("after.test", "/").await.expect("GET").status, 200);
}
