//! HTTP/2 keep-alive PINGs to clients: a slow but live download outlives them (a PING
//! waits behind the response bytes already queued, and hyper does not count the client's
//! WINDOW_UPDATEs as life, so the deadline must not be the interval), and `off` sends
//! none; with or without PINGs an idle connection is closed when its idle timeout runs
//! out. The client is `tests/h2attack/h2attack.py`.

use serde_json::Value;
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

/// An idle h2 connection to weir with `listener_extra`, held until weir closes it:
/// asserts it was closed as idle, by GOAWAY, and returns the client's report.
async fn idle_until_goaway(listener_extra: &str, what: &str) -> Value {
    let report = h2attack::run_fresh(WEIR, listener_extra, "idle", 0).await;
    eprintln!("idle h2 connection, {what}: {report}");
    assert_eq!(report["goaway"], true, "closed as idle: {report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_off_sends_no_pings_and_idle_still_closes() {
    let extra = "    timeouts: { idle: 2s }\n    http2: { keepalive_interval: off }\n";
    let report = idle_until_goaway(extra, "keep-alive off").await;
    assert_eq!(report["pings_before_goaway"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_pings_do_not_keep_an_idle_connection_open() {
    // On (1 s), the idle connection is PINGed before it is closed, gracefully, when its
    // idle timeout runs out.
    let extra = "    timeouts: { idle: 3s }\n    http2: { keepalive_interval: 1s }\n";
    let report = idle_until_goaway(extra, "1s keep-alive PINGs").await;
    let pings = report["pings_before_goaway"].as_u64().expect("pings");
    assert!(pings >= 2, "{report}");
    assert_eq!(report["error_code"], 0, "{report}");
    let at = report["seconds_to_goaway"].as_f64().expect("seconds");
    assert!((2.9..5.0).contains(&at), "GOAWAY after {at} s, idle is 3 s");
}
