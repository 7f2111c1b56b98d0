//! HTTP/2 keep-alive PINGs to clients: a slow but live download outlives them (a PING
//! waits behind the response bytes already queued, and hyper does not count the client's
//! WINDOW_UPDATEs as life, so the deadline must not be the interval), and `off` sends
//! none. The client is `tests/h2attack/h2attack.py`.

use weir_e2e::backend::{spawn_raw_backend, RawAction, RawRequest};
use weir_e2e::config::one_backend_listener;
use weir_e2e::{h2attack, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const BODY: usize = 16 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_download_outlives_its_keepalive_pings() {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n").into_bytes();
    let (addr, _backend) = spawn_raw_backend(move |_: &RawRequest| RawAction::Stream {
        head: head.clone(),
        len: BODY,
    })
    .await;
    // A PING a second; the timeout is the default (max(20 s, 2 × interval)). It was the
    // interval itself: with `keepalive_timeout: 1s` the download dies after ~3 s and
    // 6 MB, its PING still queued behind the bytes in the socket buffers.
    let weir = Weir::start(
        WEIR,
        &one_backend_listener(addr, "    http2: { keepalive_interval: 1s }\n"),
    )
    .await;
    // 16 MiB at 2 MiB/s: about 8 s, several PINGs, each behind the socket buffers.
    let report = h2attack::run("slow-download", weir.listener_addr("web"), 2048).await;
    eprintln!("slow h2 download with 1s keep-alive PINGs: {report}");
    assert_eq!(report["complete"], true, "the download was cut: {report}");
    assert_eq!(report["data_bytes"], BODY, "{report}");
    assert!(
        report["pings"].as_u64().expect("pings") >= 2,
        "weir PINGed during the download: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_off_sends_no_pings_and_idle_still_closes() {
    let extra = "    timeouts: { idle: 2s }\n    http2: { keepalive_interval: off }\n";
    let report = h2attack::run_fresh(WEIR, extra, "idle", 0).await;
    eprintln!("idle h2 connection, keep-alive off: {report}");
    assert_eq!(report["goaway"], true, "closed as idle: {report}");
    assert_eq!(report["pings_before_goaway"], 0, "{report}");

    // On (1 s), the same idle connection is PINGed before it is closed.
    let extra = "    timeouts: { idle: 3s }\n    http2: { keepalive_interval: 1s }\n";
    let report = h2attack::run_fresh(WEIR, extra, "idle", 0).await;
    assert_eq!(report["goaway"], true, "closed as idle: {report}");
    let pings = report["pings_before_goaway"].as_u64().expect("pings");
    assert!(pings >= 2, "{report}");
}
